package io.vlmflux.llm.constrain;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * A context-free grammar over UTF-8 bytes: named rules whose bodies are {@link Rx} trees that may reference rules
 * ({@link Rx.Ref}). Made by {@link GrammarParser} and by {@link JsonSchemaCompiler} ({@code $ref}). {@link #compile}
 * checks it (every rule reachable from the start must be able to finish; no left recursion) and builds a
 * {@link ByteDfa} when no reachable rule is recursive (references inlined), a {@link Pushdown} otherwise.
 *
 * @param names  rule names (for messages)
 * @param bodies rule bodies, same indices
 * @param where  per rule, where it is defined (e.g. "line 3, column 1"), for messages
 * @param start  the start rule
 */
record Cfg(List<String> names, List<Rx> bodies, List<String> where, int start) {
    Cfg {
        names = List.copyOf(names);
        bodies = List.copyOf(bodies);
        where = List.copyOf(where);
    }

    /** A grammar of one rule without references. */
    static Cfg regular(Rx rx) { return new Cfg(List.of("root"), List.of(rx), List.of("the start"), 0); }

    private ConstraintException err(int rule, String why) {
        return new ConstraintException("grammar rule '" + names.get(rule) + "' (" + where.get(rule) + "): " + why);
    }

    Language compile() {
        int n = names.size();
        BitSet reach = new BitSet(n);
        List<Integer> todo = new ArrayList<>(List.of(start));
        reach.set(start);
        while (!todo.isEmpty()) {
            int r = todo.remove(todo.size() - 1);
            refs(bodies.get(r), x -> { if (!reach.get(x)) { reach.set(x); todo.add(x); } });
        }
        // productive: can derive some finite byte string
        BitSet productive = new BitSet(n);
        for (boolean changed = true; changed; ) {
            changed = false;
            for (int r = reach.nextSetBit(0); r >= 0; r = reach.nextSetBit(r + 1))
                if (!productive.get(r) && productive(bodies.get(r), productive)) { productive.set(r); changed = true; }
        }
        BitSet stuck = (BitSet) reach.clone();
        stuck.andNot(productive);
        if (!stuck.isEmpty()) {   // name the culprit: a stuck rule that depends on no other stuck rule, if there is one
            int culprit = stuck.nextSetBit(0);
            for (int r = stuck.nextSetBit(0); r >= 0; r = stuck.nextSetBit(r + 1)) {
                int self = r;
                boolean[] other = {false};
                refs(bodies.get(r), x -> { if (x != self && stuck.get(x)) other[0] = true; });
                if (!other[0]) { culprit = r; break; }
            }
            throw err(culprit, "can never finish (every alternative recurses without end, or it matches nothing)");
        }
        // recursion among reachable rules: a cycle in the reference graph
        int[] color = new int[n];
        boolean recursive = cycle(start, color);
        if (!recursive) {
            Rx[] memo = new Rx[n];
            Rx inlined = inline(bodies.get(start), memo);
            return ByteDfa.compile(inlined);
        }
        BitSet nullable = new BitSet(n);
        for (boolean changed = true; changed; ) {
            changed = false;
            for (int r = reach.nextSetBit(0); r >= 0; r = reach.nextSetBit(r + 1))
                if (!nullable.get(r) && nullable(bodies.get(r), nullable)) { nullable.set(r); changed = true; }
        }
        // left recursion: a rule that can call itself before consuming a byte
        List<BitSet> first = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            BitSet f = new BitSet(n);
            if (reach.get(r)) firstRefs(bodies.get(r), nullable, f);
            first.add(f);
        }
        for (int r = reach.nextSetBit(0); r >= 0; r = reach.nextSetBit(r + 1)) {
            BitSet seen = new BitSet(n);
            List<Integer> q = new ArrayList<>();
            first.get(r).stream().forEach(q::add);
            while (!q.isEmpty()) {
                int x = q.remove(q.size() - 1);
                if (x == r) throw err(r, "left recursion (the rule can reach itself before matching any character); rewrite it with repetition, e.g. a ::= b (\"+\" b)*");
                if (seen.get(x)) continue;
                seen.set(x);
                first.get(x).stream().forEach(q::add);
            }
        }
        ByteDfa[] dfas = new ByteDfa[n];
        for (int r = reach.nextSetBit(0); r >= 0; r = reach.nextSetBit(r + 1)) dfas[r] = ByteDfa.compile(bodies.get(r), n);
        return new Pushdown(dfas, start, names);
    }

    private boolean cycle(int r, int[] color) {
        color[r] = 1;
        boolean[] found = {false};
        refs(bodies.get(r), x -> {
            if (found[0]) return;
            if (color[x] == 1) found[0] = true;
            else if (color[x] == 0 && cycle(x, color)) found[0] = true;
        });
        color[r] = 2;
        return found[0];
    }

    private Rx inline(Rx rx, Rx[] memo) {
        return switch (rx) {
            case Rx.Ref f -> {
                if (memo[f.rule()] == null) memo[f.rule()] = inline(bodies.get(f.rule()), memo);
                yield memo[f.rule()];
            }
            case Rx.Cat c -> new Rx.Cat(c.parts().stream().map(p -> inline(p, memo)).toList());
            case Rx.Alt a -> new Rx.Alt(a.options().stream().map(p -> inline(p, memo)).toList());
            case Rx.Rep p -> new Rx.Rep(inline(p.body(), memo), p.min(), p.max());
            default -> rx;
        };
    }

    static void refs(Rx rx, java.util.function.IntConsumer out) {
        switch (rx) {
            case Rx.Ref f -> out.accept(f.rule());
            case Rx.Cat c -> c.parts().forEach(p -> refs(p, out));
            case Rx.Alt a -> a.options().forEach(p -> refs(p, out));
            case Rx.Rep p -> { if (p.max() != 0) refs(p.body(), out); }
            default -> { }
        }
    }

    private static boolean productive(Rx rx, BitSet prod) {
        return switch (rx) {
            case Rx.Bytes b -> true;
            case Rx.Chars c -> c.ranges().length > 0 && Utf8Ranges.encodable(c.ranges());
            case Rx.Cat c -> c.parts().stream().allMatch(p -> productive(p, prod));
            case Rx.Alt a -> a.options().stream().anyMatch(p -> productive(p, prod));
            case Rx.Rep p -> p.min() == 0 || productive(p.body(), prod);
            case Rx.Ref f -> prod.get(f.rule());
        };
    }

    private static boolean nullable(Rx rx, BitSet nul) {
        return switch (rx) {
            case Rx.Bytes b -> b.bytes().length == 0;
            case Rx.Chars c -> false;
            case Rx.Cat c -> c.parts().stream().allMatch(p -> nullable(p, nul));
            case Rx.Alt a -> a.options().stream().anyMatch(p -> nullable(p, nul));
            case Rx.Rep p -> p.min() == 0 || nullable(p.body(), nul);
            case Rx.Ref f -> nul.get(f.rule());
        };
    }

    private static void firstRefs(Rx rx, BitSet nul, BitSet out) {
        switch (rx) {
            case Rx.Ref f -> out.set(f.rule());
            case Rx.Cat c -> {
                for (Rx p : c.parts()) {
                    firstRefs(p, nul, out);
                    if (!nullable(p, nul)) break;
                }
            }
            case Rx.Alt a -> a.options().forEach(p -> firstRefs(p, nul, out));
            case Rx.Rep p -> { if (p.max() != 0) firstRefs(p.body(), nul, out); }
            default -> { }
        }
    }

    @Override public String toString() { return "Cfg" + names + " start " + names.get(start); }

}
