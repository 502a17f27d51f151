package io.vlmflux.vision;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.vision.qwen2vl.Qwen2VLVision;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Picks the vision encoder for a model folder by {@code config.json}'s {@code model_type}. Today: the CPU float32
 * backend of Qwen2-VL and Qwen2.5-VL ({@code qwen2_vl}, {@code qwen2_5_vl}); a GPU backend will be chosen here when
 * a device is present, and the choice is logged.
 */
public final class VisionEncoders {
    private VisionEncoders() {}

    /** Loads the encoder of {@code modelDir}; errors name the folder and what is missing or unsupported. */
    public static VisionEncoder load(Path modelDir) {
        Path cfg = modelDir.resolve("config.json");
        if (!Files.isRegularFile(cfg)) throw new IllegalArgumentException("missing " + cfg + ": not a Hugging Face model folder");
        String type;
        try {
            type = new ObjectMapper().readTree(cfg.toFile()).path("model_type").asText("");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot parse " + cfg + ": " + e.getMessage(), e);
        }
        if (Qwen2VLVision.supports(type)) return Qwen2VLVision.loadCpu(modelDir);
        throw new IllegalArgumentException(cfg + ": unsupported model_type '" + type + "' for a vision encoder (supported: qwen2_vl, qwen2_5_vl)");
    }
}
