package io.vlmflux.cuda.cpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The 4-bit kernels (scalar and, where the runtime has it, Vector API) against the straightforward definition: dequantize
 * {@code (q - z) * s} to float, then a plain dot product in double. Random shapes with several row chunks, group sizes
 * giving each prepared layout (8 lanes, 4 lanes, plain), act-order permutations, 1 to 6 inputs (the 4-input tile and
 * its remainder).
 */
class Int4WeightsTest {
    static Int4Weights random(SplittableRandom r, int rows, int cols, int gs, boolean actOrder) {
        int groups = (cols + gs - 1) / gs;
        byte[] q = new byte[rows * cols];
        for (int i = 0; i < q.length; i++) q[i] = (byte) r.nextInt(16);
        float[] s = new float[rows * groups], z = new float[rows * groups];
        for (int i = 0; i < s.length; i++) { s[i] = (float) (0.01 + r.nextDouble() * 0.05); z[i] = r.nextInt(16); }
        int[] g = new int[cols];
        int[] perm = new int[cols];
        for (int i = 0; i < cols; i++) perm[i] = i;
        if (actOrder) for (int i = cols - 1; i > 0; i--) { int j = r.nextInt(i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        for (int i = 0; i < cols; i++) g[perm[i]] = i / gs;
        return Int4Weights.of("w", rows, cols, q, g, groups, s, z);
    }

    static float[] reference(Int4Weights w, float[] x, int n, float[] bias) {
        float[] d = w.dequantize();
        float[] out = new float[n * w.rows()];
        for (int t = 0; t < n; t++)
            for (int r = 0; r < w.rows(); r++) {
                double a = bias == null ? 0 : bias[r];
                for (int c = 0; c < w.cols(); c++) a += (double) d[r * w.cols() + c] * x[t * w.cols() + c];
                out[t * w.rows() + r] = (float) a;
            }
        return out;
    }

    /** {@code lanes}: the layout with up to 16 lanes; fewer where the vectors are narrower ({@link Int4Weights#maxLanes()}). */
    @ParameterizedTest(name = "{0}x{1} g{2} actOrder={3} lanes<={4}")
    @CsvSource({"40,256,128,false,16", "72,512,64,true,8", "24,192,32,false,4", "56,96,32,true,4", "16,64,16,false,0", "33,120,8,true,0",
            "8,384,384,false,16", "20,256,128,true,16"})
    void kernelsMatchTheDequantizedDefinition(int rows, int cols, int gs, boolean actOrder, int lanes) {
        SplittableRandom r = new SplittableRandom(rows * 31L + cols + gs);
        Int4Weights w = random(r, rows, cols, gs, actOrder);
        assertEquals(lanes == 0 ? 0 : Math.min(lanes, Int4Weights.maxLanes()), w.lanes());
        assertEquals(actOrder, w.permuted());
        float[] bias = new float[rows];
        for (int i = 0; i < rows; i++) bias[i] = (float) r.nextGaussian();
        CpuMatrix m = CpuMatrix.of(w);
        for (int n = 1; n <= 6; n++) {
            float[] x = new float[n * cols];
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            float[] want = reference(w, x, n, bias);
            float[] got = new float[n * rows];
            CpuOps.matmul(got, x, n, m, bias);
            close(want, got, "CpuOps n=" + n);
            float[] xp = new float[n * cols], xs = new float[n * w.groups()], sc = new float[n * rows];
            w.prepare(x, n, xp, xs);
            new ScalarKernels().rowsInt4(w, 0, rows, xp, xs, n, sc, rows, bias);
            close(want, sc, "scalar n=" + n);
        }
        float[] x1 = new float[cols];
        for (int i = 0; i < cols; i++) x1[i] = (float) r.nextGaussian();
        float[] want = reference(w, x1, 1, null);
        assertEquals(want[3], m.dot(3, x1, 0), 1e-4 * (1 + Math.abs(want[3])));
        float[] row = new float[cols];
        m.row(2, row, 0);
        float[] d = w.dequantize();
        for (int c = 0; c < cols; c++) assertEquals(d[2 * cols + c], row[c]);
    }

    @Test
    void fusedAndSwiGluPathsTakeInt4() {
        SplittableRandom r = new SplittableRandom(7);
        Int4Weights a = random(r, 64, 128, 64, true), b = random(r, 32, 128, 32, false);
        float[] x = new float[3 * 128];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        float[] oa = new float[3 * 64], ob = new float[3 * 32];
        CpuOps.matmulFused(new float[][]{oa, ob}, x, 3, new CpuMatrix[]{CpuMatrix.of(a), CpuMatrix.of(b)}, null);
        close(reference(a, x, 3, null), oa, "fused a");
        close(reference(b, x, 3, null), ob, "fused b");
        Int4Weights gate = random(r, 64, 128, 128, false);
        float[] g = new float[3 * 64], u = new float[3 * 64];
        CpuOps.swiGlu(g, u, x, 3, CpuMatrix.of(gate), CpuMatrix.of(a));
        float[] rg = reference(gate, x, 3, null), ru = reference(a, x, 3, null);
        for (int i = 0; i < g.length; i++) {
            double silu = rg[i] / (1 + Math.exp(-rg[i]));
            assertEquals(silu * ru[i], g[i], 1e-4 * (1 + Math.abs(silu * ru[i])), "swiGlu " + i);
        }
    }

    @Test
    void badShapesAreRefusedNamingTheTensor() {
        byte[] q = new byte[8 * 12];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Int4Weights.of("layer.w", 8, 12, q, new int[12], 1, new float[8], new float[8]));
        assertTrue(e.getMessage().contains("layer.w") && e.getMessage().contains("multiple of 8"), e.getMessage());
        int[] g = new int[16];
        for (int i = 0; i < 16; i++) g[i] = i < 4 ? 0 : 1;
        e = assertThrows(IllegalArgumentException.class, () -> Int4Weights.of("layer.w", 8, 16, new byte[128], g, 2, new float[16], new float[16]));
        assertTrue(e.getMessage().contains("group 0 holds 4"), e.getMessage());
        byte[] bad = new byte[128];
        bad[5] = 16;
        e = assertThrows(IllegalArgumentException.class, () -> Int4Weights.of("layer.w", 8, 16, bad, new int[16], 1, new float[8], new float[8]));
        assertTrue(e.getMessage().contains("not 4-bit"), e.getMessage());
    }

    static void close(float[] want, float[] got, String what) {
        for (int i = 0; i < want.length; i++)
            assertTrue(Math.abs(want[i] - got[i]) <= 1e-4 * (1 + Math.abs(want[i])), what + " [" + i + "]: want " + want[i] + " got " + got[i]);
    }
}
