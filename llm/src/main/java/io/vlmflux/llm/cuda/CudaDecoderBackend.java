package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.DecoderBackend;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.TextModelSpec;

/**
 * The CUDA backend ({@code Models.load(dir, "cuda")}). Loading fails with the reason from
 * {@link Gpu#unavailableReason()} where no usable GPU exists. Its switches (graphs, prefill chunk, fusions, GEMV/GEMM
 * paths) are a {@link Tuning}: passed in (the runtime reads it once at load), or read from the system properties.
 */
public final class CudaDecoderBackend implements DecoderBackend {
    @Override public String name() { return "cuda"; }

    /** True when a GPU can run this backend. */
    public static boolean available() { return Gpu.isAvailable(); }

    /** Why the backend cannot run here ("" when it can). */
    public static String unavailableReason() { return Gpu.unavailableReason(); }

    @Override public Decoder load(ModelConfig config, TextModelSpec spec, WeightStore store, GpuStream stream, Tuning tuning) {
        if (stream == null && !Gpu.isAvailable()) {
            store.close();
            throw new IllegalStateException("backend 'cuda' cannot run here: " + Gpu.unavailableReason());
        }
        Tuning t = tuning != null ? tuning : Tuning.fromSystemProperties();
        return stream == null ? new CudaDecoder(config, spec, store, Gpu.device().newStream(), true, t)
                : new CudaDecoder(config, spec, store, stream, false, t);
    }
}
