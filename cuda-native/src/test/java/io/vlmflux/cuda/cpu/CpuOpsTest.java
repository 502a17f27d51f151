package io.vlmflux.cuda.cpu;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class CpuOpsTest {
    @TempDir Path dir;

    @Test void matmulMatchesNaiveForEveryDtype() throws Exception {
        int rows = 37, cols = 53, n = 5;
        Random r = new Random(1);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
        float[] x = new float[n * cols];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        float[] bias = new float[rows];
        for (int i = 0; i < rows; i++) bias[i] = i * 0.1f;
        Path f = dir.resolve("w.safetensors");
        new SafetensorsWriter().add("bf", DType.BF16, new long[]{rows, cols}, w).add("h", DType.F16, new long[]{rows, cols}, w)
                .add("f", DType.F32, new long[]{rows, cols}, w).write(f);
        try (SafetensorsFile s = SafetensorsFile.open(f)) {
            for (String name : new String[]{"bf", "h", "f"}) {
                float[] wq = s.tensor(name).toFloatArray();   // the rounded weights
                CpuMatrix m = CpuMatrix.of(s.tensor(name));
                float[] out = new float[n * rows];
                CpuOps.matmul(out, x, n, m, bias);
                for (int t = 0; t < n; t++)
                    for (int o = 0; o < rows; o++) {
                        double ref = bias[o];
                        for (int c = 0; c < cols; c++) ref += (double) wq[o * cols + c] * x[t * cols + c];
                        assertEquals(ref, out[t * rows + o], 1e-4, name + " " + t + "," + o);
                        assertEquals(ref - bias[o], m.dot(o, x, t * cols), 1e-4, name + " dot " + t + "," + o);   // one-row form, x at an offset
                        if (name.equals("f"))   // the heap-array F32 matrix takes the other rowsF32 overload
                            assertEquals(ref - bias[o], CpuMatrix.of("heap", wq, rows, cols).dot(o, x, t * cols), 1e-4, "heap dot " + t + "," + o);
                    }
                float[] row = new float[cols];
                m.row(3, row, 0);
                assertEquals(wq[3 * cols + 7], row[7]);
            }
        }
    }

    @Test void normsSoftmaxActivations() {
        float[] x = {1, 2, 3, 4};
        float[] out = new float[4];
        CpuOps.rmsNorm(out, 0, x, 0, 4, new float[]{1, 1, 1, 2}, 0f);
        double rms = Math.sqrt((1 + 4 + 9 + 16) / 4.0);
        assertEquals(1 / rms, out[0], 1e-6);
        assertEquals(8 / rms, out[3], 1e-6);
        CpuOps.layerNorm(out, 0, x, 0, 4, new float[]{1, 1, 1, 1}, new float[]{0, 0, 0, 1}, 0f);
        assertEquals(-1.5 / Math.sqrt(1.25), out[0], 1e-6);
        assertEquals(1.5 / Math.sqrt(1.25) + 1, out[3], 1e-6);
        float[] s = {1, 2, 3, Float.NEGATIVE_INFINITY};
        CpuOps.softmax(s, 0, 4);
        assertEquals(1.0, s[0] + s[1] + s[2] + s[3], 1e-6);
        assertEquals(0f, s[3]);
        assertEquals(Math.exp(1) / (1 + Math.exp(1) + Math.exp(2)), s[1], 1e-6);
        assertEquals(0.7310586f * 1, CpuOps.silu(1f), 1e-6);
        assertEquals(0.8411920f, CpuOps.geluTanh(1f), 1e-6);
        assertEquals(0.8413447f, CpuOps.geluErf(1f), 1e-6);
        assertEquals(1f / (1f + (float) Math.exp(-1.702)), CpuOps.quickGelu(1f), 1e-6);
        assertEquals(2, CpuOps.argmax(new float[]{1, 5, 7, 7}, 0, 4));
    }

    @Test void ropeRotatesPairsAndLlama3Scales() {
        float[] inv = Rope.defaultInvFreq(8, 10000);
        assertEquals(1f, inv[0]);
        assertEquals((float) Math.pow(10000, -0.25), inv[1], 1e-7);
        float[] cos = new float[4], sin = new float[4];
        Rope.table(inv, 3, cos, sin, 0);
        float[] x = {1, 0, 0, 0, 0, 0, 0, 0};
        CpuOps.ropeRotateHalf(x, 0, 4, cos, sin, 0);
        assertEquals(Math.cos(3), x[0], 1e-6);
        assertEquals(Math.sin(3), x[4], 1e-6);
        float[] l3 = Rope.llama3(Rope.defaultInvFreq(64, 500000), 8, 1, 4, 1024);
        float[] base = Rope.defaultInvFreq(64, 500000);
        assertEquals(base[0], l3[0]);                       // high frequency kept
        assertEquals(base[31] / 8, l3[31], 1e-12);          // low frequency divided
        float[] lin = Rope.linear(base, 2);
        assertEquals(base[5] / 2, lin[5], 1e-12);
    }

    @Test void parallelCoversRangeExactlyOnce() {
        int n = 100_003;
        int[] hits = new int[n];
        Parallel.forRange(n, 7, (lo, hi) -> { for (int i = lo; i < hi; i++) hits[i]++; });
        for (int h : hits) assertEquals(1, h);
    }
}
