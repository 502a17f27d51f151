package io.vlmflux.cuda.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** Runs everywhere (no GPU needed): packaging of the kernels, the availability probe, NVRTC where libnvrtc exists. */
class KernelSourcesTest {
    @Test
    void everyKernelFileIsListedAndPackaged() throws IOException {
        Path dir = Path.of(System.getProperty("vlmflux.root", "."), "cuda-native/src/main/cuda");
        Set<String> onDisk = new TreeSet<>();
        try (Stream<Path> s = Files.list(dir)) {
            s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cu") || n.endsWith(".cuh")).forEach(onDisk::add);
        }
        Set<String> listed = new TreeSet<>(KernelSources.INCLUDED);
        listed.add(KernelSources.MAIN);
        assertEquals(onDisk, listed, "KernelSources lists exactly the files of src/main/cuda");
        String main = KernelSources.read(KernelSources.MAIN);
        for (String f : KernelSources.INCLUDED) {
            assertTrue(main.contains("#include \"" + f + "\""), KernelSources.MAIN + " includes " + f);
            assertNotNull(KernelSources.readBytes(f), f + " packaged");
        }
    }

    /**
     * Programmatic dependent launch is safe only for kernels that wait for the previous grid before touching memory:
     * every kernel of {@link KernelModule#PDL_READY} must exist and open with {@code VF_PDL_PROLOGUE()} (or
     * {@code VF_PDL_PREFETCH_PROLOGUE(...)}, whose argument may only prefetch weights into L2 before the wait).
     */
    @Test
    void everyPdlReadyKernelOpensWithThePrologue() {
        StringBuilder all = new StringBuilder();
        for (String f : KernelSources.INCLUDED) all.append(KernelSources.read(f)).append('\n');
        String src = all.toString();
        for (String name : KernelModule.PDL_READY) {
            String stem = name.endsWith("*") ? name.substring(0, name.length() - 1) : name;
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("extern \"C\" __global__[^;{]*?\\b" + java.util.regex.Pattern.quote(stem)
                    + (name.endsWith("*") ? "##\\w+" : "") + "\\s*\\(").matcher(src);
            assertTrue(m.find(), "kernel " + name + " of PDL_READY is defined in src/main/cuda");
            int i = m.end(), depth = 1;
            while (depth > 0) {   // past the parameter list
                char c = src.charAt(i++);
                if (c == '(') depth++;
                else if (c == ')') depth--;
            }
            int body = src.indexOf('{', i) + 1;
            String first = src.substring(body, Math.min(src.length(), body + 200)).replace("\\", " ").strip();
            assertTrue(first.startsWith("VF_PDL_PROLOGUE();") || first.startsWith("VF_PDL_PREFETCH_PROLOGUE(vf_gemv_prefetch(")
                    || first.startsWith("int4r_gemv<"), "kernel " + name + " must open with VF_PDL_PROLOGUE(), opens with: "
                    + first.substring(0, Math.min(60, first.length())));
            assertFalse(m.find(), "kernel " + name + " is defined once");
        }
        // int4r_gemv (the ring GEMVs' body) may only set up shared memory and issue its weight copies (vf_bulk_copy) before the
        // prologue: nothing a kernel writes (x, y, bias, residual: int4r_operands and the stores) comes before it
        int body = src.indexOf("void int4r_gemv(");
        assertTrue(body > 0, "int4r_gemv is defined");
        int pro = src.indexOf("VF_PDL_PROLOGUE();", body), ops = src.indexOf("int4r_operands(", body), end = src.indexOf("\n}\n", body);
        assertTrue(pro > body && pro < ops && ops < end, "int4r_gemv runs the PDL prologue before it reads x (int4r_operands)");
        String before = src.substring(body, pro);
        assertFalse(before.contains("x[") || before.contains("y[") || before.contains("residual[") || before.contains("bias[") || before.contains("__ldg("),
                "int4r_gemv touches no activation before the PDL prologue");
        assertTrue(KernelModule.pdlReady("vf_attn_decode_e4") && !KernelModule.pdlReady("vf_attn_decode_rows_e4")
                && !KernelModule.pdlReady("vf_silu_mul_bf16") && KernelModule.pdlReady("vf_gemv_bf16"));
    }

    @Test
    void fatbinIsBuiltWhenNvccIsPresent() {
        boolean nvcc = Files.isExecutable(Path.of("/usr/local/cuda/bin/nvcc")) || Stream.of(
                System.getenv().getOrDefault("PATH", "").split(":")).anyMatch(p -> Files.isExecutable(Path.of(p, "nvcc")));
        Assumptions.assumeTrue(nvcc, "no nvcc on this machine: the build skips the fatbin (NVRTC at run time)");
        byte[] fb = KernelSources.readBytes(KernelSources.FATBIN);
        assertNotNull(fb, "nvcc is present, so the build must have produced " + KernelSources.FATBIN);
        assertTrue(fb.length > 10_000);
        String archs = new String(KernelSources.readBytes(KernelSources.FATBIN + ".archs")).trim();
        assertTrue(archs.contains("sm_90") && archs.contains("sm_87") && archs.contains("compute_87"), archs);
    }

    @Test
    void availabilityProbeNeverThrows() {
        boolean ok = Gpu.isAvailable();
        String reason = Gpu.unavailableReason();
        if (ok) assertEquals("", reason);
        else assertFalse(reason.isBlank(), "an unavailable GPU comes with a reason");
        System.getLogger("vlmflux.cuda").log(System.Logger.Level.INFO, "GPU available: " + ok + " " + reason);
    }

    @Test
    void nvrtcCompilesThePackagedSources() {
        byte[] cubin;
        try {
            cubin = KernelModule.compileNvrtc("sm_90");
        } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
            Assumptions.abort("libnvrtc not loadable here: " + e);
            return;
        }
        assertTrue(cubin.length > 10_000, "cubin of " + cubin.length + " bytes");
    }
}
