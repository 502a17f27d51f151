package io.vlmflux.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The Qwen2-VL image processor settings of a model's {@code preprocessor_config.json}. Both layouts load: pixel
 * bounds as {@code size.shortest_edge}/{@code size.longest_edge} (transformers 5) or {@code min_pixels}/{@code
 * max_pixels} (published checkpoints; these win when both are present, as in transformers). Missing keys take
 * transformers' defaults.
 *
 * @param minPixels    smallest pixel count (height x width) after resize
 * @param maxPixels    largest pixel count after resize
 * @param imageMean    per-channel mean, RGB order (3 values)
 * @param imageStd     per-channel std, RGB order (3 values)
 */
public record PreprocessorConfig(
        int patchSize, int temporalPatchSize, int mergeSize,
        long minPixels, long maxPixels,
        double[] imageMean, double[] imageStd, double rescaleFactor,
        boolean doResize, boolean doRescale, boolean doNormalize, boolean doConvertRgb) {

    public static final double[] OPENAI_CLIP_MEAN = {0.48145466, 0.4578275, 0.40821073};
    public static final double[] OPENAI_CLIP_STD = {0.26862954, 0.26130258, 0.27577711};

    public PreprocessorConfig {
        if (patchSize <= 0 || temporalPatchSize <= 0 || mergeSize <= 0)
            throw new IllegalArgumentException("patch_size, temporal_patch_size and merge_size must be positive, got "
                    + patchSize + ", " + temporalPatchSize + ", " + mergeSize);
        if (minPixels <= 0 || maxPixels < minPixels)
            throw new IllegalArgumentException("pixel bounds must satisfy 0 < min_pixels <= max_pixels, got " + minPixels + ", " + maxPixels);
        if (imageMean == null || imageMean.length != 3 || imageStd == null || imageStd.length != 3)
            throw new IllegalArgumentException("image_mean and image_std need 3 values (RGB), got " + Arrays.toString(imageMean) + " and " + Arrays.toString(imageStd));
        for (double s : imageStd) if (!(s > 0)) throw new IllegalArgumentException("image_std must be positive, got " + Arrays.toString(imageStd));
        if (!(rescaleFactor > 0)) throw new IllegalArgumentException("rescale_factor must be positive, got " + rescaleFactor);
        imageMean = imageMean.clone();
        imageStd = imageStd.clone();
    }

    /** The side that resized images are a multiple of: {@code patchSize * mergeSize}. */
    public int factor() { return patchSize * mergeSize; }

    /** Values of one flattened patch: {@code 3 * temporalPatchSize * patchSize^2}. */
    public int patchDim() { return 3 * temporalPatchSize * patchSize * patchSize; }

    @Override public double[] imageMean() { return imageMean.clone(); }
    @Override public double[] imageStd() { return imageStd.clone(); }

    /** Reads {@code preprocessor_config.json} from a model folder. */
    public static PreprocessorConfig load(Path modelDir) {
        Path file = modelDir.resolve("preprocessor_config.json");
        return read(file);
    }

    /** Reads one preprocessor config file (either layout). */
    public static PreprocessorConfig read(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (NoSuchFileException | java.io.FileNotFoundException e) {
            throw new IllegalArgumentException("missing " + file + ": a vision-language model folder needs preprocessor_config.json", e);
        } catch (IOException e) {
            if (!Files.exists(file))
                throw new IllegalArgumentException("missing " + file + ": a vision-language model folder needs preprocessor_config.json", e);
            throw new UncheckedIOException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(file + " is not a JSON object");
        try {
            return fromJson(root);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    static PreprocessorConfig fromJson(JsonNode n) {
        String type = n.path("image_processor_type").asText("");
        if (!type.isEmpty() && !type.startsWith("Qwen2VLImageProcessor") && !type.startsWith("Qwen2_5_VLImageProcessor"))
            throw new IllegalArgumentException("unsupported image_processor_type '" + type + "' (supported: Qwen2VLImageProcessor, Qwen2VLImageProcessorFast)");
        long minPixels = 56L * 56, maxPixels = 28L * 28 * 1280;
        JsonNode size = n.path("size");
        if (size.isObject()) {
            if (size.has("shortest_edge")) minPixels = size.get("shortest_edge").asLong();
            if (size.has("longest_edge")) maxPixels = size.get("longest_edge").asLong();
        }
        if (n.hasNonNull("min_pixels")) minPixels = n.get("min_pixels").asLong();
        if (n.hasNonNull("max_pixels")) maxPixels = n.get("max_pixels").asLong();
        return new PreprocessorConfig(
                n.path("patch_size").asInt(14),
                n.path("temporal_patch_size").asInt(2),
                n.path("merge_size").asInt(2),
                minPixels, maxPixels,
                triple(n.get("image_mean"), OPENAI_CLIP_MEAN, "image_mean"),
                triple(n.get("image_std"), OPENAI_CLIP_STD, "image_std"),
                n.path("rescale_factor").asDouble(1 / 255.0),
                n.path("do_resize").asBoolean(true),
                n.path("do_rescale").asBoolean(true),
                n.path("do_normalize").asBoolean(true),
                n.path("do_convert_rgb").asBoolean(true));
    }

    private static double[] triple(JsonNode v, double[] dflt, String key) {
        if (v == null || v.isNull()) return dflt.clone();
        if (v.isNumber()) return new double[]{v.asDouble(), v.asDouble(), v.asDouble()};
        if (v.isArray() && v.size() == 3) return new double[]{v.get(0).asDouble(), v.get(1).asDouble(), v.get(2).asDouble()};
        throw new IllegalArgumentException(key + " must be a number or 3 numbers, got " + v);
    }

    @Override
    public String toString() {
        return "PreprocessorConfig[patch=" + patchSize + ", temporal=" + temporalPatchSize + ", merge=" + mergeSize
                + ", pixels=[" + minPixels + ", " + maxPixels + "], mean=" + Arrays.toString(imageMean) + ", std=" + Arrays.toString(imageStd)
                + ", rescale=" + rescaleFactor + ", resize=" + doResize + ", rescale?=" + doRescale + ", normalize=" + doNormalize + "]";
    }
}
