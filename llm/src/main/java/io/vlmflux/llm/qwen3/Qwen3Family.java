package io.vlmflux.llm.qwen3;

import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.ModelFamily;
import io.vlmflux.llm.TextModelSpec;

import java.util.List;
import java.util.Set;

/** Qwen3 dense text models: per-head RMSNorm on q and k before RoPE, explicit head_dim, optional attention bias. */
public final class Qwen3Family implements ModelFamily {
    @Override public String name() { return "qwen3"; }
    @Override public Set<String> architectures() { return Set.of("Qwen3ForCausalLM"); }
    @Override public Set<String> modelTypes() { return Set.of("qwen3"); }

    @Override public TextModelSpec spec(ModelConfig c, Set<String> names) {
        boolean bias = c.attentionBias() != null && c.attentionBias();
        return new TextModelSpec(name(), "model.", "lm_head.weight", bias, bias, true, false, List.of());
    }
}
