package io.vlmflux.llm;

import io.vlmflux.cuda.safetensors.WeightStore;

/**
 * Builds decoders for one compute backend. {@code cpu} is built in; other backends are found by class name
 * ({@code io.vlmflux.llm.<name>.<Name>DecoderBackend}, public no-arg constructor), so the CUDA decoder plugs in without
 * touching the registry.
 */
public interface DecoderBackend {
    String name();

    /** A decoder over validated weights; it takes ownership of {@code store} and closes it. */
    Decoder load(ModelConfig config, TextModelSpec spec, WeightStore store);

    /**
     * As {@link #load(ModelConfig, TextModelSpec, WeightStore)} with the per-model knobs of {@code tuning}; backends
     * without such knobs (the CPU decoder) ignore it.
     */
    default Decoder load(ModelConfig config, TextModelSpec spec, WeightStore store, io.vlmflux.cuda.Tuning tuning) {
        return load(config, spec, store);
    }
}
