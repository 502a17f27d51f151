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
}
