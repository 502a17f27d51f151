package io.vlmflux.llm;

/**
 * How to pick the next token. {@code greedy} takes the argmax (after the repetition penalty); otherwise the logits
 * are divided by {@code temperature}, filtered by top-k (0 = off), top-p (1 = off) and min-p (0 = off), in that order
 * (transformers' warper order), and sampled with a {@code java.util.Random}-free SplittableRandom seeded by
 * {@code seed}. A temperature below {@link #GREEDY_BELOW} selects greedy decoding: dividing logits by such a value
 * overflows float and yields garbage rather than the argmax it approaches.
 */
public record SamplingParams(boolean greedy, double temperature, int topK, double topP, double minP,
                             double repetitionPenalty, long seed) {
    /** Temperatures below this (1e-5) decode greedily. */
    public static final double GREEDY_BELOW = 1e-5;

    public SamplingParams {
        if (!greedy && temperature >= 0 && temperature < GREEDY_BELOW) greedy = true;
        if (!greedy && !(temperature > 0)) throw new IllegalArgumentException("temperature must be > 0 when sampling, got " + temperature);
        if (topK < 0) throw new IllegalArgumentException("top_k must be >= 0, got " + topK);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        if (!(minP >= 0 && minP <= 1)) throw new IllegalArgumentException("min_p must be in [0, 1], got " + minP);
        if (!(repetitionPenalty > 0)) throw new IllegalArgumentException("repetition_penalty must be > 0, got " + repetitionPenalty);
    }

    public static SamplingParams greedyDecoding() { return new SamplingParams(true, 1.0, 0, 1.0, 0.0, 1.0, 0); }

    public static SamplingParams sample(double temperature, int topK, double topP, double minP, long seed) {
        return new SamplingParams(false, temperature, topK, topP, minP, 1.0, seed);
    }

    public SamplingParams withRepetitionPenalty(double r) {
        return new SamplingParams(greedy, temperature, topK, topP, minP, r, seed);
    }

    public SamplingParams withSeed(long s) {
        return new SamplingParams(greedy, temperature, topK, topP, minP, repetitionPenalty, s);
    }
}
