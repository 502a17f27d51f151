package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The text-model part of a Hugging Face {@code config.json}, read from either layout: flat (published checkpoints:
 * everything at top level, {@code rope_theta} + {@code rope_scaling}) or nested (transformers 5 VLMs:
 * {@code text_config} + {@code rope_parameters}). Values are looked up in {@code text_config} first, then at top
 * level. Immutable and validated on construction: sizes must be positive and within {@link #MAX_HIDDEN} etc. (far
 * above any published checkpoint, low enough that nothing absurd is allocated before the tensors are checked against
 * the config by {@link TextModelSpec#validate}); token ids must be integers inside the vocabulary.
 *
 * @param architectures  e.g. {@code Qwen2ForCausalLM}; the registry ({@link Models}) picks the family from these
 * @param headDim        explicit {@code head_dim} or hidden / heads
 * @param attentionBias  {@code attention_bias} when given, else null (the family decides)
 * @param imageTokenId   {@code image_token_id} for VLMs, -1 otherwise
 * @param quantization   the 4-bit weight format of {@code quantization_config}, null for a 16-bit checkpoint
 */
public record ModelConfig(List<String> architectures, String modelType, int hiddenSize, int numLayers, int numHeads,
                          int numKvHeads, int headDim, int intermediateSize, int vocabSize, float rmsNormEps,
                          int maxPositionEmbeddings, RopeConfig rope, boolean tieWordEmbeddings, Boolean attentionBias,
                          String hiddenAct, int bosTokenId, List<Integer> eosTokenIds, int imageTokenId,
                          int videoTokenId, int visionStartTokenId, int spatialMergeSize, double tokensPerSecond,
                          io.vlmflux.llm.quant.QuantConfig quantization) {
    /** Upper bounds of the size fields (published models stay far below). */
    public static final int MAX_HIDDEN = 1 << 16, MAX_LAYERS = 1024, MAX_HEADS = 1024, MAX_HEAD_DIM = 1024,
            MAX_INTERMEDIATE = 1 << 20, MAX_VOCAB = 1 << 24, MAX_POSITIONS = 1 << 24;

    public ModelConfig {
        architectures = List.copyOf(architectures);
        eosTokenIds = List.copyOf(eosTokenIds);
        bounded("hidden_size", hiddenSize, MAX_HIDDEN);
        bounded("num_hidden_layers", numLayers, MAX_LAYERS);
        bounded("num_attention_heads", numHeads, MAX_HEADS);
        bounded("num_key_value_heads", numKvHeads, MAX_HEADS);
        bounded("head_dim", headDim, MAX_HEAD_DIM);
        bounded("intermediate_size", intermediateSize, MAX_INTERMEDIATE);
        bounded("vocab_size", vocabSize, MAX_VOCAB);
        bounded("max_position_embeddings", maxPositionEmbeddings, MAX_POSITIONS);
        if (numKvHeads > numHeads)
            throw new IllegalArgumentException("config field num_key_value_heads " + numKvHeads + " exceeds num_attention_heads " + numHeads);
        for (int id : eosTokenIds) tokenId("eos_token_id", id, vocabSize, false);
        tokenId("bos_token_id", bosTokenId, vocabSize, true);
        tokenId("image_token_id", imageTokenId, vocabSize, true);
        tokenId("video_token_id", videoTokenId, vocabSize, true);
        tokenId("vision_start_token_id", visionStartTokenId, vocabSize, true);
        if (!(tokensPerSecond > 0 && tokensPerSecond < 1e6))
            throw new IllegalArgumentException("config field tokens_per_second must be in (0, 1e6), got " + tokensPerSecond);
        if (numHeads % numKvHeads != 0)
            throw new IllegalArgumentException("num_attention_heads " + numHeads + " is not a multiple of num_key_value_heads " + numKvHeads);
        if ((headDim & 1) != 0) throw new IllegalArgumentException("config field head_dim must be even for rotary embeddings, got " + headDim);
        if (!(rmsNormEps > 0 && rmsNormEps < 1)) throw new IllegalArgumentException("config field rms_norm_eps must be in (0, 1), got " + rmsNormEps);
        if (rope.isMrope()) {
            int sum = 0;
            for (int s : rope.mropeSection()) sum += s;
            if (sum != headDim / 2 || rope.mropeSection().length != 3)
                throw new IllegalArgumentException("mrope_section " + java.util.Arrays.toString(rope.mropeSection())
                        + " must have 3 entries summing to head_dim/2 = " + headDim / 2);
        }
        if (spatialMergeSize <= 0 || spatialMergeSize > 64)
            throw new IllegalArgumentException("config field spatial_merge_size must be in 1..64, got " + spatialMergeSize);
    }

    private static void bounded(String name, int v, int max) {
        if (v <= 0 || v > max) throw new IllegalArgumentException("config field " + name + " must be an integer in 1.." + max + ", got " + v);
    }

    private static void tokenId(String name, int id, int vocab, boolean optional) {
        if (optional && id == -1) return;
        if (id < 0 || id >= vocab)
            throw new IllegalArgumentException("config field " + name + " " + id + " is outside the vocabulary [0, " + vocab + ") of vocab_size");
    }

    public int qDim() { return numHeads * headDim; }
    public int kvDim() { return numKvHeads * headDim; }

    public boolean isEos(int id) { return eosTokenIds.contains(id); }

    /** Reads {@code dir/config.json}. */
    public static ModelConfig load(Path dir) throws IOException { return load(dir, "config.json"); }

    /** Reads {@code dir/fileName} (e.g. {@code config.hub.json}). Errors name the file and the field. */
    public static ModelConfig load(Path dir, String fileName) throws IOException {
        Path f = dir.resolve(fileName);
        if (!Files.isRegularFile(f)) throw new NoSuchFileException(f.toString(), null, "model config not found");
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(f.toFile());
        } catch (IOException e) {
            throw new IOException(f + ": not valid JSON: " + e.getMessage(), e);
        }
        try {
            return parse(root);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(f + ": " + e.getMessage(), e);
        }
    }

    /** Parses an already-read config tree (either layout). */
    public static ModelConfig parse(JsonNode root) {
        if (root == null || !root.isObject()) throw new IllegalArgumentException("config must be a JSON object");
        JsonNode text = root.path("text_config").isObject() ? root.get("text_config") : root;
        Lookup l = new Lookup(text, root);
        List<String> archs = new ArrayList<>();
        JsonNode an = root.get("architectures");
        if (an != null && !an.isNull()) {
            if (!an.isArray() || an.size() > 64) throw new IllegalArgumentException("field 'architectures' must be an array of class names, got " + an);
            for (JsonNode a : an) {
                if (!a.isTextual()) throw new IllegalArgumentException("field 'architectures' must hold strings, got " + an);
                archs.add(a.asText());
            }
        }
        String modelType = root.path("model_type").asText("");
        int hidden = l.requireInt("hidden_size");
        int heads = l.requireInt("num_attention_heads");
        int kvHeads = l.intOr("num_key_value_heads", heads);
        if (l.node("head_dim") == null && heads > 0 && (hidden % heads != 0 || ((hidden / heads) & 1) != 0))
            throw new IllegalArgumentException("field 'hidden_size' " + hidden + " / num_attention_heads " + heads
                    + " must give an even head_dim (no head_dim field given)");
        int headDim = l.intOr("head_dim", heads > 0 ? hidden / heads : 0);
        int layers = l.requireInt("num_hidden_layers");
        int inter = l.requireInt("intermediate_size");
        int vocab = l.requireInt("vocab_size");
        float eps = (float) l.doubleOr("rms_norm_eps", 1e-6);
        int maxPos = l.intOr("max_position_embeddings", 32768);

        // rope: nested rope_parameters, else flat rope_theta + rope_scaling
        JsonNode rp = l.node("rope_parameters");
        JsonNode rs = l.node("rope_scaling");
        JsonNode r = rp != null && rp.isObject() ? rp : (rs != null && rs.isObject() ? rs : null);
        double theta = r != null && r.has("rope_theta") ? number(r, "rope_theta", 10000.0) : l.doubleOr("rope_theta", 10000.0);
        RopeConfig rope;
        if (r == null) {
            rope = RopeConfig.defaults(theta);
        } else {
            JsonNode tn = r.hasNonNull("rope_type") ? r.get("rope_type") : r.get("type");
            if (tn != null && !tn.isNull() && !tn.isTextual()) throw new IllegalArgumentException("field 'rope_type' must be a string, got " + tn);
            String type = tn == null || tn.isNull() ? "default" : tn.asText();
            int[] section = null;
            if (r.has("mrope_section")) {
                JsonNode s = r.get("mrope_section");
                if (!s.isArray()) throw new IllegalArgumentException("mrope_section must be an array");
                if (s.size() > 8) throw new IllegalArgumentException("field 'mrope_section' must have 3 entries, got " + s);
                section = new int[s.size()];
                for (int i = 0; i < section.length; i++) section[i] = strictInt(s.get(i), "mrope_section");
            }
            rope = new RopeConfig(type, theta, number(r, "factor", 1.0), number(r, "low_freq_factor", 1.0),
                    number(r, "high_freq_factor", 4.0), r.hasNonNull("original_max_position_embeddings")
                            ? strictInt(r.get("original_max_position_embeddings"), "original_max_position_embeddings") : 0, section,
                    r.hasNonNull("mrope_interleaved") && bool(r.get("mrope_interleaved"), "mrope_interleaved"));
        }
        // tie_word_embeddings: the top-level value wins for nested VLM configs (that is the config transformers ties with)
        JsonNode tieNode = root.hasNonNull("tie_word_embeddings") ? root.get("tie_word_embeddings") : text.get("tie_word_embeddings");
        boolean tie = tieNode != null && !tieNode.isNull() && bool(tieNode, "tie_word_embeddings");
        JsonNode ab = l.node("attention_bias");
        Boolean bias = ab == null || ab.isNull() ? null : bool(ab, "attention_bias");
        JsonNode actNode = l.node("hidden_act");
        if (actNode != null && !actNode.isTextual()) throw new IllegalArgumentException("field 'hidden_act' must be a string, got " + actNode);
        String act = actNode == null ? "silu" : actNode.asText();
        List<Integer> eos = tokenIds(l.node("eos_token_id"), "eos_token_id");
        int bos = l.intOr("bos_token_id", -1);
        JsonNode vision = root.path("vision_config");
        int merge = vision.hasNonNull("spatial_merge_size") ? strictInt(vision.get("spatial_merge_size"), "vision_config.spatial_merge_size") : 2;
        double tps = vision.hasNonNull("tokens_per_second") ? number(vision, "tokens_per_second", 2.0) : number(text, "tokens_per_second", 2.0);
        return new ModelConfig(archs, modelType, hidden, layers, heads, kvHeads, headDim, inter, vocab, eps, maxPos, rope,
                tie, bias, act, bos, eos, l.intOr("image_token_id", -1), l.intOr("video_token_id", -1),
                l.intOr("vision_start_token_id", -1), merge, tps, io.vlmflux.llm.quant.QuantConfig.parse(root));
    }

    /** An integer field, refusing strings, fractions and values outside int (no silent truncation). */
    static int strictInt(JsonNode n, String k) {
        if (!n.isIntegralNumber() || !n.canConvertToInt())
            throw new IllegalArgumentException("field '" + k + "' must be an integer (32-bit), got " + n);
        return n.asInt();
    }

    static double number(JsonNode parent, String k, double d) {
        JsonNode n = parent.get(k);
        if (n == null || n.isNull()) return d;
        if (!n.isNumber() || !Double.isFinite(n.asDouble())) throw new IllegalArgumentException("field '" + k + "' must be a finite number, got " + n);
        return n.asDouble();
    }

    static boolean bool(JsonNode n, String k) {
        if (!n.isBoolean()) throw new IllegalArgumentException("field '" + k + "' must be true or false, got " + n);
        return n.asBoolean();
    }

    /** A token id or a list of them (e.g. {@code eos_token_id}); absent or null is an empty list. */
    static List<Integer> tokenIds(JsonNode e, String k) {
        List<Integer> ids = new ArrayList<>();
        if (e == null || e.isNull()) return ids;
        if (e.isArray()) {
            if (e.size() > 1024) throw new IllegalArgumentException("field '" + k + "' lists " + e.size() + " ids; at most 1024");
            for (JsonNode x : e) ids.add(strictInt(x, k));
        } else {
            ids.add(strictInt(e, k));
        }
        return ids;
    }

    private record Lookup(JsonNode text, JsonNode root) {
        JsonNode node(String k) {
            if (text.has(k) && !text.get(k).isNull()) return text.get(k);
            if (root.has(k) && !root.get(k).isNull()) return root.get(k);
            return null;
        }

        int requireInt(String k) {
            JsonNode n = node(k);
            if (n == null) throw new IllegalArgumentException("missing field '" + k + "'");
            return strictInt(n, k);
        }

        int intOr(String k, int d) {
            JsonNode n = node(k);
            if (n == null) return d;
            return strictInt(n, k);
        }

        double doubleOr(String k, double d) {
            JsonNode n = node(k);
            if (n == null) return d;
            if (!n.isNumber() || !Double.isFinite(n.asDouble())) throw new IllegalArgumentException("field '" + k + "' must be a finite number, got " + n);
            return n.asDouble();
        }
    }
}
