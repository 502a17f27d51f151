package io.vlmflux.llm.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Byte-level BPE over one pre-token. Merges live in a {@code (leftId, rightId) -> (rank, mergedId)} int-pair map; the
 * merge loop works on int arrays (a linear scan for short words, a heap with a linked symbol list for long ones), so
 * the hot path allocates only the result. Results are cached per pre-token string. Thread-safe after construction.
 */
final class BpeModel {
    private static final int SCAN_LIMIT = 48;
    private static final int CACHE_MAX = 250_000;

    private final Map<String, Integer> vocab;   // byte-level spelling -> id
    private final int[] byteIds = new int[256]; // byte -> id of its single-char token, -1 if absent
    private final LongLongMap merges;
    private final boolean ignoreMerges;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    BpeModel(Map<String, Integer> vocab, LongLongMap merges, boolean ignoreMerges) {
        this.vocab = vocab;
        this.merges = merges;
        this.ignoreMerges = ignoreMerges;
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.valueOf(ByteLevel.BYTE_TO_CHAR[b]));
            byteIds[b] = id == null ? -1 : id;
        }
    }

    static long pairKey(int left, int right) { return ((long) left << 32) | (right & 0xFFFFFFFFL); }

    /** Appends the ids of one pre-token (raw text, before the byte-level mapping) to {@code out}. */
    void encode(String piece, IntList out) {
        int[] ids = cache.get(piece);
        if (ids == null) {
            ids = encodeUncached(piece);
            if (cache.size() >= CACHE_MAX) cache.clear();
            cache.put(piece, ids);
        }
        out.addAll(ids);
    }

    int[] encodeUncached(String piece) {
        byte[] bytes = piece.getBytes(StandardCharsets.UTF_8);
        if (ignoreMerges) {
            Integer whole = vocab.get(ByteLevel.toChars(bytes));
            if (whole != null) return new int[] {whole};
        }
        int[] syms = new int[bytes.length];
        int n = 0;
        for (byte b : bytes) {
            int id = byteIds[b & 0xFF];
            if (id >= 0) syms[n++] = id; // a byte missing from the vocab is dropped, as tokenizers does without unk
        }
        if (n <= SCAN_LIMIT) n = mergeByScan(syms, n);
        else n = mergeByHeap(syms, n);
        return n == syms.length ? syms : Arrays.copyOf(syms, n);
    }

    /** Repeatedly applies the lowest-rank adjacent merge (leftmost on ties); O(n^2), fastest for short words. */
    private int mergeByScan(int[] syms, int n) {
        while (n > 1) {
            int bestRank = Integer.MAX_VALUE, bestPos = -1, bestId = 0;
            for (int i = 0; i + 1 < n; i++) {
                long v = merges.get(pairKey(syms[i], syms[i + 1]));
                if (v != LongLongMap.MISSING) {
                    int rank = (int) (v >>> 32);
                    if (rank < bestRank) { bestRank = rank; bestPos = i; bestId = (int) v; }
                }
            }
            if (bestPos < 0) break;
            syms[bestPos] = bestId;
            System.arraycopy(syms, bestPos + 2, syms, bestPos + 1, n - bestPos - 2);
            n--;
        }
        return n;
    }

    /** Same order of merges as {@link #mergeByScan} (lowest rank, then lowest position) in O(n log n). */
    private int mergeByHeap(int[] syms, int n) {
        int[] next = new int[n], prev = new int[n];
        boolean[] gone = new boolean[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
        LongHeap heap = new LongHeap(n);
        for (int i = 0; i + 1 < n; i++) pushPair(heap, syms, i, i + 1);
        while (!heap.isEmpty()) {
            long top = heap.poll();
            int rank = (int) (top >>> 32), pos = (int) top;
            if (gone[pos]) continue;
            int nx = next[pos];
            if (nx < 0) continue;
            long v = merges.get(pairKey(syms[pos], syms[nx]));
            if (v == LongLongMap.MISSING || (int) (v >>> 32) != rank) continue; // stale entry
            syms[pos] = (int) v;
            gone[nx] = true;
            next[pos] = next[nx];
            if (next[nx] >= 0) prev[next[nx]] = pos;
            if (prev[pos] >= 0) pushPair(heap, syms, prev[pos], pos);
            if (next[pos] >= 0) pushPair(heap, syms, pos, next[pos]);
        }
        int m = 0;
        for (int i = 0; i >= 0; i = next[i]) syms[m++] = syms[i];
        return m;
    }

    private void pushPair(LongHeap heap, int[] syms, int a, int b) {
        long v = merges.get(pairKey(syms[a], syms[b]));
        if (v != LongLongMap.MISSING) heap.add(((v >>> 32) << 32) | a);
    }

    /** Binary min-heap of longs. */
    private static final class LongHeap {
        private long[] a;
        private int n;

        LongHeap(int cap) { a = new long[Math.max(8, cap)]; }

        boolean isEmpty() { return n == 0; }

        void add(long v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            int i = n++;
            while (i > 0) {
                int p = (i - 1) >>> 1;
                if (a[p] <= v) break;
                a[i] = a[p]; i = p;
            }
            a[i] = v;
        }

        long poll() {
            long top = a[0], v = a[--n];
            int i = 0;
            while (true) {
                int c = 2 * i + 1;
                if (c >= n) break;
                if (c + 1 < n && a[c + 1] < a[c]) c++;
                if (a[c] >= v) break;
                a[i] = a[c]; i = c;
            }
            a[i] = v;
            return top;
        }
    }
}
