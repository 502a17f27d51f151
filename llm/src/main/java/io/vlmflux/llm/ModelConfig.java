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
 * level. Immutable and validated on construction.
 *
 * @param architectures  e.g. {@code Qwen2ForCausalLM}; the registry ({@link Models}) picks the family from these
 * @param headDim        explicit {@code head_dim} or hidden / heads
 * @param attentionBias  {@code attention_bias} when given, else null (the family decides)
 * @param imageTokenId   {@code image_token_id} for VLMs, -1 otherwise
 */
public record ModelConfig(List<String> architectures, String modelType, int hiddenSize, int numLayers, int numHeads,
                          int numKvHeads, int headDim, int intermediateSize, int vocabSize, float rmsNormEps,
                          int maxPositionEmbeddings, RopeConfig rope, boolean tieWordEmbeddings, Boolean attentionBias,
                          String hiddenAct, int bosTokenId, List<Integer> eosTokenIds, int imageTokenId,
                          int videoTokenId, int visionStartTokenId, int spatialMergeSize, double tokensPerSecond) {
    public ModelConfig {
        architectures = List.copyOf(architectures);
        eosTokenIds = List.copyOf(eosTokenIds);
        positive("hidden_size", hiddenSize);
        positive("num_hidden_layers", numLayers);
        positive("num_attention_heads", numHeads);
        positive("num_key_value_heads", numKvHeads);
        positive("head_dim", headDim);
        positive("intermediate_size", intermediateSize);
        positive("vocab_size", vocabSize);
        if (numHeads % numKvHeads != 0)
            throw new IllegalArgumentException("num_attention_heads " + numHeads + " is not a multiple of num_key_value_heads " + numKvHeads);
        if ((headDim & 1) != 0) throw new IllegalArgumentException("head_dim must be even for rotary embeddings, got " + headDim);
        if (!(rmsNormEps > 0)) throw new IllegalArgumentException("rms_norm_eps must be positive, got " + rmsNormEps);
        if (rope.isMrope()) {
            int sum = 0;
            for (int s : rope.mropeSection()) sum += s;
            if (sum != headDim / 2 || rope.mropeSection().length != 3)
                throw new IllegalArgumentException("mrope_section " + java.util.Arrays.toString(rope.mropeSection())
                        + " must have 3 entries summing to head_dim/2 = " + headDim / 2);
        }
        if (spatialMergeSize <= 0) throw new IllegalArgumentException("spatial_merge_size must be positive, got " + spatialMergeSize);
    }

    private static void positive(String name, int v) {
        if (v <= 0) throw new IllegalArgumentException("config field " + name + " must be a positive integer, got " + v);
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
        for (JsonNode a : root.path("architectures")) archs.add(a.asText());
        String modelType = root.path("model_type").asText("");
        int hidden = l.requireInt("hidden_size");
        int heads = l.requireInt("num_attention_heads");
        int kvHeads = l.intOr("num_key_value_heads", heads);
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
        double theta = r != null && r.has("rope_theta") ? r.get("rope_theta").asDouble() : l.doubleOr("rope_theta", 10000.0);
        RopeConfig rope;
        if (r == null) {
            rope = RopeConfig.defaults(theta);
        } else {
            String type = r.has("rope_type") ? r.get("rope_type").asText() : r.path("type").asText("default");
            int[] section = null;
            if (r.has("mrope_section")) {
                JsonNode s = r.get("mrope_section");
                if (!s.isArray()) throw new IllegalArgumentException("mrope_section must be an array");
                section = new int[s.size()];
                for (int i = 0; i < section.length; i++) section[i] = s.get(i).asInt();
            }
            rope = new RopeConfig(type, theta, r.path("factor").asDouble(1.0), r.path("low_freq_factor").asDouble(1.0),
                    r.path("high_freq_factor").asDouble(4.0), r.path("original_max_position_embeddings").asInt(0), section);
        }
        // tie_word_embeddings: the top-level value wins for nested VLM configs (that is the config transformers ties with)
        boolean tie = root.has("tie_word_embeddings") ? root.get("tie_word_embeddings").asBoolean()
                : text.path("tie_word_embeddings").asBoolean(false);
        JsonNode ab = l.node("attention_bias");
        Boolean bias = ab == null || ab.isNull() ? null : ab.asBoolean();
        String act = l.node("hidden_act") == null ? "silu" : l.node("hidden_act").asText();
        List<Integer> eos = new ArrayList<>();
        JsonNode e = l.node("eos_token_id");
        if (e != null && e.isArray()) for (JsonNode x : e) eos.add(x.asInt());
        else if (e != null && e.isNumber()) eos.add(e.asInt());
        int bos = l.intOr("bos_token_id", -1);
        JsonNode vision = root.path("vision_config");
        int merge = vision.path("spatial_merge_size").asInt(2);
        double tps = vision.path("tokens_per_second").asDouble(text.path("tokens_per_second").asDouble(2.0));
        return new ModelConfig(archs, modelType, hidden, layers, heads, kvHeads, headDim, inter, vocab, eps, maxPos, rope,
                tie, bias, act, bos, eos, l.intOr("image_token_id", -1), l.intOr("video_token_id", -1),
                l.intOr("vision_start_token_id", -1), merge, tps);
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
            if (!n.canConvertToInt() || !n.isIntegralNumber()) throw new IllegalArgumentException("field '" + k + "' must be an integer, got " + n);
            return n.asInt();
        }

        int intOr(String k, int d) {
            JsonNode n = node(k);
            if (n == null) return d;
            if (!n.isIntegralNumber()) throw new IllegalArgumentException("field '" + k + "' must be an integer, got " + n);
            return n.asInt();
        }

        double doubleOr(String k, double d) {
            JsonNode n = node(k);
            if (n == null) return d;
            if (!n.isNumber()) throw new IllegalArgumentException("field '" + k + "' must be a number, got " + n);
            return n.asDouble();
        }
    }
}
