package io.vlmflux.vision.qwen2vl;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Path;
import io.vlmflux.vision.JsonFields;

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
        bounded("depth", depth, 256);
        bounded(family == Family.QWEN2_VL ? "embed_dim" : "hidden_size", embedDim, 1 << 14);
        bounded("num_heads", numHeads, 256);
        bounded(family == Family.QWEN2_VL ? "mlp_ratio * embed_dim" : "intermediate_size", mlpHidden, 1 << 17);
        bounded(family == Family.QWEN2_VL ? "hidden_size" : "out_hidden_size", outHidden, 1 << 16);
        bounded("in_channels", inChannels, 16);
        bounded("patch_size", patchSize, 64);
        bounded("temporal_patch_size", temporalPatchSize, 16);
        bounded("spatial_merge_size", mergeSize, 16);
        if (!(ropeTheta > 0)) throw new IllegalArgumentException("vision_config field 'rope_theta' must be positive, got " + ropeTheta);
        if (embedDim % numHeads != 0)
            throw new IllegalArgumentException("vision_config width " + embedDim + " is not divisible by field 'num_heads' " + numHeads);
        if ((embedDim / numHeads) % 4 != 0)
            throw new IllegalArgumentException("vision_config head dim (width / 'num_heads') " + embedDim / numHeads + " must be a multiple of 4 (2-D rotary)");
        fullAttBlocks = fullAttBlocks == null ? new int[0] : fullAttBlocks.clone();
        for (int b : fullAttBlocks)
            if (b < 0 || b >= depth) throw new IllegalArgumentException("vision_config field 'fullatt_block_indexes' entry " + b + " is outside 0.." + (depth - 1));
        if (family == Family.QWEN2_5_VL && windowSize < patchSize * mergeSize)
            throw new IllegalArgumentException("vision_config field 'window_size' " + windowSize + " is smaller than patch_size*spatial_merge_size " + patchSize * mergeSize);
        switch (hiddenAct) {
            case "quick_gelu", "gelu", "gelu_pytorch_tanh", "gelu_new", "silu", "swish" -> { }
            default -> throw new IllegalArgumentException("unsupported vision_config field 'hidden_act' '" + hiddenAct + "' (supported: quick_gelu, gelu, gelu_pytorch_tanh, silu)");
        }
    }

    private static void bounded(String field, int v, int max) {
        if (v <= 0 || v > max)
            throw new IllegalArgumentException("vision_config field '" + field + "' must be in 1.." + max + ", got " + v);
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
        return io.vlmflux.vision.JsonFields.readConfig(modelDir, VisionConfig::fromJson);
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
        final int big = Integer.MAX_VALUE;
        int inCh = v.has("in_channels") ? JsonFields.integer(v, "in_channels", 3, 1, big) : JsonFields.integer(v, "in_chans", 3, 1, big);
        JsonNode rp = v.path("rope_parameters");
        double theta = rp.isObject() && rp.hasNonNull("rope_theta") ? JsonFields.number(rp, "rope_theta", 10000.0) : JsonFields.number(v, "rope_theta", 10000.0);
        int patch = v.hasNonNull("patch_size") ? JsonFields.integer(v, "patch_size", 14, 1, big) : JsonFields.integer(v, "spatial_patch_size", 14, 1, big);
        JsonNode tc = root.path("text_config").isObject() ? root.get("text_config") : root;
        int textHidden = JsonFields.integer(tc, "hidden_size", JsonFields.integer(root, "hidden_size", 3584, 1, big), 1, big);
        if (family == Family.QWEN2_VL) {
            int embed = JsonFields.integer(v, "embed_dim", 1280, 1, big);
            double ratio = JsonFields.number(v, "mlp_ratio", 4);
            if (!(ratio > 0 && ratio <= 64)) throw new IllegalArgumentException("vision_config field 'mlp_ratio' must be in (0, 64], got " + ratio);
            return new VisionConfig(family, JsonFields.integer(v, "depth", 32, 1, big), embed, JsonFields.integer(v, "num_heads", 16, 1, big),
                    (int) (embed * ratio), JsonFields.integer(v, "hidden_size", textHidden, 1, big), inCh, patch,
                    JsonFields.integer(v, "temporal_patch_size", 2, 1, big), JsonFields.integer(v, "spatial_merge_size", 2, 1, big),
                    JsonFields.text(v, "hidden_act", "quick_gelu"), theta, 0, null);
        }
        int[] full = v.hasNonNull("fullatt_block_indexes") ? ints(v.get("fullatt_block_indexes")) : new int[]{7, 15, 23, 31};
        return new VisionConfig(family, JsonFields.integer(v, "depth", 32, 1, big), JsonFields.integer(v, "hidden_size", 3584, 1, big),
                JsonFields.integer(v, "num_heads", 16, 1, big), JsonFields.integer(v, "intermediate_size", 3420, 1, big),
                JsonFields.integer(v, "out_hidden_size", textHidden, 1, big), inCh, patch, JsonFields.integer(v, "temporal_patch_size", 2, 1, big),
                JsonFields.integer(v, "spatial_merge_size", 2, 1, big), JsonFields.text(v, "hidden_act", "silu"), theta,
                JsonFields.integer(v, "window_size", 112, 1, 1 << 16), full);
    }

    private static int[] ints(JsonNode a) {
        if (!a.isArray() || a.size() > 1024) throw new IllegalArgumentException("field 'fullatt_block_indexes' must be an array of block indexes, got " + a);
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            if (!a.get(i).isIntegralNumber() || !a.get(i).canConvertToInt())
                throw new IllegalArgumentException("field 'fullatt_block_indexes' must hold integers, got " + a);
            r[i] = a.get(i).asInt();
        }
        return r;
    }

    @Override
    public String toString() {
        return family.modelType + " vision: depth " + depth + ", width " + embedDim + ", heads " + numHeads + ", mlp " + mlpHidden
                + ", out " + outHidden + ", patch " + patchSize + "x" + temporalPatchSize + ", merge " + mergeSize + ", act " + hiddenAct
                + (family == Family.QWEN2_5_VL ? ", window " + windowSize + "px, full-attention blocks " + Arrays.toString(fullAttBlocks) : "");
    }
}
