package io.vlmflux.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.sources.Frame;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Video preprocessing of the Qwen-VL families for clips whose frames are already chosen (frame sampling is the
 * caller's): every frame is resized to one common size, normalised and patchified like an image
 * ({@link ImageProcessor}: torchvision's antialiased bicubic on uint8, fused rescale/normalise), the last frame
 * repeated up to a multiple of {@code temporal_patch_size} (the "odd tail"), patches in merge-window order
 * {@code (grid_t, grid_h/m, grid_w/m, m, m)}, each {@code (channel, temporal, row, column)}.
 *
 * <p>The common size follows the family's video processor in transformers 5.17 ({@link SizeRule}):
 * <ul>
 *   <li>{@link SizeRule#PER_FRAME} — {@code Qwen2VLVideoProcessor} (Qwen2-VL and Qwen2.5-VL): the image
 *       {@code smart_resize} of ONE frame with the video config's pixel bounds ({@code size.shortest_edge} /
 *       {@code size.longest_edge}, or {@code min_pixels} / {@code max_pixels}, which win); the frame count does not
 *       enter. Defaults {@code 128*28*28} / {@code 28*28*768}.</li>
 *   <li>{@link SizeRule#WHOLE_CLIP} — {@code Qwen3VLVideoProcessor}: the bounds apply to
 *       {@code ceil(frames / temporal_patch_size) * temporal_patch_size * h * w} ({@link SmartResize#resizeVideo}).</li>
 * </ul>
 * Settings come from {@code video_preprocessor_config.json}; for the per-frame rule a folder without it falls back to
 * {@code preprocessor_config.json} (as transformers' video processors do for older checkpoints).
 *
 * <p>Immutable and thread-safe; frames passed in are read, never closed (the caller owns them).
 */
public final class VideoProcessor {
    /** How the common frame size of a clip is chosen. */
    public enum SizeRule { PER_FRAME, WHOLE_CLIP }

    /** Largest accepted whole-clip pixel bound ({@link SizeRule#WHOLE_CLIP}): 2^31 pixels over all frames. */
    public static final long MAX_CLIP_PIXELS = 1L << 31;
    /** {@code Qwen2VLVideoProcessor}'s default pixel bounds per frame. */
    public static final long QWEN2VL_MIN_PIXELS = 128L * 28 * 28, QWEN2VL_MAX_PIXELS = 28L * 28 * 768;

    private final ImageProcessor frames;
    private final long minPixels, maxPixels;
    private final SizeRule rule;

    private VideoProcessor(ImageProcessor frames, long minPixels, long maxPixels, SizeRule rule) {
        this.frames = frames;
        this.minPixels = minPixels;
        this.maxPixels = maxPixels;
        this.rule = rule;
    }

    /**
     * The Qwen2-VL / Qwen2.5-VL video processor of a model folder ({@link SizeRule#PER_FRAME}):
     * {@code video_preprocessor_config.json}, else {@code preprocessor_config.json}. Errors name the file and field.
     */
    public static VideoProcessor loadQwen2VL(Path modelDir) {
        Path file = modelDir.resolve("video_preprocessor_config.json");
        if (!Files.isRegularFile(file)) {
            Path image = modelDir.resolve("preprocessor_config.json");
            if (!Files.isRegularFile(image))
                throw new IllegalArgumentException("missing " + file + " (and " + image + "): a Qwen2-VL model folder needs one of them for video");
            file = image;
        }
        ObjectNode root = readObject(file);
        try {
            return fromJson(root, SizeRule.PER_FRAME);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    /** Reads a video config file as a JSON object; errors name the file. */
    public static ObjectNode readObject(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(file + " is not a JSON object");
        return (ObjectNode) root;
    }

    /**
     * Parses a video preprocessor config (either layout of the pixel bounds). Per-frame bounds are capped at
     * {@link PreprocessorConfig#MAX_PIXELS}, whole-clip bounds at {@link #MAX_CLIP_PIXELS}. Keys the shared parser
     * would default to Qwen2-VL image values must be given by the caller for other families (see
     * {@code Qwen3VLVideoProcessor}). Errors name the field.
     */
    public static VideoProcessor fromJson(ObjectNode root, SizeRule rule) {
        Objects.requireNonNull(rule, "rule");
        ObjectNode n = root.deepCopy();
        long cap = rule == SizeRule.PER_FRAME ? PreprocessorConfig.MAX_PIXELS : MAX_CLIP_PIXELS;
        long min = rule == SizeRule.PER_FRAME ? QWEN2VL_MIN_PIXELS : 128L * 32 * 32;
        long max = rule == SizeRule.PER_FRAME ? QWEN2VL_MAX_PIXELS : 32L * 32 * 768;
        JsonNode size = n.remove("size");
        if (size != null && size.isObject()) {
            min = JsonFields.integer(size, "shortest_edge", min, 1L, cap);
            max = JsonFields.integer(size, "longest_edge", max, 1L, cap);
        } else if (size != null && !size.isNull()) {
            throw new IllegalArgumentException("field 'size' must be an object with shortest_edge/longest_edge, got " + size);
        }
        min = JsonFields.integer(n, "min_pixels", min, 1L, cap);
        max = JsonFields.integer(n, "max_pixels", max, 1L, cap);
        if (max < min)
            throw new IllegalArgumentException("fields 'size.shortest_edge' / 'size.longest_edge' (or min_pixels / max_pixels) must satisfy min <= max, got "
                    + min + ", " + max);
        n.remove("min_pixels");
        n.remove("max_pixels");
        if (rule == SizeRule.PER_FRAME) {   // the frame config carries the bounds: ImageProcessor resizes each frame with them
            n.put("min_pixels", min);
            n.put("max_pixels", max);
        }
        return new VideoProcessor(new ImageProcessor(PreprocessorConfig.fromJson(n)), min, max, rule);
    }

    /** The per-frame settings (patch, merge, temporal patch, normalisation). */
    public PreprocessorConfig config() { return frames.config(); }

    public SizeRule rule() { return rule; }
    /** Lower pixel bound: per frame or per clip (see {@link #rule()}). */
    public long minPixels() { return minPixels; }
    /** Upper pixel bound: per frame or per clip (see {@link #rule()}). */
    public long maxPixels() { return maxPixels; }

    /**
     * Seconds one temporal patch spans for frames sampled at {@code fps}: {@code temporal_patch_size / fps}, as
     * transformers' {@code Qwen2_5_VLProcessor} computes {@code second_per_grid_ts}.
     */
    public double secondPerGrid(double fps) {
        if (!(fps > 0 && Double.isFinite(fps))) throw new IllegalArgumentException("video fps must be positive and finite, got " + fps);
        return config().temporalPatchSize() / fps;
    }

    /** Size {@code {height, width}} that every frame of a clip of {@code numFrames} frames of this size is resized to. */
    public int[] resizedSize(int numFrames, int width, int height) {
        if (numFrames <= 0) throw new IllegalArgumentException("a clip needs at least one frame, got " + numFrames);
        PreprocessorConfig c = frames.config();
        if (!c.doResize()) return new int[]{height, width};
        int[] hw = rule == SizeRule.PER_FRAME
                ? SmartResize.resize(height, width, c.factor(), minPixels, maxPixels)
                : SmartResize.resizeVideo(numFrames, height, width, c.temporalPatchSize(), c.factor(), minPixels, maxPixels);
        if ((long) hw[0] * hw[1] > PreprocessorConfig.MAX_PIXELS)
            throw new IllegalArgumentException("a " + numFrames + "-frame " + width + "x" + height + " clip would be resized to " + hw[1] + "x" + hw[0]
                    + " per frame, above the cap of " + PreprocessorConfig.MAX_PIXELS + " pixels per frame");
        return hw;
    }

    /** Patch grid {@code {t, h, w}} of a clip: {@code t = ceil(numFrames / temporal_patch_size)}. */
    public int[] grid(int numFrames, int width, int height) {
        int[] hw = resizedSize(numFrames, width, height);
        int p = frames.config().patchSize(), tps = frames.config().temporalPatchSize();
        return new int[]{Math.ceilDiv(numFrames, tps), hw[0] / p, hw[1] / p};
    }

    /** Video tokens (after the spatial merge) of a clip: {@code t * h * w / merge^2}. */
    public int numTokens(int numFrames, int width, int height) {
        int[] g = grid(numFrames, width, height);
        int m = frames.config().mergeSize();
        return g[0] * g[1] * g[2] / (m * m);
    }

    /** Preprocesses the frames of one clip (all of one size, in time order) at the size of {@link #resizedSize}. */
    public PixelValues process(List<Frame> clip) {
        Objects.requireNonNull(clip, "clip");
        if (clip.isEmpty()) throw new IllegalArgumentException("no frames to preprocess");
        Frame first = clip.getFirst();
        int[] hw = resizedSize(clip.size(), first.width(), first.height());
        return frames.process(clip, hw[0], hw[1]);
    }

    /**
     * Preprocesses frames (all of one size, in time order) resized to a FIXED {@code resizedHeight x resizedWidth}
     * (multiples of {@code patch_size * merge_size}), e.g. the size a live stream chose once from its first clip: the
     * grid is {@code (ceil(n / temporal_patch_size), resizedHeight / patch, resizedWidth / patch)}; a frame count that is
     * not a multiple of {@code temporal_patch_size} gets its last frame repeated. For a live session appending one
     * temporal group at a time, pass {@code temporal_patch_size} frames per call: the result is grid
     * {@code (1, h, w)}, exactly the rows transformers would give that group inside the whole clip (the vision tower
     * attends within one temporal slice, see {@code CpuVisionEncoder}).
     */
    public PixelValues process(List<Frame> clip, int resizedHeight, int resizedWidth) {
        Objects.requireNonNull(clip, "clip");
        return frames.process(clip, resizedHeight, resizedWidth);
    }

    @Override
    public String toString() {
        return "VideoProcessor[" + rule + ", pixels=[" + minPixels + ", " + maxPixels + "], " + frames.config() + "]";
    }
}
