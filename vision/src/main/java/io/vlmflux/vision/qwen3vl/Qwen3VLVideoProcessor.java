package io.vlmflux.vision.qwen3vl;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.JsonFields;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.PreprocessorConfig;
import io.vlmflux.vision.SmartResize;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Qwen3-VL video preprocessing (transformers 5.17 {@code Qwen3VLVideoProcessor}) for clips whose frames are already
 * chosen (frame sampling by fps and the timestamps in the prompt are the caller's): the pixel bounds of
 * {@code video_preprocessor_config.json} apply to the whole clip ({@link SmartResize#resizeVideo}), then every frame
 * is resized, normalised and patchified like an image, the last frame repeated up to a multiple of
 * {@code temporal_patch_size}. Immutable and thread-safe.
 */
public final class Qwen3VLVideoProcessor {
    /** Largest accepted clip pixel bound ({@code size.longest_edge} / {@code max_pixels}): 2^31 pixels over all frames. */
    public static final long MAX_CLIP_PIXELS = 1L << 31;
    private static final long DEFAULT_MIN = 128L * 32 * 32, DEFAULT_MAX = 32L * 32 * 768;

    private final ImageProcessor frames;
    private final long minPixels, maxPixels;

    private Qwen3VLVideoProcessor(ImageProcessor frames, long minPixels, long maxPixels) {
        this.frames = frames;
        this.minPixels = minPixels;
        this.maxPixels = maxPixels;
    }

    /** Reads {@code video_preprocessor_config.json} of a model folder; errors name the file and the field. */
    public static Qwen3VLVideoProcessor load(Path modelDir) {
        Path file = modelDir.resolve("video_preprocessor_config.json");
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("missing " + file + ": a Qwen3-VL model folder needs it for video");
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(file + " is not a JSON object");
        try {
            return fromJson((ObjectNode) root);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    static Qwen3VLVideoProcessor fromJson(ObjectNode root) {
        ObjectNode n = root.deepCopy();
        long min = DEFAULT_MIN, max = DEFAULT_MAX;
        JsonNode size = n.remove("size");
        if (size != null && size.isObject()) {
            min = JsonFields.integer(size, "shortest_edge", min, 1L, MAX_CLIP_PIXELS);
            max = JsonFields.integer(size, "longest_edge", max, 1L, MAX_CLIP_PIXELS);
        } else if (size != null && !size.isNull()) {
            throw new IllegalArgumentException("field 'size' must be an object with shortest_edge/longest_edge, got " + size);
        }
        min = JsonFields.integer(n, "min_pixels", min, 1L, MAX_CLIP_PIXELS);
        max = JsonFields.integer(n, "max_pixels", max, 1L, MAX_CLIP_PIXELS);
        if (max < min) throw new IllegalArgumentException("fields 'size.shortest_edge' / 'size.longest_edge' (or min_pixels / max_pixels) must satisfy min <= max, got " + min + ", " + max);
        n.remove("min_pixels");
        n.remove("max_pixels");
        // Qwen3VLVideoProcessor's defaults where the shared parser would take Qwen2-VL image ones
        if (!n.hasNonNull("patch_size")) n.put("patch_size", 16);
        if (!n.hasNonNull("image_mean")) n.putArray("image_mean").add(0.5).add(0.5).add(0.5);
        if (!n.hasNonNull("image_std")) n.putArray("image_std").add(0.5).add(0.5).add(0.5);
        return new Qwen3VLVideoProcessor(new ImageProcessor(PreprocessorConfig.fromJson(n)), min, max);
    }

    /** The per-frame settings (patch, merge, temporal patch, normalisation). */
    public PreprocessorConfig config() { return frames.config(); }

    public long minPixels() { return minPixels; }
    public long maxPixels() { return maxPixels; }

    /** Size {@code {height, width}} that every frame of a clip of {@code numFrames} frames is resized to. */
    public int[] resizedSize(int numFrames, int width, int height) {
        PreprocessorConfig c = frames.config();
        if (!c.doResize()) return new int[]{height, width};
        int[] hw = SmartResize.resizeVideo(numFrames, height, width, c.temporalPatchSize(), c.factor(), minPixels, maxPixels);
        if ((long) hw[0] * hw[1] > PreprocessorConfig.MAX_PIXELS)
            throw new IllegalArgumentException("a " + numFrames + "-frame " + width + "x" + height + " clip would be resized to " + hw[1] + "x" + hw[0]
                    + " per frame, above the cap of " + PreprocessorConfig.MAX_PIXELS + " pixels per frame");
        return hw;
    }

    /** Patch grid {@code {t, h, w}} of a clip. */
    public int[] grid(int numFrames, int width, int height) {
        int[] hw = resizedSize(numFrames, width, height);
        int p = frames.config().patchSize(), tps = frames.config().temporalPatchSize();
        return new int[]{Math.ceilDiv(numFrames, tps), hw[0] / p, hw[1] / p};
    }

    /** Preprocesses the frames of one clip (all of one size, in time order). Frames are read, never closed. */
    public PixelValues process(List<Frame> clip) {
        Objects.requireNonNull(clip, "clip");
        if (clip.isEmpty()) throw new IllegalArgumentException("no frames to preprocess");
        Frame first = clip.getFirst();
        int[] hw = resizedSize(clip.size(), first.width(), first.height());
        return frames.process(clip, hw[0], hw[1]);
    }
}
