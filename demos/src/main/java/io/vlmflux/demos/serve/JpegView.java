package io.vlmflux.demos.serve;

import io.vlmflux.sources.JpegEncoder;
import reactor.core.scheduler.Scheduler;

import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.awt.image.DataBufferByte;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The live view of one stream: the newest offered frame copy re-encoded as a JPEG (at most {@link #MAX_WIDTH} wide)
 * on {@code encoder}, one encode at a time — a frame offered while one is being encoded replaces the waiting one,
 * so encoding never queues up behind a slow machine (the skipped ones are counted). Encoding is GStreamer's
 * ({@link JpegEncoder}: appsrc → videoconvert → videoscale → jpegenc, one pipeline per view, reopened when the frame
 * size changes); where that pipeline cannot be built (no jpegenc) the JDK's ImageIO encoder is used instead (logged once).
 */
public final class JpegView implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.serve");
    /** Wider frames are scaled down for the view (the captions still see the full frame). */
    static final int MAX_WIDTH = 640;
    static final float QUALITY = 0.8f;

    /** One encoded view frame; {@code seq} counts encodes from 1. */
    public record Jpeg(long seq, byte[] bytes, long frameSequence, long wallMillis) {}

    private final Scheduler encoder;
    private final AtomicReference<LiveStream.Snapshot> pending = new AtomicReference<>();
    private final AtomicBoolean busy = new AtomicBoolean();
    private final AtomicReference<Jpeg> latest = new AtomicReference<>();
    private final AtomicLong encoded = new AtomicLong(), skipped = new AtomicLong(), failures = new AtomicLong();
    private volatile boolean closed;
    private JpegEncoder gst;            // guarded by this; null: none open
    private boolean gstUnavailable;     // guarded by this

    JpegView(Scheduler encoder) { this.encoder = encoder; }

    /** Whether the JPEGs come from GStreamer (false before the first encode, or after falling back to ImageIO). */
    public synchronized boolean gstreamer() { return gst != null; }

    /** The newest JPEG, or null before the first. */
    public Jpeg latest() { return latest.get(); }
    public long encoded() { return encoded.get(); }
    public long skipped() { return skipped.get(); }

    void offer(LiveStream.Snapshot s) {
        if (closed) return;
        if (pending.getAndSet(s) != null) skipped.incrementAndGet();
        if (busy.compareAndSet(false, true)) encoder.schedule(this::drain);
    }

    private void drain() {
        try {
            LiveStream.Snapshot s;
            while (!closed && (s = pending.getAndSet(null)) != null) {
                try {
                    byte[] jpeg = encodeWithGstreamer(s);
                    if (jpeg == null) jpeg = encode(s.rgb(), s.width(), s.height());
                    latest.set(new Jpeg(encoded.incrementAndGet(), jpeg, s.info().sequence(), s.wallMillis()));
                } catch (RuntimeException e) {
                    failures.incrementAndGet();
                }
            }
        } finally {
            busy.set(false);
            // an offer between the last poll and the reset found busy set: pick it up
            if (!closed && pending.get() != null && busy.compareAndSet(false, true)) encoder.schedule(this::drain);
        }
    }

    /** The JPEG of {@code s} from the GStreamer encoder, or null when GStreamer cannot encode (then ImageIO does). */
    private synchronized byte[] encodeWithGstreamer(LiveStream.Snapshot s) {
        if (closed || gstUnavailable) return null;
        try {
            if (gst != null && (gst.width() != s.width() || gst.height() != s.height())) {
                gst.close();
                gst = null;
            }
            if (gst == null) gst = JpegEncoder.open(s.width(), s.height(), MAX_WIDTH, Math.round(QUALITY * 100));
            return gst.encode(s.rgb());
        } catch (RuntimeException | LinkageError e) {
            gstUnavailable = true;
            if (gst != null) gst.close();
            gst = null;
            LOG.log(System.Logger.Level.WARNING, "GStreamer cannot encode the live view (" + e.getMessage() + "); using ImageIO's JPEG encoder");
            return null;
        }
    }

    /** Packed RGB to JPEG with ImageIO, scaled down to {@link #MAX_WIDTH} when wider. */
    static byte[] encode(byte[] rgb, int width, int height) {
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_3BYTE_BGR);
        byte[] dst = ((DataBufferByte) img.getRaster().getDataBuffer()).getData();
        for (int i = 0; i < dst.length; i += 3) {
            dst[i] = rgb[i + 2];
            dst[i + 1] = rgb[i + 1];
            dst[i + 2] = rgb[i];
        }
        if (width > MAX_WIDTH) {
            int h = Math.max(1, (int) Math.round((double) height * MAX_WIDTH / width));
            BufferedImage small = new BufferedImage(MAX_WIDTH, h, BufferedImage.TYPE_3BYTE_BGR);
            var g = small.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_BILINEAR);
            g.drawImage(img, 0, 0, MAX_WIDTH, h, null);
            g.dispose();
            img = small;
        }
        ImageWriter w = ImageIO.getImageWritersByFormatName("jpeg").next();
        ByteArrayOutputStream out = new ByteArrayOutputStream(32 * 1024);
        try (MemoryCacheImageOutputStream ios = new MemoryCacheImageOutputStream(out)) {
            w.setOutput(ios);
            ImageWriteParam p = w.getDefaultWriteParam();
            p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
            p.setCompressionQuality(QUALITY);
            w.write(null, new IIOImage(img, null, null), p);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot encode a " + width + "x" + height + " view frame as JPEG: " + e.getMessage(), e);
        } finally {
            w.dispose();
        }
        return out.toByteArray();
    }

    @Override public void close() {
        closed = true;
        pending.set(null);
        synchronized (this) {
            if (gst != null) gst.close();
            gst = null;
        }
    }
}
