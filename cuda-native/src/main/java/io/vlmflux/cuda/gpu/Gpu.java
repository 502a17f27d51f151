package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.global.cudart;

/**
 * Entry point of the CUDA backend: whether a usable GPU exists (never crashes the JVM where no driver or CUDA
 * library is installed; {@link #unavailableReason()} says why) and the device handle.
 *
 * <p>Set {@code -Dvlmflux.cuda.disable=true} to force the CPU backend.
 */
public final class Gpu {
    private static final System.Logger LOG = System.getLogger("vlmflux.cuda");
    private static volatile String reason;  // null until probed; "" when available
    private static final java.util.Map<Integer, GpuDevice> DEVICES = new java.util.concurrent.ConcurrentHashMap<>();

    private Gpu() {}

    /** True when the CUDA libraries load and at least one device answers. */
    public static boolean isAvailable() {
        return probe().isEmpty();
    }

    /** Why no GPU can be used ("" when one can). */
    public static String unavailableReason() {
        return probe();
    }

    /** Device 0, opened once (primary context). Throws {@link IllegalStateException} with the reason if none. */
    public static GpuDevice device() { return device(0); }

    /** How many CUDA devices answer (0 where no GPU is usable). */
    public static int deviceCount() {
        if (!isAvailable()) return 0;
        int[] count = {0};
        Cuda.check(cudart.cudaGetDeviceCount(count), "cudaGetDeviceCount");
        return count[0];
    }

    /**
     * Device {@code ordinal}, opened once (primary context). Throws {@link IllegalStateException} naming the reason
     * when no GPU is usable, {@link IllegalArgumentException} naming the index and the count when it does not exist.
     */
    public static GpuDevice device(int ordinal) {
        GpuDevice d = DEVICES.get(ordinal);
        if (d != null) return d;
        synchronized (Gpu.class) {
            d = DEVICES.get(ordinal);
            if (d != null) return d;
            String r = probe();
            if (!r.isEmpty()) throw new IllegalStateException("no usable CUDA GPU: " + r);
            int n = deviceCount();
            if (ordinal < 0 || ordinal >= n)
                throw new IllegalArgumentException("CUDA device " + ordinal + " does not exist: this machine has " + n + " device(s), 0.." + (n - 1));
            d = new GpuDevice(ordinal);
            DEVICES.put(ordinal, d);
            LOG.log(System.Logger.Level.INFO, "CUDA device {0}: {1}", ordinal, d);
            return d;
        }
    }

    private static String probe() {
        String r = reason;
        if (r != null) return r;
        synchronized (Gpu.class) {
            if (reason == null) reason = doProbe();
            if (!reason.isEmpty()) LOG.log(System.Logger.Level.INFO, "CUDA backend unavailable: {0}", reason);
            return reason;
        }
    }

    private static String doProbe() {
        if (io.vlmflux.cuda.Tuning.process().cudaDisable()) return "disabled by -Dvlmflux.cuda.disable=true";
        try {
            int[] count = {0};
            int rc = cudart.cudaGetDeviceCount(count);
            if (rc != 0) {
                String s;
                try {
                    s = cudart.cudaGetErrorString(rc).getString();
                } catch (Throwable t) {
                    s = "error " + rc;
                }
                return CudaUnavailable.deviceCountFailure(rc, s);
            }
            if (count[0] == 0) return CudaUnavailable.deviceCountFailure(CudaUnavailable.NO_DEVICE, "no CUDA device");
            int[] drv = {0};
            cudart.cudaDriverGetVersion(drv);
            if (drv[0] < 13000) return "CUDA driver " + drv[0] + " is older than CUDA 13.0, which the presets need";
            return "";
        } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
            return CudaUnavailable.loadFailure(e, CudaUnavailable.driverLoads());
        } catch (Throwable e) {
            return "CUDA probe failed: " + e;
        }
    }

    /**
     * Starts ({@code on}) or stops the profiler's collection range ({@code cudaProfilerStart/Stop}), so that Nsight
     * Compute run with {@code --profile-from-start off} profiles only the kernels in between (a few decode steps
     * rather than a model load and a prefill). Called through the foreign-function API: the JavaCPP presets do not
     * bind {@code cuda_profiler_api.h}. Returns false, logging why, where the call is not possible; never throws.
     */
    public static boolean profilerRange(boolean on) {
        String fn = on ? "cudaProfilerStart" : "cudaProfilerStop";
        if (!isAvailable()) return false;
        try {
            java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
            java.lang.foreign.SymbolLookup lib = java.lang.foreign.SymbolLookup.libraryLookup("libcudart.so.13", java.lang.foreign.Arena.global());
            java.lang.foreign.MemorySegment sym = lib.find(fn).orElseThrow(() -> new IllegalStateException(fn + " not in libcudart.so.13"));
            int rc = (int) linker.downcallHandle(sym, java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT)).invokeExact();
            if (rc != 0) LOG.log(System.Logger.Level.WARNING, fn + " returned cudaError " + rc);
            return rc == 0;
        } catch (Throwable t) {
            LOG.log(System.Logger.Level.WARNING, fn + " unavailable: " + t);
            return false;
        }
    }
}
