package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.DecoderBackend;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.TextModelSpec;

/**
 * The CUDA backend ({@code Models.load(dir, "cuda")}): found by class name by {@code Models.backend("cuda")}. Loading
 * fails with the reason from {@link Gpu#unavailableReason()} where no usable GPU exists. Its switches (graphs, prefill
 * chunk, fusions, GEMV/GEMM paths) are a {@link Tuning}: passed in, or read from the system properties at each load.
 */
public final class CudaDecoderBackend implements DecoderBackend {
    @Override public String name() { return "cuda"; }

    /** True when a GPU can run this backend. */
    public static boolean available() { return Gpu.isAvailable(); }

    /** Why the backend cannot run here ("" when it can). */
    public static String unavailableReason() { return Gpu.unavailableReason(); }

    @Override public Decoder load(ModelConfig config, TextModelSpec spec, WeightStore store) {
        return load(config, spec, store, Tuning.fromSystemProperties());
    }

    @Override public Decoder load(ModelConfig config, TextModelSpec spec, WeightStore store, Tuning tuning) {
        if (!Gpu.isAvailable()) {
            store.close();
            throw new IllegalStateException("backend 'cuda' cannot run here: " + Gpu.unavailableReason());
        }
        return new CudaDecoder(config, spec, store, Gpu.device(), tuning);
    }
}
