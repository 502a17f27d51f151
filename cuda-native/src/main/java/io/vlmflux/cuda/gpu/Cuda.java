package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nvrtc;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/** Status checks that turn a return code into a {@link CudaException} naming the call, and raw-pointer helpers. */
final class Cuda {
    private Cuda() {}

    /** Runtime API (cuda*) status. */
    static void check(int rc, String call) {
        if (rc != 0) {
            String s;
            try {
                BytePointer p = cudart.cudaGetErrorString(rc);
                s = p == null ? "unknown" : p.getString();
            } catch (Throwable t) {
                s = "unknown";
            }
            throw new CudaException(call + " failed: " + s + " (cudaError " + rc + ")", rc);
        }
    }

    /** Driver API (cu*) status. */
    static void checkDriver(int rc, String call) {
        if (rc != 0) {
            String s = "unknown";
            try (PointerPointer<BytePointer> pp = new PointerPointer<>(1)) {
                if (cudart.cuGetErrorString(rc, pp) == 0 && pp.get(0) != null) s = new BytePointer(pp.get(0)).getString();
            } catch (Throwable t) {
                // keep "unknown"
            }
            throw new CudaException(call + " failed: " + s + " (CUresult " + rc + ")", rc);
        }
    }

    static void checkBlas(int rc, String call) {
        if (rc != 0) {
            String s;
            try {
                BytePointer p = cublas.cublasGetStatusString(rc);
                s = p == null ? "unknown" : p.getString();
            } catch (Throwable t) {
                s = "unknown";
            }
            throw new CudaException(call + " failed: " + s + " (cublasStatus " + rc + ")", rc);
        }
    }

    static void checkNvrtc(int rc, String call) {
        if (rc != 0) {
            String s;
            try {
                BytePointer p = nvrtc.nvrtcGetErrorString(rc);
                s = p == null ? "unknown" : p.getString();
            } catch (Throwable t) {
                s = "unknown";
            }
            throw new CudaException(call + " failed: " + s + " (nvrtcResult " + rc + ")", rc);
        }
    }

    /** A JavaCPP pointer to a raw address (device or host); position 0, no deallocator. */
    static Pointer ptr(long address) {
        return new RawPointer(address);
    }

    private static final class RawPointer extends Pointer {
        RawPointer(long a) {
            this.address = a;
        }
    }
}
