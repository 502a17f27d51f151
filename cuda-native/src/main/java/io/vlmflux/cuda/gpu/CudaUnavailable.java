package io.vlmflux.cuda.gpu;

/**
 * Turns what failed while probing CUDA into a reason that names the actual cause: no NVIDIA driver (libcuda is
 * missing), a CUDA runtime library that is not on the library path, a stub driver, a driver older than the CUDA 13
 * runtime, or a driver that sees no device. Only the library-path case suggests {@code LD_LIBRARY_PATH}.
 */
final class CudaUnavailable {
    /** cudaError_t values the probe can meet (driver_types.h). */
    static final int INSUFFICIENT_DRIVER = 35, NO_DEVICE = 100, STUB_LIBRARY = 34;

    private CudaUnavailable() {}

    static final String DRIVER_LIBRARY = "libcuda.so.1";

    /**
     * The JNI bindings or a library they link did not load. The cause chain names the missing file when this was the
     * first attempt; a later attempt only says "Could not initialize class", so {@code driverLoads} (whether
     * {@value #DRIVER_LIBRARY} itself can be loaded, {@link #driverLoads()}) tells a missing driver apart then.
     */
    static String loadFailure(Throwable e, boolean driverLoads) {
        String detail = null;
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            String m = c.getMessage();
            if (m != null && m.contains("cannot open shared object file")) { detail = firstLine(m); break; }
        }
        String head = e.getClass().getSimpleName() + ": " + firstLine(e.getMessage());
        String missing = detail != null ? missingLibrary(detail) : driverLoads ? null : DRIVER_LIBRARY;
        if (missing != null && missing.startsWith("libcuda.so"))
            return "no NVIDIA driver: " + missing + " (the driver's library) is not installed on this machine; install an NVIDIA driver"
                    + " that supports CUDA 13 on a machine with an NVIDIA GPU (" + (detail != null ? detail : head) + ")";
        if (missing == null)
            return "CUDA libraries did not load (" + head + "); check that the JavaCPP cuda platform jar for this machine is on the class path";
        return "the CUDA library " + missing + " was not found; install CUDA 13 and add its library folder (e.g. /usr/local/cuda/lib64)"
                + " to LD_LIBRARY_PATH (" + detail + ")";
    }

    /** Whether the NVIDIA driver's library can be loaded (dlopen) in this process. */
    static boolean driverLoads() {
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.SymbolLookup.libraryLookup(DRIVER_LIBRARY, a);
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** {@code cudaGetDeviceCount} returned {@code rc} (described by the runtime as {@code text}). */
    static String deviceCountFailure(int rc, String text) {
        String what = "cudaGetDeviceCount failed: " + text + " (cudaError " + rc + ")";
        return switch (rc) {
            case NO_DEVICE -> "no CUDA device: the NVIDIA driver is installed but sees no GPU (" + what + ")";
            case INSUFFICIENT_DRIVER -> "the NVIDIA driver is older than the CUDA 13 runtime; update the driver (" + what + ")";
            case STUB_LIBRARY -> "libcuda.so is CUDA's stub, not a real driver: remove the stubs folder from LD_LIBRARY_PATH (" + what + ")";
            default -> what;
        };
    }

    /** {@code libcuda.so.1} from {@code .../libjnicudart.so: libcuda.so.1: cannot open shared object file: ...}. */
    static String missingLibrary(String detail) {
        int end = detail.indexOf(": cannot open shared object file");
        String s = end < 0 ? detail : detail.substring(0, end);
        int start = s.lastIndexOf(": ");
        s = start < 0 ? s : s.substring(start + 2);
        int slash = s.lastIndexOf('/');
        return slash < 0 ? s : s.substring(slash + 1);
    }

    static String firstLine(String s) {
        if (s == null) return "";
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }
}
