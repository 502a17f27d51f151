package io.vlmflux.vision.qwen3vl;

import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.vision.VisionEncoder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * Factory of the Qwen3-VL vision tower (registered in {@link io.vlmflux.vision.VisionEncoders}). The MoE models
 * ({@code qwen3_vl_moe}) share the tower unchanged (transformers' {@code Qwen3VLMoeVisionModel} is the dense class).
 */
public final class Qwen3VLVision {
    private Qwen3VLVision() {}

    /** True when {@code config.json}'s {@code model_type} is one this family handles. */
    public static boolean supports(String modelType) {
        return "qwen3_vl".equals(modelType) || "qwen3_vl_moe".equals(modelType);
    }

    /**
     * Loads the CPU float32 encoder of a model folder (config.json + safetensors, single or sharded). Its
     * {@link io.vlmflux.vision.ImageEmbeddings} carry the DeepStack features.
     */
    public static VisionEncoder loadCpu(Path modelDir) {
        Qwen3VLVisionConfig cfg = Qwen3VLVisionConfig.load(modelDir);
        WeightStore store;
        try {
            store = WeightStore.read(modelDir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the weights of " + modelDir + ": " + e.getMessage(), e);
        }
        try {
            return new CpuQwen3VLEncoder(cfg, store);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }
}
