package io.vlmflux.cuda.cpu;

/**
 * Float32 CPU kernels shared by the language model and the vision towers: parallel matmul, RMSNorm, LayerNorm,
 * softmax, activations and rotary embeddings. Activations are row-major heap {@code float[]}s, a sequence of
 * {@code n} vectors of width {@code d} laid out as {@code [n, d]}. All methods are stateless and thread-safe; big ones
 * split output rows across {@link Parallel}. They are the CPU reference every GPU kernel is tested against.
 */
public final class CpuOps {
    private CpuOps() {}

    private static final CpuKernels K = CpuKernels.INSTANCE;
    private static final int MIN_MACS_PER_CHUNK = 1 << 16;

    /** Which inner-loop implementation runs ("Vector API, 512-bit ..." or "scalar Java"), for logs and benchmarks. */
    public static String kernels() { return K.describe(); }

    /**
     * {@code out[t, r] = sum_c x[t, c] * w[r, c] + bias[r]} for {@code t < n}: x {@code [n, w.cols]}, out
     * {@code [n, w.rows]}, bias {@code [w.rows]} or null. Output rows are split across cores; each weight row is read
     * once for all {@code n} inputs (register tiles of 2 rows x 4 inputs on the vector path).
     */
    public static void matmul(float[] out, float[] x, int n, CpuMatrix w, float[] bias) {
        check(out, x, n, w, bias);
        if (w.int4() != null) { matmulInt4(out, x, n, w.int4(), bias); return; }
        int rows = w.rows(), cols = w.cols();
        float[] xp = prepare(x, n, cols, w.dtype() == io.vlmflux.cuda.DType.BF16);
        try {
            Parallel.forRange(rows, grain(cols, n), (lo, hi) -> rows(w, x, xp, n, lo, hi, out, rows, bias));
        } finally {
            release(xp, x);
        }
    }

    /**
     * Several matmuls over the same input in one parallel pass (e.g. q, k, v): {@code outs[i] = x ws[i]^T + biases[i]}
     * with {@code outs[i] [n, ws[i].rows]}. All matrices need the same column count; {@code biases} or its entries may
     * be null.
     */
    public static void matmulFused(float[][] outs, float[] x, int n, CpuMatrix[] ws, float[][] biases) {
        if (outs.length != ws.length || (biases != null && biases.length != ws.length))
            throw new IllegalArgumentException("matmulFused: " + ws.length + " matrices, " + outs.length + " outputs, " + (biases == null ? 0 : biases.length) + " biases");
        for (CpuMatrix w : ws)
            if (w.int4() != null) {   // 4-bit: each matrix prepares its own input (act-order permutations differ)
                for (int i = 0; i < ws.length; i++) matmul(outs[i], x, n, ws[i], biases == null ? null : biases[i]);
                return;
            }
        int cols = ws[0].cols(), total = 0;
        boolean bf16 = false;
        int[] starts = new int[ws.length + 1];
        for (int i = 0; i < ws.length; i++) {
            if (ws[i].cols() != cols) throw new IllegalArgumentException("matmulFused: " + ws[i].name() + " has " + ws[i].cols() + " columns, " + ws[0].name() + " has " + cols);
            check(outs[i], x, n, ws[i], biases == null ? null : biases[i]);
            bf16 |= ws[i].dtype() == io.vlmflux.cuda.DType.BF16;
            starts[i] = total;
            total += ws[i].rows();
        }
        starts[ws.length] = total;
        float[] xp = prepare(x, n, cols, bf16);
        try {
            Parallel.forRange(total, grain(cols, n), (lo, hi) -> {
                for (int i = 0; i < ws.length; i++) {
                    int a = Math.max(lo, starts[i]), b = Math.min(hi, starts[i + 1]);
                    if (a < b) rows(ws[i], x, xp, n, a - starts[i], b - starts[i], outs[i], ws[i].rows(), biases == null ? null : biases[i]);
                }
            });
        } finally {
            release(xp, x);
        }
    }

