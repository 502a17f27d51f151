package io.vlmflux.llm.constrain;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;

/**
 * A pushdown automaton over UTF-8 bytes for a recursive {@link Cfg}: one {@link ByteDfa} per rule whose edges are bytes
 * and calls of rules (symbol {@code 256 + rule}), plus a stack of return points. A <em>stack</em> is an interned
 * linked list of frames {@code (rule, dfa state)}; a <em>configuration</em> is the set of stacks the input read so far
 * may have led to (the grammar may be ambiguous), closed under calls (a call edge pushes the callee's start) and returns
 * (an accepting frame pops), and keeping only stacks whose top frame can read a byte, plus two flags: <em>accept</em>
 * (some stack returned from the start rule: the input is a sentence) and <em>context</em> (some stack returned below
 * an unknown context, see {@link #local}). Configurations are interned to small ints (the states a
 * {@link GrammarConstraint} hands out) and their byte transitions are memoized, so re-walking a byte string costs a
 * hash lookup per byte. Left recursion is refused by {@link Cfg}, so closures are finite. Thread-safe (synchronized).
 */
final class Pushdown implements Language {
    static final int DEAD = -1;
    static final int BOTTOM = -1, CONTEXT = -2;   // parents of the lowest frame
    /**
     * Parser configurations one constraint may intern (each costs ~1.2 KB once stepped from). A recursive JSON
     * document on a real tokenizer visits ~2,100; the bound keeps a hostile schema or grammar (e.g. a server request)
     * to ~60 MB per constraint, and {@link TokenVocabulary} caches at most 8 of them. {@code -Dvlmflux.constraint.maxConfigurations=N} raises it.
     */
    static final int MAX_CONFIGS = Integer.getInteger("vlmflux.constraint.maxConfigurations", 50_000);

    private final ByteDfa[] dfas;
    private final int start;
    private final List<String> names;
    final int[] frameBase;          // frame id of (rule, state) = frameBase[rule] + state
    final int frames;
    final int[] frameRule;          // frame id -> rule
    private final boolean[] hasBytes;
    private final int[][] calls;    // per frame: callee, return state, callee, return state, ...

    // interned stacks: node = (rule, state, parent node | BOTTOM | CONTEXT)
    private int[] nRule = new int[1024], nState = new int[1024], nParent = new int[1024];
    private int nodes;
    private final HashMap<Long, Integer> nodeIds = new HashMap<>();
    // interned configurations
    private final List<int[]> cfgNodes = new ArrayList<>();
    private final List<Integer> cfgFlags = new ArrayList<>();   // bit 0 accept, bit 1 context
    private final HashMap<Key, Integer> cfgIds = new HashMap<>();
    private final List<int[]> steps = new ArrayList<>();   // per configuration stepped from: byte -> next (UNKNOWN until computed); null before
    private static final int UNKNOWN = -3;
    private final int startConfig;

    private record Key(int[] nodes, int flags) {
        @Override public boolean equals(Object o) { return o instanceof Key k && k.flags == flags && Arrays.equals(k.nodes, nodes); }
        @Override public int hashCode() { return Arrays.hashCode(nodes) * 3 + flags; }
    }

    Pushdown(ByteDfa[] dfas, int start, List<String> names) {
        this.dfas = dfas;
        this.start = start;
        this.names = names;
        frameBase = new int[dfas.length];
        int f = 0;
        for (int r = 0; r < dfas.length; r++) { frameBase[r] = f; if (dfas[r] != null) f += dfas[r].states(); }
        frames = f;
        hasBytes = new boolean[f];
        frameRule = new int[f];
        for (int r = 0; r < dfas.length; r++) if (dfas[r] != null) Arrays.fill(frameRule, frameBase[r], frameBase[r] + dfas[r].states(), r);
        calls = new int[f][];
        for (int r = 0; r < dfas.length; r++) {
            if (dfas[r] == null) continue;
            for (int s = 0; s < dfas[r].states(); s++) {
                hasBytes[frameBase[r] + s] = dfas[r].hasByteEdge(s);
                List<Integer> c = new ArrayList<>();
                for (int callee = 0; callee < dfas.length; callee++) {
                    int t = dfas[r].afterCall(s, callee);
                    if (t != ByteDfa.DEAD) { c.add(callee); c.add(t); }
                }
                calls[frameBase[r] + s] = c.stream().mapToInt(Integer::intValue).toArray();
            }
        }
        startConfig = closure(new int[] {node(start, 0, BOTTOM)});
    }

    int rules() { return dfas.length; }

    String ruleName(int r) { return names.get(r); }

    synchronized int start() { return startConfig; }

    /** The configuration of a lone frame {@code (rule, state)} above an unknown context (for context-free token analysis). */
    synchronized int local(int rule, int state) { return closure(new int[] {node(rule, state, CONTEXT)}); }

    synchronized int configs() { return cfgNodes.size(); }

    synchronized boolean accepts(int config) { return (cfgFlags.get(config) & 1) != 0; }

    /** Whether some stack returned below the context frame (only in {@link #local} configurations). */
    synchronized boolean reachedContext(int config) { return (cfgFlags.get(config) & 2) != 0; }

