package io.vlmflux.llm.cpu;

import io.vlmflux.cuda.cpu.CpuMatrix;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.cpu.Parallel;
import io.vlmflux.cuda.cpu.Rope;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.RopeConfig;
import io.vlmflux.llm.TextModelSpec;

/**
 * The CPU reference decoder for every supported family (Llama-style pre-norm blocks: RMSNorm, GQA attention with
 * RoPE or M-RoPE, SwiGLU MLP), in float32. Weights stay in the memory-mapped checkpoint and are converted on the fly
 * by {@link CpuMatrix}; small vectors (norms, biases) are copied to heap arrays. Each {@link #forward} processes a
 * chunk of {@code n} positions: all matmuls run over the chunk at once (weights read once per chunk), attention is
 * parallel over (position, head). Owns the {@link WeightStore}.
 */
final class CpuDecoder implements Decoder {
    private final ModelConfig c;
    private final TextModelSpec spec;
    private final WeightStore store;
    private final CpuMatrix embed, lmHead;
    private final float[] finalNorm;
    private final Layer[] layers;
    private final float[] invFreq;      // [headDim/2]
    private final int[] ropeAxis;       // [headDim/2]: which of t/h/w drives each frequency (M-RoPE), or null
    private boolean closed;
    volatile ActivationTap tap;                       // calibration observer, null normally
    private java.util.Map<String, long[]> expected;   // the spec's shapes, for 4-bit linears (null until needed)

    private static final class Layer {
        float[] attnNorm, mlpNorm, qb, kb, vb, ob, qNorm, kNorm;
        CpuMatrix q, k, v, o, gate, up, down;
        CpuMatrix[] qkv;        // {q, k, v}: one fused pass when their widths agree
        float[][] qkvBias;
    }

    /** Activations of one forward call, reused across calls of the same chunk length (decode: every step). */
    private static final class Buffers {
        final int n;
        final float[] x, xn, q, k, v, att, o, g, u, cos, sin;
        final float[][] qkvOut;

        Buffers(ModelConfig c, int n) {
            this.n = n;
            int H = c.hiddenSize(), I = c.intermediateSize(), half = c.headDim() / 2;
            x = new float[n * H]; xn = new float[n * H]; o = new float[n * H];
            q = new float[n * c.qDim()]; att = new float[n * c.qDim()];
            k = new float[n * c.kvDim()]; v = new float[n * c.kvDim()];
            g = new float[n * I]; u = new float[n * I];
            cos = new float[n * half]; sin = new float[n * half];
            qkvOut = new float[][] {q, k, v};
        }
    }

    /** Cached buffers for single-position calls; taken while in use so concurrent callers never share them. */
    private final java.util.concurrent.atomic.AtomicReference<Buffers> spare = new java.util.concurrent.atomic.AtomicReference<>();

    CpuDecoder(ModelConfig c, TextModelSpec spec, WeightStore store) {
        this.c = c;
        this.spec = spec;
        this.store = store;
        String p = spec.prefix();
        embed = CpuMatrix.of(store.tensor(p + "embed_tokens.weight"));
        lmHead = c.tieWordEmbeddings() ? embed : mat(spec.lmHead());
        finalNorm = vec(p + "norm.weight");
        layers = new Layer[c.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            Layer l = new Layer();
            l.attnNorm = vec(spec.layer(i, "input_layernorm.weight"));
            l.mlpNorm = vec(spec.layer(i, "post_attention_layernorm.weight"));
            l.q = mat(spec.layer(i, "self_attn.q_proj.weight"));
            l.k = mat(spec.layer(i, "self_attn.k_proj.weight"));
            l.v = mat(spec.layer(i, "self_attn.v_proj.weight"));
            l.o = mat(spec.layer(i, "self_attn.o_proj.weight"));
            if (spec.qkvBias()) {
                l.qb = vec(spec.layer(i, "self_attn.q_proj.bias"));
                l.kb = vec(spec.layer(i, "self_attn.k_proj.bias"));
                l.vb = vec(spec.layer(i, "self_attn.v_proj.bias"));
            }
            if (spec.oBias()) l.ob = vec(spec.layer(i, "self_attn.o_proj.bias"));
            if (spec.qkNorm()) {
                l.qNorm = vec(spec.layer(i, "self_attn.q_norm.weight"));
                l.kNorm = vec(spec.layer(i, "self_attn.k_norm.weight"));
            }
            l.gate = mat(spec.layer(i, "mlp.gate_proj.weight"));
            l.up = mat(spec.layer(i, "mlp.up_proj.weight"));
            l.down = mat(spec.layer(i, "mlp.down_proj.weight"));
            l.qkv = new CpuMatrix[] {l.q, l.k, l.v};
            l.qkvBias = l.qb == null ? null : new float[][] {l.qb, l.kb, l.vb};
            layers[i] = l;
        }
        RopeConfig r = c.rope();
        float[] f = Rope.defaultInvFreq(c.headDim(), r.theta());
        invFreq = switch (r.type()) {
            case "llama3" -> Rope.llama3(f, r.factor(), r.lowFreqFactor(), r.highFreqFactor(), r.originalMaxPositionEmbeddings());
            case "linear" -> Rope.linear(f, r.factor());
            default -> f;
        };
        if (spec.mrope()) {
            ropeAxis = TextModelSpec.mropeAxes(r.mropeSection(), c.headDim() / 2, spec.mropeInterleaved());
        } else {
            ropeAxis = null;
        }
    }

