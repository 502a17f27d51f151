package io.vlmflux.llm.qwen2vl;

import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.ModelFamily;
import io.vlmflux.llm.TextModelSpec;

import java.util.List;
import java.util.Set;

/**
 * The text model of Qwen2-VL and Qwen2.5-VL: Qwen2 layers (q/k/v bias) with M-RoPE ({@code mrope_section}). Weights
 * live under {@code model.language_model.} (transformers 5) or {@code model.} (older published checkpoints); the
 * vision tower's tensors ({@code visual.}, {@code model.visual.}) are skipped.
 */
public final class Qwen2VlFamily implements ModelFamily {
    @Override public String name() { return "qwen2-vl"; }
    @Override public Set<String> architectures() { return Set.of("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"); }
    @Override public Set<String> modelTypes() { return Set.of("qwen2_vl", "qwen2_5_vl"); }

    @Override public TextModelSpec spec(ModelConfig c, Set<String> names) {
        if (!c.rope().isMrope())
            throw new IllegalArgumentException(name() + " config lacks rope mrope_section (rope_scaling or rope_parameters)");
        String prefix = names.contains("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
        boolean bias = c.attentionBias() == null || c.attentionBias();
        return new TextModelSpec(name(), prefix, "lm_head.weight", bias, false, false, true, List.of("visual.", "model.visual."));
    }
}
