package io.vlmflux.llm.runtime;

import java.util.List;

import io.vlmflux.sources.Frame;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Iterator;
import java.util.LinkedHashMap;

/**
 * Frame → image-token rows, with the runtime's one encoder-output cache in front of the encoder (both backends).
 *
 * <p>Cache: keyed by the preprocessor's 64-bit content hash plus the grid; a hit is confirmed by comparing the frame's
 * bytes, size and pixel format with a copy kept for the entry, so a hash collision can never reuse another image's
 * rows. Bounded in bytes (rows + the frame copy), least recently used first; entries a prompt still reads are freed
 * only when it lets go (reference counts). Static scenes and frozen sources skip the encoder.
 *
 * <p>Thread: {@link #encode} runs on the runtime's compute thread; {@link #release} may come from any thread. All
 * state is guarded by this object's lock.
 *
 * @param <P> the preprocessed pixels of the backend (host arrays or device buffers)
 */
abstract class VisionPath<P> implements AutoCloseable {
    private record Key(long hash, int t, int h, int w) {}

    private static final class Entry {
        final ImageRows rows;
        final byte[] frame;
        final int width, height, format;
        Entry(ImageRows rows, byte[] frame, int width, int height, int format) {
            this.rows = rows;
            this.frame = frame;
            this.width = width;
            this.height = height;
            this.format = format;
        }
        long bytes() { return rows.bytes() + frame.length + 96; }
        boolean sameFrame(Frame f) {
            if (f.width() != width || f.height() != height || f.format().ordinal() != format) return false;
            MemorySegment d = f.data();
            return d.byteSize() == frame.length && MemorySegment.mismatch(MemorySegment.ofArray(frame), 0, frame.length, d, 0, d.byteSize()) < 0;
        }
    }

    /** What preprocessing produced: the pixels and the cache key parts. */
    record Preprocessed<P>(P pixels, long contentHash, int gridT, int gridH, int gridW) {}

    /** One encode call's result: rows the caller holds (release them), and where the time went. */
    record Encoded(ImageRows rows, long preprocessNanos, long encodeNanos, boolean cacheHit) {}

    private final long maxBytes;
    private final LinkedHashMap<Key, Entry> cache = new LinkedHashMap<>(16, 0.75f, true);
    private long cachedBytes, hits, misses, evictions;
    private boolean closed;

    VisionPath(long maxBytes) {
        if (maxBytes < 0) throw new IllegalArgumentException("encoder cache size must be >= 0, got " + maxBytes);
        this.maxBytes = maxBytes;
    }

    abstract Preprocessed<P> preprocess(Frame frame);

    /** Encodes preprocessed pixels into fresh rows (reference count 1). */
    abstract ImageRows encodeRows(Preprocessed<P> pixels);

    /** Encodes host pixel values of a video clip into fresh rows (reference count 1), outside the cache. */
    abstract ImageRows encodeClipRows(io.vlmflux.vision.PixelValues pixels);

    /**
     * The rows of a preprocessed video clip (Qwen2-VL / Qwen2.5-VL, any grid t), encoded now, outside the
     * encoder-output cache; the caller holds them and releases them through {@link #release}.
     */
    final ImageRows encodeClip(io.vlmflux.vision.PixelValues pixels) {
        return encodeClips(List.of(pixels)).getFirst();
    }

    /**
     * The rows of several preprocessed clips (the groups several live sessions append at once), encoded in one pass
     * where the backend can (every GEMM of the tower shared), in order; the caller holds and releases each.
     */
    final synchronized List<ImageRows> encodeClips(List<io.vlmflux.vision.PixelValues> clips) {
        if (closed) throw new IllegalStateException("the vision path of this runtime was closed");
        beforeEncode();
        return clips.size() == 1 ? List.of(encodeClipRows(clips.getFirst())) : encodeClipRows(clips);
    }

    /** Several clips' rows; the default encodes them one by one. */
    List<ImageRows> encodeClipRows(List<io.vlmflux.vision.PixelValues> clips) {
        List<ImageRows> out = new java.util.ArrayList<>(clips.size());
        try {
            for (io.vlmflux.vision.PixelValues px : clips) out.add(encodeClipRows(px));
        } catch (RuntimeException | Error e) {
            for (ImageRows r : out) free(r);
            throw e;
        }
        return out;
    }

    /** A live video group for {@link #encodeFrameGroups}: its frames (read, not closed) resized to {@code height x width}. */
    record FrameGroup(List<Frame> frames, int height, int width) {}

