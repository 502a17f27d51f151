package io.vlmflux.sources;

/**
 * Output negotiation done inside GStreamer ({@code videoconvert ! videoscale ! caps}). {@code width}/{@code height}
 * of 0 keep the source size (one of them 0: the other is derived keeping the aspect ratio); {@code format} null
 * accepts whichever supported format the source produces (no conversion).
 */
public record SourceOptions(int width, int height, PixelFormat format) {
    /** Source size, converted to RGB. */
    public static final SourceOptions DEFAULT = new SourceOptions(0, 0, PixelFormat.RGB);

    public SourceOptions {
        if (width < 0 || height < 0) throw new IllegalArgumentException("output size must not be negative: " + width + "x" + height);
    }

    public SourceOptions withSize(int w, int h) { return new SourceOptions(w, h, format); }
    public SourceOptions withFormat(PixelFormat f) { return new SourceOptions(width, height, f); }

    /** The caps string for the appsink, e.g. {@code video/x-raw,format=RGB,width=640,height=480,pixel-aspect-ratio=1/1}. */
    String caps() {
        StringBuilder sb = new StringBuilder("video/x-raw");
        if (format != null) sb.append(",format=").append(format.gstName());
        else sb.append(",format=(string){RGB,BGR,RGBA,BGRA,GRAY8,NV12,I420}");
        if (width > 0) sb.append(",width=").append(width);
        if (height > 0) sb.append(",height=").append(height);
        if (width > 0 || height > 0) sb.append(",pixel-aspect-ratio=1/1");
        return sb.toString();
    }
}
