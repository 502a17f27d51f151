package io.vlmflux.vision.cuda;

import io.vlmflux.vision.JsonFields;
import io.vlmflux.vision.qwen2vl.VisionConfig;
import io.vlmflux.vision.qwen3vl.Qwen3VLVision;
import io.vlmflux.vision.qwen3vl.Qwen3VLVisionConfig;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * What {@link GpuVisionEncoder} needs of a vision config, for the three towers it runs: Qwen2-VL (LayerNorm, fc1/fc2
 * MLP), Qwen2.5-VL (RMSNorm, gated MLP, window attention) and Qwen3-VL (LayerNorm, {@code linear_fc1/linear_fc2} MLP,
 * patch-embedding bias, learned interpolated position embeddings, DeepStack mergers). Also the tensor names that
 * differ between them. Built from the validated family configs, so it adds no validation of its own.
 *
 * @param deepstackIndexes blocks whose outputs feed the DeepStack mergers (Qwen3-VL; empty otherwise), in merger order
 * @param positionSide     side of the learned position table (Qwen3-VL; 0 otherwise)
 * @param text             the family config's {@code toString}, for logs
 */
record TowerSpec(Family family, int depth, int width, int heads, int mlpHidden, int outHidden, int inChannels, int patchSize,
                 int temporalPatchSize, int mergeSize, String hiddenAct, double ropeTheta, int windowSize, int[] fullAttBlocks,
                 int[] deepstackIndexes, int positionSide, String text) {

    enum Family {
        QWEN2_VL("qwen2_vl"), QWEN2_5_VL("qwen2_5_vl"), QWEN3_VL("qwen3_vl");
        final String modelType;
        Family(String t) { modelType = t; }
    }

    TowerSpec {
        fullAttBlocks = fullAttBlocks.clone();
        deepstackIndexes = deepstackIndexes.clone();
    }

    /** Reads {@code config.json} of a model folder (either family); errors name the file and the field. */
    static TowerSpec load(Path modelDir) {
        String type = JsonFields.readConfig(modelDir, root -> JsonFields.text(root, "model_type", ""));
        return Qwen3VLVision.supports(type) ? of(Qwen3VLVisionConfig.load(modelDir)) : of(VisionConfig.load(modelDir));
    }

    static TowerSpec of(VisionConfig c) {
        Family f = c.family() == VisionConfig.Family.QWEN2_5_VL ? Family.QWEN2_5_VL : Family.QWEN2_VL;
        return new TowerSpec(f, c.depth(), c.embedDim(), c.numHeads(), c.mlpHidden(), c.outHidden(), c.inChannels(), c.patchSize(),
                c.temporalPatchSize(), c.mergeSize(), c.hiddenAct(), c.ropeTheta(), c.windowSize(), c.fullAttBlocks(), new int[0], 0, c.toString());
    }

    static TowerSpec of(Qwen3VLVisionConfig c) {
        return new TowerSpec(Family.QWEN3_VL, c.depth(), c.hidden(), c.numHeads(), c.intermediate(), c.outHidden(), c.inChannels(), c.patchSize(),
                c.temporalPatchSize(), c.mergeSize(), c.hiddenAct(), c.ropeTheta(), 0, new int[0], c.deepstackIndexes(), c.gridSide(), c.toString());
    }

    @Override public int[] fullAttBlocks() { return fullAttBlocks.clone(); }
    @Override public int[] deepstackIndexes() { return deepstackIndexes.clone(); }

    int headDim() { return width / heads; }
    int patchDim() { return inChannels * temporalPatchSize * patchSize * patchSize; }
    String modelType() { return family.modelType; }

    /** Qwen2.5-VL: RMSNorm without biases, gated MLP, window attention except in {@link #fullAttBlocks}. */
    boolean windowed() { return family == Family.QWEN2_5_VL; }

    boolean qwen3() { return family == Family.QWEN3_VL; }

    /** Whether block {@code b} attends over whole frames (every block but Qwen2.5-VL's windowed ones). */
    boolean fullAttention(int b) {
        return !windowed() || Arrays.stream(fullAttBlocks).anyMatch(x -> x == b);
    }

    /** Position of block {@code b} in {@link #deepstackIndexes} (the DeepStack merger it feeds), -1 when none. */
    int deepstackSlot(int b) {
        for (int k = 0; k < deepstackIndexes.length; k++) if (deepstackIndexes[k] == b) return k;
        return -1;
    }

    /**
     * The feature slot block {@code b}'s DeepStack output takes: features are in block order (transformers appends
     * them as the blocks run, each through the merger at the block's position in {@link #deepstackIndexes}), so the
     * slot is the number of listed blocks before {@code b}, whatever the order of the list.
     */
    int deepstackFeature(int b) {
        return (int) Arrays.stream(deepstackIndexes).filter(x -> x < b).count();
    }

    // tensor names (below the tower prefix) that differ between the families
    String mlpIn() { return qwen3() ? "mlp.linear_fc1" : "mlp.fc1"; }
    String mlpOut() { return qwen3() ? "mlp.linear_fc2" : windowed() ? "mlp.down_proj" : "mlp.fc2"; }
    String mergerNorm() { return qwen3() ? "merger.norm" : "merger.ln_q"; }
    String mergerIn() { return qwen3() ? "merger.linear_fc1" : "merger.mlp.0"; }
    String mergerOut() { return qwen3() ? "merger.linear_fc2" : "merger.mlp.2"; }

    @Override public String toString() { return text; }
}
