package io.vlmflux.cuda.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The persistent decode step's host-side rules (decode_mega.cu): which shapes it takes, how many key splits it uses. */
class MegaShapeTest {
    @Test
    void takesTheShapesItsKernelsExistFor() {
        assertNull(GpuOps.megaShapeUnsupported(128, 1024, 2048, 3072), "Qwen3-0.6B");
        assertNull(GpuOps.megaShapeUnsupported(128, 3584, 3584, 18944), "Qwen2.5-7B");
        assertNull(GpuOps.megaShapeUnsupported(16, 96, 96, 256), "tiny-qwen2");
        assertNull(GpuOps.megaShapeUnsupported(8, 64, 64, 176));
        assertTrue(GpuOps.megaShapeUnsupported(24, 64, 96, 160).startsWith("head dim 24"), "tiny-qwen3vl: hd 24 has no kernel");
        assertTrue(GpuOps.megaShapeUnsupported(80, 1280, 1280, 5120).startsWith("head dim 80"));
        assertTrue(GpuOps.megaShapeUnsupported(512, 4096, 4096, 8192).startsWith("head dim 512"));
        assertEquals("intermediate width 172 is not a multiple of 8 of at most " + GpuOps.MEGA_MAX_K,
                GpuOps.megaShapeUnsupported(8, 64, 64, 172), "tiny-llama");
        assertTrue(GpuOps.megaShapeUnsupported(128, 8192, 8192, 28672).startsWith("intermediate width 28672"), "Llama-3-70B: x does not fit shared memory");
        assertNull(GpuOps.megaShapeUnsupported(128, 4096, 4096, 14336), "Llama-3-8B");
    }

    @Test
    void splitsGiveEveryBlockAnAttentionItemAndKeepSixteenKeysASplit() {
        assertEquals(16, GpuOps.megaSplits(132, 16, 8, 4096, 256), "0.6B: 8 kv heads x 1 group x 16 = 128 items on 132 blocks");
        assertEquals(33, GpuOps.megaSplits(132, 16, 2, 4096, 256), "3B: 2 kv heads x 2 groups of 4 heads");
        assertEquals(16, GpuOps.megaSplits(132, 28, 4, 4096, 256), "7B: 4 kv heads x 2 groups (7 heads: 4 + 3)");
        assertEquals(4, GpuOps.megaSplits(132, 16, 8, 64, 256), "a 64-position cache: 16 keys a split");
        assertEquals(1, GpuOps.megaSplits(132, 16, 8, 8, 256), "at least one split");
        assertEquals(10, GpuOps.megaSplits(132, 4, 4, 4096, 10), "capped by the partials workspace");
        assertEquals(1, GpuOps.megaSplits(8, 64, 8, 4096, 256), "more items than blocks: one split each");
    }
}
