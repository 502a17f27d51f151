package io.vlmflux.vision.qwen2vl;

import io.vlmflux.cuda.cpu.CpuMatrix;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.cpu.Parallel;

/**
 * {@code y = x W^T + b} for the vision tower. Small towers keep W transposed in float32 ({@code [in, out]}) and run
 * an axpy-form kernel (contiguous inner loop over outputs, which HotSpot vectorises) parallel over tokens: several
 * times faster than a dot-product form for the short sequences of one camera frame. Large towers keep the mapped
 * bf16 weight and use {@link CpuOps#matmul}. Candidate for {@code io.vlmflux.cuda.cpu}.
 */
final class Linear {
    private final CpuMatrix mapped;   // used when wt == null
    private final float[] wt;         // [in, out] (transposed weight) or null
    private final float[] bias;       // [out] or null
    private final int in, out;

    private Linear(CpuMatrix mapped, float[] wt, float[] bias, int in, int out) {
        this.mapped = mapped; this.wt = wt; this.bias = bias; this.in = in; this.out = out;
    }

    /** From a row-major {@code [out, in]} float32 weight (transposed here). */
    static Linear transposed(float[] w, float[] bias, int out, int in) {
        float[] t = new float[in * out];
        for (int r = 0; r < out; r++)
            for (int c = 0; c < in; c++) t[c * out + r] = w[r * in + c];
        return new Linear(null, t, bias, in, out);
    }

    static Linear mapped(CpuMatrix w, float[] bias) {
        return new Linear(w, null, bias, w.cols(), w.rows());
    }

    int in() { return in; }
    int out() { return out; }

    /** {@code y[n, out] = x[n, in] W^T + b}. */
    void apply(float[] y, float[] x, int n) {
        if (wt == null) { CpuOps.matmul(y, x, n, mapped, bias); return; }
        if ((long) n * in > x.length || (long) n * out > y.length)
            throw new IllegalArgumentException("linear " + in + "->" + out + ": buffers too small for " + n + " rows");
        int blocks = (n + 3) / 4;
        Parallel.forRange(blocks, 1, (lo, hi) -> {
            for (int b = lo; b < hi; b++) {
                int t0 = b * 4, cnt = Math.min(4, n - t0);
                for (int t = t0; t < t0 + cnt; t++) {
                    if (bias != null) System.arraycopy(bias, 0, y, t * out, out);
                    else java.util.Arrays.fill(y, t * out, (t + 1) * out, 0f);
                }
                if (cnt == 4) {
                    // four tokens share each weight row: a quarter of the weight traffic
                    int y0 = t0 * out, y1 = y0 + out, y2 = y1 + out, y3 = y2 + out;
                    int x0 = t0 * in, x1 = x0 + in, x2 = x1 + in, x3 = x2 + in;
                    for (int c = 0; c < in; c++) {
                        float a0 = x[x0 + c], a1 = x[x1 + c], a2 = x[x2 + c], a3 = x[x3 + c];
                        int wo = c * out;
                        for (int r = 0; r < out; r++) {
                            float w = wt[wo + r];
                            y[y0 + r] += a0 * w;
                            y[y1 + r] += a1 * w;
                            y[y2 + r] += a2 * w;
                            y[y3 + r] += a3 * w;
                        }
                    }
                } else {
                    for (int t = t0; t < t0 + cnt; t++) {
                        int yo = t * out, xo = t * in;
                        for (int c = 0; c < in; c++) {
                            float xv = x[xo + c];
                            int wo = c * out;
                            for (int r = 0; r < out; r++) y[yo + r] += xv * wt[wo + r];
                        }
                    }
                }
            }
        });
    }
}