    /**
     * SwiGLU projections in one pass: {@code g = silu(x gate^T) * (x up^T)}, {@code g, u [n, gate.rows]} ({@code u}
     * is scratch). Each row chunk computes its gate and up rows and combines them while they are in cache.
     */
    public static void swiGlu(float[] g, float[] u, float[] x, int n, CpuMatrix gate, CpuMatrix up) {
        if (gate.rows() != up.rows() || gate.cols() != up.cols())
            throw new IllegalArgumentException("swiGlu: " + gate.name() + " is " + gate.rows() + "x" + gate.cols() + ", " + up.name() + " is " + up.rows() + "x" + up.cols());
        check(g, x, n, gate, null);
        check(u, x, n, up, null);
        int rows = gate.rows(), cols = gate.cols();
        if (gate.int4() != null || up.int4() != null) {
            matmul(g, x, n, gate, null);
            matmul(u, x, n, up, null);
            Parallel.forRange(n, 1, (lo, hi) -> { for (int t = lo; t < hi; t++) K.siluMul(g, u, t * rows, rows); });
            return;
        }
        float[] xp = prepare(x, n, cols, gate.dtype() == io.vlmflux.cuda.DType.BF16 || up.dtype() == io.vlmflux.cuda.DType.BF16);
        try {
            Parallel.forRange(rows, grain(cols, 2 * n), (lo, hi) -> {
                rows(gate, x, xp, n, lo, hi, g, rows, null);
                rows(up, x, xp, n, lo, hi, u, rows, null);
                for (int t = 0; t < n; t++) K.siluMul(g, u, t * rows + lo, hi - lo);
            });
        } finally {
            release(xp, x);
        }
    }

    /** {@code out = x W^T + bias} for 4-bit {@code w}: the input is prepared once, rows split across cores. */
    private static void matmulInt4(float[] out, float[] x, int n, Int4Weights w, float[] bias) {
        if (n == 0) return;
        int rows = w.rows();
        float[] xp = new float[n * w.cols()], xsum = new float[n * w.groups()];
        w.prepare(x, n, xp, xsum);
        Parallel.forRange(rows, grain(w.cols(), n), (lo, hi) -> K.rowsInt4(w, lo, hi, xp, xsum, n, out, rows, bias));
    }

    private static void check(float[] out, float[] x, int n, CpuMatrix w, float[] bias) {
        int rows = w.rows(), cols = w.cols();
        if (n < 0) throw new IllegalArgumentException("matmul " + w.name() + ": negative row count " + n);
        if ((long) n * cols > x.length) throw new IllegalArgumentException("matmul " + w.name() + ": x has " + x.length + " floats, need " + (long) n * cols);
        if ((long) n * rows > out.length) throw new IllegalArgumentException("matmul " + w.name() + ": out has " + out.length + " floats, need " + (long) n * rows);
        if (bias != null && bias.length != rows) throw new IllegalArgumentException("matmul " + w.name() + ": bias has " + bias.length + " floats, need " + rows);
    }

    /** Rows per parallel chunk so that a chunk is worth a hand-off (and even, for 2-row tiles). */
    private static int grain(int cols, int n) {
        int g = Math.max(1, MIN_MACS_PER_CHUNK / Math.max(1, cols * Math.max(1, n)));
        return g + (g & 1);
    }

    /** Rows {@code [lo, hi)} of {@code w}: bf16 against the prepared inputs {@code xp}, other dtypes against {@code x}. */
    private static void rows(CpuMatrix w, float[] x, float[] xp, int n, int lo, int hi, float[] out, int outStride, float[] bias) {
        switch (w.dtype()) {
            case BF16 -> K.rowsBf16(w.segment(), w.cols(), lo, hi, xp, n, out, outStride, 0, bias);
            case F32 -> {
                if (w.heap() != null) K.rowsF32(w.heap(), w.cols(), lo, hi, x, n, out, outStride, 0, bias);
                else K.rowsF32(w.segment(), w.cols(), lo, hi, x, n, out, outStride, 0, bias);
            }
            default -> {
                int cols = w.cols();
                for (int r = lo; r < hi; r++) {
                    float b = bias == null ? 0f : bias[r];
                    for (int t = 0; t < n; t++) out[t * outStride + r] = w.dot(r, x, t * cols) + b;
                }
            }
        }
    }

