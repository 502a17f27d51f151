package io.vlmflux.vision;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An encoder-output cache in front of any {@link VisionEncoder}: repeated stills and frozen or static sources skip
 * the encoder. The key is exact: the grid plus the input's 64-bit content hash ({@link PixelValues#contentHash()}),
 * and a hit is confirmed by comparing the stored input values with the new ones, so a hash collision can never
 * return another image's embeddings. Bounded in bytes (embeddings + the inputs kept for the comparison), least
 * recently used evicted first; hit, miss and eviction counters. Thread-safe; {@link #close()} closes the wrapped
 * encoder.
 */
public final class CachingVisionEncoder implements VisionEncoder {
    private static final System.Logger LOG = System.getLogger("vlmflux.vision");

    private record Key(long hash, int t, int h, int w, int patchDim) {}
    private record Entry(float[] input, ImageEmbeddings out) {
        long bytes() { return 4L * input.length + 4L * out.data().length + 96; }
    }

    private final VisionEncoder inner;
    private final long maxBytes;
    private final LinkedHashMap<Key, Entry> map = new LinkedHashMap<>(16, 0.75f, true);
    private long bytes;
    private final AtomicLong hits = new AtomicLong(), misses = new AtomicLong(), evictions = new AtomicLong();

    /** Wraps {@code inner}; entries are dropped (LRU) once they hold more than {@code maxBytes}. */
    public CachingVisionEncoder(VisionEncoder inner, long maxBytes) {
        this.inner = Objects.requireNonNull(inner, "inner");
        if (maxBytes <= 0) throw new IllegalArgumentException("cache size must be positive, got " + maxBytes + " bytes");
        this.maxBytes = maxBytes;
    }

    @Override
    public ImageEmbeddings encode(PixelValues pixels) {
        Key k = key(pixels);
        synchronized (this) {
            Entry e = map.get(k);
            if (e != null && Arrays.equals(e.input, pixels.data())) {
                hits.incrementAndGet();
                return e.out;
            }
        }
        misses.incrementAndGet();
        ImageEmbeddings out = inner.encode(pixels);
        put(k, pixels, out);
        return out;
    }

    @Override
    public List<ImageEmbeddings> encode(List<PixelValues> images) {
        ImageEmbeddings[] res = new ImageEmbeddings[images.size()];
        List<PixelValues> todo = new ArrayList<>();
        List<Integer> where = new ArrayList<>();
        synchronized (this) {
            for (int i = 0; i < images.size(); i++) {
                PixelValues pv = images.get(i);
                Entry e = map.get(key(pv));
                if (e != null && Arrays.equals(e.input, pv.data())) { res[i] = e.out; hits.incrementAndGet(); }
                else { todo.add(pv); where.add(i); }
            }
        }
        if (!todo.isEmpty()) {
            misses.addAndGet(todo.size());
            List<ImageEmbeddings> fresh = inner.encode(todo);
            for (int j = 0; j < todo.size(); j++) {
                res[where.get(j)] = fresh.get(j);
                put(key(todo.get(j)), todo.get(j), fresh.get(j));
            }
        }
        return List.of(res);
    }

    private static Key key(PixelValues p) {
        return new Key(p.contentHash(), p.gridT(), p.gridH(), p.gridW(), p.patchDim());
    }

    private synchronized void put(Key k, PixelValues in, ImageEmbeddings out) {
        Entry e = new Entry(in.data().clone(), out);
        if (e.bytes() > maxBytes) return; // larger than the whole cache: not kept
        Entry old = map.put(k, e);
        if (old != null) bytes -= old.bytes();
        bytes += e.bytes();
        var it = map.entrySet().iterator();
        while (bytes > maxBytes && it.hasNext()) {
            Map.Entry<Key, Entry> victim = it.next();
            if (victim.getKey().equals(k)) continue;
            bytes -= victim.getValue().bytes();
            it.remove();
            evictions.incrementAndGet();
        }
    }

    public long hits() { return hits.get(); }
    public long misses() { return misses.get(); }
    public long evictions() { return evictions.get(); }
    public synchronized long bytesUsed() { return bytes; }
    public synchronized int size() { return map.size(); }
    public long maxBytes() { return maxBytes; }

    /** Drops every entry (counters are kept). */
    public synchronized void clear() {
        map.clear();
        bytes = 0;
    }

    @Override public int outHidden() { return inner.outHidden(); }
    @Override public int mergeSize() { return inner.mergeSize(); }
    @Override public String describe() { return inner.describe() + " + cache(" + maxBytes / (1 << 20) + " MiB)"; }

    @Override
    public void close() {
        LOG.log(System.Logger.Level.DEBUG, () -> "encoder cache: " + hits() + " hits, " + misses() + " misses, " + evictions() + " evictions");
        synchronized (this) { clear(); }
        inner.close();
    }
}
