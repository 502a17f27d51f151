package io.vlmflux.sources;

/** What identifies a frame once its pixels are gone: enough for captions and metrics to point back at it. */
public record FrameInfo(String sourceId, long sequence, long ptsNanos, int width, int height, PixelFormat format) {
    public long ptsMillis() { return ptsNanos < 0 ? -1 : ptsNanos / 1_000_000; }
}
