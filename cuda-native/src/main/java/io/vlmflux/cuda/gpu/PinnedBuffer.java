package io.vlmflux.cuda.gpu;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/** Page-locked host memory (cudaMallocHost) for async copies; close() frees it (idempotent). */
public final class PinnedBuffer implements AutoCloseable {
    private final long address;
    private final long bytes;
    private final ByteBuffer buffer;
    private boolean closed;

    public PinnedBuffer(long bytes) {
        if (bytes <= 0 || bytes > Integer.MAX_VALUE) throw new IllegalArgumentException("pinned buffer size " + bytes);
        try (PointerPointer<Pointer> pp = new PointerPointer<>(1)) {
            Cuda.check(cudart.cudaMallocHost(pp, bytes), "cudaMallocHost(" + bytes + " bytes)");
            this.address = pp.get(0).address();
        }
        this.bytes = bytes;
        this.buffer = new BytePointer(Cuda.ptr(address)).capacity(bytes).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Little-endian view of the whole buffer (absolute get/put; valid until close). */
    public ByteBuffer buffer() {
        if (closed) throw new IllegalStateException("pinned buffer is closed");
        return buffer;
    }

    public long address() { return address; }
    public long bytes() { return bytes; }

    Pointer pointer() { return Cuda.ptr(address); }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Cuda.check(cudart.cudaFreeHost(Cuda.ptr(address)), "cudaFreeHost");
    }
}
