package io.vlmflux.sources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

/**
 * Encodes packed RGB images of one size as JPEG with GStreamer
 * ({@code appsrc ! videoconvert [! videoscale] ! jpegenc ! appsink}), optionally scaled down to at most
 * {@code maxWidth}. One pipeline per encoder, reused for every image; {@link #encode} is synchronized (one image at a
 * time). Owns the pipeline until {@link #close()}.
 */
public final class JpegEncoder implements AutoCloseable {
    private static final long PULL_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);

    private final int width, height, outWidth, outHeight;
    private MemorySegment pipeline, appsrc, appsink, bus;

    private JpegEncoder(int width, int height, int outWidth, int outHeight, int quality) {
        this.width = width;
        this.height = height;
        this.outWidth = outWidth;
        this.outHeight = outHeight;
        // only integers go into the launch line
        String line = "appsrc name=src is-live=false format=time block=false caps=video/x-raw,format=RGB,width=" + width + ",height=" + height
                + ",framerate=0/1 ! videoconvert ! " + (outWidth != width || outHeight != height ? "videoscale ! video/x-raw,width=" + outWidth
                + ",height=" + outHeight + " ! " : "") + "jpegenc quality=" + quality + " ! appsink name=sink sync=false max-buffers=2";
        try {
            pipeline = GstNative.parseLaunch(line);
            appsrc = GstNative.binGetByName(pipeline, "src");
            appsink = GstNative.binGetByName(pipeline, "sink");
            bus = GstNative.getBus(pipeline);
            if (GstNative.setState(pipeline, GstNative.STATE_PLAYING) == 0) throw new IllegalStateException("the JPEG pipeline did not start: " + error());
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * An encoder of {@code width}x{@code height} RGB images, scaled down (aspect kept, even sizes) to at most
     * {@code maxWidth} wide; {@code quality} 1..100. Fails naming the reason when GStreamer (jpegenc, from
     * gst-plugins-good) is not available.
     */
    public static JpegEncoder open(int width, int height, int maxWidth, int quality) {
        if (width <= 0 || height <= 0 || (long) width * height > (1L << 26))
            throw new IllegalArgumentException("image size " + width + "x" + height + " is out of range");
        if (maxWidth < 16) throw new IllegalArgumentException("max width must be >= 16, got " + maxWidth);
        if (quality < 1 || quality > 100) throw new IllegalArgumentException("JPEG quality must be in 1..100, got " + quality);
        int ow = width, oh = height;
        if (width > maxWidth) {
            ow = maxWidth & ~1;
            oh = Math.max(2, (int) Math.round((double) height * ow / width) & ~1);
        }
        return new JpegEncoder(width, height, ow, oh, quality);
    }

    public int width() { return width; }
    public int height() { return height; }
    /** The size of the JPEGs. */
    public int outWidth() { return outWidth; }
    public int outHeight() { return outHeight; }

    /** One JPEG of {@code rgb} ({@code width * height * 3} bytes, packed RGB). */
    public synchronized byte[] encode(byte[] rgb) {
        if (pipeline == null) throw new IllegalStateException("the JPEG encoder is closed");
        if (rgb.length != (long) width * height * 3)
            throw new IllegalArgumentException("RGB image holds " + rgb.length + " bytes; a " + width + "x" + height + " image needs " + (long) width * height * 3);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment data = a.allocate(rgb.length);
            MemorySegment.copy(rgb, 0, data, ValueLayout.JAVA_BYTE, 0, rgb.length);
            int flow = GstNative.appsrcPush(appsrc, data);
            if (flow != 0) throw new IllegalStateException("the JPEG pipeline refused the image (flow " + flow + "): " + error());
            MemorySegment sample = GstNative.tryPullSample(appsink, PULL_TIMEOUT_NANOS);
            if (GstNative.isNull(sample)) throw new IllegalStateException("the JPEG pipeline gave no image within 5 s: " + error());
            try {
                MemorySegment buffer = GstNative.sampleBuffer(sample);
                MemorySegment info = a.allocate(GstNative.MAP_INFO_SIZE);
                MemorySegment bytes = GstNative.mapRead(buffer, info);
                if (bytes == null) throw new IllegalStateException("cannot map the JPEG buffer");
                try {
                    return bytes.toArray(ValueLayout.JAVA_BYTE);
                } finally {
                    GstNative.unmap(buffer, info);
                }
            } finally {
                GstNative.unrefMini(sample);
            }
        }
    }

    private String error() {
        GstNative.BusMessage m = GstNative.isNull(bus) ? null : GstNative.popMessage(bus, GstNative.MSG_ERROR);
        return m == null ? "no error message" : m.source() + ": " + m.text();
    }

    @Override public synchronized void close() {
        if (pipeline == null) return;
        GstNative.unrefObject(appsrc);
        GstNative.unrefObject(appsink);
        GstNative.unrefObject(bus);
        GstNative.destroyPipeline(pipeline);
        pipeline = appsrc = appsink = bus = null;
    }
}
