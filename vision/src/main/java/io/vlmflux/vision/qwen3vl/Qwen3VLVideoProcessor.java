package io.vlmflux.vision.qwen3vl;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.PreprocessorConfig;
import io.vlmflux.vision.SmartResize;
import io.vlmflux.vision.VideoProcessor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Qwen3-VL video preprocessing (transformers 5.17 {@code Qwen3VLVideoProcessor}) for clips whose frames are already
 * chosen (frame sampling by fps and the timestamps in the prompt are the caller's): the pixel bounds of
 * {@code video_preprocessor_config.json} apply to the whole clip ({@link SmartResize#resizeVideo}), then every frame
 * is resized, normalised and patchified like an image, the last frame repeated up to a multiple of
 * {@code temporal_patch_size}: {@link VideoProcessor} with the whole-clip size rule and Qwen3-VL defaults. Immutable and thread-safe.
 */
public final class Qwen3VLVideoProcessor {
    /** Largest accepted clip pixel bound ({@code size.longest_edge} / {@code max_pixels}): 2^31 pixels over all frames. */
    public static final long MAX_CLIP_PIXELS = VideoProcessor.MAX_CLIP_PIXELS;

    private final VideoProcessor video;

    private Qwen3VLVideoProcessor(VideoProcessor video) {
        this.video = video;
    }

    /** Reads {@code video_preprocessor_config.json} of a model folder; errors name the file and the field. */
    public static Qwen3VLVideoProcessor load(Path modelDir) {
        Path file = modelDir.resolve("video_preprocessor_config.json");
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("missing " + file + ": a Qwen3-VL model folder needs it for video");
        ObjectNode root = VideoProcessor.readObject(file);
        try {
            return fromJson(root);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    static Qwen3VLVideoProcessor fromJson(ObjectNode root) {
        ObjectNode n = root.deepCopy();
        // Qwen3VLVideoProcessor's defaults where the shared parser would take Qwen2-VL image ones
        if (!n.hasNonNull("patch_size")) n.put("patch_size", 16);
        if (!n.hasNonNull("image_mean")) n.putArray("image_mean").add(0.5).add(0.5).add(0.5);
        if (!n.hasNonNull("image_std")) n.putArray("image_std").add(0.5).add(0.5).add(0.5);
        return new Qwen3VLVideoProcessor(VideoProcessor.fromJson(n, VideoProcessor.SizeRule.WHOLE_CLIP));
    }

    /** The general processor this one configures ({@link VideoProcessor.SizeRule#WHOLE_CLIP}). */
    public VideoProcessor video() { return video; }

    /** The per-frame settings (patch, merge, temporal patch, normalisation). */
    public PreprocessorConfig config() { return video.config(); }

    public long minPixels() { return video.minPixels(); }
    public long maxPixels() { return video.maxPixels(); }

    /** Size {@code {height, width}} that every frame of a clip of {@code numFrames} frames is resized to. */
    public int[] resizedSize(int numFrames, int width, int height) { return video.resizedSize(numFrames, width, height); }

    /** Patch grid {@code {t, h, w}} of a clip. */
    public int[] grid(int numFrames, int width, int height) { return video.grid(numFrames, width, height); }

    /** Preprocesses the frames of one clip (all of one size, in time order). Frames are read, never closed. */
    public PixelValues process(List<Frame> clip) { return video.process(clip); }
}
