package io.vlmflux.llm.constrain;

import java.util.ArrayList;
import java.util.List;

/**
 * Applies one sequence's {@link TokenControls} step by step: {@link #apply} biases and masks host logits in place for
 * the current constraint state, {@link #logprobs} reads them back, {@link #accept} advances the state with the chosen
 * token. Owns the constraint state; one per sequence, not thread-safe.
 */
public final class LogitsProcessor {
    private final TokenControls controls;
    private int state;

    public LogitsProcessor(TokenControls controls) {
        this.controls = controls;
        this.state = controls.constraint() == null ? 0 : controls.constraint().start();
    }

    public TokenControls controls() { return controls; }

    /** The constraint state (0 without a constraint). */
    public int state() { return state; }

    /**
     * Adds the bias and masks disallowed ids in {@code logits} (modified in place).
     *
     * @throws IllegalArgumentException for a bias on an id beyond {@code logits}
     * @throws IllegalStateException    when no id is left allowed (a constraint the vocabulary cannot continue)
     */
    public void apply(float[] logits) {
        for (var e : controls.logitBias().entrySet()) {
            if (e.getKey() >= logits.length) throw new IllegalArgumentException("logit_bias names token " + e.getKey() + ", beyond the model's vocabulary of " + logits.length);
            logits[e.getKey()] += e.getValue();
        }
        Constraint c = controls.constraint();
        if (c == null) return;
        c.mask(state, logits);
        for (float v : logits) if (v != Float.NEGATIVE_INFINITY) return;
        throw new IllegalStateException("the constraint allows no token of the model's vocabulary in state " + state
                + (c.accepts(state) ? " (it would accept here, but none of its end tokens is in the model's vocabulary)" : ""));
    }

    /** Log-probabilities from logits after {@link #apply}; null when not requested. */
    public Logprobs logprobs(float[] logits, int chosen) {
        int n = controls.logprobs();
        if (n == 0) return null;
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) max = Math.max(max, v);
        double sum = 0;
        for (float v : logits) if (v != Float.NEGATIVE_INFINITY) sum += Math.exp(v - max);
        float logZ = (float) (max + Math.log(sum));
        int[] top = new int[Math.min(n, logits.length)];
        int k = 0;
        for (int i = 0; i < logits.length; i++) {   // insertion into a small sorted array: best first, ties by lower id
            if (k < top.length) { top[k++] = i; sift(top, k - 1, logits); }
            else if (logits[i] > logits[top[k - 1]]) { top[k - 1] = i; sift(top, k - 1, logits); }
        }
        List<Logprobs.Entry> out = new ArrayList<>(k);
        for (int i = 0; i < k; i++) if (logits[top[i]] != Float.NEGATIVE_INFINITY) out.add(new Logprobs.Entry(top[i], logits[top[i]] - logZ));
        return new Logprobs(logits[chosen] - logZ, out);
    }

    private static void sift(int[] top, int j, float[] l) {
        while (j > 0 && l[top[j]] > l[top[j - 1]]) { int t = top[j]; top[j] = top[j - 1]; top[j - 1] = t; j--; }
    }

    /** Moves the constraint state past {@code token}; true when it ends the constrained output (an end token). */
    public boolean accept(int token) {
        Constraint c = controls.constraint();
        if (c == null) return false;
        state = c.advance(state, token);
        return c.isEnd(token);
    }
}
