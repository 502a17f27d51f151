package io.vlmflux.llm.constrain;

import java.util.BitSet;

/**
 * A constraint compiled against one tokenizer: an automaton whose transitions are token ids. A decode starts in
 * {@link #start()}, may pick only tokens in {@link #allowed(int)} and moves with {@link #advance}. End tokens (EOS and
 * the other ids given at compile time) are allowed exactly in {@linkplain #accepts accepting} states and end the
 * output. States are small non-negative ints; implementations are immutable to callers and thread-safe.
 */
public interface Constraint {
    int start();

    /** The ids allowed in {@code state} (a fresh copy the caller may modify). */
    BitSet allowed(int state);

    /** Sets {@code logits[i]} to -infinity for every id not allowed in {@code state} (ids beyond the vocabulary included). */
    void mask(int state, float[] logits);

    /**
     * The state after {@code token}; an end token leaves the state as it is.
     *
     * @throws IllegalArgumentException when the token is not allowed in {@code state}
     */
    int advance(int state, int token);

    boolean accepts(int state);

    /**
     * {@link #allowed(int)} as {@code (vocab + 63) / 64} uint64 words (id {@code i} = bit {@code i % 64} of word
     * {@code i / 64}; ids at or beyond the tokenizer's vocabulary clear): what a device-side mask uploads. Read only:
     * implementations may return a cached array.
     */
    default long[] allowedWords(int state, int vocab) {
        long[] w = allowed(state).toLongArray();
        return java.util.Arrays.copyOf(w, (vocab + 63) / 64);
    }

    /** Whether {@code token} ends the constrained output (allowed only in accepting states). */
    boolean isEnd(int token);
}
