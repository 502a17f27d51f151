package io.vlmflux.cuda.cpu;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Vector-API kernels against a double-precision reference and the scalar fallback, over sizes that hit every
 * tail (columns not a multiple of the vector block, inputs not a multiple of the 4-input tile, odd row ranges).
 */
class CpuKernelsTest {
    @TempDir Path dir;

    private static List<CpuKernels> kernels() {
        assertTrue(ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent(), "tests run with --add-modules jdk.incubator.vector");
        return List.of(new ScalarKernels(), new VectorKernels());
    }

    private static float[] gauss(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    private static float bf16Round(float f) { return Float.intBitsToFloat(Float.floatToRawIntBits(f) & 0xFFFF0000); }

    @Test void vectorPathIsSelectedWhenTheModuleIsPresent() {
        assertTrue(CpuOps.kernels().startsWith("Vector API"), CpuOps.kernels());
    }

    @Test void bf16RowsMatchReferenceForOddShapes() {
        Random r = new Random(3);
        int[][] shapes = {{1, 1, 1}, {3, 5, 1}, {7, 31, 2}, {9, 32, 4}, {5, 33, 5}, {11, 64, 7}, {6, 100, 9}, {4, 257, 13}};
        try (Arena arena = Arena.ofConfined()) {
            for (int[] s : shapes) {
                int rows = s[0], cols = s[1], n = s[2];
                float[] w = gauss(r, rows * cols), x = gauss(r, n * cols), bias = gauss(r, rows);
                MemorySegment seg = arena.allocate(2L * rows * cols, 2);
                for (int i = 0; i < w.length; i++) {
                    w[i] = bf16Round(w[i]);
                    seg.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(w[i]) >>> 16));
                }
                for (CpuKernels k : kernels()) {
                    float[] xp = new float[n * cols];
                    for (int t = 0; t < n; t++) k.prepareBf16(x, t * cols, xp, t * cols, cols);
                    int stride = rows + 3, off = 2;
                    float[] out = new float[n * stride + off];
                    // two calls over a split row range, as Parallel chunks do (odd split point)
                    int mid = rows / 2 + (rows > 2 ? 1 : 0);
                    k.rowsBf16(seg, cols, 0, mid, xp, n, out, stride, off, bias);
                    k.rowsBf16(seg, cols, mid, rows, xp, n, out, stride, off, bias);
                    for (int t = 0; t < n; t++)
                        for (int o = 0; o < rows; o++) {
                            double ref = bias[o];
                            for (int c = 0; c < cols; c++) ref += (double) w[o * cols + c] * x[t * cols + c];
                            assertEquals(ref, out[t * stride + off + o], 1e-4 * Math.sqrt(cols) + 1e-5,
                                    k.describe() + " " + rows + "x" + cols + " n=" + n + " t=" + t + " r=" + o);
                        }
                }
            }
        }
    }

    @Test void f32RowsSegmentAndHeapMatchReference() {
        Random r = new Random(4);
        int rows = 13, cols = 45, n = 6;
        float[] w = gauss(r, rows * cols), x = gauss(r, n * cols);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(4L * w.length, 4);
            MemorySegment.copy(w, 0, seg, ValueLayout.JAVA_FLOAT, 0, w.length);
            for (CpuKernels k : kernels()) {
                float[] a = new float[n * rows], b = new float[n * rows];
                k.rowsF32(seg, cols, 0, rows, x, n, a, rows, 0, null);
                k.rowsF32(w, cols, 0, rows, x, n, b, rows, 0, null);
                for (int t = 0; t < n; t++)
                    for (int o = 0; o < rows; o++) {
                        double ref = 0;
                        for (int c = 0; c < cols; c++) ref += (double) w[o * cols + c] * x[t * cols + c];
                        assertEquals(ref, a[t * rows + o], 1e-4, k.describe() + " segment");
                        assertEquals(ref, b[t * rows + o], 1e-4, k.describe() + " heap");
                    }
            }
        }
    }

    @Test void vectorHelpersMatchScalar() {
        Random r = new Random(5);
        for (int n : new int[] {0, 1, 7, 16, 17, 63, 64, 65, 200}) {
            float[] a = gauss(r, n + 3), b = gauss(r, n + 5), w = gauss(r, n), u = gauss(r, n + 2);
            for (CpuKernels k : kernels()) {
                double dot = 0, ss = 0;
                for (int i = 0; i < n; i++) { dot += (double) a[i + 3] * b[i + 5]; ss += (double) a[i + 3] * a[i + 3]; }
                assertEquals(dot, k.dot(a, 3, b, 5, n), 1e-4, k.describe() + " dot " + n);
                assertEquals(ss, k.sumSquares(a, 3, n), 1e-3, k.describe() + " sumSquares " + n);
                float[] y = b.clone();
                k.axpy(y, 5, 0.5f, a, 3, n);
                for (int i = 0; i < n; i++) assertEquals(b[i + 5] + 0.5f * a[i + 3], y[i + 5], 1e-5);
                assertEquals(b[0], y[0]);
                float[] o = new float[n + 1];
                k.scaleMul(o, 1, a, 3, 0.25f, w, n);
                for (int i = 0; i < n; i++) assertEquals(w[i] * a[i + 3] * 0.25f, o[i + 1], 1e-5);
                float[] g = u.clone(), uu = a.clone();
                k.siluMul(g, uu, 2, Math.min(n, u.length - 2));
                for (int i = 2; i < 2 + Math.min(n, u.length - 2); i++)
                    assertEquals(u[i] / (1 + Math.exp(-u[i])) * a[i], g[i], 1e-5, k.describe() + " siluMul");
                assertEquals(u[0], g[0]);
            }
        }
    }

    @Test void transposedLinearMatchesReference() {
        Random r = new Random(6);
        int in = 19, out = 37;
        for (int n : new int[] {1, 3, 4, 9}) {
            float[] wt = gauss(r, in * out), x = gauss(r, n * in), bias = gauss(r, out);
            for (CpuKernels k : kernels()) {
                for (float[] b : new float[][] {bias, null}) {
                    float[] y = new float[n * out];
                    java.util.Arrays.fill(y, 42f);  // kernels overwrite, not accumulate
                    k.linearTransposed(y, x, 0, n, wt, in, out, b);
                    for (int t = 0; t < n; t++)
                        for (int o = 0; o < out; o++) {
                            double ref = b == null ? 0 : b[o];
                            for (int c = 0; c < in; c++) ref += (double) x[t * in + c] * wt[c * out + o];
                            assertEquals(ref, y[t * out + o], 1e-4, k.describe() + " n=" + n);
                        }
                }
            }
        }
    }

    @Test void fusedMatmulAndSwiGluMatchSeparateCalls() throws Exception {
        Random r = new Random(7);
        int cols = 70, n = 6;
        int[] rows = {50, 14, 14};
        Path f = dir.resolve("w.safetensors");
        SafetensorsWriter wr = new SafetensorsWriter();
        for (int i = 0; i < rows.length; i++) wr.add("m" + i, DType.BF16, new long[] {rows[i], cols}, gauss(r, rows[i] * cols));
        wr.add("gate", DType.BF16, new long[] {90, cols}, gauss(r, 90 * cols)).add("up", DType.F32, new long[] {90, cols}, gauss(r, 90 * cols));
        wr.write(f);
        float[] x = gauss(r, n * cols);
        try (SafetensorsFile s = SafetensorsFile.open(f)) {
            CpuMatrix[] ms = new CpuMatrix[rows.length];
            float[][] outs = new float[rows.length][], biases = new float[rows.length][];
            for (int i = 0; i < rows.length; i++) {
                ms[i] = CpuMatrix.of(s.tensor("m" + i));
                outs[i] = new float[n * rows[i]];
                biases[i] = gauss(r, rows[i]);
            }
            CpuOps.matmulFused(outs, x, n, ms, biases);
            for (int i = 0; i < rows.length; i++) {
                float[] ref = new float[n * rows[i]];
                CpuOps.matmul(ref, x, n, ms[i], biases[i]);
                assertArrayEquals(ref, outs[i], 1e-5f, "fused output " + i);
            }
            CpuMatrix gate = CpuMatrix.of(s.tensor("gate")), up = CpuMatrix.of(s.tensor("up"));
            float[] g = new float[n * 90], u = new float[n * 90], rg = new float[n * 90], ru = new float[n * 90];
            CpuOps.swiGlu(g, u, x, n, gate, up);
            CpuOps.matmul(rg, x, n, gate, null);
            CpuOps.matmul(ru, x, n, up, null);
            for (int i = 0; i < rg.length; i++) assertEquals(CpuOps.silu(rg[i]) * ru[i], g[i], 1e-4f, "swiGlu " + i);
            assertThrows(IllegalArgumentException.class, () -> CpuOps.matmulFused(new float[][] {new float[1]}, x, n, new CpuMatrix[] {ms[0]}, null));
        }
    }

    @Test void parallelCoversRangeOnceRethrowsAndNests() throws Exception {
        for (int n : new int[] {1, 2, 3, 17, 1000, 100_003}) {
            int[] hits = new int[n];
            Parallel.forRange(n, 7, (lo, hi) -> { for (int i = lo; i < hi; i++) hits[i]++; });
            for (int i = 0; i < n; i++) assertEquals(1, hits[i], "index " + i + " of " + n);
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Parallel.forRange(1000, 1, (lo, hi) -> {
            if (lo <= 500 && 500 < hi) throw new IllegalStateException("boom at " + lo);
        }));
        assertTrue(e.getMessage().startsWith("boom"));
        // nested and concurrent callers: inline fallback, every index still once
        AtomicInteger total = new AtomicInteger();
        Thread[] ts = new Thread[4];
        for (int k = 0; k < ts.length; k++) {
            ts[k] = new Thread(() -> {
                for (int rep = 0; rep < 200; rep++)
                    Parallel.forRange(64, 1, (lo, hi) -> Parallel.forRange(hi - lo, 1, (a, b) -> total.addAndGet(b - a)));
            });
            ts[k].start();
        }
        for (Thread t : ts) t.join(60_000);
        assertEquals(4 * 200 * 64, total.get());
    }
}
