package io.vlmflux.llm.qwen3vl;

import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.ModelFamily;
import io.vlmflux.llm.TextModelSpec;

import java.util.List;
import java.util.Set;

/**
 * The text model of Qwen3-VL (dense): Qwen3 layers (per-head q/k RMSNorm, explicit head_dim, optional attention bias)
 * with INTERLEAVED M-RoPE (frequencies assigned t,h,w,t,h,w,...; transformers' Qwen3-VL always interleaves, whatever
 * {@code mrope_interleaved} says) and DeepStack (vision features added after the first decoder layers, carried by the
 * {@link io.vlmflux.llm.EmbeddingSpan}s). Weights live under {@code model.language_model.}; the vision tower's
 * tensors ({@code model.visual.}, {@code visual.}) are skipped. The text model runs on cpu and cuda (the cuda decoder
 * does interleaved M-RoPE and the DeepStack adds on the device), and so does the vision tower.
 */
public final class Qwen3VlFamily implements ModelFamily {
    @Override public String name() { return "qwen3-vl"; }
    @Override public Set<String> architectures() { return Set.of("Qwen3VLForConditionalGeneration"); }
    @Override public Set<String> modelTypes() { return Set.of("qwen3_vl"); }

    @Override public TextModelSpec spec(ModelConfig c, Set<String> names) {
        if (!c.rope().isMrope())
            throw new IllegalArgumentException(name() + " config lacks rope mrope_section (text_config rope_scaling or rope_parameters)");
        String prefix = names.contains("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
        boolean bias = c.attentionBias() != null && c.attentionBias();
        return new TextModelSpec(name(), prefix, "lm_head.weight", bias, bias, true, true, true, List.of("visual.", "model.visual."));
    }
}
