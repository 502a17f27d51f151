package io.vlmflux.llm.constrain;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Test helper: seeded random grammars as a small syntax tree of their own, rendered to GBNF or Lark text, with a
 * straightforward character-level reference matcher (sets of end positions, memoized per rule and position) and a
 * random sentence generator. Grammars have no left recursion: a rule refers to itself or an earlier rule only after
 * a literal, and every rule has a reference-free alternative, so every rule can finish.
 */
final class RandomGrammars {
    sealed interface G {}
    record Lit(String s) implements G {}
    record Cls(int[] ranges, boolean negate) implements G {}    // pairs
    record Seq(List<G> parts) implements G {}
    record Alt(List<G> opts) implements G {}
    record Rep(G body, int min, int max) implements G {}       // max -1: unbounded
    record Ref(int rule) implements G {}

    static final String[] LITS = {"a", "b", "ab", "(", ")", ",", "é", "中x", "\"", "\\", "[", "]", " ", "0", "1"};
    static final int[][] CLASSES = {{'a', 'c'}, {'0', '9'}, {'x', 'x', 'é', 'é'}, {'a', 'a', '(', ')'}};

    final List<G> rules = new ArrayList<>();

    static RandomGrammars random(SplittableRandom r) {
        RandomGrammars g = new RandomGrammars();
        int n = 1 + r.nextInt(4);
        for (int i = 0; i < n; i++) {
            G base = g.expr(r, 0, i, n, false);
            G rec = new Seq(List.of(g.expr(r, 0, i, n, true), new Lit(LITS[r.nextInt(LITS.length)]), new Ref(r.nextInt(n)), new Lit(LITS[r.nextInt(LITS.length)])));
            g.rules.add(r.nextInt(4) == 0 ? base : new Alt(List.of(rec, base)));
        }
        return g;
    }

    /** {@code refs}: may refer to rules; first-position references only to later rules (no left recursion). */
    private G expr(SplittableRandom r, int depth, int self, int n, boolean refs) {
        int k = depth > 2 ? r.nextInt(2) : r.nextInt(7);
        return switch (k) {
            case 0 -> new Lit(LITS[r.nextInt(LITS.length)]);
            case 1 -> new Cls(CLASSES[r.nextInt(CLASSES.length)], r.nextInt(5) == 0);
            case 2 -> {
                List<G> ps = new ArrayList<>();
                int m = 2 + r.nextInt(2);
                for (int i = 0; i < m; i++) ps.add(expr(r, depth + 1, self, n, refs));
                if (refs) {   // a guarded reference to any rule (recursion), after a literal
                    ps.add(new Lit(LITS[r.nextInt(LITS.length)]));
                    ps.add(new Ref(r.nextInt(n)));
                    ps.add(new Lit(LITS[r.nextInt(LITS.length)]));
                }
                yield new Seq(ps);
            }
            case 3 -> new Alt(List.of(expr(r, depth + 1, self, n, refs), expr(r, depth + 1, self, n, false)));
            case 4 -> {
                int min = r.nextInt(3), max = r.nextBoolean() ? -1 : min + r.nextInt(3);
                yield new Rep(expr(r, depth + 1, self, n, false), min, max);
            }
            case 5 -> self + 1 < n && refs ? new Ref(self + 1 + r.nextInt(n - self - 1)) : new Lit(LITS[r.nextInt(LITS.length)]);
            default -> new Seq(List.of(new Lit(LITS[r.nextInt(LITS.length)]), expr(r, depth + 1, self, n, refs)));
        };
    }

    // ---- rendering ----

    String gbnf() {
        StringBuilder sb = new StringBuilder("# random grammar\n");
        for (int i = 0; i < rules.size(); i++) sb.append(i == 0 ? "root" : "r" + i).append(" ::= ").append(render(rules.get(i), false)).append('\n');
        return sb.toString();
    }

    String lark() {
        StringBuilder sb = new StringBuilder("// random grammar\n");
        for (int i = 0; i < rules.size(); i++) sb.append(i == 0 ? "start" : "r" + i).append(": ").append(render(rules.get(i), true)).append('\n');
        return sb.toString();
    }

