package io.vlmflux.llm.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.objects.SafeString;
import java.beans.FeatureDescriptor;
import java.time.LocalDateTime;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Makes Jinjava render Hugging Face chat templates as Python Jinja2 does: Python {@code str}/{@code dict}/{@code list}
 * methods through an EL resolver, {@code tojson} with Python's spacing and key order, {@code raise_exception},
 * {@code strftime_now}, Jinja2's operator precedence, and source rewrites for syntax Jinjava's parser lacks
 * ({@code x[::-1]}, filters inside {@code namespace(k=...)} arguments). Stateless; the Jinjava instance is shared.
 */
final class JinjaPy {
    private JinjaPy() {}

    /** Thrown by the template's {@code raise_exception(msg)}. */
    static final class TemplateRaisedException extends RuntimeException {
        TemplateRaisedException(String m) { super(m); }
    }

    private static volatile Jinjava instance;

    static Jinjava jinjava() {
        Jinjava j = instance;
        if (j == null) {
            synchronized (JinjaPy.class) {
                if ((j = instance) == null) instance = j = create();
            }
        }
        return j;
    }

    private static Jinjava create() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PyMethods());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(false).withLstripBlocks(false)
                .withElResolver(resolver)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseNaturalOperatorPrecedence(true)
                        .withEvaluateMapKeys(true)
                        .withIterateOverMapKeys(true)
                        .withParseWhitespaceControlStrictly(true)
                        .withKeepNullableLoopValues(true)
                        .withUseTrimmingForNotesAndExpressions(true)
                        .build())
                .build();
        Jinjava j = new Jinjava(config);
        j.getGlobalContext().registerFilter(new ToJson());
        try {
            // The class is package-private: open the methods to Jinjava's reflective call.
            java.lang.reflect.Method raise = JinjaPy.class.getDeclaredMethod("raiseException", Object.class);
            java.lang.reflect.Method now = JinjaPy.class.getDeclaredMethod("strftimeNow", String.class);
            raise.setAccessible(true);
            now.setAccessible(true);
            j.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", raise));
            j.getGlobalContext().registerFunction(new ELFunctionDefinition("", "strftime_now", now));
        } catch (NoSuchMethodException e) {
            throw new IllegalStateException(e);
        }
        return j;
    }

    public static Object raiseException(Object message) {
        throw new TemplateRaisedException(String.valueOf(message));
    }

    /** Python's {@code datetime.now().strftime(fmt)} for the common codes. */
    public static String strftimeNow(String fmt) {
        LocalDateTime t = LocalDateTime.now();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < fmt.length(); i++) {
            char c = fmt.charAt(i);
            if (c != '%' || i + 1 == fmt.length()) { sb.append(c); continue; }
            char f = fmt.charAt(++i);
            switch (f) {
                case 'd' -> sb.append(String.format("%02d", t.getDayOfMonth()));
                case 'm' -> sb.append(String.format("%02d", t.getMonthValue()));
                case 'Y' -> sb.append(t.getYear());
                case 'y' -> sb.append(String.format("%02d", t.getYear() % 100));
                case 'H' -> sb.append(String.format("%02d", t.getHour()));
                case 'M' -> sb.append(String.format("%02d", t.getMinute()));
                case 'S' -> sb.append(String.format("%02d", t.getSecond()));
                case 'b' -> sb.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> sb.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'a' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'j' -> sb.append(String.format("%03d", t.getDayOfYear()));
                case '%' -> sb.append('%');
                default -> sb.append('%').append(f);
            }
        }
        return sb.toString();
    }

    /** The most useful message of an exception chain (a raise_exception message wins). */
    static String cause(Throwable e) {
        String last = e.toString();
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof TemplateRaisedException) return "raise_exception: " + c.getMessage();
            if (c.getMessage() != null) last = c.getMessage();
        }
        return last;
    }

    // ---- source rewriting -------------------------------------------------------------------------------------

    /** Rewrites Jinja2 syntax that Jinjava cannot parse, inside {@code {{ }}} and {@code {% %}} only. */
    static String rewrite(String tpl) {
        StringBuilder out = new StringBuilder(tpl.length() + 16);
        int i = 0;
        while (i < tpl.length()) {
            int open = nextOpen(tpl, i);
            if (open < 0) { out.append(tpl, i, tpl.length()); break; }
            out.append(tpl, i, open + 2);
            String close = tpl.charAt(open + 1) == '{' ? "}}" : "%}";
            int end = closeOf(tpl, open + 2, close);
            if (end < 0) { out.append(tpl, open + 2, tpl.length()); break; }
            out.append(rewriteExpr(tpl.substring(open + 2, end)));
            out.append(close);
            i = end + 2;
        }
        return out.toString();
    }

    private static int nextOpen(String s, int from) {
        for (int i = from; i + 1 < s.length(); i++) {
            if (s.charAt(i) == '{' && (s.charAt(i + 1) == '{' || s.charAt(i + 1) == '%')) return i;
        }
        return -1;
    }

    /** Index of {@code close} after {@code from}, skipping quoted strings. */
    private static int closeOf(String s, int from, String close) {
        char quote = 0;
        for (int i = from; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == '\\') i++;
                else if (c == quote) quote = 0;
            } else if (c == '\'' || c == '"') quote = c;
            else if (s.startsWith(close, i)) return i;
        }
        return -1;
    }

    static String rewriteExpr(String e) {
        // x[::-1] -> x|reverse
        StringBuilder sb = new StringBuilder(e.length() + 8);
        char quote = 0;
        for (int i = 0; i < e.length(); i++) {
            char c = e.charAt(i);
            if (quote != 0) {
                sb.append(c);
                if (c == '\\' && i + 1 < e.length()) sb.append(e.charAt(++i));
                else if (c == quote) quote = 0;
                continue;
            }
            if (c == '\'' || c == '"') { quote = c; sb.append(c); continue; }
            if (c == '[' && e.startsWith("::-1]", i + 1)) { sb.append("|reverse"); i += 5; continue; }
            if (e.startsWith("namespace(", i) && (i == 0 || !Character.isJavaIdentifierPart(e.charAt(i - 1)))) {
                int close = matching(e, i + 9);
                if (close > 0) {
                    sb.append("namespace(").append(wrapKwargs(e.substring(i + 10, close))).append(')');
                    i = close;
                    continue;
                }
            }
            sb.append(c);
        }
        return sb.toString();
    }

    /** Index of the bracket closing the one at {@code open}, skipping strings; -1 if none. */
    private static int matching(String s, int open) {
        int depth = 0;
        char quote = 0;
        for (int i = open; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == '\\') i++;
                else if (c == quote) quote = 0;
            } else if (c == '\'' || c == '"') quote = c;
            else if (c == '(' || c == '[' || c == '{') depth++;
            else if (c == ')' || c == ']' || c == '}') { if (--depth == 0) return i; }
        }
        return -1;
    }

    /** {@code a=x|length - 1, b=2} -> {@code a=(x|length - 1), b=(2)} so filters bind inside the argument. */
    private static String wrapKwargs(String args) {
        List<String> parts = new ArrayList<>();
        int depth = 0, start = 0;
        char quote = 0;
        for (int i = 0; i < args.length(); i++) {
            char c = args.charAt(i);
            if (quote != 0) {
                if (c == '\\') i++;
                else if (c == quote) quote = 0;
            } else if (c == '\'' || c == '"') quote = c;
            else if (c == '(' || c == '[' || c == '{') depth++;
            else if (c == ')' || c == ']' || c == '}') depth--;
            else if (c == ',' && depth == 0) { parts.add(args.substring(start, i)); start = i + 1; }
        }
        parts.add(args.substring(start));
        StringBuilder sb = new StringBuilder();
        for (String p : parts) {
            if (!sb.isEmpty()) sb.append(',');
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^(\\s*[A-Za-z_][A-Za-z0-9_]*\\s*)=(?!=)(.*)$",
                    java.util.regex.Pattern.DOTALL).matcher(p);
            if (m.matches() && !m.group(2).isBlank()) sb.append(m.group(1)).append("=(").append(m.group(2)).append(')');
            else sb.append(p);
        }
        return sb.toString();
    }

    // ---- tojson -------------------------------------------------------------------------------------------------

    /** Python {@code json.dumps(x, ensure_ascii=False)} (", " and ": " separators, insertion order); {@code indent} kwarg. */
    static final class ToJson implements Filter {
        @Override public String getName() { return "tojson"; }

        @Override public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            Integer indent = args.length > 0 && args[0] != null ? Integer.valueOf(args[0]) : null;
            return toJson(var, indent);
        }

        @Override public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object ind = kwargs.containsKey("indent") ? kwargs.get("indent") : (args.length > 0 ? args[0] : null);
            Integer indent = ind == null ? null : ((Number) (ind instanceof Number ? ind : Long.valueOf(ind.toString()))).intValue();
            return toJson(var, indent);
        }
    }

    static String toJson(Object v, Integer indent) {
        StringBuilder sb = new StringBuilder();
        writeJson(sb, v, indent, 0);
        return sb.toString();
    }

    private static void newline(StringBuilder sb, Integer indent, int level) {
        sb.append('\n');
        sb.append(" ".repeat(indent * level));
    }

    private static void writeJson(StringBuilder sb, Object v, Integer indent, int level) {
        if (v == null) sb.append("null");
        else if (v instanceof Boolean b) sb.append(b ? "true" : "false");
        else if (v instanceof Double d) sb.append(d == Math.rint(d) && !d.isInfinite() ? String.valueOf(d) : d.toString());
        else if (v instanceof Number n) sb.append(n);
        else if (v instanceof Map<?, ?> m) {
            if (m.isEmpty()) { sb.append("{}"); return; }
            sb.append('{');
            boolean first = true;
            for (var e : m.entrySet()) {
                if (!first) sb.append(indent == null ? ", " : ",");
                first = false;
                if (indent != null) newline(sb, indent, level + 1);
                writeString(sb, String.valueOf(e.getKey()));
                sb.append(": ");
                writeJson(sb, e.getValue(), indent, level + 1);
            }
            if (indent != null) newline(sb, indent, level);
            sb.append('}');
        } else if (v instanceof Collection<?> || v instanceof Object[]) {
            Iterable<?> it = v instanceof Object[] a ? List.of(a) : (Collection<?>) v;
            Iterator<?> iter = it.iterator();
            if (!iter.hasNext()) { sb.append("[]"); return; }
            sb.append('[');
            boolean first = true;
            while (iter.hasNext()) {
                if (!first) sb.append(indent == null ? ", " : ",");
                first = false;
                if (indent != null) newline(sb, indent, level + 1);
                writeJson(sb, iter.next(), indent, level + 1);
            }
            if (indent != null) newline(sb, indent, level);
            sb.append(']');
        } else writeString(sb, v.toString());
    }

    private static void writeString(StringBuilder sb, String s) {
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
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }

    // ---- Python methods -----------------------------------------------------------------------------------------

    /** Resolves Python {@code str}, {@code dict} and {@code list} methods that have no Java twin of the same name. */
    static final class PyMethods extends ELResolver {
        @Override public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
            if (base == null || method == null) return null;
            Object[] p = params == null ? new Object[0] : params;
            Object r;
            if (base instanceof String || base instanceof SafeString) r = PyStr.call(base.toString(), method.toString(), p);
            else if (base instanceof Map<?, ?> m) r = dict(m, method.toString(), p);
            else if (base instanceof List<?> l) r = list(l, method.toString(), p);
            else return null;
            if (r == NONE) return null;
            context.setPropertyResolved(true);
            return r == NULL ? null : r;
        }

        @SuppressWarnings({"unchecked", "rawtypes"})
        private static Object dict(Map<?, ?> m, String name, Object[] p) {
            switch (name) {
                case "items" -> {
                    List<List<Object>> r = new ArrayList<>();
                    for (var e : m.entrySet()) r.add(java.util.Arrays.asList(e.getKey(), e.getValue()));
                    return r;
                }
                case "keys" -> { return new ArrayList<>(m.keySet()); }
                case "values" -> { return new ArrayList<>(m.values()); }
                case "get" -> {
                    if (p.length == 2) { Object v = m.get(p[0]); return v != null ? v : (p[1] == null ? NULL : p[1]); }
                    return NONE;
                }
                default -> { return NONE; }
            }
        }

        @SuppressWarnings({"unchecked", "rawtypes"})
        private static Object list(List<?> l, String name, Object[] p) {
            if (name.equals("append") && p.length == 1) { ((List) l).add(p[0]); return NULL; }
            if (name.equals("extend") && p.length == 1 && p[0] instanceof Collection<?> c) { ((List) l).addAll(c); return NULL; }
            return NONE;
        }

        @Override public Object getValue(ELContext context, Object base, Object property) { return null; }
        @Override public Class<?> getType(ELContext context, Object base, Object property) { return null; }
        @Override public void setValue(ELContext context, Object base, Object property, Object value) { }
        @Override public boolean isReadOnly(ELContext context, Object base, Object property) { return true; }
        @Override public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) { return null; }
        @Override public Class<?> getCommonPropertyType(ELContext context, Object base) { return null; }
    }

    /** Marker: not one of ours, let the next resolver try. */
    static final Object NONE = new Object();
    /** Marker: resolved, value is null/None. */
    static final Object NULL = new Object();
}
