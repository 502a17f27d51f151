package io.vlmflux.llm.llama;

import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.ModelFamily;
import io.vlmflux.llm.TextModelSpec;

import java.util.List;
import java.util.Set;

/** Llama 2/3 text models: optional attention bias on q/k/v/o, llama3 rope scaling handled by {@code RopeConfig}. */
public final class LlamaFamily implements ModelFamily {
    @Override public String name() { return "llama"; }
    @Override public Set<String> architectures() { return Set.of("LlamaForCausalLM"); }
    @Override public Set<String> modelTypes() { return Set.of("llama"); }

    @Override public TextModelSpec spec(ModelConfig c, Set<String> names) {
        boolean bias = c.attentionBias() != null && c.attentionBias();
        return new TextModelSpec(name(), "model.", "lm_head.weight", bias, bias, false, false, List.of());
    }
}
