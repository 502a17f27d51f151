package io.vlmflux.llm.constrain;

import java.util.Arrays;
import java.util.BitSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A {@link ByteDfa} lifted to tokens of one {@link TokenVocabulary}. Per automaton state it computes, on first visit,
 * the allowed token ids by walking the sorted vocabulary (shared prefixes walked once, dead prefixes skipped); later
 * visits cost a lookup. Only the BitSet is kept per state (vocabulary/8 bytes, identical sets shared): the successor
 * state of an allowed token is recomputed on {@link #advance} by walking its few bytes. Thread-safe (rows are
 * computed idempotently).
 */
final class TokenConstraint implements Constraint {
    private final ByteDfa dfa;
    private final TokenVocabulary vocab;
    private final int[] endTokens;      // sorted
    private final ConcurrentHashMap<Integer, BitSet> rows = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<BitSet, BitSet> distinct = new ConcurrentHashMap<>();   // interning: equal rows shared
    private final java.util.Map<BitSet, long[]> words = java.util.Collections.synchronizedMap(new java.util.IdentityHashMap<>());   // per interned row

    TokenConstraint(ByteDfa dfa, TokenVocabulary vocab, int[] endTokens) {
        this.dfa = dfa;
        this.vocab = vocab;
        this.endTokens = endTokens.clone();
        Arrays.sort(this.endTokens);
    }

    int automatonStates() { return dfa.states(); }

    /** States whose token rows were computed so far. */
    int visitedStates() { return rows.size(); }

    /** Distinct allowed sets among them (each held once). */
    int distinctRows() { return distinct.size(); }

    @Override public int start() { return 0; }

    @Override public boolean accepts(int state) { return dfa.accepts(check(state)); }

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
            w = java.util.Arrays.copyOf(r.toLongArray(), n);
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
            if (!dfa.accepts(state)) throw new IllegalArgumentException("end token " + token + " is not allowed in state " + state + ": the output is incomplete");
            return state;
        }
        byte[] b = token >= 0 && token < vocab.size ? vocab.bytes[token] : null;
        int next = b == null ? ByteDfa.DEAD : dfa.walk(state, b);
        if (next == ByteDfa.DEAD) throw new IllegalArgumentException("token " + token + " is not allowed in constraint state " + state);
        return next;
    }

    private int check(int state) {
        if (state < 0 || state >= dfa.states()) throw new IllegalArgumentException("constraint state " + state + " out of range [0, " + dfa.states() + ")");
        return state;
    }

    private BitSet row(int state) {
        BitSet r = rows.get(check(state));
        if (r == null) {
            BitSet fresh = compute(state);
            BitSet shared = distinct.putIfAbsent(fresh, fresh);
            r = shared == null ? fresh : shared;
            rows.putIfAbsent(state, r);
        }
        return r;
    }

    private BitSet compute(int state) {
        int n = vocab.sorted.length;
        int[] st = new int[vocab.maxLen + 1];
        st[0] = state;
        byte[] flat = vocab.flat;
        int[] start = vocab.start, lcp = vocab.lcp, skip = vocab.skip, sorted = vocab.sorted;
        BitSet allowed = new BitSet(vocab.size);
        int i = 0;
        while (i < n) {
            int from = start[i], len = start[i + 1] - from;
            int k = i == 0 ? 0 : lcp[i];   // st[0..k] are valid: the shared prefix was alive for the previous token
            for (; k < len; k++) {
                int s = dfa.next(st[k], flat[from + k]);
                if (s == ByteDfa.DEAD) break;
                st[k + 1] = s;
            }
            if (k == len) { allowed.set(sorted[i]); i++; }
            else i = skip[from + k];   // every later token sharing these k+1 bytes dies too
        }
        if (dfa.accepts(state)) for (int e : endTokens) allowed.set(e);
        return allowed;
    }
}