    /** The frame ids ({@code frameBase[rule] + state}) of the configuration's top frames, distinct, ascending. */
    synchronized int[] topFrames(int config) {
        int[] ns = cfgNodes.get(config);
        int[] f = new int[ns.length];
        for (int i = 0; i < ns.length; i++) f[i] = frameBase[nRule[ns[i]]] + nState[ns[i]];
        return Arrays.stream(f).distinct().sorted().toArray();
    }

    /** The configuration after byte {@code b}, or {@link #DEAD}. */
    synchronized int step(int config, int b) {
        int[] row = steps.get(config);
        if (row == null) {
            row = new int[256];
            Arrays.fill(row, UNKNOWN);
            steps.set(config, row);
        }
        int known = row[b & 0xFF];
        if (known != UNKNOWN) return known;
        int[] ns = cfgNodes.get(config);
        int[] seeds = new int[ns.length];
        int k = 0;
        for (int n : ns) {
            int t = dfas[nRule[n]].next(nState[n], b);
            if (t != ByteDfa.DEAD) seeds[k++] = node(nRule[n], t, nParent[n]);
        }
        int r = k == 0 ? DEAD : closure(Arrays.copyOf(seeds, k));
        row[b & 0xFF] = r;
        return r;
    }

    synchronized int walk(int config, byte[] bytes) {
        for (byte b : bytes) {
            config = step(config, b);
            if (config == DEAD) return DEAD;
        }
        return config;
    }

    @Override public boolean matches(byte[] bytes) {
        int c = walk(start(), bytes);
        return c != DEAD && accepts(c);
    }

    private int[] mark = new int[1024], work = new int[64], keep = new int[64];
    private int epoch;
    private int[][] nPushes = new int[1024][];   // per node: the nodes its call edges push (computed once)
    private static final int[] NONE = new int[0];

    private static int[] push(int[] a, int i, int v) {
        if (i == a.length) a = Arrays.copyOf(a, a.length * 2);
        a[i] = v;
        return a;
    }

    private int[] pushes(int n, int f) {
        int[] c = calls[f];
        if (c.length == 0) return NONE;
        if (n < nPushes.length && nPushes[n] != null) return nPushes[n];
        int rule = nRule[n], parent = nParent[n];
        int[] out = new int[c.length / 2];
        for (int i = 0; i < c.length; i += 2) out[i / 2] = node(c[i], 0, node(rule, c[i + 1], parent));
        if (nPushes.length <= n) nPushes = Arrays.copyOf(nPushes, Math.max(n + 1, nPushes.length * 2));
        nPushes[n] = out;
        return out;
    }

    private int node(int rule, int state, int parent) {
        long key = ((long) parent << 32) ^ ((long) frameBase[rule] + state);
        Integer id = nodeIds.get(key);
        if (id != null) return id;
        if (nodes == nRule.length) {
            nRule = Arrays.copyOf(nRule, nodes * 2);
            nState = Arrays.copyOf(nState, nodes * 2);
            nParent = Arrays.copyOf(nParent, nodes * 2);
        }
        nRule[nodes] = rule;
        nState[nodes] = state;
        nParent[nodes] = parent;
        nodeIds.put(key, nodes);
        return nodes++;
    }

    /** Closes {@code seeds} under calls and returns, interns the result; DEAD when it is empty. */
    private int closure(int[] seeds) {
        if (mark.length < nodes) mark = Arrays.copyOf(mark, Math.max(nodes, mark.length * 2));
        int epoch = ++this.epoch;
        int sp = 0, nk = 0, seen = 0, flags = 0;
        for (int s : seeds) if (mark[s] != epoch) { mark[s] = epoch; work = push(work, sp++, s); }
        while (sp > 0) {
            int n = work[--sp];
            seen++;
            int rule = nRule[n], st = nState[n], parent = nParent[n];
            int f = frameBase[rule] + st;
            if (dfas[rule].accepts(st)) {
                if (parent == BOTTOM) flags |= 1;
                else if (parent == CONTEXT) flags |= 2;
                else if (mark[parent] != epoch) { mark[parent] = epoch; work = push(work, sp++, parent); }
            }
            for (int pushed : pushes(n, f)) {
                if (mark.length < nodes) mark = Arrays.copyOf(mark, Math.max(nodes, mark.length * 2));
                if (mark[pushed] != epoch) { mark[pushed] = epoch; work = push(work, sp++, pushed); }
            }
            if (hasBytes[f]) keep = push(keep, nk++, n);
            if (seen > 1_000_000) throw new ConstraintException("grammar too large: a configuration of more than 1000000 stacks");
        }
        if (nk == 0 && flags == 0) return DEAD;
        int[] ns = Arrays.copyOf(keep, nk);
        Arrays.sort(ns);
        Key key = new Key(ns, flags);
        Integer id = cfgIds.get(key);
        if (id != null) return id;
        if (cfgNodes.size() >= MAX_CONFIGS) throw new ConstraintException("grammar too large: more than " + MAX_CONFIGS + " parser configurations");
        cfgNodes.add(ns);
        cfgFlags.add(flags);
        steps.add(null);
        cfgIds.put(key, cfgNodes.size() - 1);
        return cfgNodes.size() - 1;
    }
}
