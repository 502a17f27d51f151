package io.vlmflux.vision.qwen2vl;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The vision tower of a Qwen2-VL or Qwen2.5-VL {@code config.json} ({@code vision_config}), in either layout
 * (transformers 5's nested one or the published flat one; both nest {@code vision_config}). Keys differ between the
 * families: Qwen2-VL has {@code embed_dim} (width), {@code hidden_size} (merger output) and {@code mlp_ratio};
 * Qwen2.5-VL has {@code hidden_size} (width), {@code out_hidden_size} and {@code intermediate_size}, plus window
 * attention ({@code window_size} in pixels, {@code fullatt_block_indexes}). Missing keys take transformers' defaults.
 *
 * @param family            which tower
 * @param embedDim          width of the ViT blocks
 * @param outHidden         width of the merger output (the language model's hidden size)
 * @param mlpHidden         hidden width of the block MLP
 * @param windowSize        attention window in pixels (Qwen2.5-VL; 0 for Qwen2-VL)
 * @param fullAttBlocks     blocks with full attention (Qwen2.5-VL; the others use windows)
 */
public record VisionConfig(Family family, int depth, int embedDim, int numHeads, int mlpHidden, int outHidden,
                           int inChannels, int patchSize, int temporalPatchSize, int mergeSize, String hiddenAct,
                           double ropeTheta, int windowSize, int[] fullAttBlocks) {

    /** The two supported towers. */
    public enum Family {
        /** LayerNorm, fc1/fc2 MLP, full attention. */
        QWEN2_VL("qwen2_vl"),
        /** RMSNorm, gated MLP, window attention. */
        QWEN2_5_VL("qwen2_5_vl");
        final String modelType;
        Family(String t) { modelType = t; }
        public String modelType() { return modelType; }
    }

    public VisionConfig {
        if (depth <= 0 || embedDim <= 0 || numHeads <= 0 || mlpHidden <= 0 || outHidden <= 0 || inChannels <= 0
                || patchSize <= 0 || temporalPatchSize <= 0 || mergeSize <= 0)
            throw new IllegalArgumentException("vision_config sizes must be positive: " + this);
        if (embedDim % numHeads != 0)
            throw new IllegalArgumentException("vision width " + embedDim + " is not divisible by num_heads " + numHeads);
        if ((embedDim / numHeads) % 4 != 0)
            throw new IllegalArgumentException("vision head dim " + embedDim / numHeads + " must be a multiple of 4 (2-D rotary)");
        fullAttBlocks = fullAttBlocks == null ? new int[0] : fullAttBlocks.clone();
        for (int b : fullAttBlocks)
            if (b < 0 || b >= depth) throw new IllegalArgumentException("fullatt_block_indexes entry " + b + " is outside 0.." + (depth - 1));
        if (family == Family.QWEN2_5_VL && windowSize < patchSize * mergeSize)
            throw new IllegalArgumentException("window_size " + windowSize + " is smaller than patch_size*spatial_merge_size " + patchSize * mergeSize);
        switch (hiddenAct) {
            case "quick_gelu", "gelu", "gelu_pytorch_tanh", "gelu_new", "silu", "swish" -> { }
            default -> throw new IllegalArgumentException("unsupported vision hidden_act '" + hiddenAct + "' (supported: quick_gelu, gelu, gelu_pytorch_tanh, silu)");
        }
    }

    public int headDim() { return embedDim / numHeads; }

    public int patchDim() { return inChannels * temporalPatchSize * patchSize * patchSize; }

    @Override public int[] fullAttBlocks() { return fullAttBlocks.clone(); }

    boolean isFullAttention(int block) {
        if (family == Family.QWEN2_VL) return true;
        for (int b : fullAttBlocks) if (b == block) return true;
        return false;
    }

    /** Reads {@code config.json} of a model folder. */
    public static VisionConfig load(Path modelDir) {
        Path file = modelDir.resolve("config.json");
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("missing " + file + ": not a Hugging Face model folder");
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        try {
            return fromJson(root);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    static VisionConfig fromJson(JsonNode root) {
        String modelType = root.path("model_type").asText("");
        Family family = switch (modelType) {
            case "qwen2_vl" -> Family.QWEN2_VL;
            case "qwen2_5_vl" -> Family.QWEN2_5_VL;
            default -> throw new IllegalArgumentException("unsupported model_type '" + modelType
                    + "' for a vision encoder (supported: qwen2_vl, qwen2_5_vl)");
        };
        JsonNode v = root.path("vision_config");
        if (!v.isObject()) throw new IllegalArgumentException("model_type " + modelType + " has no vision_config object");
        int inCh = v.has("in_channels") ? v.get("in_channels").asInt() : v.path("in_chans").asInt(3);
        double theta = v.path("rope_parameters").path("rope_theta").asDouble(v.path("rope_theta").asDouble(10000.0));
        int patch = v.path("patch_size").asInt(v.path("spatial_patch_size").asInt(14));
        if (family == Family.QWEN2_VL) {
            int embed = v.path("embed_dim").asInt(1280);
            double ratio = v.path("mlp_ratio").asDouble(4);
            int textHidden = root.path("text_config").path("hidden_size").asInt(root.path("hidden_size").asInt(3584));
            return new VisionConfig(family, v.path("depth").asInt(32), embed, v.path("num_heads").asInt(16),
                    (int) (embed * ratio), v.path("hidden_size").asInt(textHidden), inCh, patch,
                    v.path("temporal_patch_size").asInt(2), v.path("spatial_merge_size").asInt(2),
                    v.path("hidden_act").asText("quick_gelu"), theta, 0, null);
        }
        int textHidden = root.path("text_config").path("hidden_size").asInt(root.path("hidden_size").asInt(3584));
        int[] full = v.has("fullatt_block_indexes") ? ints(v.get("fullatt_block_indexes")) : new int[]{7, 15, 23, 31};
        return new VisionConfig(family, v.path("depth").asInt(32), v.path("hidden_size").asInt(3584),
                v.path("num_heads").asInt(16), v.path("intermediate_size").asInt(3420),
                v.path("out_hidden_size").asInt(textHidden), inCh, patch, v.path("temporal_patch_size").asInt(2),
                v.path("spatial_merge_size").asInt(2), v.path("hidden_act").asText("silu"), theta,
                v.path("window_size").asInt(112), full);
    }

    private static int[] ints(JsonNode a) {
        if (!a.isArray()) throw new IllegalArgumentException("fullatt_block_indexes must be an array, got " + a);
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) r[i] = a.get(i).asInt();
        return r;
    }

    @Override
    public String toString() {
        return family.modelType + " vision: depth " + depth + ", width " + embedDim + ", heads " + numHeads + ", mlp " + mlpHidden
                + ", out " + outHidden + ", patch " + patchSize + "x" + temporalPatchSize + ", merge " + mergeSize + ", act " + hiddenAct
                + (family == Family.QWEN2_5_VL ? ", window " + windowSize + "px, full-attention blocks " + Arrays.toString(fullAttBlocks) : "");
    }
}
