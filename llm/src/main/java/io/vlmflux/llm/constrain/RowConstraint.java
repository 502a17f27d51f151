package io.vlmflux.llm.constrain;

import java.util.Arrays;
import java.util.BitSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What the token-level constraints share: states of a byte automaton (a {@link ByteDfa}'s states or a
 * {@link Pushdown}'s configurations) lifted to the tokens of one {@link TokenVocabulary}. A state's allowed-token row is
 * computed once ({@link #compute}), interned (equal rows held once) and cached, with its device-mask words per interned
 * row; {@link #advance} re-walks the token's few bytes. End tokens are allowed exactly where the automaton accepts.
 * Thread-safe (rows are computed idempotently).
 */
abstract class RowConstraint implements Constraint {
    /** A walk's dead end (both automata use -1). */
    static final int DEAD = -1;

    final TokenVocabulary vocab;
    final int[] endTokens;      // sorted
    private final ConcurrentHashMap<Integer, BitSet> rows = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<BitSet, BitSet> distinct = new ConcurrentHashMap<>();   // interning: equal rows shared
    private final java.util.Map<BitSet, long[]> words = java.util.Collections.synchronizedMap(new java.util.IdentityHashMap<>());   // per interned row

    RowConstraint(TokenVocabulary vocab, int[] endTokens) {
        this.vocab = vocab;
        this.endTokens = endTokens.clone();
        Arrays.sort(this.endTokens);
    }

    /** States that exist now (a pushdown interns more as it goes). */
    abstract int states();

    /** Whether the input read so far is complete in {@code state}. */
    abstract boolean acceptsState(int state);

    /** The state after {@code bytes}, or {@link #DEAD}. */
    abstract int walkBytes(int state, byte[] bytes);

    /** The allowed tokens of {@code state}, end tokens included where it accepts. */
    abstract BitSet compute(int state);

    /** States whose token rows were computed so far. */
    int visitedStates() { return rows.size(); }

    /** Distinct allowed sets among them (each held once). */
    int distinctRows() { return distinct.size(); }

    @Override public boolean accepts(int state) { return acceptsState(check(state)); }

    @Override public boolean isEnd(int token) { return Arrays.binarySearch(endTokens, token) >= 0; }

    @Override public BitSet allowed(int state) { return (BitSet) row(state).clone(); }

    /**
     * The device mask's words of a state, cached per distinct row (equal rows share one array), so a decode step
     * uploads them without converting: the caller must not modify the array.
     */
    @Override public long[] allowedWords(int state, int vocabSize) {
        BitSet r = row(state);
        int n = (vocabSize + 63) / 64;
        long[] w = words.get(r);
        if (w == null || w.length != n) {
            w = Arrays.copyOf(r.toLongArray(), n);
            words.put(r, w);
        }
        return w;
    }

    @Override public void mask(int state, float[] logits) {
        BitSet a = row(state);
        for (int i = a.nextClearBit(0); i < logits.length; i = a.nextClearBit(i + 1)) logits[i] = Float.NEGATIVE_INFINITY;
    }

    @Override public int advance(int state, int token) {
        check(state);
        if (isEnd(token)) {
            if (!acceptsState(state)) throw new IllegalArgumentException("end token " + token + " is not allowed in state " + state + ": the output is incomplete");
            return state;
        }
        byte[] b = token >= 0 && token < vocab.size ? vocab.bytes[token] : null;
        int next = b == null ? DEAD : walkBytes(state, b);
        if (next == DEAD) throw new IllegalArgumentException("token " + token + " is not allowed in constraint state " + state);
        return next;
    }

    final int check(int state) {
        int n = states();
        if (state < 0 || state >= n) throw new IllegalArgumentException("constraint state " + state + " out of range [0, " + n + ")");
        return state;
    }

    final BitSet row(int state) {
        BitSet r = rows.get(check(state));
        if (r == null) {
            BitSet fresh = compute(state);
            BitSet shared = distinct.putIfAbsent(fresh, fresh);
            r = shared == null ? fresh : shared;
            rows.putIfAbsent(state, r);
        }
        return r;
    }
}
