package io.vlmflux.cuda.gpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The multi-block sampler's host-side sizing (no GPU needed). */
class SampleWorkspaceTest {
    @Test
    void partsCoverTheVocabularyInChunksOfAboutAThousand() {
        assertEquals(1, GpuOps.sampleParts(1));
        assertEquals(1, GpuOps.sampleParts(1024));
        assertEquals(2, GpuOps.sampleParts(1025));
        assertEquals(GpuOps.SAMPLE_PARTS, GpuOps.sampleParts(151_936));
        for (int n : new int[] {1, 999, 4097, 32_000, 151_936, 262_144}) {
            int p = GpuOps.sampleParts(n), chunk = (n + p - 1) / p;
            assertTrue(p >= 1 && p <= GpuOps.SAMPLE_PARTS, "parts " + p);
            assertTrue((long) p * chunk >= n, "chunks cover " + n);
        }
    }

    @Test
    void workspaceHoldsInfoHistogramsAndThreeVocabularyArrays() {
        long w = GpuOps.sampleWorkspaceBytes(151_936);
        assertEquals(2048 + 8L * 4096 + 12L * 151_936, w);
        assertTrue(GpuOps.SAMPLE_INFO_OFFSET + 16 <= 2048, "info words sit before the histograms");
        assertTrue(GpuOps.argmaxWorkspaceBytes() <= GpuOps.SAMPLE_INFO_OFFSET, "greedy settings reuse the partials' bytes");
        assertTrue(GpuOps.sampleWorkspaceBytes(2) > GpuOps.sampleWorkspaceBytes(1));
    }
}
