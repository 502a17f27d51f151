package io.vlmflux.llm.constrain;

import java.util.Arrays;
import java.util.BitSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A {@link ByteDfa} lifted to tokens of one {@link TokenVocabulary}. Per automaton state it computes, on first visit,
 * the allowed token ids (a BitSet) and each one's successor state by walking the sorted vocabulary (shared prefixes
 * walked once, dead prefixes skipped); later visits cost a lookup. Thread-safe (rows are computed idempotently).
 */
final class TokenConstraint implements Constraint {
    private final ByteDfa dfa;
    private final TokenVocabulary vocab;
    private final int[] endTokens;      // sorted
    private final ConcurrentHashMap<Integer, Row> rows = new ConcurrentHashMap<>();

    /** ids sorted ascending, next[i] the state after ids[i]; allowed includes end tokens when accepting. */
    private record Row(BitSet allowed, int[] ids, int[] next) {}

    TokenConstraint(ByteDfa dfa, TokenVocabulary vocab, int[] endTokens) {
        this.dfa = dfa;
        this.vocab = vocab;
        this.endTokens = endTokens.clone();
        Arrays.sort(this.endTokens);
    }

    int automatonStates() { return dfa.states(); }

    /** States whose token rows were computed so far. */
    int visitedStates() { return rows.size(); }

    @Override public int start() { return 0; }

    @Override public boolean accepts(int state) { return dfa.accepts(check(state)); }

    @Override public boolean isEnd(int token) { return Arrays.binarySearch(endTokens, token) >= 0; }

    @Override public BitSet allowed(int state) { return (BitSet) row(state).allowed.clone(); }

    @Override public void mask(int state, float[] logits) {
        BitSet a = row(state).allowed;
        for (int i = a.nextClearBit(0); i < logits.length; i = a.nextClearBit(i + 1)) logits[i] = Float.NEGATIVE_INFINITY;
    }

    @Override public int advance(int state, int token) {
        Row r = row(state);
        if (isEnd(token)) {
            if (!dfa.accepts(state)) throw new IllegalArgumentException("end token " + token + " is not allowed in state " + state + ": the output is incomplete");
            return state;
        }
        int k = Arrays.binarySearch(r.ids, token);
        if (k < 0) throw new IllegalArgumentException("token " + token + " is not allowed in constraint state " + state);
        return r.next[k];
    }

    private int check(int state) {
        if (state < 0 || state >= dfa.states()) throw new IllegalArgumentException("constraint state " + state + " out of range [0, " + dfa.states() + ")");
        return state;
    }

    private Row row(int state) {
        Row r = rows.get(check(state));
        if (r == null) {
            r = compute(state);
            rows.putIfAbsent(state, r);
        }
        return r;
    }

    private Row compute(int state) {
        int n = vocab.sorted.length;
        int[] st = new int[vocab.maxLen + 1];
        st[0] = state;
        int valid = 0;   // st[0..valid] are live states for the bytes of the previous token
        int[] ids = new int[64], next = new int[64];
        int count = 0;
        for (int i = 0; i < n; i++) {
            int id = vocab.sorted[i];
            byte[] b = vocab.bytes[id];
            int l = vocab.lcp[i];
            if (l > valid) continue;   // shares the prefix that died with the previous token
            int k = l;
            for (; k < b.length; k++) {
                int s = dfa.next(st[k], b[k]);
                if (s == ByteDfa.DEAD) break;
                st[k + 1] = s;
            }
            valid = k;
            if (k < b.length) continue;
            if (count == ids.length) { ids = Arrays.copyOf(ids, count * 2); next = Arrays.copyOf(next, count * 2); }
            ids[count] = id;
            next[count++] = st[k];
        }
        // sort by id (the walk is in byte order)
        long[] packed = new long[count];
        for (int i = 0; i < count; i++) packed[i] = ((long) ids[i] << 32) | (next[i] & 0xFFFFFFFFL);
        Arrays.sort(packed);
        int[] sid = new int[count], snx = new int[count];
        BitSet allowed = new BitSet(vocab.size);
        for (int i = 0; i < count; i++) {
            sid[i] = (int) (packed[i] >>> 32);
            snx[i] = (int) packed[i];
            allowed.set(sid[i]);
        }
        if (dfa.accepts(state)) for (int e : endTokens) allowed.set(e);
        return new Row(allowed, sid, snx);
    }
}
