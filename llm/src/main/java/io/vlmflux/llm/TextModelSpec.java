package io.vlmflux.llm;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a model family's decoder looks like, backend-neutral: the weight-name prefix ({@code model.} or
 * {@code model.language_model.}), which projections carry biases, whether q/k get a per-head RMSNorm (Qwen3), whether
 * rotary positions are 3-D (M-RoPE). {@link #validate} checks a checkpoint against it: every expected tensor present
 * with the right shape and a float dtype, and no unexpected tensors in the text model's namespace.
 *
 * @param ignoredPrefixes tensor-name prefixes that belong to other parts (vision tower) and are skipped
 */
public record TextModelSpec(String family, String prefix, String lmHead, boolean qkvBias, boolean oBias, boolean qkNorm,
                            boolean mrope, boolean mropeInterleaved, List<String> ignoredPrefixes) {
    public TextModelSpec {
        ignoredPrefixes = List.copyOf(ignoredPrefixes);
        if (mropeInterleaved && !mrope) throw new IllegalArgumentException("interleaved M-RoPE needs mrope");
    }

    /** A layout with contiguous (non-interleaved) M-RoPE sections when {@code mrope}. */
    public TextModelSpec(String family, String prefix, String lmHead, boolean qkvBias, boolean oBias, boolean qkNorm,
                         boolean mrope, List<String> ignoredPrefixes) {
        this(family, prefix, lmHead, qkvBias, oBias, qkNorm, mrope, false, ignoredPrefixes);
    }

    /**
     * Which of t (0), h (1), w (2) drives each of the {@code headDim/2} rotary frequencies. Contiguous (Qwen2-VL):
     * the first {@code section[0]} are t, the next {@code section[1]} h, then w. Interleaved (Qwen3-VL, transformers'
     * {@code apply_interleaved_mrope}): frequency i is h when {@code i % 3 == 1 && i < 3*section[1]}, w when
     * {@code i % 3 == 2 && i < 3*section[2]}, t otherwise.
     */
    public static int[] mropeAxes(int[] section, int half, boolean interleaved) {
        int[] axis = new int[half];
        if (interleaved) {
            for (int i = 0; i < half; i++)
                axis[i] = i % 3 == 1 && i < 3 * section[1] ? 1 : i % 3 == 2 && i < 3 * section[2] ? 2 : 0;
        } else {
            int i = 0;
            for (int a = 0; a < 3; a++) for (int j = 0; j < section[a] && i < half; j++) axis[i++] = a;
        }
        return axis;
    }

    public String layer(int i, String rest) { return prefix + "layers." + i + "." + rest; }

    /** Expected tensor names and shapes, in load order. */
    public Map<String, long[]> expectedTensors(ModelConfig c) {
        Map<String, long[]> m = new LinkedHashMap<>();
        long h = c.hiddenSize(), q = c.qDim(), kv = c.kvDim(), inter = c.intermediateSize(), hd = c.headDim();
        m.put(prefix + "embed_tokens.weight", new long[]{c.vocabSize(), h});
        for (int i = 0; i < c.numLayers(); i++) {
            m.put(layer(i, "input_layernorm.weight"), new long[]{h});
            m.put(layer(i, "self_attn.q_proj.weight"), new long[]{q, h});
            m.put(layer(i, "self_attn.k_proj.weight"), new long[]{kv, h});
            m.put(layer(i, "self_attn.v_proj.weight"), new long[]{kv, h});
            m.put(layer(i, "self_attn.o_proj.weight"), new long[]{h, q});
            if (qkvBias) {
                m.put(layer(i, "self_attn.q_proj.bias"), new long[]{q});
                m.put(layer(i, "self_attn.k_proj.bias"), new long[]{kv});
                m.put(layer(i, "self_attn.v_proj.bias"), new long[]{kv});
            }
            if (oBias) m.put(layer(i, "self_attn.o_proj.bias"), new long[]{h});
            if (qkNorm) {
                m.put(layer(i, "self_attn.q_norm.weight"), new long[]{hd});
                m.put(layer(i, "self_attn.k_norm.weight"), new long[]{hd});
            }
            m.put(layer(i, "post_attention_layernorm.weight"), new long[]{h});
            m.put(layer(i, "mlp.gate_proj.weight"), new long[]{inter, h});
            m.put(layer(i, "mlp.up_proj.weight"), new long[]{inter, h});
            m.put(layer(i, "mlp.down_proj.weight"), new long[]{h, inter});
        }
        m.put(prefix + "norm.weight", new long[]{h});
        if (!c.tieWordEmbeddings()) m.put(lmHead, new long[]{c.vocabSize(), h});
        return m;
    }

    /**
     * Throws naming the model location, the tensor and what was expected, or returns the expected map. The config's
     * sizes are first checked against the checkpoint (layers present, embedding rows and width, q/k/v and MLP widths of
     * layer 0), each mismatch naming the config field, before anything proportional to the config is built.
     */
    public Map<String, long[]> validate(ModelConfig c, WeightStore store) {
        checkSizes(c, store);
        Map<String, long[]> expected = expectedTensors(c);
        java.util.Set<String> packed = io.vlmflux.llm.quant.QuantizedLinears.validate(c, store, expected, this);
        List<String> missing = new ArrayList<>();
        for (Map.Entry<String, long[]> e : expected.entrySet()) {
            TensorView t = store.find(e.getKey()).orElse(null);
            if (t == null && packed.contains(e.getKey())) continue;
            if (t == null) { missing.add(e.getKey()); continue; }
            if (t.dtype() != DType.BF16 && t.dtype() != DType.F16 && t.dtype() != DType.F32)
                throw new IllegalArgumentException(t.where() + ": dtype " + t.dtype() + " is not supported (BF16, F16 or F32)");
            if (!Arrays.equals(t.shape(), e.getValue()))
                throw new IllegalArgumentException(t.where() + ": expected shape " + Arrays.toString(e.getValue()) + " for this "
                        + family + " config but found " + Arrays.toString(t.shape()));
        }
        if (!missing.isEmpty())
            throw new IllegalArgumentException(files(store) + ": missing " + missing.size() + " tensor(s) of the " + family + " text model: "
                    + (missing.size() > 5 ? missing.subList(0, 5) + " ..." : missing)
                    + (missing.contains(lmHead) ? " (config tie_word_embeddings is false, so the checkpoint must hold " + lmHead + ")" : "")
                    + io.vlmflux.llm.quant.QuantizedLinears.hint(c, store, missing));
        List<String> extra = new ArrayList<>();
        for (String n : store.names()) {
            if (expected.containsKey(n) || packed.contains(n) || n.endsWith("rotary_emb.inv_freq")) continue;
            if (ignoredPrefixes.stream().anyMatch(n::startsWith)) continue;
            if (n.equals(lmHead) && c.tieWordEmbeddings()) continue;   // some tied checkpoints still store it; unused
            extra.add(n);
        }
        if (!extra.isEmpty())
            throw new IllegalArgumentException(files(store) + ": unexpected tensor(s) for the " + family + " text model (config: "
                    + c.numLayers() + " layers, qkv bias " + qkvBias + ", q/k norm " + qkNorm + "): "
                    + (extra.size() > 5 ? extra.subList(0, 5) + " ..." : extra));
        return expected;
    }

    /** The store's location and, for a folder, its safetensors files. */
    private static String files(WeightStore store) {
        if (store.files().size() == 1 && store.files().get(0).path().equals(store.location())) return store.location().toString();
        return store.location() + " (" + String.join(", ", store.files().stream().map(f -> f.path().getFileName().toString()).toList()) + ")";
    }

    private void checkSizes(ModelConfig c, WeightStore store) {
        String layers = prefix + "layers.";
        int present = 0;
        for (String n : store.names()) {
            if (!n.startsWith(layers)) continue;
            int dot = n.indexOf('.', layers.length());
            if (dot < 0) continue;
            try {
                present = Math.max(present, Math.addExact(Integer.parseInt(n.substring(layers.length(), dot)), 1));
            } catch (NumberFormatException | ArithmeticException ignored) {
                // not a layer index: reported as an unexpected tensor later
            }
        }
        String where = store.location() + ": ";
        if (present != c.numLayers())
            throw new IllegalArgumentException(where + "config num_hidden_layers is " + c.numLayers() + " but the checkpoint holds "
                    + present + " layer(s) (" + layers + "0.." + (present - 1) + ")");
        TensorView emb = store.find(prefix + "embed_tokens.weight").orElse(null);
        if (emb != null && emb.rank() == 2) {
            if (emb.dim(0) != c.vocabSize())
                throw new IllegalArgumentException(where + "config vocab_size is " + c.vocabSize() + " but " + emb.name() + " has " + emb.dim(0) + " rows");
            if (emb.dim(1) != c.hiddenSize())
                throw new IllegalArgumentException(where + "config hidden_size is " + c.hiddenSize() + " but " + emb.name() + " is " + emb.dim(1) + " wide");
        }
        rows(store, layer(0, "self_attn.q_proj.weight"), c.qDim(), "num_attention_heads * head_dim = " + c.numHeads() + " * " + c.headDim());
        rows(store, layer(0, "self_attn.k_proj.weight"), c.kvDim(), "num_key_value_heads * head_dim = " + c.numKvHeads() + " * " + c.headDim());
        rows(store, layer(0, "mlp.gate_proj.weight"), c.intermediateSize(), "intermediate_size");
    }

    private static void rows(WeightStore store, String name, long expect, String what) {
        TensorView t = store.find(name).orElse(null);
        if (t != null && t.rank() == 2 && t.dim(0) != expect)
            throw new IllegalArgumentException(store.location() + ": config " + what + " = " + expect + " but " + name + " has " + t.dim(0) + " rows");
    }
}
