package io.vlmflux.pipeline.config;

import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.sources.PixelFormat;

/**
 * One source of a pipeline config.
 *
 * @param uri    source spec as {@code Sources.parse} takes it ({@code test:ball}, {@code v4l2:///dev/video0?width=640},
 *               {@code rtsp://...}, a file path)
 * @param id     id for logs and metrics; null: the source's own id
 * @param every  sampling spec for this source only (overrides {@code sampling.every}); null: the pipeline's
 * @param width  output width (0 or null: source size)
 * @param height output height (0 or null: source size)
 * @param format output pixel format ({@code RGB}, {@code NV12}, ..., or {@code any}); null: RGB
 * @param live   a live-video session on this source ({@code vlmflux serve}: questions and alerts over its recent
 *               window); null: none
 */
public record SourceConfig(String uri, String id, String every, Integer width, Integer height, String format, LiveConfig live) {
    public SourceConfig {
        if (uri == null || uri.isBlank()) throw new IllegalArgumentException("field 'uri' must name a source spec (e.g. test:ball, v4l2:///dev/video0), got " + quote(uri));
        if (id != null && id.isBlank()) throw new IllegalArgumentException("field 'id' must not be blank when given");
        if (every != null) {
            try {
                SamplingPolicy.parse(every);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("field 'every': " + e.getMessage(), e);
            }
        }
        if (width != null && width < 0) throw new IllegalArgumentException("field 'width' must be >= 0, got " + width);
        if (height != null && height < 0) throw new IllegalArgumentException("field 'height' must be >= 0, got " + height);
        if (format != null && !format.equalsIgnoreCase("any")) {
            try {
                PixelFormat.fromGstName(format);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("field 'format': " + e.getMessage() + " or 'any'", e);
            }
        }
    }

    public SourceConfig(String uri, String id, String every, Integer width, Integer height, String format) {
        this(uri, id, every, width, height, format, null);
    }

    public SourceConfig(String uri) { this(uri, null, null, null, null, null, null); }

    /** The output format, or null for "any" (whatever the source produces). */
    public PixelFormat pixelFormat() {
        if (format == null) return PixelFormat.RGB;
        return format.equalsIgnoreCase("any") ? null : PixelFormat.fromGstName(format);
    }

    static String quote(String s) { return s == null ? "null" : "'" + s + "'"; }
}
