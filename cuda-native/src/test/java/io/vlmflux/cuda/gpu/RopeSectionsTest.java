package io.vlmflux.cuda.gpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The rope kernels' section encoding (no GPU needed): interleaved M-RoPE as negative sections, and what is refused. */
class RopeSectionsTest {
    @Test void interleavedSectionsEncodeAndValidate() {
        assertArrayEquals(new int[] {-61, -61}, GpuOps.interleavedSections(new int[] {24, 20, 20}));
        assertArrayEquals(new int[] {-1, -1}, GpuOps.interleavedSections(new int[] {32, 0, 0}));
        var e = assertThrows(IllegalArgumentException.class, () -> GpuOps.interleavedSections(new int[] {24, 20}));
        assertTrue(e.getMessage().contains("[24, 20]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GpuOps.checkSections("ropeQkv", -5, 3, 64), "mixed signs");
        assertTrue(e.getMessage().startsWith("ropeQkv: interleaved"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> GpuOps.checkSections("ropeQkv", 20, 40, 64), "past hd/2");
        assertThrows(IllegalArgumentException.class, () -> GpuOps.checkSections("ropeQkv", 20, 10, 64), "sec1 > sec2");
        GpuOps.checkSections("ropeQkv", -5, -1, 64);
        GpuOps.checkSections("ropeQkv", 8, 20, 64);
    }
}
