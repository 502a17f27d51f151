package io.vlmflux.vision;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.vision.qwen2vl.Qwen2VLVision;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Picks the vision encoder for a model folder by {@code config.json}'s {@code model_type} (Qwen2-VL and Qwen2.5-VL:
 * {@code qwen2_vl}, {@code qwen2_5_vl}) and a backend: {@code cpu} (float32 reference), {@code cuda} (GPU, bf16
 * weights) or {@code auto} (cuda when a GPU is usable, else cpu; the choice and the reason are logged).
 */
public final class VisionEncoders {
    private VisionEncoders() {}

    private static final System.Logger LOG = System.getLogger("vlmflux.vision");

    /** Loads the CPU encoder of {@code modelDir}; errors name the folder and what is missing or unsupported. */
    public static VisionEncoder load(Path modelDir) {
        return load(modelDir, "cpu");
    }

    /** Loads the encoder of {@code modelDir} on {@code backend} ({@code cpu}, {@code cuda} or {@code auto}). */
    public static VisionEncoder load(Path modelDir, String backend) {
        String b = backend == null ? "cpu" : backend.trim().toLowerCase(java.util.Locale.ROOT);
        if (!b.equals("cpu") && !b.equals("cuda") && !b.equals("auto"))
            throw new IllegalArgumentException("unknown vision backend '" + backend + "' (supported: cpu, cuda, auto)");
        String type = modelType(modelDir);
        if (!Qwen2VLVision.supports(type))
            throw new IllegalArgumentException(modelDir.resolve("config.json") + ": unsupported model_type '" + type + "' for a vision encoder (supported: qwen2_vl, qwen2_5_vl)");
        if (b.equals("auto")) {
            b = io.vlmflux.cuda.gpu.Gpu.isAvailable() ? "cuda" : "cpu";
            String why = b.equals("cuda") ? "a GPU is available" : "no GPU: " + io.vlmflux.cuda.gpu.Gpu.unavailableReason();
            LOG.log(System.Logger.Level.INFO, "vision backend auto -> " + b + " (" + why + ")");
        }
        if (b.equals("cuda")) return io.vlmflux.vision.cuda.GpuVisionEncoder.load(modelDir);
        return Qwen2VLVision.loadCpu(modelDir);
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
