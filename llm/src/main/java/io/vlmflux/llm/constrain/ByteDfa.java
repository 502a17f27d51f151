package io.vlmflux.llm.constrain;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A deterministic automaton over UTF-8 bytes, built from an {@link Rx} by Thompson construction (code-point sets become
 * alternatives of byte-range sequences) and subset construction over byte equivalence classes (bytes no edge tells
 * apart share a column, so the table is states x classes rather than states x 256). States that cannot reach an
 * accepting state are removed, so every live state can still complete a match: {@link #next} returns {@link #DEAD} for
 * a byte that leaves the language. State 0 is the start. Immutable and thread-safe.
 */
final class ByteDfa implements Language {
    static final int DEAD = -1;
    static final int MAX_STATES = 200_000;

    private final int[] classOf;      // byte -> column
    private final int classes;
    private final int[] table;        // state * classes + column -> state or DEAD
    private final boolean[] accept;

    private ByteDfa(int[] classOf, int classes, int[] table, boolean[] accept) {
        this.classOf = classOf;
        this.classes = classes;
        this.table = table;
        this.accept = accept;
    }

    int states() { return accept.length; }

    /** Byte equivalence classes (columns of the table). */
    int byteClasses() { return classes; }

    int next(int state, int b) { return table[state * classes + classOf[b & 0xFF]]; }

    /** The state after a call of rule {@code rule} returns ({@link Rx.Ref} edges; DEAD when there is none). */
    int afterCall(int state, int rule) {
        int sym = 256 + rule;
        return sym < classOf.length ? table[state * classes + classOf[sym]] : DEAD;
    }

    /** Number of rules the call edges may name ({@code 0} for a plain byte automaton). */
    int callSymbols() { return classOf.length - 256; }

    /** Whether some byte leaves {@code state}. */
    boolean hasByteEdge(int state) {
        for (int b = 0; b < 256; b++) if (next(state, b) != DEAD) return true;
        return false;
    }

    boolean accepts(int state) { return accept[state]; }

    /** Walks {@code bytes} from {@code state}; DEAD when they leave the language. */
    int walk(int state, byte[] bytes) {
        for (byte b : bytes) {
            state = next(state, b);
            if (state == DEAD) return DEAD;
        }
        return state;
    }

    @Override public boolean matches(byte[] bytes) {
        int s = walk(0, bytes);
        return s != DEAD && accepts(s);
    }

    /** A shortest byte string both automata accept (as text), or null when their languages are disjoint. */
    static String commonWitness(ByteDfa a, ByteDfa b) {
        Map<Long, long[]> seen = new HashMap<>();   // pair -> {previous pair, byte}
        ArrayDeque<Long> q = new ArrayDeque<>();
        long start = 0L;
        seen.put(start, null);
        q.add(start);
        while (!q.isEmpty()) {
            long p = q.poll();
            int sa = (int) (p >>> 32), sb = (int) p;
            if (a.accepts(sa) && b.accepts(sb)) {
                java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
                List<Integer> bytes = new ArrayList<>();
                for (long[] prev = seen.get(p); prev != null; prev = seen.get(prev[0])) bytes.add(0, (int) prev[1]);
                bytes.forEach(out::write);
                return "\"" + out.toString(java.nio.charset.StandardCharsets.UTF_8) + "\"";
            }
            for (int c = 0; c < 256; c++) {
                int ta = a.next(sa, c), tb = b.next(sb, c);
                if (ta == DEAD || tb == DEAD) continue;
                long t = ((long) ta << 32) | (tb & 0xFFFFFFFFL);
                if (!seen.containsKey(t)) { seen.put(t, new long[] {p, c}); q.add(t); }
            }
        }
        return null;
    }

    // ---- construction ----

    static ByteDfa compile(Rx rx) { return compile(rx, 0); }

    /** With {@code calls} rule symbols: {@link Rx.Ref} {@code r} becomes an edge on symbol {@code 256 + r}. */
    static ByteDfa compile(Rx rx, int calls) {
        Nfa nfa = new Nfa();
        nfa.symbols = 256 + calls;
        int start = nfa.state(), end = nfa.state();
        nfa.build(rx, start, end);
        return determinize(nfa, start, end);
    }

    /** Thompson NFA over byte ranges: per state, epsilon targets and (lo, hi, target) edges. */
    private static final class Nfa {
        final List<int[]> eps = new ArrayList<>();
        final List<int[]> edges = new ArrayList<>();
        int symbols = 256;

        int state() {
            eps.add(new int[0]);
            edges.add(new int[0]);
            if (eps.size() > 4_000_000) throw new ConstraintException("constraint too large: more than 4000000 automaton states before determinization");
            return eps.size() - 1;
        }

        void epsilon(int from, int to) { eps.set(from, append(eps.get(from), to)); }

        void edge(int from, int lo, int hi, int to) { edges.set(from, append(edges.get(from), lo, hi, to)); }

        static int[] append(int[] a, int... v) {
            int[] r = Arrays.copyOf(a, a.length + v.length);
            System.arraycopy(v, 0, r, a.length, v.length);
            return r;
        }

        /** Adds {@code rx} between {@code from} and {@code to}. */
        void build(Rx rx, int from, int to) {
            switch (rx) {
                case Rx.Bytes b -> {
                    int cur = from;
                    byte[] bs = b.bytes();
                    for (int i = 0; i < bs.length; i++) {
                        int nx = i == bs.length - 1 ? to : state();
                        edge(cur, bs[i] & 0xFF, bs[i] & 0xFF, nx);
                        cur = nx;
                    }
                    if (bs.length == 0) epsilon(from, to);
                }
                case Rx.Chars c -> {
                    int[] r = c.ranges();
                    for (int i = 0; i < r.length; i += 2) Utf8Ranges.split(r[i], r[i + 1], seq -> {
                        int cur = from;
                        for (int k = 0; k < seq.length; k += 2) {
                            int nx = k == seq.length - 2 ? to : state();
                            edge(cur, seq[k], seq[k + 1], nx);
                            cur = nx;
                        }
                    });
                }
                case Rx.Ref r -> {
                    if (256 + r.rule() >= symbols) throw new IllegalStateException("rule reference " + r.rule() + " in a regular automaton");
                    edge(from, 256 + r.rule(), 256 + r.rule(), to);
                }
                case Rx.Cat cat -> {
                    List<Rx> ps = cat.parts();
                    if (ps.isEmpty()) { epsilon(from, to); return; }
                    int cur = from;
                    for (int i = 0; i < ps.size(); i++) {
                        int nx = i == ps.size() - 1 ? to : state();
                        build(ps.get(i), cur, nx);
                        cur = nx;
                    }
                }
                case Rx.Alt alt -> {
                    for (Rx o : alt.options()) {
                        int s = state();
                        epsilon(from, s);
                        build(o, s, to);
                    }
                }
                case Rx.Rep rep -> {
                    int cur = from;
                    for (int i = 0; i < rep.min(); i++) {
                        int nx = state();
                        build(rep.body(), cur, nx);
                        cur = nx;
                    }
                    if (rep.max() == -1) {
                        int loop = state();
                        epsilon(cur, loop);
                        int back = state();
                        build(rep.body(), loop, back);
                        epsilon(back, loop);
                        epsilon(loop, to);
                    } else {
                        for (int i = rep.min(); i < rep.max(); i++) {
                            epsilon(cur, to);
                            int nx = i == rep.max() - 1 ? to : state();
                            build(rep.body(), cur, nx);
                            cur = nx;
                        }
                        if (rep.max() == rep.min()) epsilon(cur, to);
                    }
                }
            }
        }
    }

    private record Key(int[] set) {
        @Override public boolean equals(Object o) { return o instanceof Key k && Arrays.equals(set, k.set); }
        @Override public int hashCode() { return Arrays.hashCode(set); }
    }

    private static int[] closure(Nfa nfa, int[] seeds, boolean[] mark) {
        ArrayDeque<Integer> stack = new ArrayDeque<>();
        List<Integer> out = new ArrayList<>();
        for (int s : seeds) if (!mark[s]) { mark[s] = true; stack.push(s); }
        while (!stack.isEmpty()) {
            int s = stack.pop();
            out.add(s);
            for (int t : nfa.eps.get(s)) if (!mark[t]) { mark[t] = true; stack.push(t); }
        }
        int[] r = new int[out.size()];
        for (int i = 0; i < r.length; i++) { r[i] = out.get(i); mark[r[i]] = false; }
        Arrays.sort(r);
        return r;
    }

    private static ByteDfa determinize(Nfa nfa, int start, int end) {
        int syms = nfa.symbols;
        boolean[] cut = new boolean[syms + 1];
        cut[0] = true;
        cut[256] = true;   // bytes and call symbols never share a class
        for (int[] e : nfa.edges) for (int k = 0; k < e.length; k += 3) { cut[e[k]] = true; cut[e[k + 1] + 1] = true; }
        int[] classOf = new int[syms];
        int nc = 0;
        int[] rep = new int[syms];
        for (int b = 0; b < syms; b++) {
            if (cut[b]) rep[nc++] = b;
            classOf[b] = nc - 1;
        }
        boolean[] mark = new boolean[nfa.eps.size()];
        Map<Key, Integer> ids = new HashMap<>();
        List<int[]> sets = new ArrayList<>();
        int[] table = new int[nc * 64];
        int[] s0 = closure(nfa, new int[] {start}, mark);
        ids.put(new Key(s0), 0);
        sets.add(s0);
        int[] buf = new int[64];
        for (int d = 0; d < sets.size(); d++) {
            if (table.length < (d + 1) * nc) table = Arrays.copyOf(table, table.length * 2);
            int[] set = sets.get(d);
            for (int c = 0; c < nc; c++) {
                int b = rep[c], n = 0;
                for (int s : set) {
                    int[] e = nfa.edges.get(s);
                    for (int k = 0; k < e.length; k += 3)
                        if (e[k] <= b && b <= e[k + 1]) {
                            if (n == buf.length) buf = Arrays.copyOf(buf, n * 2);
                            buf[n++] = e[k + 2];
                        }
                }
                if (n == 0) { table[d * nc + c] = DEAD; continue; }
                int[] target = closure(nfa, Arrays.copyOf(buf, n), mark);
                Key key = new Key(target);
                Integer known = ids.get(key);
                if (known == null) {
                    known = sets.size();
                    if (known >= MAX_STATES)
                        throw new ConstraintException("constraint too large: its automaton exceeds " + MAX_STATES + " states");
                    ids.put(key, known);
                    sets.add(target);
                }
                table[d * nc + c] = known;
            }
        }
        int n = sets.size();
        boolean[] accept = new boolean[n];
        for (int d = 0; d < n; d++) accept[d] = Arrays.binarySearch(sets.get(d), end) >= 0;
        return prune(classOf, nc, Arrays.copyOf(table, n * nc), accept);
    }

    /** Drops states that cannot reach acceptance and renumbers (start stays 0; an empty language keeps a dead start). */
    private static ByteDfa prune(int[] classOf, int nc, int[] table, boolean[] accept) {
        int n = accept.length;
        List<List<Integer>> rev = new ArrayList<>();
        for (int i = 0; i < n; i++) rev.add(new ArrayList<>());
        for (int s = 0; s < n; s++) for (int c = 0; c < nc; c++) { int t = table[s * nc + c]; if (t >= 0) rev.get(t).add(s); }
        boolean[] live = new boolean[n];
        ArrayDeque<Integer> q = new ArrayDeque<>();
        for (int s = 0; s < n; s++) if (accept[s]) { live[s] = true; q.add(s); }
        while (!q.isEmpty()) for (int p : rev.get(q.poll())) if (!live[p]) { live[p] = true; q.add(p); }
        int[] renum = new int[n];
        int m = 0;
        renum[0] = m++;   // keep the start even when it is not live
        for (int s = 1; s < n; s++) renum[s] = live[s] ? m++ : DEAD;
        int[] t2 = new int[m * nc];
        boolean[] a2 = new boolean[m];
        for (int s = 0; s < n; s++) {
            if (renum[s] < 0) continue;
            a2[renum[s]] = accept[s];
            for (int c = 0; c < nc; c++) {
                int t = table[s * nc + c];
                t2[renum[s] * nc + c] = t >= 0 && live[t] ? renum[t] : DEAD;
            }
        }
        return new ByteDfa(classOf, nc, t2, a2);
    }
}
