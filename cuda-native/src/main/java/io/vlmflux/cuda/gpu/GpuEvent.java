package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.global.cudart;

/**
 * A CUDA event without timing, for ordering work between two streams: {@link #record} marks a point of one stream,
 * {@link GpuStream#waitFor} makes another stream's later work wait for it. Waiting for an event that was never recorded
 * waits for nothing (CUDA's rule), so a first use needs no special case. Not thread-safe: one owner.
 */
public final class GpuEvent implements AutoCloseable {
    private final CUevent_st handle = new CUevent_st();
    private boolean closed;

    public GpuEvent() {
        Cuda.check(cudart.cudaEventCreateWithFlags(handle, cudart.cudaEventDisableTiming), "cudaEventCreateWithFlags");
    }

    CUevent_st handle() { return handle; }

    /** Marks the point after the work enqueued on {@code stream} so far. */
    public void record(GpuStream stream) {
        Cuda.check(cudart.cudaEventRecord(handle, stream.handle()), "cudaEventRecord");
    }

    /** Blocks until the work before the last {@link #record} has finished (at once where it never was recorded). */
    public void synchronize() {
        Cuda.check(cudart.cudaEventSynchronize(handle), "cudaEventSynchronize");
    }

    @Override public void close() {
        if (closed) return;
        closed = true;
        cudart.cudaEventDestroy(handle);
    }
}
