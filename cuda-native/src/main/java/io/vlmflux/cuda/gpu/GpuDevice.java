package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * One CUDA device (its primary context). Owns the kernel module, loaded once on first use. Driver-API calls
 * need the context current on the calling thread: every entry point calls {@link #makeCurrent()}.
 */
public final class GpuDevice {
    private final int ordinal;
    private final String name;
    private final int ccMajor, ccMinor, smCount, l2Bytes;
    private final ThreadLocal<Boolean> current = ThreadLocal.withInitial(() -> false);
    private volatile KernelModule kernels;

    GpuDevice(int ordinal) {
        this.ordinal = ordinal;
        Cuda.check(cudart.cudaSetDevice(ordinal), "cudaSetDevice(" + ordinal + ")");
        Cuda.check(cudart.cudaFree(null), "cudaFree(null) (context creation)");
        current.set(true);
        byte[] nb = new byte[256];
        Cuda.checkDriver(cudart.cuDeviceGetName(nb, nb.length, ordinal), "cuDeviceGetName");
        int len = 0;
        while (len < nb.length && nb[len] != 0) len++;
        this.name = new String(nb, 0, len, java.nio.charset.StandardCharsets.US_ASCII);
        this.ccMajor = attr(cudart.cudaDevAttrComputeCapabilityMajor, "computeCapabilityMajor");
        this.ccMinor = attr(cudart.cudaDevAttrComputeCapabilityMinor, "computeCapabilityMinor");
        this.smCount = attr(cudart.cudaDevAttrMultiProcessorCount, "multiProcessorCount");
        this.l2Bytes = attr(cudart.cudaDevAttrL2CacheSize, "l2CacheSize");
    }

    private int attr(int a, String what) {
        int[] v = {0};
        Cuda.check(cudart.cudaDeviceGetAttribute(v, a, ordinal), "cudaDeviceGetAttribute(" + what + ")");
        return v[0];
    }

    /** Makes this device's primary context current on the calling thread (cheap after the first call). */
    public void makeCurrent() {
        if (!current.get()) {
            Cuda.check(cudart.cudaSetDevice(ordinal), "cudaSetDevice(" + ordinal + ")");
            current.set(true);
        }
    }

    public int ordinal() { return ordinal; }
    public String name() { return name; }
    /** Compute capability as major*10+minor, e.g. 90 for Hopper. */
    public int computeCapability() { return ccMajor * 10 + ccMinor; }
    public int multiProcessorCount() { return smCount; }
    /** L2 cache size in bytes (50 MiB on an H100, 60 MiB on an H200). */
    public int l2CacheBytes() { return l2Bytes; }

    /** {free, total} device memory in bytes. */
    public long[] memoryInfo() {
        makeCurrent();
        try (SizeTPointer free = new SizeTPointer(1); SizeTPointer total = new SizeTPointer(1)) {
            Cuda.check(cudart.cudaMemGetInfo(free, total), "cudaMemGetInfo");
            return new long[] {free.get(), total.get()};
        }
    }

    /** The VLMFlux kernels (fatbin, or NVRTC where the fatbin lacks this device's arch), loaded once. */
    public KernelModule kernels() {
        KernelModule k = kernels;
        if (k != null) return k;
        synchronized (this) {
            if (kernels == null) {
                makeCurrent();
                kernels = KernelModule.load(this);
            }
            return kernels;
        }
    }

    public GpuStream newStream() {
        makeCurrent();
        return new GpuStream(this);
    }

    /** One device allocation of {@code capacity} bytes, sub-allocated with accounting. */
    public DeviceArena newArena(String name, long capacity) {
        makeCurrent();
        return new DeviceArena(name, capacity);
    }

    public void synchronize() {
        makeCurrent();
        Cuda.check(cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    }

    @Override
    public String toString() {
        return name + " (sm_" + computeCapability() + ", " + smCount + " SMs)";
    }
}
