package io.vlmflux.pipeline.caption;

/**
 * Where the time of one caption went, in milliseconds. {@code ttftMs} and {@code totalMs} are measured from the
 * moment the frame entered the caption stage (for a live source that is its capture, plus sampling), so they include
 * the wait behind the previous caption; the other three are the durations of their step.
 * Invariants: {@code preprocessMs + encodeMs + prefillMs <= ttftMs <= totalMs}.
 */
public record CaptionTimings(double preprocessMs, double encodeMs, double prefillMs, double ttftMs, double totalMs) {
    public CaptionTimings {
        if (preprocessMs < 0 || encodeMs < 0 || prefillMs < 0 || ttftMs < 0 || totalMs < 0)
            throw new IllegalArgumentException("timings must be >= 0: " + preprocessMs + ", " + encodeMs + ", " + prefillMs + ", " + ttftMs + ", " + totalMs);
    }
}
