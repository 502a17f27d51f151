package io.vlmflux.cuda.cpu;

/**
 * Float32 CPU kernels shared by the language model and the vision towers: parallel matmul, RMSNorm, LayerNorm,
 * softmax, activations and rotary embeddings. Activations are row-major heap {@code float[]}s, a sequence of
 * {@code n} vectors of width {@code d} laid out as {@code [n, d]}. All methods are stateless and thread-safe; big ones
 * split output rows across {@link Parallel}. They are the CPU reference every GPU kernel is tested against.
 */
public final class CpuOps {
    private CpuOps() {}

    /**
     * {@code out[t, r] = sum_c x[t, c] * w[r, c] + bias[r]} for {@code t < n}: x {@code [n, w.cols]}, out
     * {@code [n, w.rows]}, bias {@code [w.rows]} or null. Output rows are split across cores; each weight row is read
     * once for all {@code n} inputs.
     */
    public static void matmul(float[] out, float[] x, int n, CpuMatrix w, float[] bias) {
        int rows = w.rows(), cols = w.cols();
        if ((long) n * cols > x.length) throw new IllegalArgumentException("matmul " + w.name() + ": x has " + x.length + " floats, need " + (long) n * cols);
        if ((long) n * rows > out.length) throw new IllegalArgumentException("matmul " + w.name() + ": out has " + out.length + " floats, need " + (long) n * rows);
        if (bias != null && bias.length != rows) throw new IllegalArgumentException("matmul " + w.name() + ": bias has " + bias.length + " floats, need " + rows);
        int grain = Math.max(1, 16384 / Math.max(1, cols * Math.max(1, Math.min(n, 8))));
        if (n == 1) {
            Parallel.forRange(rows, grain, (lo, hi) -> {
                for (int r = lo; r < hi; r++) out[r] = w.dot(r, x, 0) + (bias == null ? 0f : bias[r]);
            });
            return;
        }
        // several inputs: convert each weight row once, then dot it with every input
        Parallel.forRange(rows, grain, (lo, hi) -> {
            float[] row = new float[cols];
            for (int r = lo; r < hi; r++) {
                w.row(r, row, 0);
                float b = bias == null ? 0f : bias[r];
                for (int t = 0; t < n; t++) out[t * rows + r] = dot(row, x, t * cols, cols) + b;
            }
        });
    }

