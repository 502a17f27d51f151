package io.vlmflux.cuda.gpu;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The reason for an unusable CUDA backend names the actual cause; only a library-path problem blames LD_LIBRARY_PATH. */
class CudaUnavailableTest {

    /** On a machine without an NVIDIA driver (no loadable libcuda.so.1) the probe says so, not "set LD_LIBRARY_PATH". */
    @Test void theRealProbeWithoutADriverBlamesTheMissingDriver() {
        Assumptions.assumeFalse(CudaUnavailable.driverLoads(), "this machine has libcuda.so.1");
        Assumptions.assumeFalse(Boolean.getBoolean("vlmflux.cuda.disable"));
        String reason = Gpu.unavailableReason();
        assertTrue(reason.startsWith("no NVIDIA driver: libcuda.so.1 "), reason);
        assertFalse(reason.contains("LD_LIBRARY_PATH"), reason);
    }

    @Test void loadFailuresAreToldApartByTheMissingLibrary() {
        UnsatisfiedLinkError noDriver = linkError("/root/.javacpp/cache/cuda.jar/org/bytedeco/cuda/linux-x86_64/libjnicudart.so: "
                + "libcuda.so.1: cannot open shared object file: No such file or directory");
        String r = CudaUnavailable.loadFailure(noDriver, true);
        assertTrue(r.startsWith("no NVIDIA driver: libcuda.so.1 (the driver's library) is not installed"), r);
        assertFalse(r.contains("LD_LIBRARY_PATH"), r);

        UnsatisfiedLinkError noRuntime = linkError("/tmp/libjnicublas.so: libcublasLt.so.13: cannot open shared object file: No such file or directory");
        r = CudaUnavailable.loadFailure(noRuntime, true);
        assertTrue(r.startsWith("the CUDA library libcublasLt.so.13 was not found") && r.contains("LD_LIBRARY_PATH"), r);

        // a second attempt in the same JVM: no file named; the driver check decides
        NoClassDefFoundError again = new NoClassDefFoundError("Could not initialize class org.bytedeco.cuda.global.cudart");
        r = CudaUnavailable.loadFailure(again, false);
        assertTrue(r.startsWith("no NVIDIA driver: libcuda.so.1 "), r);
        r = CudaUnavailable.loadFailure(new NoClassDefFoundError("org/bytedeco/cuda/global/cudart"), true);
        assertTrue(r.startsWith("CUDA libraries did not load (NoClassDefFoundError: org/bytedeco/cuda/global/cudart)"), r);
        assertFalse(r.contains("LD_LIBRARY_PATH"), r);
    }

    @Test void deviceCountErrorsNameTheirCause() {
        assertTrue(CudaUnavailable.deviceCountFailure(100, "no CUDA-capable device is detected").startsWith("no CUDA device: the NVIDIA driver is installed but sees no GPU"));
        assertTrue(CudaUnavailable.deviceCountFailure(35, "CUDA driver version is insufficient for CUDA runtime version").startsWith("the NVIDIA driver is older"));
        assertTrue(CudaUnavailable.deviceCountFailure(34, "CUDA driver is a stub library").contains("stubs folder from LD_LIBRARY_PATH"));
        assertEquals("cudaGetDeviceCount failed: initialization error (cudaError 3)", CudaUnavailable.deviceCountFailure(3, "initialization error"));
    }

    /** What JavaCPP's loader throws: "no jnicudart in java.library.path" caused by the dlopen failure. */
    private static UnsatisfiedLinkError linkError(String dlopen) {
        UnsatisfiedLinkError top = new UnsatisfiedLinkError("no jnicudart in java.library.path: /usr/java/packages/lib:/usr/lib64:/lib64:/lib:/usr/lib");
        top.initCause(new UnsatisfiedLinkError(dlopen));
        return top;
    }
}
