package io.vlmflux.llm.constrain;

import java.util.Arrays;
import java.util.BitSet;

/**
 * A {@link Pushdown} lifted to the tokens of one {@link TokenVocabulary} (the adaptive token-mask idea of xgrammar).
 * States are the pushdown's interned configurations.
 *
 * <p>Per <em>frame</em> {@code (rule, dfa state)} — finitely many — the vocabulary is classified once, walking the sorted
 * vocabulary from that frame alone above an unknown context: tokens the frame (with whatever it calls) consumes
 * completely are <em>accepted</em> in every context; tokens that die before the frame could return are
 * <em>rejected</em> in every context; the rest (the frame returns after part of the token, so what follows depends on
 * the stack below) are <em>context-dependent</em>, kept as a sorted list. A configuration's row is then the union of
 * its top frames' accepted sets plus the context-dependent tokens that walk from the configuration itself (shared
 * prefixes walked once, memoized byte transitions); rows are cached per configuration (equal rows shared), so a
 * revisited configuration costs a lookup and a new one costs a union plus a walk over its (usually few)
 * context-dependent tokens, not a vocabulary scan. Thread-safe.
 */
final class GrammarConstraint extends RowConstraint {
    private final Pushdown pd;
    private final BitSet[] accepted;     // per frame, lazily
    private final int[][] dependent;     // per frame: sorted-vocabulary positions, ascending

    GrammarConstraint(Pushdown pd, TokenVocabulary vocab, int[] endTokens) {
        super(vocab, endTokens);
        this.pd = pd;
        accepted = new BitSet[pd.frames];
        dependent = new int[pd.frames][];
    }

    Pushdown pushdown() { return pd; }

    /** Frames classified so far, and their context-dependent tokens in total. */
    synchronized long[] frameStats() {
        long n = 0, dep = 0;
        for (int f = 0; f < accepted.length; f++) if (accepted[f] != null) { n++; dep += dependent[f].length; }
        return new long[] {n, dep};
    }

    @Override public int start() { return pd.start(); }

    @Override int states() { return pd.configs(); }

    @Override boolean acceptsState(int state) { return pd.accepts(state); }

    @Override int walkBytes(int state, byte[] bytes) { return pd.walk(state, bytes); }

    @Override BitSet compute(int config) {
        int[] tops = pd.topFrames(config);
        BitSet allowed = new BitSet(vocab.size);
        int[][] deps = new int[tops.length][];
        for (int i = 0; i < tops.length; i++) {
            classify(tops[i]);
            synchronized (this) {
                allowed.or(accepted[tops[i]]);
                deps[i] = dependent[tops[i]];
            }
        }
        int[] check;
        if (deps.length == 1) {
            int n = 0;
            check = new int[deps[0].length];
            for (int p : deps[0]) if (!allowed.get(vocab.sorted[p])) check[n++] = p;
            check = Arrays.copyOf(check, n);
        } else {   // union of the frames' lists, ascending, without tokens already allowed
            BitSet pos = new BitSet(vocab.sorted.length);
            for (int[] d : deps) for (int p : d) if (!allowed.get(vocab.sorted[p])) pos.set(p);
            check = pos.stream().toArray();
        }
        walk(config, check, allowed, false);
        if (pd.accepts(config)) for (int e : endTokens) allowed.set(e);
        return allowed;
    }

    /** Fills accepted/dependent of frame {@code f} (once). */
    private void classify(int f) {
        synchronized (this) { if (accepted[f] != null) return; }
        int rule = pd.frameRule[f];
        int local = pd.local(rule, f - pd.frameBase[rule]);
        BitSet acc = new BitSet(vocab.size);
        int[] dep = walk(local, null, acc, true);
        synchronized (this) {
            if (accepted[f] == null) { accepted[f] = acc; dependent[f] = dep; }
        }
    }

    /**
     * Walks sorted-vocabulary positions ({@code positions == null}: all) from {@code config}, setting tokens that walk
     * completely in {@code out}. With {@code classify}, {@code config} is a local one: returns the positions of
     * tokens that reach the context (after at least one byte) without being accepted; otherwise returns null.
     */
    private int[] walk(int config, int[] positions, BitSet out, boolean classify) {
        int[] sorted = vocab.sorted, start = vocab.start, skip = vocab.skip, lcp = vocab.lcp;
        byte[] flat = vocab.flat;
        int[] st = new int[vocab.maxLen + 1];
        boolean[] ctx = new boolean[vocab.maxLen + 1];   // ctx[k]: the context was reached after 1..k bytes
        st[0] = config;
        int[] dep = classify ? new int[64] : null;
        int nd = 0;
        int count = positions == null ? sorted.length : positions.length;
        int valid = 0;   // st[0..valid] hold states of the previous token's prefix
        int prev = -1;
        int idx = 0;
        while (idx < count) {
            int i = positions == null ? idx : positions[idx];
            int from = start[i], len = start[i + 1] - from;
            int k;
            if (prev < 0) k = 0;
            else if (positions == null && prev == i - 1) k = Math.min(lcp[i], valid);
            else {
                int pf = start[prev], pl = start[prev + 1] - pf;
                int m = Arrays.mismatch(flat, pf, pf + pl, flat, from, from + len);
                k = Math.min(m < 0 ? len : m, valid);
            }
            for (; k < len; k++) {
                int s = pd.step(st[k], flat[from + k]);
                if (s == Pushdown.DEAD) break;
                st[k + 1] = s;
                ctx[k + 1] = ctx[k] || (classify && pd.reachedContext(s));
            }
            prev = i;
            valid = k;
            if (k == len) {
                out.set(sorted[i]);
                idx++;
                continue;
            }
            // dies at byte k: every later token sharing these k+1 bytes dies the same way
            int next = skip[from + k];
            if (classify && ctx[k]) {
                for (int j = i; j < next; j++) {
                    if (nd == dep.length) dep = Arrays.copyOf(dep, nd * 2);
                    dep[nd++] = j;
                }
            }
            if (positions == null) idx = next;
            else {
                int p = Arrays.binarySearch(positions, idx + 1, count, next);
                idx = p >= 0 ? p : -p - 1;
            }
        }
        return classify ? Arrays.copyOf(dep, nd) : null;
    }

}
