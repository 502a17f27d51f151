package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

/**
 * A non-blocking CUDA stream. All work for one decoder runs on one stream, from one thread (the GPU scheduler).
 * The array copy helpers are synchronous (for uploads and tests); the pinned-buffer ones are async.
 */
public final class GpuStream implements AutoCloseable {
    private final GpuDevice device;
    private final CUstream_st handle = new CUstream_st();
    private boolean closed;

    GpuStream(GpuDevice device) {
        this.device = device;
        Cuda.check(cudart.cudaStreamCreateWithFlags(handle, cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    }

    public GpuDevice device() { return device; }

    CUstream_st handle() { return handle; }

    public void synchronize() {
        Cuda.check(cudart.cudaStreamSynchronize(handle), "cudaStreamSynchronize");
    }

    /** Whether this stream is being captured into a graph (work enqueued now is recorded, not run). */
    public boolean capturing() {
        int[] status = {0};
        Cuda.check(cudart.cudaStreamIsCapturing(handle, status), "cudaStreamIsCapturing");
        return status[0] != cudart.cudaStreamCaptureStatusNone;
    }

    /** Work enqueued on this stream from now on starts after the point {@code event} last recorded (none: at once). */
    public void waitFor(GpuEvent event) {
        Cuda.check(cudart.cudaStreamWaitEvent(handle, event.handle(), 0), "cudaStreamWaitEvent");
    }

    // ---- host -> device (synchronous) ----
    public void upload(DeviceBuffer dst, float[] src) {
        try (FloatPointer p = new FloatPointer(src)) { copyIn(dst, p, 4L * src.length); }
    }

    public void upload(DeviceBuffer dst, int[] src) {
        try (IntPointer p = new IntPointer(src)) { copyIn(dst, p, 4L * src.length); }
    }

    public void upload(DeviceBuffer dst, long[] src) {
        try (LongPointer p = new LongPointer(src)) { copyIn(dst, p, 8L * src.length); }
    }

    /** bf16 / fp16 bit patterns. */
    public void upload(DeviceBuffer dst, short[] src) {
        try (ShortPointer p = new ShortPointer(src)) { copyIn(dst, p, 2L * src.length); }
    }

    public void upload(DeviceBuffer dst, byte[] src) {
        try (BytePointer p = new BytePointer(src)) { copyIn(dst, p, src.length); }
    }

    /** Copies {@code bytes} from a raw host address (e.g. a mapped safetensors segment) to {@code dst}. */
    public void uploadFromAddress(DeviceBuffer dst, long hostAddress, long bytes) {
        copyIn(dst, Cuda.ptr(hostAddress), bytes);
    }

    private void copyIn(DeviceBuffer dst, Pointer src, long bytes) {
        dst.require(bytes, "upload", bytes + " bytes");
        Cuda.check(cudart.cudaMemcpyAsync(dst.pointer(), src, bytes, cudart.cudaMemcpyHostToDevice, handle),
                "cudaMemcpyAsync(H2D '" + dst.name() + "', " + bytes + " bytes)");
        synchronize();
    }

    // ---- device -> host (synchronous) ----
    public float[] downloadFloats(DeviceBuffer src, int count) {
        try (FloatPointer p = new FloatPointer(count)) {
            copyOut(p, src, 4L * count);
            float[] r = new float[count];
            p.get(r);
            return r;
        }
    }

    public int[] downloadInts(DeviceBuffer src, int count) {
        try (IntPointer p = new IntPointer(count)) {
            copyOut(p, src, 4L * count);
            int[] r = new int[count];
            p.get(r);
            return r;
        }
    }

    public long[] downloadLongs(DeviceBuffer src, int count) {
        try (LongPointer p = new LongPointer(count)) {
            copyOut(p, src, 8L * count);
            long[] r = new long[count];
            p.get(r);
            return r;
        }
    }

    public short[] downloadShorts(DeviceBuffer src, int count) {
        try (ShortPointer p = new ShortPointer(count)) {
            copyOut(p, src, 2L * count);
            short[] r = new short[count];
            p.get(r);
            return r;
        }
    }

    private void copyOut(Pointer dst, DeviceBuffer src, long bytes) {
        src.require(bytes, "download", bytes + " bytes");
        Cuda.check(cudart.cudaMemcpyAsync(dst, src.pointer(), bytes, cudart.cudaMemcpyDeviceToHost, handle),
                "cudaMemcpyAsync(D2H '" + src.name() + "', " + bytes + " bytes)");
        synchronize();
    }

    // ---- async (pinned host memory; graph-capturable) ----
    public void copyAsync(PinnedBuffer dst, long dstOffset, DeviceBuffer src, long bytes) {
        src.require(bytes, "copyAsync", bytes + " bytes");
        if (dstOffset < 0 || dstOffset + bytes > dst.bytes()) throw new IllegalArgumentException("pinned range out of bounds");
        Cuda.check(cudart.cudaMemcpyAsync(Cuda.ptr(dst.address() + dstOffset), src.pointer(), bytes,
                cudart.cudaMemcpyDeviceToHost, handle), "cudaMemcpyAsync(D2H pinned '" + src.name() + "')");
    }

    public void copyAsync(DeviceBuffer dst, PinnedBuffer src, long srcOffset, long bytes) {
        dst.require(bytes, "copyAsync", bytes + " bytes");
        if (srcOffset < 0 || srcOffset + bytes > src.bytes()) throw new IllegalArgumentException("pinned range out of bounds");
        Cuda.check(cudart.cudaMemcpyAsync(dst.pointer(), Cuda.ptr(src.address() + srcOffset), bytes,
                cudart.cudaMemcpyHostToDevice, handle), "cudaMemcpyAsync(H2D pinned '" + dst.name() + "')");
    }

    public void copyAsync(DeviceBuffer dst, DeviceBuffer src, long bytes) {
        dst.require(bytes, "copyAsync", bytes + " bytes");
        src.require(bytes, "copyAsync", bytes + " bytes");
        Cuda.check(cudart.cudaMemcpyAsync(dst.pointer(), src.pointer(), bytes, cudart.cudaMemcpyDeviceToDevice, handle),
                "cudaMemcpyAsync(D2D '" + src.name() + "' -> '" + dst.name() + "')");
    }

    public void memsetAsync(DeviceBuffer dst, int value, long bytes) {
        dst.require(bytes, "memset", bytes + " bytes");
        Cuda.check(cudart.cudaMemsetAsync(dst.pointer(), value, bytes, handle), "cudaMemsetAsync('" + dst.name() + "')");
    }

    /** Milliseconds the work enqueued by {@code body} took on this stream (events around it; synchronizes). */
    public float time(Runnable body) {
        CUevent_st a = new CUevent_st(), b = new CUevent_st();
        Cuda.check(cudart.cudaEventCreate(a), "cudaEventCreate");
        Cuda.check(cudart.cudaEventCreate(b), "cudaEventCreate");
        try {
            Cuda.check(cudart.cudaEventRecord(a, handle), "cudaEventRecord");
            body.run();
            Cuda.check(cudart.cudaEventRecord(b, handle), "cudaEventRecord");
            Cuda.check(cudart.cudaEventSynchronize(b), "cudaEventSynchronize");
            float[] ms = {0};
            Cuda.check(cudart.cudaEventElapsedTime(ms, a, b), "cudaEventElapsedTime");
            return ms[0];
        } finally {
            cudart.cudaEventDestroy(a);
            cudart.cudaEventDestroy(b);
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Cuda.check(cudart.cudaStreamDestroy(handle), "cudaStreamDestroy");
    }
}
