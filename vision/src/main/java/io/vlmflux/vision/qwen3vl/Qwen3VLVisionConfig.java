package io.vlmflux.vision.qwen3vl;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.vision.JsonFields;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * The vision tower of a Qwen3-VL {@code config.json}: its {@code vision_config} object, which transformers 5's layout
 * and the published (flat text keys) layout both nest the same way. Missing keys take transformers 5.17's
 * {@code Qwen3VLVisionConfig} defaults (the 27-block, 1152-wide tower of the 4B/8B checkpoints); present keys of the
 * wrong type or range are errors naming the field.
 *
 * @param depth                ViT blocks
 * @param hidden               width of the blocks ({@code hidden_size})
 * @param numHeads             attention heads
 * @param intermediate         hidden width of the block MLP ({@code intermediate_size})
 * @param outHidden            width of the merger outputs ({@code out_hidden_size}, the language model's hidden size)
 * @param numPositions         learned position embeddings ({@code num_position_embeddings}), a square grid
 * @param deepstackIndexes     blocks whose outputs feed the DeepStack mergers ({@code deepstack_visual_indexes})
 * @param ropeTheta            base of the 2-D rotary (transformers uses 10000 for the vision tower)
 */
public record Qwen3VLVisionConfig(int depth, int hidden, int numHeads, int intermediate, int outHidden, int inChannels,
                                  int patchSize, int temporalPatchSize, int mergeSize, int numPositions,
                                  int[] deepstackIndexes, String hiddenAct, double ropeTheta) {

    public Qwen3VLVisionConfig {
        bounded("depth", depth, 256);
        bounded("hidden_size", hidden, 1 << 14);
        bounded("num_heads", numHeads, 256);
        bounded("intermediate_size", intermediate, 1 << 17);
        bounded("out_hidden_size", outHidden, 1 << 16);
        bounded("in_channels", inChannels, 16);
        bounded("patch_size", patchSize, 64);
        bounded("temporal_patch_size", temporalPatchSize, 16);
        bounded("spatial_merge_size", mergeSize, 16);
        bounded("num_position_embeddings", numPositions, 1 << 20);
        int side = (int) Math.round(Math.sqrt(numPositions));
        if (side * side != numPositions)
            throw new IllegalArgumentException("vision_config field 'num_position_embeddings' must be a square (a side x side grid), got " + numPositions);
        if (!(ropeTheta > 0)) throw new IllegalArgumentException("vision_config field 'rope_theta' must be positive, got " + ropeTheta);
        if (hidden % numHeads != 0)
            throw new IllegalArgumentException("vision_config field 'hidden_size' " + hidden + " is not divisible by field 'num_heads' " + numHeads);
        if ((hidden / numHeads) % 4 != 0)
            throw new IllegalArgumentException("vision_config head dim (hidden_size / num_heads) " + hidden / numHeads + " must be a multiple of 4 (2-D rotary)");
        deepstackIndexes = deepstackIndexes == null ? new int[0] : deepstackIndexes.clone();
        for (int i = 0; i < deepstackIndexes.length; i++) {
            int b = deepstackIndexes[i];
            if (b < 0 || b >= depth)
                throw new IllegalArgumentException("vision_config field 'deepstack_visual_indexes' entry " + b + " is outside 0.." + (depth - 1));
            for (int j = 0; j < i; j++)
                if (deepstackIndexes[j] == b)
                    throw new IllegalArgumentException("vision_config field 'deepstack_visual_indexes' lists block " + b + " twice: " + Arrays.toString(deepstackIndexes));
        }
        switch (hiddenAct) {
            case "gelu_pytorch_tanh", "gelu_new", "gelu", "quick_gelu", "silu", "swish" -> { }
            case null -> throw new IllegalArgumentException("vision_config field 'hidden_act' is null");
            default -> throw new IllegalArgumentException("unsupported vision_config field 'hidden_act' '" + hiddenAct
                    + "' (supported: gelu_pytorch_tanh, gelu_new, gelu, quick_gelu, silu)");
        }
    }

    private static void bounded(String field, int v, int max) {
        if (v <= 0 || v > max) throw new IllegalArgumentException("vision_config field '" + field + "' must be in 1.." + max + ", got " + v);
    }

    public int headDim() { return hidden / numHeads; }

    /** Values of one flattened patch: {@code channels * temporal * patch^2}. */
    public int patchDim() { return inChannels * temporalPatchSize * patchSize * patchSize; }

    /** Side of the learned position-embedding grid. */
    public int gridSide() { return (int) Math.round(Math.sqrt(numPositions)); }

    @Override public int[] deepstackIndexes() { return deepstackIndexes.clone(); }

    /** Reads {@code config.json} of a model folder; errors name the file. */
    public static Qwen3VLVisionConfig load(Path modelDir) {
        return io.vlmflux.vision.JsonFields.readConfig(modelDir, Qwen3VLVisionConfig::fromJson);
    }

    static Qwen3VLVisionConfig fromJson(JsonNode root) {
        if (root == null || !root.isObject()) throw new IllegalArgumentException("config is not a JSON object");
        String modelType = JsonFields.text(root, "model_type", "");
        if (!Qwen3VLVision.supports(modelType))
            throw new IllegalArgumentException("unsupported model_type '" + modelType + "' for the Qwen3-VL vision tower (supported: qwen3_vl, qwen3_vl_moe)");
        JsonNode v = root.get("vision_config");
        if (v == null || !v.isObject()) throw new IllegalArgumentException("model_type " + modelType + " needs a 'vision_config' object, got " + v);
        final int big = Integer.MAX_VALUE;
        JsonNode rp = v.path("rope_parameters");
        double theta = rp.isObject() && rp.hasNonNull("rope_theta") ? JsonFields.number(rp, "rope_theta", 10000.0)
                : JsonFields.number(v, "rope_theta", 10000.0);
        int[] deep = v.hasNonNull("deepstack_visual_indexes") ? ints(v.get("deepstack_visual_indexes")) : new int[]{8, 16, 24};
        return new Qwen3VLVisionConfig(
                JsonFields.integer(v, "depth", 27, 1, big),
                JsonFields.integer(v, "hidden_size", 1152, 1, big),
                JsonFields.integer(v, "num_heads", 16, 1, big),
                JsonFields.integer(v, "intermediate_size", 4304, 1, big),
                JsonFields.integer(v, "out_hidden_size", 3584, 1, big),
                JsonFields.integer(v, "in_channels", 3, 1, big),
                JsonFields.integer(v, "patch_size", 16, 1, big),
                JsonFields.integer(v, "temporal_patch_size", 2, 1, big),
                JsonFields.integer(v, "spatial_merge_size", 2, 1, big),
                JsonFields.integer(v, "num_position_embeddings", 2304, 1, big),
                deep,
                JsonFields.text(v, "hidden_act", "gelu_pytorch_tanh"),
                theta);
    }

    private static int[] ints(JsonNode a) {
        if (!a.isArray() || a.size() > 256)
            throw new IllegalArgumentException("vision_config field 'deepstack_visual_indexes' must be an array of block indexes, got " + a);
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            if (!a.get(i).isIntegralNumber() || !a.get(i).canConvertToInt())
                throw new IllegalArgumentException("vision_config field 'deepstack_visual_indexes' must hold integers, got " + a);
            r[i] = a.get(i).asInt();
        }
        return r;
    }

    @Override
    public String toString() {
        return "qwen3_vl vision: depth " + depth + ", width " + hidden + ", heads " + numHeads + ", mlp " + intermediate + ", out " + outHidden
                + ", patch " + patchSize + "x" + temporalPatchSize + ", merge " + mergeSize + ", positions " + gridSide() + "^2, act " + hiddenAct
                + ", deepstack " + Arrays.toString(deepstackIndexes);
    }
}
