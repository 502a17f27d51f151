package io.vlmflux.llm.cpu;

import io.vlmflux.llm.KvCache;

/**
 * The CPU backend's KV cache for one sequence. Layout per layer: {@code k[layer]} and {@code v[layer]} are
 * {@code float[allocated * kvDim]}, position-major: position {@code p}, kv head {@code g}, element {@code d} at
 * {@code p * kvDim + g * headDim + d} (kvDim = kvHeads * headDim). Appending a position touches one contiguous row;
 * a prefix is a contiguous array prefix. Storage grows by doubling up to {@link #capacity()}.
 * Invariant: {@code length <= allocated <= capacity}. Not thread-safe; one sequence, one thread.
 */
public final class LinearKvCache implements KvCache {
    private final int layers, kvDim, capacity;
    private float[][] k, v;     // [layers][allocated * kvDim]
    private int allocated;
    private int length;
    private int delta;
    private boolean closed;

    public LinearKvCache(int layers, int kvDim, int capacity) {
        if (layers <= 0 || kvDim <= 0 || capacity <= 0)
            throw new IllegalArgumentException("KV cache needs positive layers, kvDim, capacity; got " + layers + ", " + kvDim + ", " + capacity);
        this.layers = layers;
        this.kvDim = kvDim;
        this.capacity = capacity;
        this.k = new float[layers][];
        this.v = new float[layers][];
        this.allocated = 0;
        grow(Math.min(capacity, 64));
    }

    private void open() { if (closed) throw new IllegalStateException("KV cache is closed"); }

    /** Makes room for {@code positions} positions; fails beyond {@link #capacity()}. */
    public void ensure(int positions) {
        open();
        if (positions > capacity)
            throw new IllegalStateException("context length exceeded: " + positions + " positions > KV cache capacity " + capacity);
        if (positions > allocated) grow(Math.min(capacity, Math.max(positions, allocated * 2)));
    }

    private void grow(int n) {
        for (int l = 0; l < layers; l++) {
            float[] nk = new float[Math.multiplyExact(n, kvDim)];
            float[] nv = new float[nk.length];
            if (k[l] != null) {
                System.arraycopy(k[l], 0, nk, 0, length * kvDim);
                System.arraycopy(v[l], 0, nv, 0, length * kvDim);
            }
            k[l] = nk;
            v[l] = nv;
        }
        allocated = n;
    }

    /** Keys of {@code layer} (read/write by the CPU decoder). */
    float[] keys(int layer) { open(); return k[layer]; }

    float[] values(int layer) { open(); return v[layer]; }

    public int kvDim() { return kvDim; }

    public int layers() { return layers; }

    @Override public int length() { return length; }

    @Override public int capacity() { return capacity; }

    @Override public void reset(int reuseLength) {
        open();
        if (reuseLength < 0 || reuseLength > length)
            throw new IllegalArgumentException("reset(" + reuseLength + ") outside [0, " + length + "]");
        length = reuseLength;
        if (reuseLength == 0) delta = 0;
    }

    @Override public void commit(int n) {
        open();
        if (n < 0 || length + n > allocated)
            throw new IllegalArgumentException("commit(" + n + ") beyond written storage: length " + length + ", allocated " + allocated);
        length += n;
    }

    @Override public void evict(int from, int count) {
        open();
        if (from < 0 || count < 0 || (long) from + count > length)
            throw new IllegalArgumentException("evict [" + from + ", " + ((long) from + count) + ") outside the committed [0, " + length + ")");
        if (count == 0) return;
        int tail = length - from - count;
        for (int l = 0; l < layers; l++) {
            System.arraycopy(k[l], (from + count) * kvDim, k[l], from * kvDim, tail * kvDim);   // arraycopy handles the overlap
            System.arraycopy(v[l], (from + count) * kvDim, v[l], from * kvDim, tail * kvDim);
        }
        length -= count;
        delta += count;
    }

    @Override public int positionDelta() { return delta; }

    @Override public void positionDelta(int d) { delta = d; }

    @Override public long bytes() { return closed ? 0 : 2L * layers * allocated * kvDim * Float.BYTES; }

    @Override public KvCache snapshot(int len) {
        open();
        LinearKvCache c = new LinearKvCache(layers, kvDim, capacity);
        c.copyFrom(this, len);
        return c;
    }

    @Override public void copyFrom(KvCache source, int len) {
        open();
        if (!(source instanceof LinearKvCache s) || s.layers != layers || s.kvDim != kvDim)
            throw new IllegalArgumentException("cannot copy from " + source + " into a CPU cache of " + layers + " layers x " + kvDim);
        s.open();
        if (len < 0 || len > s.length) throw new IllegalArgumentException("copyFrom length " + len + " outside [0, " + s.length + "]");
        ensure(len);
        for (int l = 0; l < layers; l++) {
            System.arraycopy(s.k[l], 0, k[l], 0, len * kvDim);
            System.arraycopy(s.v[l], 0, v[l], 0, len * kvDim);
        }
        length = len;
        delta = s.delta;
    }

    @Override public boolean isClosed() { return closed; }

    @Override public void close() {
        closed = true;
        k = null;
        v = null;
        allocated = 0;
        length = 0;
    }

    @Override public String toString() { return "LinearKvCache[" + length + "/" + capacity + " x " + layers + " layers x " + kvDim + "]"; }
}
