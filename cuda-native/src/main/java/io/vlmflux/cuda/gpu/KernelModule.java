package io.vlmflux.cuda.gpu;

import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUlaunchAttribute;
import org.bytedeco.cuda.cudart.CUlaunchConfig;
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
    private final boolean pdlCapable;
    private final ConcurrentHashMap<String, CUfunc_st> functions = new ConcurrentHashMap<>();

    /**
     * The kernels whose first statement is {@code VF_PDL_PROLOGUE()} (common.cuh; KernelSourcesTest checks every name):
     * the only ones {@link #launch(String, int, int, int, int, int, GpuStream, LaunchArgs, boolean)} may start with
     * programmatic stream serialization. Names ending in '*' are prefixes.
     */
    public static final java.util.Set<String> PDL_READY = java.util.Set.of("vf_embed_gather", "vf_gemv_bf16", "vf_gemv_bf16_fused",
            "vf_gemv_bf16_splitk", "vf_gemv_bf16_pf", "vf_gemv_bf16_fused_pf", "vf_gemv_bf16_splitk_pf", "vf_rope_qkv", "vf_attn_decode_e*", "vf_attn_decode_v_h64", "vf_attn_decode_v_h128", "vf_attn_decode_vf_h*", "vf_attn_decode_vr_h*",
            "vf_attn_decode_combine", "vf_rmsnorm", "vf_silu_mul", "vf_add_f32", "vf_argmax_partial", "vf_argmax_final",
            "vf_mask_logits", "vf_sample_max", "vf_sample_hist", "vf_sample_compact", "vf_sample_final", "vf_int4_gemv_mma*",
            "vf_int4_gemv_ring*");

    /** Whether kernel {@code name} is in {@link #PDL_READY}. */
    public static boolean pdlReady(String name) {
        if (PDL_READY.contains(name)) return true;
        for (String p : PDL_READY) if (p.endsWith("*") && name.startsWith(p.substring(0, p.length() - 1))) return true;
        return false;
    }

    private KernelModule(CUmod_st module, String origin, boolean pdlCapable) {
        this.module = module;
        this.origin = origin;
        this.pdlCapable = pdlCapable;
    }

    /**
     * Whether this module's code has the PDL prologue for this device: native code for sm_90 or later (the fatbin's
     * sm_90 / sm_110 images, or NVRTC for the exact arch). PTX JIT-compiled from an older target would lack it.
     */
    public boolean pdlCapable() { return pdlCapable; }

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
                int cc = device.computeCapability();
                boolean native90 = cc >= 90 && java.util.Arrays.asList(archs.split("\\s+")).contains("sm_" + cc);
                KernelModule k = new KernelModule(m, "fatbin [" + archs + "] on sm_" + cc, native90);
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
        return new KernelModule(m, "NVRTC sm_" + device.computeCapability() + " (" + why + ")", device.computeCapability() >= 90);
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
        launch(name, gx, gy, gz, block, sharedBytes, stream, args, false);
    }

    /**
     * A launch config and its one attribute (programmatic stream serialization), reused per thread. The record keeps
     * the attribute reachable: the config holds only its native address.
     */
    private record PdlConfig(CUlaunchAttribute attr, CUlaunchConfig config) {
        static PdlConfig create() {
            CUlaunchAttribute attr = new CUlaunchAttribute(1);
            attr.id(cudart.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
            attr.value().programmaticStreamSerializationAllowed(1);
            CUlaunchConfig c = new CUlaunchConfig();
            c.attrs(attr).numAttrs(1);
            return new PdlConfig(attr, c);
        }
    }

    private static final ThreadLocal<PdlConfig> PDL_CONFIG = ThreadLocal.withInitial(PdlConfig::create);

    /**
     * {@link #launch(String, int, int, int, int, int, GpuStream, LaunchArgs)}; with {@code pdl} (and a PDL-capable module and
     * a {@link #pdlReady} kernel) through {@code cuLaunchKernelEx} with programmatic stream serialization, so that the
     * kernel's blocks are scheduled while the previous kernel finishes and wait in its prologue (also inside a captured
     * graph). Otherwise the ordinary launch.
     */
    void launch(String name, int gx, int gy, int gz, int block, int sharedBytes, GpuStream stream, LaunchArgs args, boolean pdl) {
        if (gx <= 0 || gy <= 0 || gz <= 0) return;  // empty problem: nothing to do
        int rc;
        if (pdl && pdlCapable && pdlReady(name)) {
            CUlaunchConfig c = PDL_CONFIG.get().config();
            c.gridDimX(gx).gridDimY(gy).gridDimZ(gz).blockDimX(block).blockDimY(1).blockDimZ(1).sharedMemBytes(sharedBytes).hStream(stream.handle());
            rc = cudart.cuLaunchKernelEx(c, function(name), args.params(), null);
            if (rc != 0) Cuda.checkDriver(rc, "cuLaunchKernelEx(" + name + ", PDL, grid " + gx + "x" + gy + "x" + gz + ", block " + block + ")");
            return;
        }
        rc = cudart.cuLaunchKernel(function(name), gx, gy, gz, block, 1, 1, sharedBytes, stream.handle(), args.params(), null);
        if (rc != 0) Cuda.checkDriver(rc, "cuLaunchKernel(" + name + ", grid " + gx + "x" + gy + "x" + gz + ", block " + block + ")");
    }

    /**
     * Launches {@code name} cooperatively (a one-dimensional grid every block of which is resident at once, as kernels
     * with grid-wide barriers need: the driver refuses a grid that cannot be, instead of letting it hang).
     */
    void launchCooperative(String name, int gx, int block, int sharedBytes, GpuStream stream, LaunchArgs args) {
        int rc = cudart.cuLaunchCooperativeKernel(function(name), gx, 1, 1, block, 1, 1, sharedBytes, stream.handle(), args.params());
        if (rc != 0) Cuda.checkDriver(rc, "cuLaunchCooperativeKernel(" + name + ", grid " + gx + ", block " + block + ")");
    }

    /**
     * Lets launches of {@code name} use up to {@code bytes} of dynamic shared memory (above the default 48 KB; once per
     * kernel, before any launch that needs it and outside graph capture).
     */
    void maxDynamicShared(String name, int bytes) {
        Cuda.checkDriver(cudart.cuFuncSetAttribute(function(name), cudart.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
                "cuFuncSetAttribute(" + name + ", max dynamic shared memory " + bytes + " bytes)");
    }

    /** Blocks of {@code name} one SM holds at once with this block size and dynamic shared memory. */
    int activeBlocksPerSm(String name, int block, int dynamicShared) {
        int[] n = {0};
        Cuda.checkDriver(cudart.cuOccupancyMaxActiveBlocksPerMultiprocessor(n, function(name), block, dynamicShared),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor(" + name + ")");
        return n[0];
    }

    /** Where the code came from: "fatbin [...] on sm_90" or "NVRTC sm_xx (reason)". */
    public String origin() {
        return origin;
    }
}
