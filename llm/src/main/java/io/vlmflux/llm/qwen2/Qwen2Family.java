package io.vlmflux.llm.qwen2;

import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.ModelFamily;
import io.vlmflux.llm.TextModelSpec;

import java.util.List;
import java.util.Set;

/** Qwen2 / Qwen2.5 text models: biases on q/k/v (not o), plain RoPE, GQA, SwiGLU. */
public final class Qwen2Family implements ModelFamily {
    @Override public String name() { return "qwen2"; }
    @Override public Set<String> architectures() { return Set.of("Qwen2ForCausalLM"); }
    @Override public Set<String> modelTypes() { return Set.of("qwen2"); }

    @Override public TextModelSpec spec(ModelConfig c, Set<String> names) {
        boolean bias = c.attentionBias() == null || c.attentionBias();
        return new TextModelSpec(name(), "model.", "lm_head.weight", bias, false, false, false, List.of());
    }
}
