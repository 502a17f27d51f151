package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.constrain.ConstraintSpec;

/**
 * What to ask for each frame and how to decode. Immutable; validated on construction.
 *
 * @param prompt       the user question after the image (default {@value #DEFAULT_PROMPT})
 * @param systemPrompt a system turn, or null for the chat template's default
 * @param maxTokens    most tokens per caption (finish reason {@code length})
 * @param sampling     decoding settings, or null for the model's {@code generation_config.json} (greedy by default)
 * @param backpressure what to do with frames that arrive while a caption is being generated
 * @param constraint   what the answer must look like (choices, a regex, a JSON Schema), or null for free text
 */
public record CaptionOptions(String prompt, String systemPrompt, int maxTokens, SamplingParams sampling, Backpressure backpressure,
                             ConstraintSpec constraint) {
    public static final String DEFAULT_PROMPT = "Describe the image.";
    public static final int DEFAULT_MAX_TOKENS = 32;

    /** Frames that arrive while the model is busy. */
    public enum Backpressure {
        /**
         * Lossless when every source is a file, newest-wins when any is live (resolved by
         * {@link io.vlmflux.pipeline.VlmPipeline.Builder#captions}; the stage used on its own treats it as newest-wins).
         */
        AUTO,
        /** Keep only the newest pending frame; older ones are closed and counted as dropped (cameras, streams). */
        NEWEST_WINS,
        /** Request the next frame only when the previous caption is done; nothing is dropped (files). */
        LOSSLESS
    }

    public CaptionOptions {
        if (prompt == null || prompt.isBlank()) throw new IllegalArgumentException("caption prompt must not be blank, got '" + prompt + "'");
        if (maxTokens < 1) throw new IllegalArgumentException("maxTokens must be >= 1, got " + maxTokens);
        if (backpressure == null) throw new IllegalArgumentException("backpressure must not be null");
    }

    /** Free-text answers. */
    public CaptionOptions(String prompt, String systemPrompt, int maxTokens, SamplingParams sampling, Backpressure backpressure) {
        this(prompt, systemPrompt, maxTokens, sampling, backpressure, null);
    }

    /** "Describe the image.", 32 tokens, the model's sampling defaults, backpressure by source ({@link Backpressure#AUTO}). */
    public static CaptionOptions defaults() {
        return new CaptionOptions(DEFAULT_PROMPT, null, DEFAULT_MAX_TOKENS, null, Backpressure.AUTO, null);
    }

    public CaptionOptions withPrompt(String p) { return new CaptionOptions(p, systemPrompt, maxTokens, sampling, backpressure, constraint); }
    public CaptionOptions withSystemPrompt(String s) { return new CaptionOptions(prompt, s, maxTokens, sampling, backpressure, constraint); }
    public CaptionOptions withMaxTokens(int n) { return new CaptionOptions(prompt, systemPrompt, n, sampling, backpressure, constraint); }
    public CaptionOptions withSampling(SamplingParams s) { return new CaptionOptions(prompt, systemPrompt, maxTokens, s, backpressure, constraint); }
    public CaptionOptions withBackpressure(Backpressure b) { return new CaptionOptions(prompt, systemPrompt, maxTokens, sampling, b, constraint); }
    /** Answers constrained to {@code c} (null: free text). */
    public CaptionOptions withConstraint(ConstraintSpec c) { return new CaptionOptions(prompt, systemPrompt, maxTokens, sampling, backpressure, c); }
}
