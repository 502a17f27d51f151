package io.vlmflux.pipeline.caption;

import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.cuda.DeviceEmbeddings;
import io.vlmflux.vision.cuda.GpuImageProcessor;
import io.vlmflux.vision.cuda.GpuPixels;
import io.vlmflux.vision.cuda.GpuVisionEncoder;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The caption stage's GPU vision path: frame → {@link GpuImageProcessor} (pinned upload, preprocessing kernels) →
 * {@link GpuVisionEncoder} → the bf16 image-token rows copied into a {@link Rows} this class owns, which the CUDA
 * decoder splices into its embedding buffer (device span; nothing crosses to the host). All work is enqueued on the
 * decoder's stream, so the prefill that reads the rows runs after they are written without any synchronization.
 *
 * <p>Encoder-output cache: keyed by the processor's 64-bit content hash of the frame (pixel bytes, layout,
 * colorimetry, resized size) plus the grid; a hit is confirmed by comparing the frame's bytes and geometry with a copy
 * kept for the entry, so a collision can never reuse another image's rows. Static scenes and frozen sources skip the
 * encoder. Bounded in bytes (device rows + the host copy), least recently used first; entries a caption still reads
 * are evicted only when it lets go. Hit/miss/eviction counters.
 *
 * <p>Row buffers come from a pool of device allocations per size (a camera's frames all have one size), so a steady
 * stream allocates nothing. Thread: the compute thread encodes; {@link Rows#release()} may come from any thread.
 */
final class DeviceVision implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.pipeline");
    private static final long POOL_MAX_BYTES = 64L << 20;   // idle row buffers kept for reuse

    private record Key(long hash, int t, int h, int w) {}

    private final GpuImageProcessor processor;
    private final GpuVisionEncoder encoder;
    private final GpuStream stream;
    private final long cacheBytes;
    private final LinkedHashMap<Key, Rows> cache = new LinkedHashMap<>(16, 0.75f, true);
    private final Map<Long, ArrayDeque<DeviceArena>> pool = new HashMap<>();
    private final List<DeviceArena> toFree = new ArrayList<>();   // freed on the compute thread (cudaFree syncs)
    private long cachedBytes, pooledBytes;
    private long hits, misses, evictions, allocations;
    private boolean closed;

    DeviceVision(GpuImageProcessor processor, GpuVisionEncoder encoder, long cacheBytes) {
        if (cacheBytes < 0) throw new IllegalArgumentException("encoder cache size must be >= 0, got " + cacheBytes);
        this.processor = processor;
        this.encoder = encoder;
        this.stream = encoder.stream();
        this.cacheBytes = cacheBytes;
    }

    GpuVisionEncoder encoder() { return encoder; }

    /**
     * The image-token rows of one frame, bf16 {@code [tokens, hidden]} on the device, valid until {@link #release()}
     * (idempotent). Timings are host times: the work is asynchronous on the stream, the GPU time of the encoder shows
     * up in whatever synchronizes next (the prefill's first token).
     */
    final class Rows {
        private final DeviceArena memory;
        final DeviceBuffer rows;
        final int tokens, hidden, gridT, gridH, gridW;
        final long contentHash;
        private byte[] frameCopy;                 // cache entries: the frame's bytes, to confirm a hash hit
        private int frameW, frameH, frameFormat;
        private int refs;
        private boolean inCache;
        long preprocessNanos, encodeNanos;
        boolean cacheHit;

        private final long poolKey;

        private Rows(DeviceArena memory, long poolKey, DeviceEmbeddings e) {
            this.memory = memory;
            this.poolKey = poolKey;
            this.rows = memory.alloc("image rows bf16 [" + e.tokens() + ", " + e.hidden() + "]", 2L * e.tokens() * e.hidden());
            this.tokens = e.tokens();
            this.hidden = e.hidden();
            this.gridT = e.gridT();
            this.gridH = e.gridH();
            this.gridW = e.gridW();
            this.contentHash = e.contentHash();
        }

        private long bytes() { return memory.capacity() + (frameCopy == null ? 0 : frameCopy.length) + 128; }

        private boolean sameFrame(Frame f) {
            if (frameCopy == null || f.width() != frameW || f.height() != frameH || f.format().ordinal() != frameFormat) return false;
            MemorySegment d = f.data();
            return d.byteSize() == frameCopy.length && MemorySegment.mismatch(MemorySegment.ofArray(frameCopy), 0, frameCopy.length, d, 0, d.byteSize()) < 0;
        }

        /** Lets go of these rows (the caption's prefill has been enqueued, or it ended); idempotent per holder. */
        void release() {
            DeviceVision.this.unref(this);
        }
    }

    /** A caption's hold on rows: releases once. */
    static final class Hold {
        private Rows rows;
        Hold(Rows rows) { this.rows = rows; }
        Rows rows() { return rows; }
        synchronized void release() {
            if (rows != null) { rows.release(); rows = null; }
        }
    }

    /** Preprocesses and encodes {@code frame} (or finds its rows in the cache); the caller releases the result. */
    synchronized Rows encode(Frame frame) {
        if (closed) throw new IllegalStateException("the GPU vision path of this caption model was closed");
        freeDeferred();
        long t0 = System.nanoTime();
        GpuPixels px = processor.process(frame);
        long t1 = System.nanoTime();
        Key key = new Key(px.contentHash(), px.gridT(), px.gridH(), px.gridW());
        Rows hit = cacheBytes > 0 ? cache.get(key) : null;
        if (hit != null && hit.sameFrame(frame)) {
            hits++;
            hit.refs++;
            hit.preprocessNanos = t1 - t0;
            hit.encodeNanos = System.nanoTime() - t1;
            hit.cacheHit = true;
            return hit;
        }
        misses++;
        DeviceEmbeddings e = encoder.encodeToDevice(px);
        long need = (2L * e.tokens() * e.hidden() + 255) / 256 * 256;
        Rows r = new Rows(take(need), need, e);
        stream.copyAsync(r.rows, e.bf16(), r.rows.bytes());   // the encoder's output buffer is reused by its next call
        r.refs = 1;
        if (cacheBytes > 0) remember(key, r, frame);
        r.preprocessNanos = t1 - t0;
        r.encodeNanos = System.nanoTime() - t1;
        return r;
    }

    private void remember(Key key, Rows r, Frame frame) {
        MemorySegment d = frame.data();
        if (d.byteSize() > Integer.MAX_VALUE - 16) return;
        r.frameCopy = d.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        r.frameW = frame.width();
        r.frameH = frame.height();
        r.frameFormat = frame.format().ordinal();
        if (r.bytes() > cacheBytes) { r.frameCopy = null; return; }
        Rows old = cache.put(key, r);
        if (old != null) drop(old);
        r.inCache = true;
        r.refs++;
        cachedBytes += r.bytes();
        Iterator<Rows> it = cache.values().iterator();
        while (cachedBytes > cacheBytes && it.hasNext()) {
            Rows v = it.next();
            if (v == r) continue;
            it.remove();
            drop(v);
            evictions++;
        }
    }

    private void drop(Rows v) {
        cachedBytes -= v.bytes();
        v.inCache = false;
        v.frameCopy = null;
        unrefLocked(v);
    }

    private synchronized void unref(Rows r) { unrefLocked(r); }

    private void unrefLocked(Rows r) {
        if (r.refs <= 0) throw new IllegalStateException("image rows released twice");
        if (--r.refs > 0) return;
        DeviceArena m = r.memory;
        if (closed) { m.close(); return; }   // close() synchronized the stream already
        if (pooledBytes + r.poolKey > POOL_MAX_BYTES) { toFree.add(m); return; }
        m.reset(0);
        pool.computeIfAbsent(r.poolKey, k -> new ArrayDeque<>()).push(m);
        pooledBytes += r.poolKey;
    }

    private DeviceArena take(long cap) {
        ArrayDeque<DeviceArena> q = pool.get(cap);
        if (q != null && !q.isEmpty()) {
            pooledBytes -= cap;
            return q.pop();
        }
        allocations++;
        return stream.device().newArena("caption image rows", cap);
    }

    private void freeDeferred() {
        if (toFree.isEmpty()) return;
        stream.synchronize();   // rows may still be read by an enqueued prefill
        for (DeviceArena a : toFree) a.close();
        toFree.clear();
    }

    synchronized EncoderCacheStats stats() {
        return new EncoderCacheStats(hits, misses, evictions, cache.size(), cachedBytes, cacheBytes, allocations);
    }

    @Override public synchronized void close() {
        if (closed) return;
        closed = true;
        try { stream.synchronize(); } catch (RuntimeException ignored) { /* closing anyway */ }
        for (Rows r : cache.values()) { r.inCache = false; r.frameCopy = null; toFree.add(r.memory); }
        cache.clear();
        for (ArrayDeque<DeviceArena> q : pool.values()) toFree.addAll(q);
        pool.clear();
        for (DeviceArena a : toFree) a.close();
        toFree.clear();
        LOG.log(System.Logger.Level.DEBUG, () -> "GPU encoder cache: " + hits + " hits, " + misses + " misses, " + evictions + " evictions");
        processor.close();
        encoder.close();
    }
}
