package io.vlmflux.cuda.gpu;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;

/** The shape keys of the tuned GEMM ({@code vlmflux.cuda.gemmTune}): row buckets and operand alignments (no GPU needed). */
class TunedGemmKeyTest {
    @Test
    void rowCountsShareATuningUpToTheNextPowerOfTwo() {
        assertEquals(1, TunedGemm.bucket(1));
        assertEquals(2, TunedGemm.bucket(2));
        assertEquals(4, TunedGemm.bucket(3));
        assertEquals(64, TunedGemm.bucket(64));
        assertEquals(128, TunedGemm.bucket(65));
        assertEquals(512, TunedGemm.bucket(391));
        assertEquals(1024, TunedGemm.bucket(1024));
        assertEquals(1 << 30, TunedGemm.bucket((1 << 29) + 1));
        for (int n = 1; n < 5000; n++) {
            int b = TunedGemm.bucket(n);
            assertTrue(b >= n && b < 2 * n && Integer.bitCount(b) == 1, "bucket(" + n + ") = " + b);
        }
        assertThrows(IllegalArgumentException.class, () -> TunedGemm.bucket(0));
    }

    @Test
    void alignmentIsTheLargestPowerOfTwoUpTo256() {
        assertEquals(256, TunedGemm.alignment(0x7f0000000000L));
        assertEquals(256, TunedGemm.alignment(0x7f0000000100L));
        assertEquals(128, TunedGemm.alignment(0x7f0000000080L));
        assertEquals(4, TunedGemm.alignment(0x7f0000000104L));
        assertEquals(2, TunedGemm.alignment(0x7f0000000002L));
        assertEquals(1, TunedGemm.alignment(0x7f0000000001L));
    }
}
