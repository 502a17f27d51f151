package io.vlmflux.llm.constrain;

import java.util.BitSet;

/**
 * A {@link ByteDfa} lifted to tokens of one {@link TokenVocabulary}. Per automaton state it computes, on first visit,
 * the allowed token ids by walking the sorted vocabulary (shared prefixes walked once, dead prefixes skipped); later
 * visits cost a lookup. Only the BitSet is kept per state (vocabulary/8 bytes, identical sets shared): the successor
 * state of an allowed token is recomputed on {@link #advance} by walking its few bytes. Thread-safe (rows are
 * computed idempotently).
 */
final class TokenConstraint extends RowConstraint {
    private final ByteDfa dfa;

    TokenConstraint(ByteDfa dfa, TokenVocabulary vocab, int[] endTokens) {
        super(vocab, endTokens);
        this.dfa = dfa;
    }

    int automatonStates() { return dfa.states(); }

    @Override public int start() { return 0; }

    @Override int states() { return dfa.states(); }

    @Override boolean acceptsState(int state) { return dfa.accepts(state); }

    @Override int walkBytes(int state, byte[] bytes) { return dfa.walk(state, bytes); }

    @Override BitSet compute(int state) {
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