    // ---- prepared-input scratch: one reusable buffer per thread, a fresh array when it is already in use (nesting)

    private static final class Scratch { float[] buf = new float[0]; boolean busy; }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private static float[] prepare(float[] x, int n, int cols, boolean bf16) {
        if (!bf16 || K.bf16Block() == 0 || n == 0) return x;
        Scratch s = SCRATCH.get();
        int need = n * cols;
        float[] dst;
        if (s.busy) dst = new float[need];
        else {
            if (s.buf.length < need) s.buf = new float[need];
            s.busy = true;
            dst = s.buf;
        }
        for (int t = 0; t < n; t++) K.prepareBf16(x, t * cols, dst, t * cols, cols);
        return dst;
    }

    private static void release(float[] xp, float[] x) {
        if (xp == x) return;
        Scratch s = SCRATCH.get();
        if (s.buf == xp) s.busy = false;
    }

    /**
     * {@code y[t, r] = sum_c x[t, c] * wt[c, r] + bias[r]} with the weight stored transposed, {@code wt [in, out]}
     * float32 (small towers keep it so: the inner loop runs over contiguous outputs). Parallel over blocks of 4 tokens.
     */
    public static void matmulTransposed(float[] y, float[] x, int n, float[] wt, int in, int out, float[] bias) {
        if ((long) n * in > x.length || (long) n * out > y.length || (long) in * out > wt.length || (bias != null && bias.length != out))
            throw new IllegalArgumentException("linear " + in + "->" + out + ": buffers too small for " + n + " rows (x " + x.length + ", y " + y.length
                    + ", wt " + wt.length + ", bias " + (bias == null ? "none" : bias.length) + ")");
        int blocks = (n + 3) / 4;
        Parallel.forRange(blocks, 1, (lo, hi) -> {
            int t0 = lo * 4, t1 = Math.min(n, hi * 4);
            K.linearTransposed(y, x, t0, t1 - t0, wt, in, out, bias);
        });
    }

    /** {@code sum a[i] * x[xOff + i]} for {@code i < n}. */
    public static float dot(float[] a, float[] x, int xOff, int n) {
        return K.dot(a, 0, x, xOff, n);
    }

    /** {@code sum a[aOff + i] * b[bOff + i]} for {@code i < n}. */
    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return K.dot(a, aOff, b, bOff, n);
    }

    /** {@code y[yOff + i] += alpha * x[xOff + i]} for {@code i < n}. */
    public static void axpy(float[] y, int yOff, float alpha, float[] x, int xOff, int n) {
        K.axpy(y, yOff, alpha, x, xOff, n);
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
        float ss = K.sumSquares(x, xOff, d);
        float inv = (float) (1.0 / Math.sqrt(ss / d + eps));
        K.scaleMul(out, outOff, x, xOff, inv, weight, d);
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
        // the sum in double: over a 152k vocabulary a float running sum drops the small terms of the tail (it came out
        // 1.7e-4 low on MultiBlockSamplingTest's logits, enough to move a top-p cut by 17 tokens)
        double sum = 0;
        for (int i = 0; i < len; i++) { float e = (float) Math.exp(x[off + i] - max); x[off + i] = e; sum += e; }
        float inv = (float) (1.0 / sum);
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
        K.siluMul(gate, up, 0, n);
    }

    /** {@code a[i] += b[i]} for {@code i < n}. */
    public static void addInPlace(float[] a, float[] b, int n) {
        K.add(a, b, 0, n);
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
