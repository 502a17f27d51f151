package io.vlmflux.sources;

/**
 * What identifies a frame once its pixels are gone: enough for captions and metrics to point back at it.
 * {@code label} names what the frame came from when a source has several parts (an image's file name), else null.
 */
public record FrameInfo(String sourceId, long sequence, long ptsNanos, int width, int height, PixelFormat format, String label) {
    public FrameInfo(String sourceId, long sequence, long ptsNanos, int width, int height, PixelFormat format) {
        this(sourceId, sequence, ptsNanos, width, height, format, null);
    }

    public long ptsMillis() { return ptsNanos < 0 ? -1 : ptsNanos / 1_000_000; }
}
