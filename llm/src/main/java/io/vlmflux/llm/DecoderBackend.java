package io.vlmflux.llm;

import io.vlmflux.cuda.safetensors.WeightStore;

/** Builds decoders for one compute backend ({@link Models#backend(Backend)}). */
public interface DecoderBackend {
    String name();

    /**
     * A decoder over validated weights; it takes ownership of {@code store} and closes it. A GPU backend enqueues its
     * work on {@code stream} (not closed by the decoder) or, when null, on a stream of its own, with the per-model
     * knobs of {@code tuning} (null: {@link io.vlmflux.cuda.Tuning#fromSystemProperties()}); the CPU backend ignores both.
     */
    Decoder load(ModelConfig config, TextModelSpec spec, WeightStore store, io.vlmflux.cuda.gpu.GpuStream stream, io.vlmflux.cuda.Tuning tuning);
}
