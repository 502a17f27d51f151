package io.vlmflux.llm.chat;

import java.math.BigDecimal;
import java.util.AbstractList;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The value world of a chat template and its Python semantics. A value is one of: {@code null} (None),
 * {@link Boolean}, {@link Long}, {@link Double}, {@link String}, {@link List} (a {@link Tuple} for tuples),
 * {@link Map} (insertion-ordered), {@link Namespace}, {@link Undefined}, the interpreter's loop object, or an
 * {@link Fn} (macro, built-in function, bound method). Nothing else ever enters: {@link #fromJava} converts the
 * caller's variables and rejects other types, so no host object is reachable from a template.
 */
final class Py {
    private Py() {}

    /** A template-level error that the renderer reports with the source and line. */
    static class TemplateError extends RuntimeException {
        TemplateError(String msg) { super(msg, null, false, false); }
    }

    /** Jinja2's default Undefined: prints empty, is falsy, iterates empty, and fails on attribute access or arithmetic. */
    record Undefined(String hint) {
        TemplateError error() { return new TemplateError(hint); }
    }

    /** An immutable tuple; {@code str()} prints it with parentheses. */
    static final class Tuple extends AbstractList<Object> {
        private final Object[] items;
        Tuple(Object... items) { this.items = items.clone(); }
        Tuple(List<?> items) { this.items = items.toArray(); }
        @Override public Object get(int i) { return items[i]; }
        @Override public int size() { return items.length; }
    }

    /** {@code namespace(...)}: the only value a template may mutate, through {@code {% set ns.attr = v %}}. */
    static final class Namespace {
        final Map<String, Object> attrs = new LinkedHashMap<>();
    }

    /** Something callable from a template. */
    interface Fn {
        Object call(TemplateRenderer r, List<Object> args, Map<String, Object> kwargs);
        String name();
    }

    // ---- conversion of the caller's variables ------------------------------------------------------------------

    /** A deep copy of a plain Java value (String, Number, Boolean, List, Map, arrays are not accepted) in the value world. */
    static Object fromJava(Object v, String path) {
        if (v == null || v instanceof String || v instanceof Boolean || v instanceof Long || v instanceof Double) return v;
        if (v instanceof Integer || v instanceof Short || v instanceof Byte) return ((Number) v).longValue();
        if (v instanceof Float f) return Double.parseDouble(f.toString());
        if (v instanceof Character c) return c.toString();
        if (v instanceof Map<?, ?> m) {
            Map<Object, Object> out = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : m.entrySet()) {
                Object k = fromJava(e.getKey(), path);
                if (k instanceof List<?> || k instanceof Map<?, ?>) throw new IllegalArgumentException(path + ": unhashable key " + k);
                out.put(k, fromJava(e.getValue(), path + "." + e.getKey()));
            }
            return out;
        }
        if (v instanceof Collection<?> c) {
            List<Object> out = new ArrayList<>(c.size());
            int i = 0;
            for (Object o : c) out.add(fromJava(o, path + "[" + i++ + "]"));
            return out;
        }
        throw new IllegalArgumentException("template variable " + path + " has type " + v.getClass().getName()
                + "; only String, Number, Boolean, List, Map and null can be passed to a chat template");
    }

    // ---- type names, truth, length -----------------------------------------------------------------------------

    static String typeName(Object v) {
        return switch (v) {
            case null -> "NoneType";
            case Boolean b -> "bool";
            case Long l -> "int";
            case Double d -> "float";
            case String s -> "str";
            case Tuple t -> "tuple";
            case List<?> l -> "list";
            case Map<?, ?> m -> "dict";
            case Namespace n -> "Namespace";
            case Undefined u -> "Undefined";
            case Fn f -> "function";
            default -> "loop";
        };
    }

    static boolean truthy(Object v) {
        return switch (v) {
            case null -> false;
            case Boolean b -> b;
            case Long l -> l != 0;
            case Double d -> d != 0.0;
            case String s -> !s.isEmpty();
            case Collection<?> c -> !c.isEmpty();
            case Map<?, ?> m -> !m.isEmpty();
            case Undefined u -> false;
            default -> true;
        };
    }

    static boolean isNumber(Object v) { return v instanceof Long || v instanceof Double || v instanceof Boolean; }

    static boolean isInt(Object v) { return v instanceof Long || v instanceof Boolean; }

    static long asLong(Object v) {
        if (v instanceof Long l) return l;
        if (v instanceof Boolean b) return b ? 1 : 0;
        throw new TemplateError("expected an integer, got " + typeName(v) + " " + repr(v));
    }

    static double asDouble(Object v) {
        if (v instanceof Double d) return d;
        return asLong(v);
    }

    static int len(Object v) {
        return switch (v) {
            case null -> throw new TemplateError("object of type 'NoneType' has no len()");
            case String s -> s.codePointCount(0, s.length());
            case Collection<?> c -> c.size();
            case Map<?, ?> m -> m.size();
            case Undefined u -> 0;
            default -> throw new TemplateError("object of type '" + typeName(v) + "' has no len()");
        };
    }

    /** Python's iteration: a string yields its characters, a dict its keys, Undefined nothing. */
    static List<Object> iterate(Object v) {
        return switch (v) {
            case null -> throw new TemplateError("'NoneType' object is not iterable");
            case List<?> l -> new ArrayList<>(l);
            case Map<?, ?> m -> new ArrayList<>(m.keySet());
            case String s -> {
                List<Object> out = new ArrayList<>();
                s.codePoints().forEach(cp -> out.add(new String(Character.toChars(cp))));
                yield out;
            }
            case Undefined u -> new ArrayList<>();
            default -> throw new TemplateError("'" + typeName(v) + "' object is not iterable");
        };
    }

    // ---- equality and ordering ---------------------------------------------------------------------------------

    static boolean eq(Object a, Object b) {
        if (a == b) return true;
        if (a == null || b == null) return false;
        if (isNumber(a) && isNumber(b)) {
            if (a instanceof Double || b instanceof Double) return asDouble(a) == asDouble(b);
            return asLong(a) == asLong(b);
        }
        if (a instanceof String s) return s.equals(b);
        if (a instanceof Undefined || b instanceof Undefined) return a instanceof Undefined && b instanceof Undefined;
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if ((a instanceof Tuple) != (b instanceof Tuple) || x.size() != y.size()) return false;
            for (int i = 0; i < x.size(); i++) if (!eq(x.get(i), y.get(i))) return false;
            return true;
        }
        if (a instanceof Map<?, ?> x && b instanceof Map<?, ?> y) {
            if (x.size() != y.size()) return false;
            for (Map.Entry<?, ?> e : x.entrySet()) {
                if (!y.containsKey(e.getKey()) || !eq(e.getValue(), y.get(e.getKey()))) return false;
            }
            return true;
        }
        return false;
    }

    static int compare(Object a, Object b) {
        if (isNumber(a) && isNumber(b)) {
            if (a instanceof Double || b instanceof Double) return Double.compare(asDouble(a), asDouble(b));
            return Long.compare(asLong(a), asLong(b));
        }
        if (a instanceof String x && b instanceof String y) return x.compareTo(y);
        if (a instanceof List<?> x && b instanceof List<?> y && (a instanceof Tuple) == (b instanceof Tuple)) {
            for (int i = 0; i < Math.min(x.size(), y.size()); i++) {
                if (!eq(x.get(i), y.get(i))) return compare(x.get(i), y.get(i));
            }
            return Integer.compare(x.size(), y.size());
        }
        throw new TemplateError("'<' not supported between instances of '" + typeName(a) + "' and '" + typeName(b) + "'");
    }

    /** Python's {@code in}: substring, list membership, dict key. */
    static boolean contains(Object container, Object item) {
        return switch (container) {
            case null -> throw new TemplateError("argument of type 'NoneType' is not iterable");
            case String s -> {
                if (!(item instanceof String t)) throw new TemplateError("'in <string>' requires string as left operand, not " + typeName(item));
                yield s.contains(t);
            }
            case List<?> l -> { for (Object o : l) if (eq(o, item)) yield true; yield false; }
            case Map<?, ?> m -> m.containsKey(normKey(item));
            case Undefined u -> false;
            default -> throw new TemplateError("argument of type '" + typeName(container) + "' is not iterable");
        };
    }

    /** Dict keys: whole floats and bools look up as ints do in Python. */
    static Object normKey(Object k) {
        if (k instanceof Boolean b) return b ? 1L : 0L;
        if (k instanceof Double d && d == Math.rint(d) && !Double.isInfinite(d)) return (long) (double) d;
        return k;
    }

    // ---- str() and repr() --------------------------------------------------------------------------------------

    static String str(Object v) {
        return switch (v) {
            case null -> "None";
            case String s -> s;
            case Undefined u -> "";
            default -> repr(v);
        };
    }

    static String repr(Object v) {
        StringBuilder sb = new StringBuilder();
        repr(v, sb, 0);
        return sb.toString();
    }

    private static void repr(Object v, StringBuilder sb, int depth) {
        if (depth > 100) throw new TemplateError("value nested too deeply to print");
        switch (v) {
            case null -> sb.append("None");
            case Boolean b -> sb.append(b ? "True" : "False");
            case Long l -> sb.append(l);
            case Double d -> sb.append(floatRepr(d));
            case String s -> quote(s, sb);
            case Tuple t -> {
                sb.append('(');
                for (int i = 0; i < t.size(); i++) { if (i > 0) sb.append(", "); repr(t.get(i), sb, depth + 1); }
                sb.append(t.size() == 1 ? ",)" : ")");
            }
            case List<?> l -> {
                sb.append('[');
                for (int i = 0; i < l.size(); i++) { if (i > 0) sb.append(", "); repr(l.get(i), sb, depth + 1); }
                sb.append(']');
            }
            case Map<?, ?> m -> {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) sb.append(", ");
                    first = false;
                    repr(e.getKey(), sb, depth + 1);
                    sb.append(": ");
                    repr(e.getValue(), sb, depth + 1);
                }
                sb.append('}');
            }
            case Namespace n -> { sb.append("<Namespace "); repr(n.attrs, sb, depth + 1); sb.append('>'); }
            case Undefined u -> sb.append("Undefined");
            case Fn f -> sb.append("<function ").append(f.name()).append('>');
            default -> sb.append("<loop>");
        }
    }

    private static void quote(String s, StringBuilder sb) {
        char q = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        sb.append(q);
        s.codePoints().forEach(cp -> {
            if (cp == q || cp == '\\') sb.append('\\').appendCodePoint(cp);
            else if (cp == '\n') sb.append("\\n");
            else if (cp == '\r') sb.append("\\r");
            else if (cp == '\t') sb.append("\\t");
            else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) sb.append(String.format("\\x%02x", cp));
            else if (!printable(cp)) sb.append(cp <= 0xffff ? String.format("\\u%04x", cp) : String.format("\\U%08x", cp));
            else sb.appendCodePoint(cp);
        });
        sb.append(q);
    }

    private static boolean printable(int cp) {
        if (cp == ' ') return true;
        int t = Character.getType(cp);
        return t != Character.UNASSIGNED && t != Character.CONTROL && t != Character.FORMAT && t != Character.SURROGATE
                && t != Character.PRIVATE_USE && t != Character.SPACE_SEPARATOR && t != Character.LINE_SEPARATOR
                && t != Character.PARAGRAPH_SEPARATOR;
    }

    /** Python's {@code repr(float)}: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) return "nan";
        if (Double.isInfinite(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
        String sign = d < 0 ? "-" : "";
        BigDecimal bd = new BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int decpt = digits.length() - bd.scale();
        StringBuilder sb = new StringBuilder(sign);
        if (decpt <= -4 || decpt > 16) {
            sb.append(digits.charAt(0));
            if (digits.length() > 1) sb.append('.').append(digits, 1, digits.length());
            int exp = decpt - 1;
            sb.append('e').append(exp < 0 ? '-' : '+');
            if (Math.abs(exp) < 10) sb.append('0');
            sb.append(Math.abs(exp));
        } else if (decpt <= 0) {
            sb.append("0.").append("0".repeat(-decpt)).append(digits);
        } else if (decpt >= digits.length()) {
            sb.append(digits).append("0".repeat(decpt - digits.length())).append(".0");
        } else {
            sb.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
        }
        return sb.toString();
    }

    // ---- JSON (Python's json.dumps) ----------------------------------------------------------------------------

    /** {@code json.dumps(v, ensure_ascii=False, indent=indent, separators=..., sort_keys=sortKeys)}. */
    static String toJson(Object v, String indent, String itemSep, String keySep, boolean sortKeys, boolean ensureAscii,
                         int maxChars) {
        if (itemSep == null) itemSep = indent == null ? ", " : ",";
        if (keySep == null) keySep = ": ";
        StringBuilder sb = new StringBuilder();
        json(v, sb, indent, itemSep, keySep, sortKeys, ensureAscii, 0, maxChars);
        return sb.toString();
    }

    private static void json(Object v, StringBuilder sb, String indent, String itemSep, String keySep, boolean sortKeys,
                             boolean ascii, int level, int maxChars) {
        if (level > 100) throw new TemplateError("value nested too deeply for tojson");
        if (sb.length() > maxChars) throw new TemplateError("tojson output longer than " + maxChars + " characters");
        switch (v) {
            case null -> sb.append("null");
            case Boolean b -> sb.append(b);
            case Long l -> sb.append(l);
            case Double d -> sb.append(Double.isNaN(d) ? "NaN" : Double.isInfinite(d) ? (d > 0 ? "Infinity" : "-Infinity") : floatRepr(d));
            case String s -> jsonString(s, sb, ascii);
            case List<?> l -> {
                if (l.isEmpty()) { sb.append("[]"); return; }
                sb.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) sb.append(itemSep);
                    newline(sb, indent, level + 1);
                    json(l.get(i), sb, indent, itemSep, keySep, sortKeys, ascii, level + 1, maxChars);
                }
                newline(sb, indent, level);
                sb.append(']');
            }
            case Map<?, ?> m -> {
                if (m.isEmpty()) { sb.append("{}"); return; }
                List<Map.Entry<String, Object>> entries = new ArrayList<>();
                for (Map.Entry<?, ?> e : m.entrySet()) entries.add(Map.entry(jsonKey(e.getKey()), e.getValue() == null ? NULL : e.getValue()));
                if (sortKeys) entries.sort(Map.Entry.comparingByKey());
                sb.append('{');
                boolean first = true;
                for (Map.Entry<String, Object> e : entries) {
                    if (!first) sb.append(itemSep);
                    first = false;
                    newline(sb, indent, level + 1);
                    jsonString(e.getKey(), sb, ascii);
                    sb.append(keySep);
                    json(e.getValue() == NULL ? null : e.getValue(), sb, indent, itemSep, keySep, sortKeys, ascii, level + 1, maxChars);
                }
                newline(sb, indent, level);
                sb.append('}');
            }
            default -> throw new TemplateError("Object of type " + typeName(v) + " is not JSON serializable");
        }
    }

    private static final Object NULL = new Object();

    private static String jsonKey(Object k) {
        return switch (k) {
            case String s -> s;
            case null -> "null";
            case Boolean b -> b.toString();
            case Long l -> l.toString();
            case Double d -> floatRepr(d);
            default -> throw new TemplateError("keys must be str, int, float, bool or None, not " + typeName(k));
        };
    }

    private static void newline(StringBuilder sb, String indent, int level) {
        if (indent == null) return;
        sb.append('\n');
        for (int i = 0; i < level; i++) sb.append(indent);
    }

    private static void jsonString(String s, StringBuilder sb, boolean ascii) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || (ascii && c > 0x7e)) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }

    /** Jinja2's {@code escape}: HTML-escapes {@code & < > " '}. */
    static String escapeHtml(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '&' -> sb.append("&amp;");
                case '<' -> sb.append("&lt;");
                case '>' -> sb.append("&gt;");
                case '"' -> sb.append("&#34;");
                case '\'' -> sb.append("&#39;");
                default -> sb.append(c);
            }
        }
        return sb.toString();
    }

    static Iterator<Object> none() { return java.util.Collections.emptyIterator(); }
}
