package io.vlmflux.llm.runtime;

import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.ImageSlots;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.tokenizer.Tokenizer;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VideoProcessor;

import java.nio.file.Path;
import java.util.List;

/**
 * Video prompts of Qwen2-VL and Qwen2.5-VL (both backends), as transformers 5.17's {@code Qwen2VLProcessor} /
 * {@code Qwen2_5_VLProcessor} make them: the clip is preprocessed by {@link VideoProcessor#loadQwen2VL} (every frame
 * smart-resized to one size within the video config's per-frame pixel bounds, the last frame repeated to fill the last
 * temporal patch), encoded in one call (the tower attends within each temporal slice, Qwen2.5-VL within each window of
 * a slice), and the prompt's single {@code <|video_pad|>} expands to {@code t * h/m * w/m} pads: ONE embedding span
 * with grid {@code (t, h, w)} and {@code second_per_grid_t = temporal_patch_size / fps}, which
 * {@link io.vlmflux.llm.MropePositions} turns into temporal ids (scaled for Qwen2.5-VL).
 */
final class Qwen2VideoPrompts {
    private Qwen2VideoPrompts() {}

    static boolean supports(ModelConfig c) {
        return c.modelType().startsWith("qwen2_vl") || c.modelType().startsWith("qwen2_5_vl");
    }

    /** Builds the prompt; the caller closes the frames. Rows are released again when anything fails. */
    static Prompt prepare(Path dir, ModelConfig c, Tokenizer tokenizer, int imagePadId, VisionPath<?> vision, String text, List<Frame> clip, double fps) {
        if (vision == null) throw new IllegalArgumentException(dir + " has no vision encoder (no preprocessor_config.json): it cannot take a video");
        if (!(fps > 0 && fps < 1e4)) throw new IllegalArgumentException("video fps must be in (0, 1e4), got " + fps);
        if (clip.isEmpty()) throw new IllegalArgumentException("a video needs at least one frame");
        int[] ids = tokenizer.encode(text);
        int pad = c.videoTokenId() >= 0 ? c.videoTokenId() : tokenizer.tokenId("<|video_pad|>").orElse(-1);
        if (pad < 0) throw new IllegalArgumentException(dir + ": no video_token_id in the config and no <|video_pad|> token in the tokenizer");
        int slots = ImageSlots.countSlots(ids, pad);
        if (slots != 1 || (imagePadId >= 0 && ImageSlots.countSlots(ids, imagePadId) != 0))
            throw new IllegalArgumentException("a video prompt needs exactly one <|video_pad|> (token " + pad + ") and no image slot, got " + slots
                    + " video slot(s): " + text);
        VideoProcessor vp = VideoProcessor.loadQwen2VL(dir);
        if (vp.config().mergeSize() != c.spatialMergeSize())
            throw new IllegalArgumentException(dir + ": the video processor's merge_size " + vp.config().mergeSize() + " differs from vision_config.spatial_merge_size "
                    + c.spatialMergeSize());
        long t0 = System.nanoTime();
        PixelValues px = vp.process(clip);
        long t1 = System.nanoTime();
        ImageRows rows = vision.encodeClip(px);
        long t2 = System.nanoTime();
        try {
            if (rows.hidden != c.hiddenSize())
                throw new IllegalArgumentException("video embeddings are " + rows.hidden + " wide but " + dir + " has hidden_size " + c.hiddenSize());
            ImageSlots.Expanded ex = ImageSlots.expand(ids, pad, new int[]{rows.tokens});
            EmbeddingSpan span = new EmbeddingSpan(ex.spanStarts()[0], rows.tokens, rows.hidden, rows.spanRows(), rows.gridT, rows.gridH, rows.gridW,
                    rows.contentHash, vp.secondPerGrid(fps));
            return new Prompt(new MultimodalPrompt(ex.tokens(), List.of(span)), vision, List.of(rows), t1 - t0, t2 - t1, 0);
        } catch (RuntimeException | Error e) {
            vision.release(rows);
            throw e;
        }
    }
}
