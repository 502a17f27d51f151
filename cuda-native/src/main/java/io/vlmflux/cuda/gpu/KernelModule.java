package io.vlmflux.cuda.gpu;

import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nvrtc;
import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * The VLMFlux kernel module of one device: the nvcc fatbin resource loaded with cuModuleLoadData, or, where there
 * is no fatbin or it has no code for this device ({@code -Dvlmflux.cuda.nvrtc=true} forces this), the packaged
 * sources compiled by NVRTC for the device's exact arch. Functions are looked up by name once and cached.
 */
public final class KernelModule {
    private static final System.Logger LOG = System.getLogger("vlmflux.cuda");
    private final CUmod_st module;
    private final String origin;
    private final ConcurrentHashMap<String, CUfunc_st> functions = new ConcurrentHashMap<>();

    private KernelModule(CUmod_st module, String origin) {
        this.module = module;
        this.origin = origin;
    }

    static KernelModule load(GpuDevice device) { return load(device, io.vlmflux.cuda.Tuning.process().cudaNvrtc()); }

    /** The module for {@code device}: the fatbin, or NVRTC where it does not fit or {@code forceNvrtc}. */
    static KernelModule load(GpuDevice device, boolean forceNvrtc) {
        String why;
        byte[] fatbin = forceNvrtc ? null : KernelSources.readBytes(KernelSources.FATBIN);
        if (fatbin != null) {
            CUmod_st m = new CUmod_st();
            int rc;
            try (BytePointer img = new BytePointer(fatbin)) {
                rc = cudart.cuModuleLoadData(m, img);
            }
            if (rc == 0) {
                byte[] a = KernelSources.readBytes(KernelSources.FATBIN + ".archs");
                String archs = a == null ? "?" : new String(a).trim();
                KernelModule k = new KernelModule(m, "fatbin [" + archs + "] on sm_" + device.computeCapability());
                LOG.log(System.Logger.Level.INFO, "kernels: {0}", k.origin);
                return k;
            }
            why = "cuModuleLoadData(fatbin) returned CUresult " + rc + " on sm_" + device.computeCapability();
        } else {
            why = forceNvrtc ? "forced by -Dvlmflux.cuda.nvrtc=true"
                    : "no " + KernelSources.FATBIN + " on the classpath (built without nvcc)";
        }
        LOG.log(System.Logger.Level.INFO, "kernels: compiling with NVRTC ({0})", why);
        byte[] cubin = compileNvrtc("sm_" + device.computeCapability());
        CUmod_st m = new CUmod_st();
        try (BytePointer img = new BytePointer(cubin)) {
            Cuda.checkDriver(cudart.cuModuleLoadData(m, img), "cuModuleLoadData(NVRTC cubin)");
        }
        return new KernelModule(m, "NVRTC sm_" + device.computeCapability() + " (" + why + ")");
    }

    /** Compiles the packaged sources to a cubin for {@code arch} (e.g. "sm_90"). Needs only libnvrtc, no GPU. */
    public static byte[] compileNvrtc(String arch) {
        List<String> inc = KernelSources.INCLUDED;
        String[] names = inc.toArray(String[]::new);
        String[] texts = inc.stream().map(KernelSources::read).toArray(String[]::new);
        _nvrtcProgram prog = new _nvrtcProgram();
        try (BytePointer src = new BytePointer(KernelSources.read(KernelSources.MAIN));
             BytePointer srcName = new BytePointer(KernelSources.MAIN);
             PointerPointer<BytePointer> hdr = new PointerPointer<>(texts);
             PointerPointer<BytePointer> hdrNames = new PointerPointer<>(names)) {
            Cuda.checkNvrtc(nvrtc.nvrtcCreateProgram(prog, src, srcName, names.length, hdr, hdrNames), "nvrtcCreateProgram");
        }
        try {
            String[] opts = {"--gpu-architecture=" + arch, "-std=c++17", "-default-device"};
            int rc;
            try (PointerPointer<BytePointer> o = new PointerPointer<>(opts)) {
                rc = nvrtc.nvrtcCompileProgram(prog, opts.length, o);
            }
            if (rc != 0) {
                throw new CudaException("nvrtcCompileProgram(" + KernelSources.MAIN + ", " + arch + ") failed: "
                        + nvrtc.nvrtcGetErrorString(rc).getString() + "\n" + log(prog), rc);
            }
            try (SizeTPointer size = new SizeTPointer(1)) {
                Cuda.checkNvrtc(nvrtc.nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
                byte[] out = new byte[(int) size.get()];
                Cuda.checkNvrtc(nvrtc.nvrtcGetCUBIN(prog, out), "nvrtcGetCUBIN");
                return out;
            }
        } finally {
            nvrtc.nvrtcDestroyProgram(prog);
        }
    }

    private static String log(_nvrtcProgram prog) {
        try (SizeTPointer size = new SizeTPointer(1)) {
            if (nvrtc.nvrtcGetProgramLogSize(prog, size) != 0) return "";
            byte[] b = new byte[(int) size.get()];
            nvrtc.nvrtcGetProgramLog(prog, b);
            return new String(b).trim();
        }
    }

    /** The kernel {@code name} (an extern "C" __global__ function of src/main/cuda). */
    CUfunc_st function(String name) {
        return functions.computeIfAbsent(name, n -> {
            CUfunc_st f = new CUfunc_st();
            Cuda.checkDriver(cudart.cuModuleGetFunction(f, module, n), "cuModuleGetFunction(" + n + ")");
            return f;
        });
    }

    /** Launches {@code name} on {@code stream}; errors name the kernel and the launch shape. */
    void launch(String name, int gx, int gy, int gz, int block, int sharedBytes, GpuStream stream, LaunchArgs args) {
        if (gx <= 0 || gy <= 0 || gz <= 0) return;  // empty problem: nothing to do
        int rc = cudart.cuLaunchKernel(function(name), gx, gy, gz, block, 1, 1, sharedBytes, stream.handle(),
                args.params(), null);
        if (rc != 0) Cuda.checkDriver(rc, "cuLaunchKernel(" + name + ", grid " + gx + "x" + gy + "x" + gz + ", block " + block + ")");
    }

    /** Where the code came from: "fatbin [...] on sm_90" or "NVRTC sm_xx (reason)". */
    public String origin() {
        return origin;
    }
}
