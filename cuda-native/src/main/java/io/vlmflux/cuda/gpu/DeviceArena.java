package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * One cudaMalloc'd block, handed out as 256-byte aligned {@link DeviceBuffer}s by a bump pointer. Keeps the
 * accounting the decoder reports (bytes in use, peak); {@link #mark()}/{@link #reset(long)} free scratch in LIFO
 * order. Not thread-safe: allocate from the thread that owns the GPU work. {@link #close()} frees the block
 * (idempotent); buffers handed out are invalid afterwards.
 */
public final class DeviceArena implements AutoCloseable {
    private static final long ALIGN = 256;
    private final String name;
    private final long base;
    private final long capacity;
    private long top;
    private long peak;
    private boolean closed;

    DeviceArena(String name, long capacity) {
        if (capacity <= 0) throw new IllegalArgumentException("arena '" + name + "': capacity " + capacity);
        this.name = name;
        this.capacity = capacity;
        try (PointerPointer<Pointer> pp = new PointerPointer<>(1)) {
            Cuda.check(cudart.cudaMalloc(pp, capacity), "cudaMalloc(" + capacity + " bytes) for arena '" + name + "'");
            this.base = pp.get(0).address();
        }
    }

    /** Allocates {@code bytes} (rounded up to 256); the name appears in errors. */
    public DeviceBuffer alloc(String tensor, long bytes) {
        if (closed) throw new IllegalStateException("arena '" + name + "' is closed (allocating '" + tensor + "')");
        if (bytes <= 0) throw new IllegalArgumentException("arena '" + name + "': '" + tensor + "' size " + bytes);
        long size = (bytes + ALIGN - 1) / ALIGN * ALIGN;
        if (top + size > capacity)
            throw new CudaException("arena '" + name + "' out of space for '" + tensor + "' (" + bytes + " bytes): "
                    + top + " of " + capacity + " bytes in use", 2);
        DeviceBuffer b = new DeviceBuffer(tensor, base + top, bytes);
        top += size;
        peak = Math.max(peak, top);
        return b;
    }

    /** Current top, to pass to {@link #reset(long)}. */
    public long mark() {
        return top;
    }

    /** Frees everything allocated after {@code mark}. */
    public void reset(long mark) {
        if (mark < 0 || mark > top) throw new IllegalArgumentException("arena '" + name + "': bad mark " + mark);
        top = mark;
    }

    public long bytesInUse() { return top; }
    public long peakBytes() { return peak; }
    public long capacity() { return capacity; }
    public String name() { return name; }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Cuda.check(cudart.cudaFree(Cuda.ptr(base)), "cudaFree(arena '" + name + "')");
    }

    @Override
    public String toString() {
        return "DeviceArena[" + name + ": " + top + " in use, peak " + peak + ", capacity " + capacity + "]";
    }
}
