package io.vlmflux.llm.constrain;

import java.util.ArrayList;
import java.util.List;

/**
 * Parses the supported regular-expression dialect (a subset of {@code java.util.regex} and ECMAScript with the same
 * meaning in both) into an {@link Rx}: literals, {@code .} (any code point but line terminators), classes
 * {@code [a-z]} / {@code [^...]}, escapes {@code \d \D \w \W \s \S \n \r \t \f \xHH \\uHHHH} and escaped punctuation,
 * groups {@code (...)} / {@code (?:...)}, alternation, and the quantifiers {@code * + ? {m} {m,} {m,n}} (a lazy
 * {@code ?} suffix is accepted: it does not change the language). The whole output must match: {@code ^} is allowed
 * only first and {@code $} only last. Anything else (backreferences, lookaround, word boundaries, possessive
 * quantifiers, named groups, flags, class intersections) is refused with its character position. One parser per call.
 */
final class RegexParser {
    static final int MAX_REPEAT = 1000;
    private static final Rx.Chars DIGIT = Rx.range('0', '9');
    private static final Rx.Chars WORD = Rx.set(new int[] {'a', 'z', 'A', 'Z', '0', '9', '_', '_'});
    private static final Rx.Chars SPACE = Rx.set(new int[] {' ', ' ', '\t', '\r', 0x0B, 0x0B});   // \t \n \x0B \f \r
    private static final Rx.Chars DOT = Rx.complement(Rx.set(new int[] {'\n', '\n', '\r', '\r', 0x85, 0x85, 0x2028, 0x2029}));

    private final String src;
    private final int[] cps;
    private int pos;

    private RegexParser(String src) {
        this.src = src;
        this.cps = src.codePoints().toArray();
    }

    static Rx parse(String regex) {
        if (regex == null) throw new ConstraintException("regex is null");
        RegexParser p = new RegexParser(regex);
        int end = p.cps.length;
        if (end > 0 && p.cps[0] == '^') p.pos = 1;
        if (end > p.pos && p.cps[end - 1] == '$' && !(end >= 2 && p.cps[end - 2] == '\\' && !escaped(p.cps, end - 2)))
            return p.parseAll(end - 1);   // a final unescaped '$': parse up to it
        return p.parseAll(end);
    }

    /** Whether the backslash at {@code i} is itself escaped by an odd run of backslashes before it. */
    private static boolean escaped(int[] cps, int i) {
        int n = 0;
        for (int j = i - 1; j >= 0 && cps[j] == '\\'; j--) n++;
        return n % 2 == 1;
    }

    private int limit;

    private Rx parseAll(int limit) {
        this.limit = limit;
        Rx r = alternation();
        if (pos < limit) {
            if (cps[pos] == ')') throw error("unmatched ')'");
            throw error("unexpected '" + Character.toString(cps[pos]) + "'");
        }
        return r;
    }

    private ConstraintException error(String why) { return errorAt(pos, why); }

    private ConstraintException errorAt(int cpIndex, String why) {
        return new ConstraintException("regex " + quote(src) + " at position " + cpIndex + ": " + why);
    }

    private static String quote(String s) { return "\"" + (s.length() > 200 ? s.substring(0, 200) + "..." : s) + "\""; }

    private boolean more() { return pos < limit; }

    private int peek() { return cps[pos]; }

    private Rx alternation() {
        List<Rx> opts = new ArrayList<>();
        opts.add(concatenation());
        while (more() && peek() == '|') { pos++; opts.add(concatenation()); }
        return Rx.alt(opts);
    }

    private Rx concatenation() {
        List<Rx> parts = new ArrayList<>();
        while (more() && peek() != '|' && peek() != ')') parts.add(quantified());
        return parts.size() == 1 ? parts.get(0) : new Rx.Cat(List.copyOf(parts));
    }

