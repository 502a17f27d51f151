package io.vlmflux.llm.tokenizer;

/** Open-addressing {@code long -> long} hash map without boxing; keys must not be -1. Read-only after building. */
final class LongLongMap {
    static final long MISSING = Long.MIN_VALUE;
    private static final long EMPTY = -1L;
    private final long[] keys;
    private final long[] values;
    private final int mask;
    private int size;

    LongLongMap(int expected) {
        int cap = Integer.highestOneBit(Math.max(4, expected * 2 - 1)) << 1;
        keys = new long[cap];
        values = new long[cap];
        java.util.Arrays.fill(keys, EMPTY);
        mask = cap - 1;
    }

    private static int hash(long k) {
        long h = k * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 29));
    }

    /** Inserts unless present; returns false when the key was already there (first one wins). */
    boolean putIfAbsent(long k, long v) {
        if (k == EMPTY) throw new IllegalArgumentException("reserved key");
        if ((size + 1) * 2 > keys.length) throw new IllegalStateException("LongLongMap full");
        int i = hash(k) & mask;
        while (keys[i] != EMPTY) {
            if (keys[i] == k) return false;
            i = (i + 1) & mask;
        }
        keys[i] = k; values[i] = v; size++;
        return true;
    }

    long get(long k) {
        int i = hash(k) & mask;
        long cur;
        while ((cur = keys[i]) != EMPTY) {
            if (cur == k) return values[i];
            i = (i + 1) & mask;
        }
        return MISSING;
    }

    int size() { return size; }
}
