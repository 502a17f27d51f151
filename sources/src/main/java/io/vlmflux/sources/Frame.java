package io.vlmflux.sources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One video frame: pixels off-heap in one {@link MemorySegment}, with per-plane offsets and strides, a presentation
 * timestamp, a per-source sequence number, the id of the source that produced it and, for sources made of several
 * files (image folders), a label naming the file.
 *
 * <p>A frame owns its pixels until {@link #close()}; closing is idempotent and runs the releaser exactly once (it
 * may unmap a GStreamer buffer or return a pooled buffer). After close, {@link #data()} throws. Whoever drops a
 * frame must close it (operators do so through {@code doOnDiscard(Frame.class, Frame::close)}).
 */
public final class Frame implements AutoCloseable {
    private final PixelFormat format;
    private final int width;
    private final int height;
    private final long[] planeOffsets;
    private final int[] strides;
    private final MemorySegment data;
    private final long ptsNanos;
    private final long sequence;
    private final String sourceId;
    private final String colorimetry;
    private final String label;
    private final Runnable releaser;
    private final AtomicBoolean released = new AtomicBoolean();

    private Frame(Builder b) {
        this.format = Objects.requireNonNull(b.format, "format");
        if (b.width <= 0 || b.height <= 0) throw new IllegalArgumentException("frame size must be positive: " + b.width + "x" + b.height);
        this.width = b.width;
        this.height = b.height;
        this.data = Objects.requireNonNull(b.data, "data");
        int n = format.planeCount();
        this.planeOffsets = new long[n];
        this.strides = new int[n];
        long offset = 0;
        for (int p = 0; p < n; p++) {
            int stride = b.strides != null ? b.strides[p] : format.minStride(p, width);
            if (stride < format.minStride(p, width))
                throw new IllegalArgumentException("stride " + stride + " of plane " + p + " is below the row size " + format.minStride(p, width) + " for " + format + " " + width + "x" + height);
            long off = b.planeOffsets != null ? b.planeOffsets[p] : offset;
            long end = off + (long) stride * (format.planeHeight(p, height) - 1) + format.minStride(p, width);
            if (off < 0 || end > data.byteSize())
                throw new IllegalArgumentException("plane " + p + " [" + off + ", " + end + ") lies outside the " + data.byteSize() + "-byte buffer of a " + format + " " + width + "x" + height + " frame");
            planeOffsets[p] = off;
            strides[p] = stride;
            offset = off + (long) stride * format.planeHeight(p, height);
        }
        this.ptsNanos = b.ptsNanos;
        this.sequence = b.sequence;
        this.sourceId = b.sourceId == null ? "" : b.sourceId;
        this.colorimetry = b.colorimetry;
        this.label = b.label;
        this.releaser = b.releaser;
    }

    /** A frame of the same pixels under another source id, for inputs renamed by the application (private copy). */
    private Frame(Frame f, String sourceId) {
        this.format = f.format;
        this.width = f.width;
        this.height = f.height;
        this.planeOffsets = f.planeOffsets;
        this.strides = f.strides;
        this.data = f.data;
        this.ptsNanos = f.ptsNanos;
        this.sequence = f.sequence;
        this.sourceId = sourceId;
        this.colorimetry = f.colorimetry;
        this.label = f.label;
        this.releaser = f.releaser;
    }

    public PixelFormat format() { return format; }
    public int width() { return width; }
    public int height() { return height; }
    public int planeCount() { return format.planeCount(); }
    public int stride(int plane) { return strides[plane]; }
    public long planeOffset(int plane) { return planeOffsets[plane]; }
    /** Presentation timestamp in nanoseconds from the start of the stream, or -1 when the source has none. */
    public long ptsNanos() { return ptsNanos; }
    /** 0-based, per source, counting every frame the source produced (dropped ones included). */
    public long sequence() { return sequence; }
    public String sourceId() { return sourceId; }
    /** GStreamer colorimetry string of the caps (e.g. {@code bt709}, {@code bt601}), or null when unknown. */
    public String colorimetry() { return colorimetry; }
    /** What this frame came from within its source (an image's file name), or null. */
    public String label() { return label; }

    /** All pixel bytes; throws {@link IllegalStateException} after {@link #close()}. */
    public MemorySegment data() {
        if (released.get()) throw new IllegalStateException("frame " + sourceId + "#" + sequence + " was already released");
        return data;
    }

    /** The bytes of one plane, from its first row to the end of its last row. */
    public MemorySegment plane(int plane) {
        long size = (long) strides[plane] * (format.planeHeight(plane, height) - 1) + format.minStride(plane, width);
        return data().asSlice(planeOffsets[plane], size);
    }

    public FrameInfo info() { return new FrameInfo(sourceId, sequence, ptsNanos, width, height, format, label); }

    /**
     * This frame under source id {@code id}: the returned frame takes over the pixels (and the duty to close them),
     * this one counts as released without running its releaser. Returns {@code this} when the id is already
     * {@code id}. Throws {@link IllegalStateException} when this frame was already closed.
     */
    public Frame withSourceId(String id) {
        Objects.requireNonNull(id, "id");
        if (id.equals(sourceId)) return this;
        if (!released.compareAndSet(false, true))
            throw new IllegalStateException("frame " + sourceId + "#" + sequence + " was already released");
        return new Frame(this, id);
    }

    public boolean isReleased() { return released.get(); }

    /**
     * A copy owning its own memory (a shared arena, freed by the copy's {@link #close()}): same format, layout, bytes
     * and identity, at timestamp {@code ptsNanos}. For consumers that keep a frame longer than its source lends it
     * (pooled or GStreamer buffers). Throws {@link IllegalStateException} when this frame was already closed.
     */
    public Frame copy(long ptsNanos) {
        MemorySegment src = data();
        Arena arena = Arena.ofShared();
        try {
            MemorySegment seg = arena.allocate(src.byteSize());
            seg.copyFrom(src);
            return builder().format(format).size(width, height).strides(strides.clone()).planeOffsets(planeOffsets.clone()).data(seg)
                    .pts(ptsNanos).sequence(sequence).sourceId(sourceId).colorimetry(colorimetry).label(label)
                    .releaser(arena::close).build();
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** {@link #copy(long)} at this frame's own timestamp. */
    public Frame copy() { return copy(ptsNanos); }

    /** Releases the pixels; safe to call more than once and from any thread. */
    @Override
    public void close() {
        if (released.compareAndSet(false, true) && releaser != null) releaser.run();
    }

    @Override
    public String toString() {
        return "Frame[" + sourceId + "#" + sequence + (label == null ? "" : " " + label) + " " + width + "x" + height + " " + format + " pts=" + ptsNanos + "ns" + (released.get() ? " released" : "") + "]";
    }

    public static Builder builder() { return new Builder(); }

    /** Builds a frame; strides and plane offsets default to tightly packed planes. */
    public static final class Builder {
        private PixelFormat format;
        private int width, height;
        private long[] planeOffsets;
        private int[] strides;
        private MemorySegment data;
        private long ptsNanos = -1, sequence;
        private String sourceId, colorimetry, label;
        private Runnable releaser;

        public Builder format(PixelFormat f) { this.format = f; return this; }
        public Builder size(int width, int height) { this.width = width; this.height = height; return this; }
        public Builder strides(int... strides) { this.strides = strides.clone(); return this; }
        public Builder planeOffsets(long... offsets) { this.planeOffsets = offsets.clone(); return this; }
        public Builder data(MemorySegment data) { this.data = data; return this; }
        public Builder pts(long nanos) { this.ptsNanos = nanos; return this; }
        public Builder sequence(long seq) { this.sequence = seq; return this; }
        public Builder sourceId(String id) { this.sourceId = id; return this; }
        public Builder colorimetry(String c) { this.colorimetry = c; return this; }
        /** What the frame came from within its source (e.g. an image's file name); optional. */
        public Builder label(String label) { this.label = label; return this; }
        /** Runs once when the frame is closed. */
        public Builder releaser(Runnable r) { this.releaser = r; return this; }
        public Frame build() { return new Frame(this); }
    }
}