    private float[] vec(String name) { return store.tensor(name).toFloatArray(); }

    private CpuMatrix mat(String name) {
        if (c.quantization() != null && !store.has(name)) {
            if (expected == null) expected = spec.expectedTensors(c);
            return CpuMatrix.of(io.vlmflux.llm.quant.QuantizedLinears.load(c, store, name, expected.get(name)));
        }
        return CpuMatrix.of(store.tensor(name));
    }

    @Override public ModelConfig config() { return c; }

    @Override public String backend() { return "cpu"; }

    @Override public java.util.Map<String, Object> info() {
        java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("backend", backend());
        m.put("threads", io.vlmflux.cuda.cpu.Parallel.threads());
        m.put("kernels", io.vlmflux.cuda.cpu.CpuOps.kernels());
        if (c.quantization() != null) m.put("weights", "int4 " + c.quantization().method().wire() + " (W4A16, dequantized on the fly)");
        return m;
    }

    @Override public KvCache newCache(int capacity) {
        return new LinearKvCache(c.numLayers(), c.kvDim(), Math.min(capacity, Math.max(1, c.maxPositionEmbeddings())));
    }

    @Override public float[] forward(KvCache kv, ForwardInput in, boolean allLogits) {
        if (closed) throw new IllegalStateException("decoder is closed");
        if (!(kv instanceof LinearKvCache cache)) throw new IllegalArgumentException("the CPU decoder needs a cache from its newCache(), got " + kv);
        final int n = in.length(), start = cache.length();
        cache.ensure(start + n);
        Buffers buf = n == 1 ? spare.getAndSet(null) : null;
        if (buf == null || buf.n != n) buf = new Buffers(c, n);
        try {
            return forward(cache, in, allLogits, buf, n, start);
        } finally {
            if (n == 1) spare.set(buf);
        }
    }

