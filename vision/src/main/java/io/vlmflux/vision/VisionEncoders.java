package io.vlmflux.vision;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.vision.qwen2vl.Qwen2VLVision;
import io.vlmflux.vision.qwen3vl.Qwen3VLVision;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Picks the vision encoder for a model folder by {@code config.json}'s {@code model_type} (Qwen2-VL and Qwen2.5-VL:
 * {@code qwen2_vl}, {@code qwen2_5_vl}; Qwen3-VL: {@code qwen3_vl}, {@code qwen3_vl_moe}, with DeepStack features in its
 * {@link ImageEmbeddings}) and a concrete backend: {@code cpu} (float32 reference) or {@code cuda} (GPU,
 * bf16 weights, on a stream of its own). {@code auto} is resolved once, by the runtime that loads the whole model
 * ({@code io.vlmflux.llm.runtime.VlmRuntime}), which also puts the encoder on the decoder's stream.
 */
public final class VisionEncoders {
    private VisionEncoders() {}


    /** Loads the CPU encoder of {@code modelDir}; errors name the folder and what is missing or unsupported. */
    public static VisionEncoder load(Path modelDir) {
        return load(modelDir, "cpu");
    }

    /** Loads the encoder of {@code modelDir} on {@code backend} ({@code cpu} or {@code cuda}). */
    public static VisionEncoder load(Path modelDir, String backend) {
        String b = backend == null ? "cpu" : backend.trim().toLowerCase(java.util.Locale.ROOT);
        if (!b.equals("cpu") && !b.equals("cuda"))
            throw new IllegalArgumentException("unknown vision backend '" + backend + "' (supported: cpu, cuda; auto is resolved by the runtime)");
        String type = modelType(modelDir);
        boolean q3 = Qwen3VLVision.supports(type);
        if (!q3 && !Qwen2VLVision.supports(type))
            throw new IllegalArgumentException(modelDir.resolve("config.json") + ": unsupported model_type '" + type + "' for a vision encoder (supported: qwen2_vl, qwen2_5_vl, qwen3_vl, qwen3_vl_moe)");
        if (b.equals("cuda")) return io.vlmflux.vision.cuda.GpuVisionEncoder.load(modelDir);
        return q3 ? Qwen3VLVision.loadCpu(modelDir) : Qwen2VLVision.loadCpu(modelDir);
    }

    private static String modelType(Path modelDir) {
        Path cfg = modelDir.resolve("config.json");
        if (!Files.isRegularFile(cfg)) throw new IllegalArgumentException("missing " + cfg + ": not a Hugging Face model folder");
        String type;
        try {
            type = new ObjectMapper().readTree(cfg.toFile()).path("model_type").asText("");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot parse " + cfg + ": " + e.getMessage(), e);
        }
        return type;
    }
}
