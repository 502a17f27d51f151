package io.vlmflux.cuda.gpu;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** The kernel sources packaged as resources (src/main/cuda): the NVRTC fallback compiles exactly these. */
public final class KernelSources {
    /** Resource folder of the sources and of the nvcc fatbin. */
    public static final String DIR = "/io/vlmflux/cuda/kernels/";
    /** The translation unit both compilers build. */
    public static final String MAIN = "vlmflux.cu";
    /** Files MAIN includes (every .cu/.cuh of src/main/cuda besides MAIN). */
    public static final List<String> INCLUDED = List.of("common.cuh", "embedding.cu", "norm.cu", "activation.cu",
            "gemv.cu", "int4.cu", "rope.cu", "attention.cu", "decode_mega.cu", "sampling.cu", "vision_encoder.cu", "vision_preprocess.cu");
    public static final String FATBIN = "vlmflux.fatbin";

    private KernelSources() {}

    public static String read(String file) {
        byte[] b = readBytes(file);
        if (b == null) throw new IllegalStateException("kernel source resource " + DIR + file + " is missing from the classpath");
        return new String(b, StandardCharsets.UTF_8);
    }

    /** The resource's bytes, or null when absent. */
    static byte[] readBytes(String file) {
        try (InputStream in = KernelSources.class.getResourceAsStream(DIR + file)) {
            return in == null ? null : in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("reading resource " + DIR + file, e);
        }
    }
}
