package io.vlmflux.llm.chat;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits a Jinja template into tokens with the whitespace rules transformers configures for chat templates:
 * {@code trim_blocks=True} (the first newline after a block or comment tag is dropped), {@code lstrip_blocks=True}
 * (spaces and tabs before a block or comment tag at the start of a line are dropped), {@code keep_trailing_newline=False},
 * {@code -} on a tag strips all whitespace on that side, {@code +} turns lstrip/trim off for that tag. Newlines are
 * normalised to {@code \n}. Inside tags, brackets are balanced so {@code }}} closes a tag only at depth 0.
 */
final class TemplateLexer {
    enum Kind { DATA, VAR_BEGIN, VAR_END, BLOCK_BEGIN, BLOCK_END, NAME, STRING, INT, FLOAT, OP, EOF }

    record Token(Kind kind, String text, Object value, int line) {
        boolean is(Kind k, String t) { return kind == k && text.equals(t); }
        boolean isOp(String t) { return kind == Kind.OP && text.equals(t); }
        boolean isName(String t) { return kind == Kind.NAME && text.equals(t); }
    }

    private static final String[] OPS = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "(", ")",
            "[", "]", "{", "}", ",", ".", ":", "|", "=", "<", ">", ";"};
    private static final Pattern RAW_BEGIN = Pattern.compile("\\{%([-+]?)\\s*raw\\s*([-+]?)%}");
    private static final Pattern RAW_END = Pattern.compile("\\{%([-+]?)\\s*endraw\\s*([-+]?)%}");

    private final String src;
    private final String source; // where the template came from, for messages
    private final List<Token> out = new ArrayList<>();
    private int pos;
    private int line = 1;

    private TemplateLexer(String src, String source) {
        String s = src.replace("\r\n", "\n").replace('\r', '\n');
        if (s.endsWith("\n")) s = s.substring(0, s.length() - 1);
        this.src = s;
        this.source = source;
    }

    static List<Token> tokenize(String template, String source) {
        TemplateLexer l = new TemplateLexer(template, source);
        l.run();
        return l.out;
    }

    private IllegalArgumentException error(String msg) {
        return new IllegalArgumentException("chat template of " + source + ": syntax error at line " + line + ": " + msg);
    }

    private void run() {
        int n = src.length();
        while (pos < n) {
            int open = nextOpen(pos);
            if (open < 0) { data(src.substring(pos)); pos = n; break; }
            String text = src.substring(pos, open);
            char kind = src.charAt(open + 1);
            char sign = open + 2 < n ? src.charAt(open + 2) : 0;
            boolean hasSign = sign == '-' || sign == '+';
            if (sign == '-') {
                text = text.stripTrailing();
            } else if (sign != '+' && kind != '{') {
                int lpos = text.lastIndexOf('\n') + 1;
                boolean lineStarting = pos == 0 || src.charAt(pos - 1) == '\n';
                if ((lpos > 0 || lineStarting) && lpos < text.length() && text.substring(lpos).isBlank())
                    text = text.substring(0, lpos);
            }
            data(text);
            countLines(pos, open);
            pos = open + 2 + (hasSign ? 1 : 0);
            if (kind == '#') comment();
            else if (kind == '%' && raw(open)) continue;
            else tag(kind == '{');
        }
        out.add(new Token(Kind.EOF, "", null, line));
    }

    private void data(String text) {
        if (!text.isEmpty()) out.add(new Token(Kind.DATA, text, text, line));
    }

    private void countLines(int from, int to) {
        for (int i = from; i < to; i++) if (src.charAt(i) == '\n') line++;
    }

    private int nextOpen(int from) {
        for (int i = src.indexOf('{', from); i >= 0 && i + 1 < src.length(); i = src.indexOf('{', i + 1)) {
            char c = src.charAt(i + 1);
            if (c == '{' || c == '%' || c == '#') return i;
        }
        return -1;
    }

    private void comment() {
        int end = src.indexOf("#}", pos);
        if (end < 0) throw error("comment {# is never closed");
        countLines(pos, end);
        char before = end > pos ? src.charAt(end - 1) : 0;
        pos = end + 2;
        afterClose(before);
    }

    /** After a block or comment end: {@code -} strips all following whitespace; else trim_blocks drops one newline. */
    private void afterClose(char sign) {
        if (sign == '-') {
            int p = pos;
            while (p < src.length() && Character.isWhitespace(src.charAt(p))) p++;
            countLines(pos, p);
            pos = p;
        } else if (sign != '+' && pos < src.length() && src.charAt(pos) == '\n') {
            pos++;
            line++;
        }
    }

    /** {@code {% raw %}...{% endraw %}}: the body is data, verbatim. */
    private boolean raw(int open) {
        Matcher m = RAW_BEGIN.matcher(src).region(open, src.length());
        if (!m.lookingAt()) return false;
        pos = m.end();
        afterClose(m.group(2).isEmpty() ? 0 : m.group(2).charAt(0));
        Matcher e = RAW_END.matcher(src).region(pos, src.length());
        if (!e.find()) throw error("{% raw %} is never closed by {% endraw %}");
        String body = src.substring(pos, e.start());
        if ("-".equals(e.group(1))) body = body.stripTrailing();
        data(body);
        countLines(pos, e.end());
        pos = e.end();
        afterClose(e.group(2).isEmpty() ? 0 : e.group(2).charAt(0));
        return true;
    }

    private void tag(boolean variable) {
        out.add(new Token(variable ? Kind.VAR_BEGIN : Kind.BLOCK_BEGIN, variable ? "{{" : "{%", null, line));
        Deque<Character> brackets = new ArrayDeque<>();
        int n = src.length();
        while (true) {
            while (pos < n && Character.isWhitespace(src.charAt(pos))) { if (src.charAt(pos) == '\n') line++; pos++; }
            if (pos >= n) throw error((variable ? "{{" : "{%") + " is never closed");
            if (brackets.isEmpty()) {
                if (variable && (src.startsWith("-}}", pos) || src.startsWith("}}", pos))) {
                    boolean minus = src.charAt(pos) == '-';
                    pos += minus ? 3 : 2;
                    out.add(new Token(Kind.VAR_END, "}}", null, line));
                    if (minus) afterClose('-');
                    return;
                }
                if (!variable && (src.startsWith("-%}", pos) || src.startsWith("+%}", pos) || src.startsWith("%}", pos))) {
                    char s = src.charAt(pos);
                    pos += s == '%' ? 2 : 3;
                    out.add(new Token(Kind.BLOCK_END, "%}", null, line));
                    afterClose(s);
                    return;
                }
            }
            char c = src.charAt(pos);
            if (Character.isLetter(c) || c == '_') {
                int s = pos;
                while (pos < n && (Character.isLetterOrDigit(src.charAt(pos)) || src.charAt(pos) == '_')) pos++;
                String name = src.substring(s, pos);
                out.add(new Token(Kind.NAME, name, name, line));
            } else if (c >= '0' && c <= '9') {
                number();
            } else if (c == '\'' || c == '"') {
                string(c);
            } else {
                String op = null;
                for (String o : OPS) if (src.startsWith(o, pos)) { op = o; break; }
                if (op == null) throw error("unexpected character '" + c + "'");
                pos += op.length();
                switch (op) {
                    case "(", "[", "{" -> brackets.push(op.charAt(0));
                    case ")", "]", "}" -> {
                        char want = op.equals(")") ? '(' : op.equals("]") ? '[' : '{';
                        if (brackets.isEmpty() || brackets.pop() != want) throw error("unexpected '" + op + "'");
                    }
                    default -> { }
                }
                out.add(new Token(Kind.OP, op, null, line));
            }
        }
    }

    private void number() {
        int s = pos, n = src.length();
        while (pos < n && (Character.isDigit(src.charAt(pos)) || src.charAt(pos) == '_')) pos++;
        boolean isFloat = false;
        if (pos + 1 < n && src.charAt(pos) == '.' && Character.isDigit(src.charAt(pos + 1))) {
            isFloat = true;
            pos++;
            while (pos < n && (Character.isDigit(src.charAt(pos)) || src.charAt(pos) == '_')) pos++;
        }
        if (pos < n && (src.charAt(pos) == 'e' || src.charAt(pos) == 'E')) {
            int p = pos + 1;
            if (p < n && (src.charAt(p) == '+' || src.charAt(p) == '-')) p++;
            if (p < n && Character.isDigit(src.charAt(p))) {
                isFloat = true;
                pos = p;
                while (pos < n && Character.isDigit(src.charAt(pos))) pos++;
            }
        }
        String text = src.substring(s, pos).replace("_", "");
        try {
            Object v = isFloat ? (Object) Double.parseDouble(text) : (Object) Long.parseLong(text);
            out.add(new Token(isFloat ? Kind.FLOAT : Kind.INT, text, v, line));
        } catch (NumberFormatException e) {
            throw error("number " + text + " is out of range");
        }
    }

    /** A quoted string with Python's escapes ({@code \n \t \xNN \u1234 \\ \'} ...; unknown escapes stay as written). */
    private void string(char q) {
        int startLine = line;
        StringBuilder sb = new StringBuilder();
        int n = src.length();
        pos++;
        while (true) {
            if (pos >= n) { line = startLine; throw error("string literal is never closed"); }
            char c = src.charAt(pos++);
            if (c == q) break;
            if (c == '\n') line++;
            if (c != '\\' || pos >= n) { sb.append(c); continue; }
            char e = src.charAt(pos++);
            switch (e) {
                case 'n' -> sb.append('\n');
                case 't' -> sb.append('\t');
                case 'r' -> sb.append('\r');
                case 'b' -> sb.append('\b');
                case 'f' -> sb.append('\f');
                case 'v' -> sb.append('\u000b');
                case 'a' -> sb.append('\u0007');
                case '\\', '\'', '"' -> sb.append(e);
                case '\n' -> line++;
                case 'x' -> sb.appendCodePoint(hex(2));
                case 'u' -> sb.appendCodePoint(hex(4));
                case 'U' -> sb.appendCodePoint(hex(8));
                default -> {
                    if (e >= '0' && e <= '7') {
                        int v = e - '0', k = 1;
                        while (k < 3 && pos < n && src.charAt(pos) >= '0' && src.charAt(pos) <= '7') { v = v * 8 + src.charAt(pos++) - '0'; k++; }
                        sb.append((char) v);
                    } else {
                        sb.append('\\').append(e);
                    }
                }
            }
        }
        out.add(new Token(Kind.STRING, sb.toString(), sb.toString(), startLine));
    }

    private int hex(int digits) {
        if (pos + digits > src.length()) throw error("truncated \\x/\\u escape");
        try {
            int v = Integer.parseInt(src.substring(pos, pos + digits), 16);
            if (v > Character.MAX_CODE_POINT) throw error("escape out of range");
            pos += digits;
            return v;
        } catch (NumberFormatException e) {
            throw error("bad escape \\" + src.substring(pos - 1, Math.min(src.length(), pos + digits)));
        }
    }
}
