package io.vlmflux.sinks;

import io.vlmflux.llm.FinishReason;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.caption.CaptionTimings;
import io.vlmflux.sources.FrameInfo;
import io.vlmflux.sources.PixelFormat;

/** Captions as the caption stage makes them, for sink tests that need many quickly. */
final class TestCaptions {
    private TestCaptions() {}

    static Caption caption(String source, long seq) {
        return new Caption(new FrameInfo(source, seq, seq * 40_000_000L, 320, 240, PixelFormat.RGB),
                "a red square at " + seq, new int[]{11, 22, (int) (seq % 1000)}, FinishReason.STOP, 0,
                new CaptionTimings(1.5, 12.25, 3, 20, 35.125));
    }
}
