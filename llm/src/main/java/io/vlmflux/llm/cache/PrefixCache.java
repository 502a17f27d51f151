package io.vlmflux.llm.cache;

import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.MultimodalPrompt;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reusable KV prefixes: a prompt prefix prefilled once serves every later prompt that starts with it. Keyed by the
 * exact token prefix plus, for each image span inside it, its start, length, grid and content hash (so two images
 * with the same pad tokens never share keys). Bounded by bytes of KV storage; least-recently-used entries are evicted
 * (and their caches closed). A prefix never cuts an image span. Thread-safe (synchronized); entries are snapshots
 * owned by this cache, so the caller's cache stays its own.
 */
public final class PrefixCache implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.llm");

    /** Identity of a prefix: tokens and the spans fully inside it. */
    public record Key(int[] tokens, long[] spans) {
        @Override public boolean equals(Object o) { return o instanceof Key k && Arrays.equals(k.tokens, tokens) && Arrays.equals(k.spans, spans); }
        @Override public int hashCode() { return Arrays.hashCode(tokens) * 31 + Arrays.hashCode(spans); }
        public int length() { return tokens.length; }
    }

    private final long maxBytes;
    private final LinkedHashMap<Key, KvCache> entries = new LinkedHashMap<>(16, 0.75f, true);
    private long bytes;
    private long hits, misses, evictions;

    public PrefixCache(long maxBytes) {
        if (maxBytes <= 0) throw new IllegalArgumentException("prefix cache size must be positive, got " + maxBytes);
        this.maxBytes = maxBytes;
    }

    /** The longest length {@code <= length} that does not cut an image span of {@code prompt}. */
    public static int safeLength(MultimodalPrompt prompt, int length) {
        int n = Math.min(length, prompt.length());
        for (EmbeddingSpan s : prompt.spans()) if (s.start() < n && s.end() > n) n = s.start();
        return n;
    }

    /** The key of the first {@code length} positions of {@code prompt} (length must be span-safe). */
    public static Key key(MultimodalPrompt prompt, int length) {
        int[] t = Arrays.copyOf(prompt.tokens(), length);
        List<Long> s = new ArrayList<>();
        for (EmbeddingSpan e : prompt.spans()) {
            if (e.end() > length) break;
            s.add((long) e.start()); s.add((long) e.length()); s.add(e.contentHash());
            s.add((long) e.gridT()); s.add((long) e.gridH()); s.add((long) e.gridW());
            s.add(Double.doubleToLongBits(e.secondPerGridT()));
        }
        return new Key(t, s.stream().mapToLong(Long::longValue).toArray());
    }

    /**
     * Copies the longest stored prefix of {@code prompt} of at most {@code maxLength} positions into {@code target}
     * and returns its length; 0 (target reset) when none matches.
     */
    public synchronized int restore(MultimodalPrompt prompt, int maxLength, KvCache target) {
        Key best = null;
        for (Key k : entries.keySet()) {
            int n = k.length();
            if (n > maxLength || n > prompt.length() || (best != null && n <= best.length())) continue;
            if (safeLength(prompt, n) != n) continue;
            if (key(prompt, n).equals(k)) best = k;
        }
        if (best == null) {
            misses++;
            target.reset(0);
            return 0;
        }
        KvCache src = entries.get(best);   // touches LRU order
        target.copyFrom(src, best.length());
        hits++;
        return best.length();
    }

    /** Stores a snapshot of the first {@code length} positions of {@code source}, evicting LRU entries over budget. */
    public synchronized void store(MultimodalPrompt prompt, int length, KvCache source) {
        int n = safeLength(prompt, length);
        if (n <= 0 || n > source.length()) return;
        Key k = key(prompt, n);
        if (entries.containsKey(k)) { entries.get(k); return; }
        KvCache snap = source.snapshot(n);
        if (snap.bytes() > maxBytes) {
            LOG.log(System.Logger.Level.DEBUG, "prefix of {0} tokens ({1} bytes) exceeds the prefix cache ({2} bytes); not stored", n, snap.bytes(), maxBytes);
            snap.close();
            return;
        }
        entries.put(k, snap);
        bytes += snap.bytes();
        Iterator<Map.Entry<Key, KvCache>> it = entries.entrySet().iterator();
        while (bytes > maxBytes && it.hasNext()) {
            Map.Entry<Key, KvCache> e = it.next();
            if (e.getKey().equals(k)) continue;
            bytes -= e.getValue().bytes();
            e.getValue().close();
            it.remove();
            evictions++;
        }
    }

    public synchronized int size() { return entries.size(); }
    public synchronized long bytes() { return bytes; }
    public long maxBytes() { return maxBytes; }
    public synchronized long hits() { return hits; }
    public synchronized long misses() { return misses; }
    public synchronized long evictions() { return evictions; }

    /** True when an entry for exactly this prefix is stored (does not touch LRU order). */
    public synchronized boolean contains(MultimodalPrompt prompt, int length) {
        return entries.keySet().contains(key(prompt, safeLength(prompt, length)));
    }

    @Override public synchronized void close() {
        for (KvCache c : entries.values()) c.close();
        entries.clear();
        bytes = 0;
    }
}
