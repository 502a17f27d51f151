package io.vlmflux.llm.constrain;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The regular-language syntax tree every constraint compiles to before it becomes a byte automaton: literal byte
 * strings, sets of Unicode code points (encoded as UTF-8 by {@link ByteDfa}), concatenation, alternation and bounded
 * or unbounded repetition. Immutable; sub-trees may be shared.
 */
sealed interface Rx {
    /** A literal byte string (UTF-8 of a literal text). */
    record Bytes(byte[] bytes) implements Rx {}

    /** A set of code points as sorted, disjoint, non-adjacent inclusive ranges {@code [lo0, hi0, lo1, hi1, ...]}. */
    record Chars(int[] ranges) implements Rx {}

    record Cat(List<Rx> parts) implements Rx {}

    record Alt(List<Rx> options) implements Rx {}

    /** {@code min} to {@code max} repetitions; {@code max == -1}: unbounded. */
    record Rep(Rx body, int min, int max) implements Rx {}

    /** A reference to rule {@code rule} of a {@link Cfg} (a call in a pushdown automaton; inlined when not recursive). */
    record Ref(int rule) implements Rx {}

    int MAX_CODE_POINT = 0x10FFFF;

    static Rx text(String s) { return new Bytes(s.getBytes(StandardCharsets.UTF_8)); }

    static Rx cat(Rx... parts) { return new Cat(List.of(parts)); }

    static Rx alt(List<Rx> options) { return options.size() == 1 ? options.get(0) : new Alt(List.copyOf(options)); }

    static Rx empty() { return new Cat(List.of()); }

    static Chars range(int lo, int hi) { return new Chars(new int[] {lo, hi}); }

    /** Normalizes unsorted, possibly overlapping pairs into a {@link Chars}. */
    static Chars set(int[] pairs) {
        int n = pairs.length / 2;
        long[] packed = new long[n];
        for (int i = 0; i < n; i++) packed[i] = ((long) pairs[2 * i] << 32) | pairs[2 * i + 1];
        Arrays.sort(packed);
        List<int[]> out = new ArrayList<>();
        for (long p : packed) {
            int lo = (int) (p >>> 32), hi = (int) p;
            if (hi < lo) continue;
            if (!out.isEmpty() && lo <= out.get(out.size() - 1)[1] + 1)
                out.get(out.size() - 1)[1] = Math.max(out.get(out.size() - 1)[1], hi);
            else out.add(new int[] {lo, hi});
        }
        int[] r = new int[out.size() * 2];
        for (int i = 0; i < out.size(); i++) { r[2 * i] = out.get(i)[0]; r[2 * i + 1] = out.get(i)[1]; }
        return new Chars(r);
    }

    static Chars union(Chars a, Chars b) {
        int[] all = Arrays.copyOf(a.ranges(), a.ranges().length + b.ranges().length);
        System.arraycopy(b.ranges(), 0, all, a.ranges().length, b.ranges().length);
        return set(all);
    }

    /** All code points (surrogates included here; the UTF-8 encoder skips them) not in {@code a}. */
    static Chars complement(Chars a) {
        int[] r = a.ranges();
        List<Integer> out = new ArrayList<>();
        int next = 0;
        for (int i = 0; i < r.length; i += 2) {
            if (r[i] > next) { out.add(next); out.add(r[i] - 1); }
            next = r[i + 1] + 1;
        }
        if (next <= MAX_CODE_POINT) { out.add(next); out.add(MAX_CODE_POINT); }
        return new Chars(out.stream().mapToInt(Integer::intValue).toArray());
    }

    static Chars minus(Chars a, Chars b) {
        // a \ b = complement(complement(a) ∪ b)
        return complement(union(complement(a), b));
    }
}