    /** {@code sum a[i] * x[xOff + i]} for {@code i < n}. */
    public static float dot(float[] a, float[] x, int xOff, int n) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 3 < n; i += 4) {
            s0 += a[i] * x[xOff + i];
            s1 += a[i + 1] * x[xOff + i + 1];
            s2 += a[i + 2] * x[xOff + i + 2];
            s3 += a[i + 3] * x[xOff + i + 3];
        }
        for (; i < n; i++) s0 += a[i] * x[xOff + i];
        return (s0 + s1) + (s2 + s3);
    }

    /** Plain row-major {@code out[m, n] = a[m, k] * b[k, n]} on heap arrays (small matrices, tests). */
    public static void matmulPlain(float[] out, float[] a, float[] b, int m, int k, int n) {
        Parallel.forRange(m, Math.max(1, 4096 / Math.max(1, k * n / 64 + 1)), (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                for (int j = 0; j < n; j++) out[i * n + j] = 0f;
                for (int p = 0; p < k; p++) {
                    float av = a[i * k + p];
                    int bo = p * n, oo = i * n;
                    for (int j = 0; j < n; j++) out[oo + j] += av * b[bo + j];
                }
            }
        });
    }

    /** RMSNorm as in Llama/Qwen: {@code out = weight * x / sqrt(mean(x^2) + eps)} over {@code d} values (in-place ok). */
    public static void rmsNorm(float[] out, int outOff, float[] x, int xOff, int d, float[] weight, float eps) {
        float ss = 0f;
        for (int i = 0; i < d; i++) { float v = x[xOff + i]; ss += v * v; }
        float inv = (float) (1.0 / Math.sqrt(ss / d + eps));
        for (int i = 0; i < d; i++) out[outOff + i] = weight[i] * (x[xOff + i] * inv);
    }

    /** RMSNorm of each of {@code n} rows of width {@code d}. */
    public static void rmsNormRows(float[] out, float[] x, int n, int d, float[] weight, float eps) {
        Parallel.forRange(n, 16, (lo, hi) -> { for (int t = lo; t < hi; t++) rmsNorm(out, t * d, x, t * d, d, weight, eps); });
    }

    /** LayerNorm: {@code out = (x - mean) / sqrt(var + eps) * weight + bias} (bias may be null) over {@code d} values. */
    public static void layerNorm(float[] out, int outOff, float[] x, int xOff, int d, float[] weight, float[] bias, float eps) {
        float mean = 0f;
        for (int i = 0; i < d; i++) mean += x[xOff + i];
        mean /= d;
        float var = 0f;
        for (int i = 0; i < d; i++) { float v = x[xOff + i] - mean; var += v * v; }
        var /= d;
        float inv = (float) (1.0 / Math.sqrt(var + eps));
        for (int i = 0; i < d; i++) {
            float v = (x[xOff + i] - mean) * inv * weight[i];
            out[outOff + i] = bias == null ? v : v + bias[i];
        }
    }

    /** LayerNorm of each of {@code n} rows of width {@code d}. */
    public static void layerNormRows(float[] out, float[] x, int n, int d, float[] weight, float[] bias, float eps) {
        Parallel.forRange(n, 16, (lo, hi) -> { for (int t = lo; t < hi; t++) layerNorm(out, t * d, x, t * d, d, weight, bias, eps); });
    }

    /** In-place numerically stable softmax of {@code x[off .. off+len)}. */
    public static void softmax(float[] x, int off, int len) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < len; i++) max = Math.max(max, x[off + i]);
        if (max == Float.NEGATIVE_INFINITY) { // everything masked: uniform would be a lie; keep zeros
            for (int i = 0; i < len; i++) x[off + i] = 0f;
            return;
        }
        float sum = 0f;
        for (int i = 0; i < len; i++) { float e = (float) Math.exp(x[off + i] - max); x[off + i] = e; sum += e; }
        float inv = 1f / sum;
        for (int i = 0; i < len; i++) x[off + i] *= inv;
    }

    public static float silu(float x) { return (float) (x / (1.0 + Math.exp(-x))); }

    /** GELU with the tanh approximation ({@code gelu_pytorch_tanh}). */
    public static float geluTanh(float x) {
        double c = Math.sqrt(2.0 / Math.PI);
        return (float) (0.5 * x * (1.0 + Math.tanh(c * (x + 0.044715 * x * x * x))));
    }

    /** Exact GELU ({@code gelu}): {@code x * Phi(x)} with the error function. */
    public static float geluErf(float x) { return (float) (0.5 * x * (1.0 + erf(x / Math.sqrt(2.0)))); }

    /** {@code quick_gelu}: {@code x * sigmoid(1.702 x)}. */
    public static float quickGelu(float x) { return (float) (x / (1.0 + Math.exp(-1.702 * x))); }

    /** {@code gate[i] = silu(gate[i]) * up[i]} for {@code i < n} (SwiGLU MLP). */
    public static void siluMul(float[] gate, float[] up, int n) {
        for (int i = 0; i < n; i++) gate[i] = silu(gate[i]) * up[i];
    }

    /** {@code a[i] += b[i]} for {@code i < n}. */
    public static void addInPlace(float[] a, float[] b, int n) {
        for (int i = 0; i < n; i++) a[i] += b[i];
    }

    /** Error function, |error| < 1.2e-7 (Numerical Recipes erfc with Chebyshev fit), enough for float GELU. */
    public static double erf(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1.0 - r : r - 1.0;
    }

    /**
     * Rotary embedding in the "rotate half" (GPT-NeoX / Hugging Face) convention on one head of width {@code 2*half}
     * at {@code x[off..]}: for {@code i < half}, {@code (a, b) = (x[i], x[i+half])} becomes
     * {@code (a cos_i - b sin_i, b cos_i + a sin_i)} with {@code cos_i = cos[csOff+i]}. The cos/sin tables hold one
     * value per frequency (the half of HF's duplicated table), computed by {@link Rope}.
     */
    public static void ropeRotateHalf(float[] x, int off, int half, float[] cos, float[] sin, int csOff) {
        for (int i = 0; i < half; i++) {
            float a = x[off + i], b = x[off + i + half];
            float c = cos[csOff + i], s = sin[csOff + i];
            x[off + i] = a * c - b * s;
            x[off + i + half] = b * c + a * s;
        }
    }

    /** Index of the largest value in {@code x[off .. off+len)} (first on ties). */
    public static int argmax(float[] x, int off, int len) {
        int best = 0;
        float bv = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < len; i++) if (x[off + i] > bv) { bv = x[off + i]; best = i; }
        return best;
    }
}