    private float[] forward(LinearKvCache cache, ForwardInput in, boolean allLogits, Buffers buf, int n, int start) {
        final int H = c.hiddenSize(), qDim = c.qDim(), kvDim = c.kvDim(), hd = c.headDim(), half = hd / 2;
        final int heads = c.numHeads(), kvHeads = c.numKvHeads();
        // embeddings, then image spans spliced over their slots
        float[] x = buf.x;
        int[] tokens = in.tokens();
        for (int t = 0; t < n; t++) {
            int id = tokens[t];
            if (id < 0 || id >= c.vocabSize()) throw new IllegalArgumentException("token id " + id + " at position " + (start + t) + " outside vocab [0, " + c.vocabSize() + ")");
            embed.row(id, x, t * H);
        }
        for (EmbeddingSpan s : in.spans()) {
            if (s.hidden() != H) throw new IllegalArgumentException("embedding span at " + s.start() + " has width " + s.hidden() + ", model hidden size is " + H);
            System.arraycopy(s.embeddings(), 0, x, s.start() * H, s.length() * H);
            if (s.deviceDeepstack() != null)
                throw new IllegalArgumentException("embedding span at " + s.start() + " holds device DeepStack rows '" + s.deviceDeepstack().buffer().name()
                        + "': only the cuda backend reads device rows");
            if (s.deepstack().size() > layers.length)
                throw new IllegalArgumentException("embedding span at " + s.start() + " carries " + s.deepstack().size()
                        + " DeepStack features but the model has only " + layers.length + " decoder layers");
        }

        // rotary tables per position
        float[] cos = buf.cos, sin = buf.sin;
        int[][] pos = in.positions();
        int delta = cache.positionDelta();
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < half; i++) {
                int axis = ropeAxis == null ? 0 : ropeAxis[i];
                long p = pos == null ? (long) start + t + delta : pos[Math.min(axis, pos.length - 1)][t];
                float a = (float) p * invFreq[i];
                cos[t * half + i] = (float) Math.cos(a);
                sin[t * half + i] = (float) Math.sin(a);
            }
        }

        float[] xn = buf.xn, q = buf.q, k = buf.k, v = buf.v, att = buf.att, o = buf.o, g = buf.g, u = buf.u;
        float eps = c.rmsNormEps();
        for (int li = 0; li < layers.length; li++) {
            Layer l = layers[li];
            CpuOps.rmsNormRows(xn, x, n, H, l.attnNorm, eps);
            ActivationTap tp = tap;
            if (tp != null) tp.linearInput(li, "qkv", xn, n, H);
            CpuOps.matmulFused(buf.qkvOut, xn, n, l.qkv, l.qkvBias);
            for (int t = 0; t < n; t++) {
                for (int h = 0; h < heads; h++) {
                    int off = t * qDim + h * hd;
                    if (l.qNorm != null) CpuOps.rmsNorm(q, off, q, off, hd, l.qNorm, eps);
                    CpuOps.ropeRotateHalf(q, off, half, cos, sin, t * half);
                }
                for (int h = 0; h < kvHeads; h++) {
                    int off = t * kvDim + h * hd;
                    if (l.kNorm != null) CpuOps.rmsNorm(k, off, k, off, hd, l.kNorm, eps);
                    CpuOps.ropeRotateHalf(k, off, half, cos, sin, t * half);
                }
            }
            float[] kc = cache.keys(li), vc = cache.values(li);
            System.arraycopy(k, 0, kc, start * kvDim, n * kvDim);
            System.arraycopy(v, 0, vc, start * kvDim, n * kvDim);
            attention(q, kc, vc, att, start, n);
            if (tp != null) tp.linearInput(li, "o", att, n, qDim);
            CpuOps.matmul(o, att, n, l.o, l.ob);
            CpuOps.addInPlace(x, o, n * H);
            CpuOps.rmsNormRows(xn, x, n, H, l.mlpNorm, eps);
            if (tp != null) tp.linearInput(li, "gate_up", xn, n, H);
            CpuOps.swiGlu(g, u, xn, n, l.gate, l.up);
            if (tp != null) tp.linearInput(li, "down", g, n, c.intermediateSize());
            CpuOps.matmul(o, g, n, l.down, null);
            CpuOps.addInPlace(x, o, n * H);
            for (EmbeddingSpan s : in.spans())   // DeepStack (Qwen3-VL): feature li joins the span's positions after layer li
                if (li < s.deepstack().size()) {
                    float[] ds = s.deepstack().get(li);
                    for (int j = 0; j < s.length() * H; j++) x[s.start() * H + j] += ds[j];
                }
        }
        cache.commit(n);

        int first = allLogits ? 0 : n - 1, rows = n - first;
        float[] last = new float[rows * H];
        for (int t = 0; t < rows; t++) CpuOps.rmsNorm(last, t * H, x, (first + t) * H, H, finalNorm, eps);
        float[] logits = new float[rows * c.vocabSize()];
        CpuOps.matmul(logits, last, rows, lmHead, null);
        return logits;
    }

    /** Causal GQA attention of the chunk's queries against cache positions {@code [0, start + t]}. */
    private void attention(float[] q, float[] kc, float[] vc, float[] out, int start, int n) {
        final int heads = c.numHeads(), hd = c.headDim(), qDim = c.qDim(), kvDim = c.kvDim();
        final int group = heads / c.numKvHeads();
        final float scale = (float) (1.0 / Math.sqrt(hd));
        Parallel.forRange(n * heads, Math.max(1, 2048 / (start + n)), (lo, hi) -> {
            float[] sc = new float[start + n];
            for (int idx = lo; idx < hi; idx++) {
                int t = idx / heads, h = idx % heads, g = h / group;
                int len = start + t + 1;
                int qo = t * qDim + h * hd, ko = g * hd;
                for (int j = 0; j < len; j++) sc[j] = CpuOps.dot(q, qo, kc, j * kvDim + ko, hd) * scale;
                CpuOps.softmax(sc, 0, len);
                int oo = t * qDim + h * hd;
                java.util.Arrays.fill(out, oo, oo + hd, 0f);
                for (int j = 0; j < len; j++) CpuOps.axpy(out, oo, sc[j], vc, j * kvDim + ko, hd);
            }
        });
    }

    @Override public void close() {
        if (!closed) {
            closed = true;
            store.close();
        }
    }
}
