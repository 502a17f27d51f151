package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.gpu.CudaGraph;
import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.llm.KvCache;

/**
 * The CUDA backend's KV cache for one sequence, in device memory (one cudaMalloc per cache; caches made by
 * {@link CudaDecoder#newCache} go back to the decoder's pool on close and are reused). Layout per layer:
 * {@code k[layer]}, {@code v[layer]} bf16 {@code [kvHeads, capacity, headDim]} (head-major, so decode attention reads
 * each head's keys contiguously); position {@code p} of kv head {@code g} at element {@code (g * capacity + p) * headDim}.
 * Owns the single-sequence decode CUDA graph captured against its buffers (a graph bakes in addresses, so it is keyed by
 * the cache) and closes it with itself. Batched decode graphs belong to the decoder and read this cache's {@code k}/{@code v}
 * addresses from a device table rewritten every step, so a cache joins or leaves a batch without any re-capture.
 * Not thread-safe; one sequence, the decoder's thread.
 */
final class CudaKvCache implements KvCache {
    final CudaDecoder owner;
    private final int layers, kvHeads, headDim;
    private final int stride;       // positions allocated per head (the layout); a pooled cache may be reused for fewer
    private int capacity;           // positions this sequence may use (<= stride)
    private final DeviceArena arena;
    final DeviceBuffer[] k, v;      // [layers] -> bf16 [kvHeads, capacity, headDim]
    private int length;
    private int delta;
    private boolean closed;
    CudaGraph decodeGraph;          // captured on the first graph decode step with this cache
    int decodeSplits;               // split count baked into decodeGraph

    private final boolean pooled;   // made by newCache(): close() hands it back to the decoder's pool
    long version;                   // moves on with every change of length, content or delta (a decode step enqueued ahead is for one version)

    CudaKvCache(CudaDecoder owner, int layers, int kvHeads, int headDim, int capacity) {
        this(owner, layers, kvHeads, headDim, capacity, false);
    }

    CudaKvCache(CudaDecoder owner, int layers, int kvHeads, int headDim, int capacity, boolean pooled) {
        this.pooled = pooled;
        if (capacity <= 0) throw new IllegalArgumentException("KV cache capacity must be positive, got " + capacity);
        this.owner = owner;
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.capacity = capacity;
        this.stride = capacity;
        long per = 2L * kvHeads * capacity * headDim;
        this.arena = owner.device().newArena("kv cache (" + capacity + " positions)", 2 * layers * (per + 256));
        k = new DeviceBuffer[layers];
        v = new DeviceBuffer[layers];
        for (int l = 0; l < layers; l++) {
            k[l] = arena.alloc("layer " + l + " K cache", per);
            v[l] = arena.alloc("layer " + l + " V cache", per);
        }
        // K0, V0, K1, ... equally spaced (the arena bumps by the same rounded size): eviction moves all in one launch
        long spacing = v[0].address() - k[0].address();
        boolean even = spacing >= per;
        for (int l = 0; l < layers && even; l++)
            even = k[l].address() == k[0].address() + 2L * l * spacing && v[l].address() == k[l].address() + spacing;
        bufSpacing = even ? spacing : -1;
    }

    private final long bufSpacing;   // bytes between consecutive K/V buffers when uniform, else -1

    /** Bytes from layer l's K buffer to its V buffer and from that to layer l + 1's K, or -1 where they are not uniform. */
    long layerSpacing() { return bufSpacing; }

    void open() { if (closed) throw new IllegalStateException("KV cache is closed"); }

    @Override public int length() { return length; }

    @Override public int capacity() { return capacity; }

    /** Positions allocated per head: the layout's stride, what kernels and graphs see. */
    int stride() { return stride; }

    @Override public void reset(int reuseLength) {
        open();
        if (reuseLength < 0 || reuseLength > length)
            throw new IllegalArgumentException("reset(" + reuseLength + ") outside [0, " + length + "]");
        length = reuseLength;
        if (reuseLength == 0) delta = 0;
        version++;
    }

    @Override public void commit(int n) {
        open();
        if (n < 0 || length + n > capacity)
            throw new IllegalArgumentException("commit(" + n + ") beyond capacity: length " + length + ", capacity " + capacity);
        length += n;
        version++;
    }