    private Rx quantified() {
        Rx r = atom();
        if (more()) {
            int c = peek(), qAt = pos;
            int min, max;
            if (c == '*') { min = 0; max = -1; pos++; }
            else if (c == '+') { min = 1; max = -1; pos++; }
            else if (c == '?') { min = 0; max = 1; pos++; }
            else if (c == '{') {
                pos++;
                min = number("a repetition count");
                max = min;
                if (more() && peek() == ',') {
                    pos++;
                    max = more() && peek() == '}' ? -1 : number("a repetition bound");
                }
                if (!more() || peek() != '}') throw error("expected '}' to close the repetition opened at position " + qAt);
                pos++;
                if (max != -1 && max < min) throw errorAt(qAt, "repetition {" + min + "," + max + "} has max < min");
                if (Math.max(min, max) > MAX_REPEAT) throw errorAt(qAt, "repetition count above " + MAX_REPEAT);
            } else return r;
            if (more() && peek() == '?') pos++;                        // lazy: same language
            else if (more() && peek() == '+') throw error("possessive quantifiers are not supported");
            r = new Rx.Rep(r, min, max);
            if (more() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{'))
                throw error("quantifier follows a quantifier (group the first one to repeat it)");
        }
        return r;
    }

    private int number(String what) {
        int start = pos;
        long v = 0;
        while (more() && peek() >= '0' && peek() <= '9') {
            v = v * 10 + (peek() - '0');
            if (v > Integer.MAX_VALUE) throw errorAt(start, what + " is too large");
            pos++;
        }
        if (pos == start) throw error("expected " + what + " (digits)");
        return (int) v;
    }

    private Rx atom() {
        int c = peek();
        switch (c) {
            case '(' -> {
                int open = pos++;
                if (more() && peek() == '?') {
                    if (pos + 1 < limit && cps[pos + 1] == ':') pos += 2;
                    else throw error("group modifiers other than '(?:' (lookaround, named groups, flags) are not supported");
                }
                Rx inner = alternation();
                if (!more() || peek() != ')') throw errorAt(open, "unclosed '('");
                pos++;
                return inner;
            }
            case '[' -> { return charClass(); }
            case '.' -> { pos++; return DOT; }
            case '\\' -> { return escape(); }
            case '*', '+', '?' -> throw error("quantifier '" + (char) c + "' has nothing to repeat");
            case '{' -> throw error("'{' has nothing to repeat (write '\\{' for a literal brace)");
            case '}' -> throw error("unmatched '}' (write '\\}' for a literal brace)");
            case ']' -> throw error("unmatched ']' (write '\\]' for a literal bracket)");
            case '^' -> throw error("'^' is only allowed at the start (the whole output always has to match)");
            case '$' -> throw error("'$' is only allowed at the end (the whole output always has to match)");
            default -> { pos++; return Rx.range(c, c); }
        }
    }

    /** The set an escape stands for (a one-code-point set for a literal); at a backslash. */
    private Rx.Chars escape() {
        int at = pos++;
        if (!more()) throw errorAt(at, "trailing backslash");
        int c = cps[pos++];
        return switch (c) {
            case 'd' -> DIGIT;
            case 'D' -> Rx.complement(DIGIT);
            case 'w' -> WORD;
            case 'W' -> Rx.complement(WORD);
            case 's' -> SPACE;
            case 'S' -> Rx.complement(SPACE);
            case 'n' -> Rx.range('\n', '\n');
            case 'r' -> Rx.range('\r', '\r');
            case 't' -> Rx.range('\t', '\t');
            case 'f' -> Rx.range('\f', '\f');
            case 'x' -> { int v = hex(2, at); yield Rx.range(v, v); }
            case 'u' -> { int v = hex(4, at); yield Rx.range(v, v); }
            default -> {
                if (c < 128 && Character.isLetterOrDigit(c))
                    throw errorAt(at, "escape '\\" + (char) c + "' is not supported"
                            + (c == 'b' || c == 'B' ? " (word boundaries)" : c >= '0' && c <= '9' ? " (backreferences)" : ""));
                yield Rx.range(c, c);
            }
        };
    }

    private int hex(int digits, int at) {
        int v = 0;
        for (int i = 0; i < digits; i++) {
            if (!more() || Character.digit(peek(), 16) < 0) throw errorAt(at, "expected " + digits + " hex digits after the escape");
            v = v * 16 + Character.digit(cps[pos++], 16);
        }
        return v;
    }

    private Rx.Chars charClass() {
        int open = pos++;
        boolean negate = more() && peek() == '^';
        if (negate) pos++;
        List<Integer> pairs = new ArrayList<>();
        Rx.Chars acc = new Rx.Chars(new int[0]);
        boolean first = true;
        while (true) {
            if (!more()) throw errorAt(open, "unclosed '['");
            int c = peek();
            if (c == ']' && !first) { pos++; break; }
            if (c == ']') throw error("empty character class");
            if (c == '[') throw error("nested classes are not supported (write '\\[' for a literal bracket)");
            if (c == '&' && pos + 1 < limit && cps[pos + 1] == '&') throw error("class intersection '&&' is not supported");
            first = false;
            int lo;
            if (c == '\\') {
                int escAt = pos;
                Rx.Chars e = escape();
                if (e.ranges().length != 2 || e.ranges()[0] != e.ranges()[1]) {   // \d, \w ...: a set, not a range end
                    if (more() && peek() == '-' && pos + 1 < limit && cps[pos + 1] != ']')
                        throw errorAt(escAt, "a class shorthand cannot start a range");
                    acc = Rx.union(acc, e);
                    continue;
                }
                lo = e.ranges()[0];
            } else { lo = c; pos++; }
            int hi = lo;
            if (more() && peek() == '-' && pos + 1 < limit && cps[pos + 1] != ']') {
                int dash = pos++;
                if (peek() == '\\') {
                    Rx.Chars e = escape();
                    if (e.ranges().length != 2 || e.ranges()[0] != e.ranges()[1]) throw errorAt(dash, "a class shorthand cannot end a range");
                    hi = e.ranges()[0];
                } else if (peek() == '[') throw error("nested classes are not supported");
                else hi = cps[pos++];
                if (hi < lo) throw errorAt(dash, "range out of order: " + Character.toString(lo) + "-" + Character.toString(hi));
            }
            pairs.add(lo);
            pairs.add(hi);
        }
        Rx.Chars set = Rx.union(acc, Rx.set(pairs.stream().mapToInt(Integer::intValue).toArray()));
        return negate ? Rx.complement(set) : set;
    }
}