    /**
     * Whether this path preprocesses video groups itself ({@link #encodeFrameGroups}) for a video processor of config
     * {@code cfg}: the device path where its switch is on and {@code cfg}'s pixel arithmetic equals its processor's.
     */
    boolean preprocessesGroups(io.vlmflux.vision.PreprocessorConfig cfg) { return false; }

    /**
     * Preprocesses and encodes live video groups in one pass where {@link #preprocessesGroups}, outside the cache; the
     * caller holds the rows, in order. The frames are read before this returns and not closed.
     */
    final synchronized List<ImageRows> encodeFrameGroups(List<FrameGroup> groups) {
        if (closed) throw new IllegalStateException("the vision path of this runtime was closed");
        beforeEncode();
        return encodeFrameGroupRows(groups);
    }

    List<ImageRows> encodeFrameGroupRows(List<FrameGroup> groups) {
        throw new UnsupportedOperationException(describe() + " does not preprocess video groups itself");
    }

    /** Frees rows nobody holds any more (called under the lock). */
    abstract void free(ImageRows rows);

    /** Device buffers allocated so far (0 on the host path). */
    long allocations() { return 0; }

    /** Called before each encode under the lock (the device path frees deferred buffers here). */
    void beforeEncode() {}

    /** Called first by {@link #close()} under the lock (the device path waits for queued work here). */
    void beforeClose() {}

    /** Frees the backend's resources (called once, under the lock, after every cached entry was dropped). */
    abstract void closeBackend();

    /** Backend and model, for logs. */
    abstract String describe();

    /** The rows of {@code frame} (the cache's or freshly encoded); the caller releases them. Does not close the frame. */
    final synchronized Encoded encode(Frame frame) {
        if (closed) throw new IllegalStateException("the vision path of this runtime was closed");
        beforeEncode();
        long t0 = System.nanoTime();
        Preprocessed<P> px = preprocess(frame);
        long t1 = System.nanoTime();
        Key key = new Key(px.contentHash(), px.gridT(), px.gridH(), px.gridW());
        Entry e = maxBytes > 0 ? cache.get(key) : null;
        if (e != null && e.sameFrame(frame)) {
            hits++;
            e.rows.refs++;
            return new Encoded(e.rows, t1 - t0, System.nanoTime() - t1, true);
        }
        misses++;
        ImageRows r = encodeRows(px);
        if (maxBytes > 0) remember(key, r, frame);
        return new Encoded(r, t1 - t0, System.nanoTime() - t1, false);
    }

    private void remember(Key key, ImageRows r, Frame frame) {
        MemorySegment d = frame.data();
        if (d.byteSize() > Integer.MAX_VALUE - 16 || r.bytes() + d.byteSize() > maxBytes) return;
        Entry e = new Entry(r, d.toArray(ValueLayout.JAVA_BYTE), frame.width(), frame.height(), frame.format().ordinal());
        Entry old = cache.put(key, e);
        if (old != null) drop(old);
        r.refs++;
        cachedBytes += e.bytes();
        Iterator<Entry> it = cache.values().iterator();
        while (cachedBytes > maxBytes && it.hasNext()) {
            Entry v = it.next();
            if (v == e) continue;
            it.remove();
            drop(v);
            evictions++;
        }
    }

    private void drop(Entry v) {
        cachedBytes -= v.bytes();
        unrefLocked(v.rows);
    }

    /** One more holder of {@code r} (which the caller holds): it lets go with {@link #release}. */
    final synchronized void retain(ImageRows r) {
        if (r.refs <= 0) throw new IllegalStateException("image rows retained after they were freed");
        r.refs++;
    }

    /** Lets go of rows from {@link #encode}; once per holder. */
    final synchronized void release(ImageRows r) { unrefLocked(r); }

    private void unrefLocked(ImageRows r) {
        if (r.refs <= 0) throw new IllegalStateException("image rows released twice");
        if (--r.refs == 0) free(r);
    }

    final boolean isClosed() { return closed; }

    final synchronized EncoderCacheStats stats() {
        return new EncoderCacheStats(hits, misses, evictions, cache.size(), cachedBytes, maxBytes, allocations());
    }

    /** Drops the cache and frees the backend; rows still held by prompts are freed when they are released. */
    @Override public final synchronized void close() {
        if (closed) return;
        closed = true;
        beforeClose();
        for (Entry e : cache.values()) unrefLocked(e.rows);
        cache.clear();
        cachedBytes = 0;
        closeBackend();
    }
}
