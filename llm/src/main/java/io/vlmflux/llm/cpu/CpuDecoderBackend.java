package io.vlmflux.llm.cpu;

import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.DecoderBackend;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.TextModelSpec;

/** The plain-Java backend: fp32 compute from bf16/f16/f32 weights read from the mapping, parallel over all cores. */
public final class CpuDecoderBackend implements DecoderBackend {
    @Override public String name() { return "cpu"; }

    @Override public Decoder load(ModelConfig config, TextModelSpec spec, WeightStore store, io.vlmflux.cuda.gpu.GpuStream stream, io.vlmflux.cuda.Tuning tuning) {
        return new CpuDecoder(config, spec, store);
    }
}
