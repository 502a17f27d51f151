package io.vlmflux.llm.constrain;

import java.util.Map;

/**
 * Per-request controls over token selection, applied to the host logits before the sampler: an optional
 * {@link Constraint} (disallowed ids become -infinity), a logit bias added to given ids (OpenAI's {@code logit_bias};
 * -100 effectively bans, +100 effectively forces), and the number of top log-probabilities to report per token
 * (0: none; otherwise each token event carries the chosen token's log-probability and the {@code logprobs} best).
 * Bias is added first, then the mask; log-probabilities are the log-softmax of those final logits (before the
 * sampler's repetition penalty and temperature).
 */
public record TokenControls(Constraint constraint, Map<Integer, Float> logitBias, int logprobs) {
    public static final int MAX_LOGPROBS = 100;
    private static final TokenControls NONE = new TokenControls(null, Map.of(), 0);

    public TokenControls {
        logitBias = logitBias == null ? Map.of() : Map.copyOf(logitBias);
        for (var e : logitBias.entrySet()) {
            if (e.getKey() < 0) throw new IllegalArgumentException("logit_bias token id must be >= 0, got " + e.getKey());
            if (!Float.isFinite(e.getValue())) throw new IllegalArgumentException("logit_bias for token " + e.getKey() + " must be finite, got " + e.getValue());
        }
        if (logprobs < 0 || logprobs > MAX_LOGPROBS)
            throw new IllegalArgumentException("logprobs must be in [0, " + MAX_LOGPROBS + "], got " + logprobs);
    }

    public static TokenControls none() { return NONE; }

    public static TokenControls constrained(Constraint c) { return new TokenControls(c, Map.of(), 0); }

    public TokenControls withLogitBias(Map<Integer, Float> bias) { return new TokenControls(constraint, bias, logprobs); }

    public TokenControls withLogprobs(int n) { return new TokenControls(constraint, logitBias, n); }

    /** Nothing to do: the device sampling path stays available. */
    public boolean isEmpty() { return constraint == null && logitBias.isEmpty() && logprobs == 0; }
}