    private String render(G g, boolean lark) {
        return switch (g) {
            case Lit l -> quote(l.s());
            case Cls c -> {
                if (lark) {   // as a regex
                    StringBuilder sb = new StringBuilder(c.negate() ? "/[^" : "/[");
                    for (int i = 0; i < c.ranges().length; i += 2) sb.append(esc(c.ranges()[i], true)).append('-').append(esc(c.ranges()[i + 1], true));
                    yield sb.append("]/").toString();
                }
                StringBuilder sb = new StringBuilder(c.negate() ? "[^" : "[");
                for (int i = 0; i < c.ranges().length; i += 2) sb.append(esc(c.ranges()[i], false)).append('-').append(esc(c.ranges()[i + 1], false));
                yield sb.append(']').toString();
            }
            case Seq s -> "(" + String.join(" ", s.parts().stream().map(p -> render(p, lark)).toList()) + ")";
            case Alt a -> "(" + String.join(" | ", a.opts().stream().map(p -> render(p, lark)).toList()) + ")";
            case Rep p -> {
                String b = "(" + render(p.body(), lark) + ")";
                if (p.min() == 0 && p.max() == -1) yield b + "*";
                if (p.min() == 1 && p.max() == -1) yield b + "+";
                if (p.min() == 0 && p.max() == 1) yield lark ? "[" + render(p.body(), true) + "]" : b + "?";
                if (lark) yield p.max() == -1 ? b + " ~ " + p.min() + " " + b + "*" : b + " ~ " + p.min() + ".." + p.max();
                yield b + "{" + p.min() + "," + (p.max() == -1 ? "" : p.max()) + "}";
            }
            case Ref f -> f.rule() == 0 ? (lark ? "start" : "root") : "r" + f.rule();
        };
    }

    private static String esc(int cp, boolean regex) {
        boolean special = cp == '-' || cp == ']' || cp == '[' || cp == '\\' || cp == '^' || regex && (cp == '(' || cp == ')' || cp == '/');
        return special ? "\\" + (char) cp : Character.toString(cp);
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    // ---- reference matcher ----

    boolean matches(String s) {
        int[] cps = s.codePoints().toArray();
        return ends(new Ref(0), cps, 0, new HashMap<>()).contains(cps.length);
    }

    private Set<Integer> ends(G g, int[] s, int i, Map<Long, Set<Integer>> memo) {
        switch (g) {
            case Lit l -> {
                int[] t = l.s().codePoints().toArray();
                if (i + t.length > s.length) return Set.of();
                for (int k = 0; k < t.length; k++) if (s[i + k] != t[k]) return Set.of();
                return Set.of(i + t.length);
            }
            case Cls c -> {
                if (i >= s.length) return Set.of();
                boolean in = false;
                for (int k = 0; k < c.ranges().length; k += 2) in |= s[i] >= c.ranges()[k] && s[i] <= c.ranges()[k + 1];
                return in != c.negate() ? Set.of(i + 1) : Set.of();
            }
            case Seq q -> {
                Set<Integer> cur = Set.of(i);
                for (G p : q.parts()) {
                    Set<Integer> next = new HashSet<>();
                    for (int j : cur) next.addAll(ends(p, s, j, memo));
                    cur = next;
                }
                return cur;
            }
            case Alt a -> {
                Set<Integer> out = new HashSet<>();
                for (G o : a.opts()) out.addAll(ends(o, s, i, memo));
                return out;
            }
            case Rep p -> {
                Set<Integer> out = new HashSet<>(), cur = Set.of(i);
                if (p.min() == 0) out.add(i);
                for (int n = 1; (p.max() < 0 || n <= p.max()) && !cur.isEmpty(); n++) {
                    Set<Integer> next = new HashSet<>();
                    for (int j : cur) next.addAll(ends(p.body(), s, j, memo));
                    if (p.max() < 0) next.removeAll(out);   // unbounded: positions seen before add nothing new
                    if (n >= p.min()) out.addAll(next);
                    cur = next;
                    if (n > s.length + p.min() + 1) break;
                }
                return out;
            }
            case Ref f -> {
                long key = (long) f.rule() << 32 | i;
                Set<Integer> m = memo.get(key);
                if (m == null) {
                    m = ends(rules.get(f.rule()), s, i, memo);
                    memo.put(key, m);
                }
                return m;
            }
        }
    }

    // ---- sentences ----

    /** A random sentence (recursion cut off by preferring reference-free alternatives deeper down); null if it got too long. */
    String sentence(SplittableRandom r) {
        StringBuilder sb = new StringBuilder();
        return gen(new Ref(0), r, 0, sb) ? sb.toString() : null;
    }

    private boolean gen(G g, SplittableRandom r, int depth, StringBuilder out) {
        if (out.length() > 60 || depth > 40) return false;
        switch (g) {
            case Lit l -> out.append(l.s());
            case Cls c -> {
                if (c.negate()) out.append(r.nextBoolean() ? "z" : "中");
                else {
                    int k = 2 * r.nextInt(c.ranges().length / 2);
                    out.appendCodePoint(c.ranges()[k] + r.nextInt(c.ranges()[k + 1] - c.ranges()[k] + 1));
                }
            }
            case Seq q -> { for (G p : q.parts()) if (!gen(p, r, depth + 1, out)) return false; }
            case Alt a -> { return gen(a.opts().get(depth > 6 ? a.opts().size() - 1 : r.nextInt(a.opts().size())), r, depth + 1, out); }
            case Rep p -> {
                int n = p.min() + r.nextInt((p.max() < 0 ? 2 : p.max() - p.min()) + 1);
                for (int k = 0; k < n; k++) if (!gen(p.body(), r, depth + 1, out)) return false;
            }
            case Ref f -> { return gen(rules.get(f.rule()), r, depth + 1, out); }
        }
        return true;
    }
}
