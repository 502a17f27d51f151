package io.vlmflux.llm.sampling;

import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.llm.SamplingParams;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from host logits as transformers does: repetition penalty first (divide positive logits,
 * multiply negative ones, for every token seen in prompt or output), then greedy argmax, or temperature → top-k →
 * top-p → min-p masks and a draw from the softmax with a seeded {@link SplittableRandom}. One sampler per sequence
 * (it owns the random state and the seen-token set). The mask methods are public and in-place for tests and other
 * backends' references.
 */
public final class Sampler {
    private final SamplingParams p;
    private final int vocab;
    private final boolean[] seen;
    private final SplittableRandom random;
    private final float[] work;

    public Sampler(SamplingParams p, int vocab) {
        this.p = p;
        this.vocab = vocab;
        this.seen = new boolean[vocab];
        this.random = new SplittableRandom(p.seed());
        this.work = new float[vocab];
    }

    /** Records tokens for the repetition penalty (prompt tokens, then each generated one). */
    public void observe(int... tokens) {
        for (int t : tokens) if (t >= 0 && t < vocab) seen[t] = true;
    }

    /** The next token for {@code logits[0 .. vocab)} (not modified). Records the chosen token as seen. */
    public int sample(float[] logits) {
        if (logits.length < vocab) throw new IllegalArgumentException("logits have " + logits.length + " entries, vocab is " + vocab);
        float[] l = work;
        System.arraycopy(logits, 0, l, 0, vocab);
        if (p.repetitionPenalty() != 1.0) repetitionPenalty(l, seen, (float) p.repetitionPenalty());
        int tok;
        if (p.greedy()) {
            tok = CpuOps.argmax(l, 0, vocab);
        } else {
            float invT = (float) (1.0 / p.temperature());
            for (int i = 0; i < vocab; i++) l[i] *= invT;
            if (p.topK() > 0) topK(l, p.topK());
            if (p.topP() < 1.0) topP(l, p.topP());
            if (p.minP() > 0.0) minP(l, p.minP());
            CpuOps.softmax(l, 0, vocab);
            tok = draw(l, random.nextDouble());
        }
        seen[tok] = true;
        return tok;
    }

    /** Index where the cumulative probability first exceeds {@code u} (last non-zero on rounding). */
    static int draw(float[] probs, double u) {
        double c = 0;
        int last = 0;
        for (int i = 0; i < probs.length; i++) {
            if (probs[i] <= 0) continue;
            c += probs[i];
            last = i;
            if (u < c) return i;
        }
        return last;
    }

    /** HF RepetitionPenaltyLogitsProcessor: seen tokens' logits divided by {@code r} if positive, multiplied if negative. */
    public static void repetitionPenalty(float[] logits, boolean[] seen, float r) {
        for (int i = 0; i < seen.length && i < logits.length; i++)
            if (seen[i]) logits[i] = logits[i] < 0 ? logits[i] * r : logits[i] / r;
    }

    /** Keeps the {@code k} largest logits (ties with the k-th kept), the rest become -inf. */
    public static void topK(float[] logits, int k) {
        if (k >= logits.length) return;
        float[] s = logits.clone();
        Arrays.sort(s);
        float kth = s[s.length - k];
        for (int i = 0; i < logits.length; i++) if (logits[i] < kth) logits[i] = Float.NEGATIVE_INFINITY;
    }

    /**
     * Nucleus: keeps the most probable tokens whose cumulative probability reaches {@code topP} (the token that
     * crosses it included, at least one kept); the rest become -inf.
     */
    public static void topP(float[] logits, double topP) {
        float[] probs = logits.clone();
        CpuOps.softmax(probs, 0, probs.length);
        float[] sorted = probs.clone();
        Arrays.sort(sorted);
        double cum = 0;
        float threshold = sorted[sorted.length - 1];
        for (int i = sorted.length - 1; i >= 0; i--) {
            cum += sorted[i];
            threshold = sorted[i];
            if (cum >= topP) break;
        }
        for (int i = 0; i < logits.length; i++) if (probs[i] < threshold) logits[i] = Float.NEGATIVE_INFINITY;
    }

    /** Removes tokens whose probability is below {@code minP} times the top probability. */
    public static void minP(float[] logits, double minP) {
        float[] probs = logits.clone();
        CpuOps.softmax(probs, 0, probs.length);
        float top = 0;
        for (float v : probs) top = Math.max(top, v);
        float thr = (float) (minP * top);
        for (int i = 0; i < logits.length; i++) if (probs[i] < thr) logits[i] = Float.NEGATIVE_INFINITY;
    }
}