    /**
     * Device compaction: per layer and kv head, the tail {@code [from + count, length)} moves down by {@code count}. With
     * {@code Tuning.evictKernel}, one kernel for every layer and head ({@code GpuOps.kvShift}: overlap-safe, so no
     * chunking) where the buffers are equally spaced, as the arena lays them out; otherwise copies of at most {@code count} positions, so that no
     * copy's source overlaps its destination (cudaMemcpyAsync does not allow overlap). All on the decoder's stream, so
     * the next forward sees the result.
     */
    @Override public void evict(int from, int count) {
        open();
        if (from < 0 || count < 0 || (long) from + count > length)
            throw new IllegalArgumentException("evict [" + from + ", " + ((long) from + count) + ") outside the committed [0, " + length + ")");
        if (count == 0) return;
        int tail = length - from - count;
        GpuStream st = owner.stream();
        long row = 2L * headDim;
        if (tail > 0 && owner.evictKernel && bufSpacing > 0 && row % 16 == 0) {
            long span = (2L * layers - 1) * bufSpacing + (long) kvHeads * stride * row;
            owner.ops().kvShift(new DeviceBuffer("kv cache", k[0].address(), span), 2 * layers, bufSpacing, kvHeads, stride * row, (int) row,
                    from, count, tail);
        } else {
            for (int l = 0; l < layers; l++)
                for (int g = 0; g < kvHeads; g++) {
                    long head = (long) g * stride * row;
                    for (int done = 0; done < tail; done += count) {
                        int n = Math.min(count, tail - done);
                        long dst = head + (long) (from + done) * row, src = head + (long) (from + count + done) * row, bytes = n * row;
                        st.copyAsync(k[l].slice(dst, bytes, "K"), k[l].slice(src, bytes, "K"), bytes);
                        st.copyAsync(v[l].slice(dst, bytes, "V"), v[l].slice(src, bytes, "V"), bytes);
                    }
                }
        }
        length -= count;
        delta += count;
        version++;
    }

    @Override public int positionDelta() { return delta; }

    @Override public void positionDelta(int d) { delta = d; version++; }

    @Override public long bytes() { return closed ? 0 : arena.capacity(); }

    /** A copy of the first {@code len} positions in a cache of exactly {@code max(len, 1)} positions. */
    @Override public KvCache snapshot(int len) {
        open();
        if (len < 0 || len > length) throw new IllegalArgumentException("snapshot length " + len + " outside [0, " + length + "]");
        CudaKvCache c = new CudaKvCache(owner, layers, kvHeads, headDim, Math.max(1, len));
        c.copyFrom(this, len);
        return c;
    }

    @Override public void copyFrom(KvCache source, int len) {
        open();
        if (!(source instanceof CudaKvCache s) || s.owner != owner)
            throw new IllegalArgumentException("cannot copy from " + source + " into a CUDA cache of another decoder");
        s.open();
        if (len < 0 || len > s.length) throw new IllegalArgumentException("copyFrom length " + len + " outside [0, " + s.length + "]");
        if (len > capacity) throw new IllegalArgumentException("copyFrom length " + len + " exceeds this cache's capacity " + capacity);
        if (len > 0) {
            GpuStream st = owner.stream();
            long row = 2L * headDim, bytes = row * len;
            for (int l = 0; l < layers; l++)
                for (int g = 0; g < kvHeads; g++) {
                    st.copyAsync(k[l].slice(g * stride * row, bytes, "K"), s.k[l].slice(g * s.stride * row, bytes, "K"), bytes);
                    st.copyAsync(v[l].slice(g * stride * row, bytes, "V"), s.v[l].slice(g * s.stride * row, bytes, "V"), bytes);
                }
            // no synchronize: the copies are on the decoder's stream, so every later kernel sees them; a source freed
            // afterwards goes through cudaFree, which waits for work in flight
        }
        length = len;
        delta = s.delta;
        version++;
    }

    @Override public boolean isClosed() { return closed; }

    /** A pooled cache handed out again for {@code capacity} positions: empty, open, its buffers and decode graph kept. */
    void reopen(int capacity) {
        if (capacity <= 0 || capacity > stride) throw new IllegalArgumentException("capacity " + capacity + " outside [1, " + stride + "]");
        this.capacity = capacity;
        closed = false;
        length = 0;
        delta = 0;
        version++;
    }

    @Override public void close() {
        if (closed) return;
        owner.dropAhead(this);   // a decode step enqueued ahead for this cache finishes before its buffers go
        closed = true;
        version++;
        length = 0;
        delta = 0;
        if (pooled && owner.recycle(this)) return;   // kept with its buffers and graph for the next sequence
        free();
    }

    /** Frees the device memory and the graph. */
    void free() {
        closed = true;
        if (decodeGraph != null) decodeGraph.close();
        decodeGraph = null;
        // cudaFree (arena close) waits for work in flight, so no kernel still writes into the freed memory
        arena.close();
        length = 0;
    }

    @Override public String toString() {
        return "CudaKvCache[" + length + "/" + capacity + (stride != capacity ? " (of " + stride + ")" : "") + " x " + layers + " layers x " + kvHeads + " kv heads x " + headDim + "]";
    }
}
