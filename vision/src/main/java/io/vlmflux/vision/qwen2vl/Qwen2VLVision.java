package io.vlmflux.vision.qwen2vl;

import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.vision.VisionEncoder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/** Factory of the Qwen2-VL / Qwen2.5-VL vision towers (registered in {@link io.vlmflux.vision.VisionEncoders}). */
public final class Qwen2VLVision {
    private Qwen2VLVision() {}

    /** True when {@code config.json}'s {@code model_type} is one this family handles. */
    public static boolean supports(String modelType) {
        return "qwen2_vl".equals(modelType) || "qwen2_5_vl".equals(modelType);
    }

    /** Loads the CPU float32 encoder of a model folder (config.json + safetensors, single or sharded). */
    public static VisionEncoder loadCpu(Path modelDir) {
        VisionConfig cfg = VisionConfig.load(modelDir);
        WeightStore store;
        try {
            store = WeightStore.read(modelDir);   // an owned copy: the CPU encoder reads weights on every frame
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the weights of " + modelDir + ": " + e.getMessage(), e);
        }
        try {
            return new CpuVisionEncoder(cfg, store);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }
}
