package io.vlmflux.cuda.gpu;

import org.junit.jupiter.api.condition.EnabledIf;
import static io.vlmflux.cuda.gpu.Ref.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The skinny batched GEMM (the decoder uses it up to 4 rows; the kernel takes 2..8) against a float64 CPU reference on bf16-rounded inputs (every row count 2..8, widths not a
 * multiple of the 8 columns a block serves, k from one chunk to several warps' worth, bias and accumulate), and its
 * argument checks. The row rope/attention kernels are checked against the per-row kernels in CudaDecoderTest (llm).
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class BatchDecodeOpsTest {
    static GpuStream st;
    static DeviceArena arena;
    static BatchDecodeOps bops;

    @BeforeAll
    static void open() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        st = Gpu.device().newStream();
        arena = Gpu.device().newArena("batch decode test", 1L << 26);
        bops = new BatchDecodeOps(st);
    }

    @AfterAll
    static void close() {
        if (bops != null) bops.close();
        if (arena != null) arena.close();
        if (st != null) st.close();
    }

    @ParameterizedTest(name = "rows {0} m {1} k {2} bias {3} acc {4}")
    @CsvSource({"2, 13, 8, false, false", "3, 64, 40, true, false", "4, 257, 1032, true, true", "5, 9, 256, false, true",
            "6, 100, 2056, true, true", "7, 31, 72, false, false", "8, 1000, 512, true, true"})
    void gemvRowsMatchesReference(int rows, int m, int k, boolean withBias, boolean acc) {
        Random rnd = new Random(rows * 31L + m);
        long mark = arena.mark();
        try {
            float[] w = bfRound(randn(rnd, m * k, 1f)), x = bfRound(randn(rnd, rows * k, 1f));
            float[] bias = randn(rnd, m, 1f), y0 = randn(rnd, rows * m, 1f);
            DeviceBuffer dw = arena.alloc("w", 2L * m * k), dx = arena.alloc("x", 2L * rows * k);
            DeviceBuffer db = arena.alloc("bias", 4L * m), dy = arena.alloc("y", 4L * rows * m);
            st.upload(dw, bf16(w));
            st.upload(dx, bf16(x));
            st.upload(db, bias);
            st.upload(dy, y0);
            bops.gemvRows(dy, dw, dx, withBias ? db : null, acc, rows, m, k);
            float[] y = st.downloadFloats(dy, rows * m);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < m; j++) {
                    double s = 0, mag = 0;
                    for (int t = 0; t < k; t++) { s += (double) x[r * k + t] * w[j * k + t]; mag += Math.abs((double) x[r * k + t] * w[j * k + t]); }
                    if (acc) s += y0[r * m + j];
                    if (withBias) s += bias[j];
                    assertEquals(s, y[r * m + j], 2e-5 * (mag + 1), "row " + r + " col " + j);
                }
        } finally {
            arena.reset(mark);
        }
    }

    @Test
    void gemvRowsChecksArguments() {
        long mark = arena.mark();
        try {
            DeviceBuffer w = arena.alloc("w", 2L * 16 * 16), x = arena.alloc("x", 2L * 9 * 16), y = arena.alloc("y", 4L * 9 * 16);
            assertThrows(IllegalArgumentException.class, () -> bops.gemvRows(y, w, x, null, false, 1, 16, 16));
            assertThrows(IllegalArgumentException.class, () -> bops.gemvRows(y, w, x, null, false, 9, 16, 16));
            assertThrows(IllegalArgumentException.class, () -> bops.gemvRows(y, w, x, null, false, 2, 16, 12));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bops.gemvRows(y, w, x, null, false, 2, 32, 16));
            assertTrue(e.getMessage().contains("'w'"), e.getMessage());
        } finally {
            arena.reset(mark);
        }
    }
}
