package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.FinishReason;
import io.vlmflux.sources.FrameInfo;

/**
 * The text a model produced for one frame.
 *
 * @param frame        which frame (its pixels are already released)
 * @param text         the generated text, special tokens and the stop token excluded
 * @param tokens       the generated token ids (without the final stop token)
 * @param finishReason why generation ended ({@code stop}, {@code length}, {@code stop_string})
 * @param dropped      frames the caption stage dropped (newest wins) in this subscription so far
 * @param timings      where the time went
 */
public record Caption(FrameInfo frame, String text, int[] tokens, FinishReason finishReason, long dropped, CaptionTimings timings) {
    public Caption {
        if (frame == null || text == null || tokens == null || finishReason == null || timings == null)
            throw new IllegalArgumentException("caption fields must not be null");
        tokens = tokens.clone();
    }

    @Override public int[] tokens() { return tokens.clone(); }

    @Override public String toString() {
        return "Caption[" + frame.sourceId() + "#" + frame.sequence() + " '" + text + "' " + finishReason.wire() + "]";
    }
}
