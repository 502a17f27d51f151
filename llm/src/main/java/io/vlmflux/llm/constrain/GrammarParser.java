package io.vlmflux.llm.constrain;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses a grammar text into a {@link Cfg}. Two syntaxes:
 * <ul>
 * <li><b>GBNF</b> (llama.cpp): rules {@code name ::= body}, start rule {@code root}; names {@code [A-Za-z0-9_-]+};
 * string literals {@code "..."} with escapes {@code \n \r \t \\ \" \[ \] \xHH \\uHHHH \UHHHHHHHH}; character classes
 * {@code [a-z]}, {@code [^...]} (same escapes); {@code .} (any character); grouping {@code ( )}; alternation
 * {@code |}; postfix {@code * + ? {m} {m,} {m,n}}; comments {@code #} to the end of the line. A rule may span lines:
 * it ends where the next {@code name ::=} begins. Token references ({@code <...>}) are refused.</li>
 * <li><b>Lark</b>-like EBNF: rules {@code name: body} (lower- or upper-case names alike; leading {@code ?}/{@code !}
 * and priorities {@code name.2} accepted and ignored), start rule {@code start}; literals {@code "..."} (JSON-style
 * escapes), ranges {@code "a".."z"}, regular expressions {@code /.../} in the {@link RegexParser} dialect, optional
 * {@code [item]}, grouping, {@code |}, postfix {@code * + ?}, {@code item ~ n} and {@code item ~ n..m}, aliases
 * {@code -> name} ignored, comments {@code //}. Directives ({@code %import}, {@code %ignore}, ...), literal and regex
 * flags are refused.</li>
 * </ul>
 * Errors name the line, column and reason. One parser per call.
 */
final class GrammarParser {
    static final int MAX_REPEAT = 1000;
    private static final Rx.Chars ANY = Rx.range(0, Rx.MAX_CODE_POINT);

    private final int[] cps;
    private final boolean lark;
    private int pos;
    private final Map<String, Integer> ruleIds = new LinkedHashMap<>();
    private final List<Rx> bodies = new ArrayList<>();
    private final List<String> where = new ArrayList<>();
    private final Map<String, Integer> firstUse = new HashMap<>();

    private GrammarParser(String text, boolean lark) {
        this.cps = text.codePoints().toArray();
        this.lark = lark;
    }

    static Cfg parse(String text, ConstraintSpec.Syntax syntax) {
        GrammarParser p = new GrammarParser(text, syntax == ConstraintSpec.Syntax.LARK);
        return p.grammar();
    }

    private ConstraintException error(int at, String why) {
        int line = 1, col = 1;
        for (int i = 0; i < at && i < cps.length; i++) {
            if (cps[i] == '\n') { line++; col = 1; } else col++;
        }
        return new ConstraintException((lark ? "Lark" : "GBNF") + " grammar at line " + line + ", column " + col + ": " + why);
    }

    private String lineCol(int at) {
        int line = 1, col = 1;
        for (int i = 0; i < at && i < cps.length; i++) {
            if (cps[i] == '\n') { line++; col = 1; } else col++;
        }
        return "line " + line + ", column " + col;
    }

    private boolean more() { return pos < cps.length; }

    private int peek() { return cps[pos]; }

    private boolean at(String s) {
        if (pos + s.length() > cps.length) return false;
        for (int i = 0; i < s.length(); i++) if (cps[pos + i] != s.charAt(i)) return false;
        return true;
    }

    /** Skips blanks, newlines and comments. */
    private void space() {
        while (more()) {
            int c = peek();
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n') pos++;
            else if (!lark && c == '#' || lark && at("//")) { while (more() && peek() != '\n') pos++; }
            else break;
        }
    }

    private static boolean nameChar(int c) {
        return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-';
    }

    private String name() {
        int s = pos;
        while (more() && nameChar(peek()) && !(lark && peek() == '-')) pos++;
        return new String(cps, s, pos - s);
    }

    /** Whether a rule definition starts at pos (a name followed by {@code ::=}, or {@code :} for Lark). */
    private boolean atDefinition() {
        int save = pos;
        try {
            if (lark) while (more() && (peek() == '?' || peek() == '!')) pos++;
            if (!more() || !nameChar(peek())) return false;
            name();
            if (lark && more() && peek() == '.') { pos++; while (more() && Character.isDigit(peek())) pos++; }
            while (more() && (peek() == ' ' || peek() == '\t')) pos++;
            return lark ? more() && peek() == ':' && !at("::") : at("::=");
        } finally {
            pos = save;
        }
    }

    private int rule(String name, int at) {
        firstUse.putIfAbsent(name, at);
        return ruleIds.computeIfAbsent(name, n -> { bodies.add(null); where.add(null); return bodies.size() - 1; });
    }

    private Cfg grammar() {
        space();
        if (!more()) throw error(pos, "the grammar is empty");
        while (more()) {
            if (lark && peek() == '%') {
                int s = pos;
                pos++;
                throw error(s, "directive '%" + name() + "' is not supported");
            }
            int defAt = pos;
            if (!atDefinition()) throw error(pos, "expected a rule definition '" + (lark ? "name: ..." : "name ::= ...") + "'");
            if (lark) while (peek() == '?' || peek() == '!') pos++;
            String n = name();
            if (lark && more() && peek() == '.') { pos++; while (more() && Character.isDigit(peek())) pos++; }
            while (peek() == ' ' || peek() == '\t') pos++;
            pos += lark ? 1 : 3;
            int id = rule(n, defAt);
            if (bodies.get(id) != null) throw error(defAt, "rule '" + n + "' is defined twice (first at " + where.get(id) + ")");
            where.set(id, lineCol(defAt));
            bodies.set(id, Rx.empty());   // placeholder against redefinition while parsing
            space();
            Rx body = alternatives(0);
            bodies.set(id, body);
            space();
        }
        for (var e : ruleIds.entrySet())
            if (where.get(e.getValue()) == null) throw error(firstUse.get(e.getKey()), "rule '" + e.getKey() + "' is used but never defined");
        String startName = lark ? "start" : "root";
        Integer start = ruleIds.get(startName);
        if (start == null) throw error(0, "no start rule '" + startName + "'");
        return new Cfg(new ArrayList<>(ruleIds.keySet()), bodies, where, start);
    }

    private Rx alternatives(int depth) {
        List<Rx> opts = new ArrayList<>();
        opts.add(sequence(depth));
        while (more() && peek() == '|') {
            pos++;
            space();
            opts.add(sequence(depth));
        }
        return Rx.alt(opts);
    }

    private Rx sequence(int depth) {
        List<Rx> parts = new ArrayList<>();
        while (true) {
            space();
            if (!more()) break;
            int c = peek();
            if (c == '|' || c == ')' || c == ']') break;
            if (depth == 0 && (atDefinition() || lark && c == '%')) break;
            if (lark && at("->")) {   // alias: tree shaping only
                pos += 2;
                space();
                name();
                continue;
            }
            parts.add(postfix(atom(depth)));
        }
        return parts.size() == 1 ? parts.get(0) : new Rx.Cat(parts);
    }

    private Rx postfix(Rx a) {
        while (true) {
            int save = pos;
            while (more() && (peek() == ' ' || peek() == '\t')) pos++;
            if (!more()) { pos = save; return a; }
            int c = peek();
            if (c == '*') { pos++; a = new Rx.Rep(a, 0, -1); }
            else if (c == '+') { pos++; a = new Rx.Rep(a, 1, -1); }
            else if (c == '?') { pos++; a = new Rx.Rep(a, 0, 1); }
            else if (!lark && c == '{') {
                int at = pos;
                pos++;
                int m = number(at);
                int n = m;
                if (more() && peek() == ',') {
                    pos++;
                    n = more() && peek() == '}' ? -1 : number(at);
                }
                if (!more() || peek() != '}') throw error(pos, "expected '}' to close the repetition");
                pos++;
                a = repeat(a, m, n, at);
            } else if (lark && c == '~') {
                int at = pos;
                pos++;
                while (more() && peek() == ' ') pos++;
                int m = number(at), n = m;
                if (at("..")) { pos += 2; n = number(at); }
                a = repeat(a, m, n, at);
            } else { pos = save; return a; }
        }
    }

    private Rx repeat(Rx a, int m, int n, int at) {
        if (n >= 0 && n < m) throw error(at, "repetition {" + m + "," + n + "}: the maximum is below the minimum");
        if (m > MAX_REPEAT || n > MAX_REPEAT) throw error(at, "repetition counts above " + MAX_REPEAT + " are not supported");
        return new Rx.Rep(a, m, n);
    }

    private int number(int at) {
        int s = pos;
        while (more() && peek() >= '0' && peek() <= '9') pos++;
        if (s == pos) throw error(pos, "expected a number in the repetition");
        if (pos - s > 6) throw error(at, "repetition counts above " + MAX_REPEAT + " are not supported");
        return Integer.parseInt(new String(cps, s, pos - s));
    }

    private Rx atom(int depth) {
        int c = peek(), at = pos;
        if (c == '(') {
            pos++;
            space();
            Rx r = alternatives(depth + 1);
            space();
            if (!more() || peek() != ')') throw error(more() ? pos : at, more() ? "expected ')' (the group opened at " + lineCol(at) + ")" : "unclosed '(' ");
            pos++;
            return r;
        }
        if (c == '"') {
            Rx lit = literal();
            if (lark && at("..")) {   // "a".."z"
                int r0 = pos;
                pos += 2;
                if (!more() || peek() != '"') throw error(pos, "expected a literal after '..'");
                int lo = single(lit, at), hi = single(literal(), r0 + 2);
                if (hi < lo) throw error(at, "empty range: the end is below the start");
                return Rx.range(lo, hi);
            }
            if (lark && more() && peek() == 'i') throw error(pos, "literal flags (\"...\"i) are not supported");
            return lit;
        }
        if (!lark && c == '[') return charClass();
        if (lark && c == '[') {
            pos++;
            space();
            Rx r = alternatives(depth + 1);
            space();
            if (!more() || peek() != ']') throw error(more() ? pos : at, "expected ']' (the optional part opened at " + lineCol(at) + ")");
            pos++;
            return new Rx.Rep(r, 0, 1);
        }
        if (lark && c == '/') return regex();
        if (!lark && c == '.') { pos++; return ANY; }
        if (!lark && c == '<') throw error(pos, "token references (<...>) are not supported; write the token's text as a literal");
        if (nameChar(c) && !(lark && c == '-')) {
            String n = name();
            return new Rx.Ref(rule(n, at));
        }
        throw error(pos, "unexpected '" + Character.toString(c) + "'");
    }

    private int single(Rx lit, int at) {
        String s = new String(((Rx.Bytes) lit).bytes(), java.nio.charset.StandardCharsets.UTF_8);
        if (s.codePointCount(0, s.length()) != 1) throw error(at, "a range end must be a single character, found \"" + s + "\"");
        return s.codePointAt(0);
    }

    private Rx literal() {
        int at = pos;
        pos++;
        StringBuilder sb = new StringBuilder();
        while (true) {
            if (!more() || peek() == '\n') throw error(at, "unterminated string literal");
            int c = peek();
            if (c == '"') { pos++; break; }
            if (c == '\\') sb.appendCodePoint(escape());
            else { sb.appendCodePoint(c); pos++; }
        }
        return Rx.text(sb.toString());
    }

    private Rx regex() {
        int at = pos;
        pos++;
        StringBuilder sb = new StringBuilder();
        while (true) {
            if (!more() || peek() == '\n') throw error(at, "unterminated regular expression");
            int c = peek();
            if (c == '/') { pos++; break; }
            if (c == '\\' && pos + 1 < cps.length && cps[pos + 1] == '/') { sb.append('/'); pos += 2; continue; }
            sb.appendCodePoint(c);
            pos++;
            if (c == '\\' && more()) { sb.appendCodePoint(peek()); pos++; }
        }
        if (more() && Character.isLetter(peek())) throw error(pos, "regular-expression flags (/.../" + Character.toString(peek()) + ") are not supported");
        try {
            return RegexParser.parse(sb.toString());
        } catch (ConstraintException e) {
            throw error(at, e.getMessage());
        }
    }

    /** An escape at pos (a backslash); returns the code point. */
    private int escape() {
        int at = pos;
        pos++;
        if (!more()) throw error(at, "a backslash ends the grammar");
        int c = peek();
        pos++;
        return switch (c) {
            case 'n' -> '\n';
            case 'r' -> '\r';
            case 't' -> '\t';
            case 'f' -> '\f';
            case 'b' -> '\b';
            case '0' -> 0;
            case '\\', '"', '[', ']', '-', '^', '/', '\'' -> c;
            case 'x' -> hex(2, at);
            case 'u' -> hex(4, at);
            case 'U' -> hex(8, at);
            default -> throw error(at, "unknown escape '\\" + Character.toString(c) + "'");
        };
    }

    private int hex(int n, int at) {
        if (pos + n > cps.length) throw error(at, "expected " + n + " hex digits");
        int v = 0;
        for (int i = 0; i < n; i++) {
            int d = Character.digit(cps[pos + i], 16);
            if (d < 0) throw error(pos + i, "expected a hex digit, found '" + Character.toString(cps[pos + i]) + "'");
            v = v * 16 + d;
        }
        pos += n;
        if (v > Rx.MAX_CODE_POINT || v >= 0xD800 && v <= 0xDFFF) throw error(at, "escape is not a Unicode scalar value: " + Integer.toHexString(v));
        return v;
    }

    private Rx charClass() {
        int at = pos;
        pos++;
        boolean negate = more() && peek() == '^';
        if (negate) pos++;
        List<Integer> pairs = new ArrayList<>();
        while (true) {
            if (!more() || peek() == '\n') throw error(at, "unterminated character class");
            if (peek() == ']') { pos++; break; }
            int loAt = pos;
            int lo = classChar();
            int hi = lo;
            if (more() && peek() == '-' && pos + 1 < cps.length && cps[pos + 1] != ']') {
                pos++;
                hi = classChar();
                if (hi < lo) throw error(loAt, "empty range in character class: the end is below the start");
            }
            pairs.add(lo);
            pairs.add(hi);
        }
        Rx.Chars set = Rx.set(pairs.stream().mapToInt(Integer::intValue).toArray());
        if (negate) set = Rx.complement(set);
        if (!Utf8Ranges.encodable(set.ranges())) throw error(at, "the character class matches no character");
        return set;
    }

    private int classChar() {
        if (peek() == '\\') return escape();
        return cps[pos++];
    }
}
