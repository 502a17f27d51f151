package io.vlmflux.vision.qwen2vl;

import io.vlmflux.cuda.cpu.CpuMatrix;
import io.vlmflux.cuda.cpu.CpuOps;

/**
 * {@code y = x W^T + b} for the vision tower. Small towers keep W transposed in float32 ({@code [in, out]}) and run
 * {@link CpuOps#matmulTransposed} (contiguous inner loop over outputs, Vector-API FMAs, 4 tokens per weight pass,
 * parallel over token blocks): several times faster than a dot-product form for the short sequences of one frame. Large towers keep the mapped
 * bf16 weight and use {@link CpuOps#matmul}. Public for the Qwen3-VL tower ({@code io.vlmflux.vision.qwen3vl}). Candidate for {@code io.vlmflux.cuda.cpu}.
 */
public final class Linear {
    private final CpuMatrix mapped;   // used when wt == null
    private final float[] wt;         // [in, out] (transposed weight) or null
    private final float[] bias;       // [out] or null
    private final int in, out;

    private Linear(CpuMatrix mapped, float[] wt, float[] bias, int in, int out) {
        this.mapped = mapped; this.wt = wt; this.bias = bias; this.in = in; this.out = out;
    }

    /** From a row-major {@code [out, in]} float32 weight (transposed here). */
    public static Linear transposed(float[] w, float[] bias, int out, int in) {
        float[] t = new float[in * out];
        for (int r = 0; r < out; r++)
            for (int c = 0; c < in; c++) t[c * out + r] = w[r * in + c];
        return new Linear(null, t, bias, in, out);
    }

    public static Linear mapped(CpuMatrix w, float[] bias) {
        return new Linear(w, null, bias, w.cols(), w.rows());
    }

    public int in() { return in; }
    public int out() { return out; }

    /** {@code y[n, out] = x[n, in] W^T + b}. */
    public void apply(float[] y, float[] x, int n) {
        if (wt == null) { CpuOps.matmul(y, x, n, mapped, bias); return; }
        CpuOps.matmulTransposed(y, x, n, wt, in, out, bias);
    }
}
