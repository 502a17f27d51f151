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
 * transformers' defaults. Fields of the wrong type are errors naming them (no silent defaults), and the pixel bounds are
 * capped at {@link #MAX_PIXELS}: preprocessing and encoding cost grows with them, and a file asking for 4e7 pixels per
 * frame would stall a video pipeline for minutes on one frame.
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

    /**
     * Largest accepted {@code max_pixels} / {@code size.longest_edge} (and so {@code min_pixels}): 16,777,216 pixels
     * (4096x4096), above the 12,845,056 that published Qwen2-VL / Qwen2.5-VL checkpoints allow.
     */
    public static final long MAX_PIXELS = 1L << 24;

    public PreprocessorConfig {
        if (patchSize <= 0 || patchSize > 64) throw new IllegalArgumentException("field 'patch_size' must be in 1..64, got " + patchSize);
        if (temporalPatchSize <= 0 || temporalPatchSize > 16)
            throw new IllegalArgumentException("field 'temporal_patch_size' must be in 1..16, got " + temporalPatchSize);
        if (mergeSize <= 0 || mergeSize > 16) throw new IllegalArgumentException("field 'merge_size' must be in 1..16, got " + mergeSize);
        if (maxPixels > MAX_PIXELS)
            throw new IllegalArgumentException("field 'max_pixels' (or size.longest_edge) " + maxPixels + " exceeds the cap of " + MAX_PIXELS
                    + " pixels per image/frame (4096x4096)");
        if (minPixels <= 0 || maxPixels < minPixels)
            throw new IllegalArgumentException("fields 'min_pixels' / 'max_pixels' (or size.shortest_edge / size.longest_edge) must satisfy 0 < min <= max, got "
                    + minPixels + ", " + maxPixels);
        if (imageMean == null || imageMean.length != 3 || imageStd == null || imageStd.length != 3)
            throw new IllegalArgumentException("image_mean and image_std need 3 values (RGB), got " + Arrays.toString(imageMean) + " and " + Arrays.toString(imageStd));
        for (double s : imageStd) if (!(s > 0 && Double.isFinite(s))) throw new IllegalArgumentException("field 'image_std' must be positive, got " + Arrays.toString(imageStd));
        for (double m : imageMean) if (!Double.isFinite(m)) throw new IllegalArgumentException("field 'image_mean' must be finite, got " + Arrays.toString(imageMean));
        if (!(rescaleFactor > 0 && Double.isFinite(rescaleFactor))) throw new IllegalArgumentException("field 'rescale_factor' must be positive, got " + rescaleFactor);
        imageMean = imageMean.clone();
        imageStd = imageStd.clone();
    }

    /** The side that resized images are a multiple of: {@code patchSize * mergeSize}. */
    public int factor() { return patchSize * mergeSize; }

    /** Values of one flattened patch: {@code 3 * temporalPatchSize * patchSize^2}. */
    public int patchDim() { return 3 * temporalPatchSize * patchSize * patchSize; }

    /**
     * Whether {@code o} turns resized pixels into the same patch values as this config: same patch, temporal patch and
     * merge sizes, rescale and normalisation (the pixel bounds, which only choose the size, may differ — an image and a
     * video config of one model).
     */
    public boolean samePixelMath(PreprocessorConfig o) {
        return o != null && patchSize == o.patchSize && temporalPatchSize == o.temporalPatchSize && mergeSize == o.mergeSize
                && Arrays.equals(imageMean, o.imageMean) && Arrays.equals(imageStd, o.imageStd) && rescaleFactor == o.rescaleFactor
                && doRescale == o.doRescale && doNormalize == o.doNormalize && doConvertRgb == o.doConvertRgb;
    }

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

    /**
     * Parses a preprocessor config object (either layout); errors name the field but not the file (callers add it).
     * Video processors with their own size rule parse the shared fields here.
     */
    public static PreprocessorConfig fromJson(JsonNode n) {
        String type = JsonFields.text(n, "image_processor_type", "");
        if (!type.isEmpty() && !type.startsWith("Qwen2VLImageProcessor") && !type.startsWith("Qwen2_5_VLImageProcessor"))
            throw new IllegalArgumentException("unsupported image_processor_type '" + type + "' (supported: Qwen2VLImageProcessor, Qwen2VLImageProcessorFast)");
        long minPixels = 56L * 56, maxPixels = 28L * 28 * 1280;
        JsonNode size = n.path("size");
        if (size.isObject()) {
            minPixels = pixels(size, "size.shortest_edge", "shortest_edge", minPixels);
            maxPixels = pixels(size, "size.longest_edge", "longest_edge", maxPixels);
        } else if (!size.isMissingNode() && !size.isNull()) {
            throw new IllegalArgumentException("field 'size' must be an object with shortest_edge/longest_edge, got " + size);
        }
        minPixels = pixels(n, "min_pixels", "min_pixels", minPixels);
        maxPixels = pixels(n, "max_pixels", "max_pixels", maxPixels);
        return new PreprocessorConfig(
                JsonFields.integer(n, "patch_size", 14, 1, Integer.MAX_VALUE),
                JsonFields.integer(n, "temporal_patch_size", 2, 1, Integer.MAX_VALUE),
                JsonFields.integer(n, "merge_size", 2, 1, Integer.MAX_VALUE),
                minPixels, maxPixels,
                triple(n.get("image_mean"), OPENAI_CLIP_MEAN, "image_mean"),
                triple(n.get("image_std"), OPENAI_CLIP_STD, "image_std"),
                JsonFields.number(n, "rescale_factor", 1 / 255.0),
                JsonFields.bool(n, "do_resize", true),
                JsonFields.bool(n, "do_rescale", true),
                JsonFields.bool(n, "do_normalize", true),
                JsonFields.bool(n, "do_convert_rgb", true));
    }

    /** A pixel bound: an integer in 1..MAX_PIXELS, named {@code field} in errors. */
    private static long pixels(JsonNode parent, String field, String key, long dflt) {
        JsonNode v = parent.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() <= 0 || v.asLong() > MAX_PIXELS)
            throw new IllegalArgumentException("field '" + field + "' must be a pixel count in 1.." + MAX_PIXELS
                    + " (the cap per image/frame, 4096x4096), got " + v);
        return v.asLong();
    }

    private static double[] triple(JsonNode v, double[] dflt, String key) {
        if (v == null || v.isNull()) return dflt.clone();
        if (v.isNumber()) return new double[]{v.asDouble(), v.asDouble(), v.asDouble()};
        if (v.isArray() && v.size() == 3 && v.get(0).isNumber() && v.get(1).isNumber() && v.get(2).isNumber())
            return new double[]{v.get(0).asDouble(), v.get(1).asDouble(), v.get(2).asDouble()};
        throw new IllegalArgumentException("field '" + key + "' must be a number or 3 numbers, got " + v);
    }

    @Override
    public String toString() {
        return "PreprocessorConfig[patch=" + patchSize + ", temporal=" + temporalPatchSize + ", merge=" + mergeSize
                + ", pixels=[" + minPixels + ", " + maxPixels + "], mean=" + Arrays.toString(imageMean) + ", std=" + Arrays.toString(imageStd)
                + ", rescale=" + rescaleFactor + ", resize=" + doResize + ", rescale?=" + doRescale + ", normalize=" + doNormalize + "]";
    }
}
