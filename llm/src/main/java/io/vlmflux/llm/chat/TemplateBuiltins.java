package io.vlmflux.llm.chat;

import io.vlmflux.llm.chat.Py.Fn;
import io.vlmflux.llm.chat.Py.Namespace;
import io.vlmflux.llm.chat.Py.TemplateError;
import io.vlmflux.llm.chat.Py.Tuple;
import io.vlmflux.llm.chat.Py.Undefined;
import io.vlmflux.llm.chat.TemplateRenderer.Loop;
import io.vlmflux.llm.chat.TemplateRenderer.RaisedError;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.LocalDateTime;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The built-in functions, filters, tests, operators and methods of the chat-template language, each written for the
 * {@link Py} value world (the Jinja2 built-ins chat templates use, transformers' {@code tojson},
 * {@code raise_exception} and {@code strftime_now}). Methods that would mutate a list or dict are refused, as in
 * the {@code ImmutableSandboxedEnvironment} transformers renders with. Stateless.
 */
final class TemplateBuiltins {
    private TemplateBuiltins() {}

    private static final Set<String> DICT_METHODS = Set.of("items", "keys", "values", "get", "copy");
    private static final Set<String> LIST_METHODS = Set.of("index", "count", "copy");
    private static final Set<String> UNSAFE_DICT = Set.of("pop", "popitem", "update", "setdefault", "clear");
    private static final Set<String> UNSAFE_LIST = Set.of("append", "extend", "pop", "insert", "remove", "reverse", "sort", "clear");

    private record Builtin(String name, Body body) implements Fn {
        interface Body { Object call(TemplateRenderer r, List<Object> a, Map<String, Object> kw); }
        @Override public Object call(TemplateRenderer r, List<Object> a, Map<String, Object> kw) { return body.call(r, a, kw); }
    }

    static void globals(Map<String, Object> g) {
        g.put("range", new Builtin("range", TemplateBuiltins::range));
        g.put("dict", new Builtin("dict", (r, a, kw) -> {
            Map<Object, Object> m = new LinkedHashMap<>();
            if (!a.isEmpty()) {
                if (a.get(0) instanceof Map<?, ?> src) m.putAll(src);
                else for (Object pair : Py.iterate(a.get(0))) {
                    List<Object> kv = Py.iterate(pair);
                    if (kv.size() != 2) throw new TemplateError("dictionary update sequence element has length " + kv.size() + "; 2 is required");
                    m.put(Py.normKey(kv.get(0)), kv.get(1));
                }
            }
            m.putAll(kw);
            return m;
        }));
        g.put("namespace", new Builtin("namespace", (r, a, kw) -> {
            Namespace ns = new Namespace();
            if (!a.isEmpty() && a.get(0) instanceof Map<?, ?> src) for (Map.Entry<?, ?> e : src.entrySet()) ns.attrs.put(Py.str(e.getKey()), e.getValue());
            ns.attrs.putAll(kw);
            return ns;
        }));
        g.put("raise_exception", new Builtin("raise_exception", (r, a, kw) -> {
            throw new RaisedError(Py.str(PyStr.arg(a, kw, 0, "message")));
        }));
        g.put("strftime_now", new Builtin("strftime_now", (r, a, kw) ->
                strftime(LocalDateTime.now(r.clock), PyStr.text(PyStr.arg(a, kw, 0, "format")))));
    }

    private static Object range(TemplateRenderer r, List<Object> a, Map<String, Object> kw) {
        if (a.isEmpty() || a.size() > 3) throw new TemplateError("range expected 1 to 3 arguments, got " + a.size());
        long start = 0, stop, step = 1;
        if (a.size() == 1) stop = Py.asLong(a.get(0));
        else { start = Py.asLong(a.get(0)); stop = Py.asLong(a.get(1)); if (a.size() == 3) step = Py.asLong(a.get(2)); }
        if (step == 0) throw new TemplateError("range() arg 3 must not be zero");
        long n = step > 0 ? (stop > start ? (stop - start - 1) / step + 1 : 0) : (start > stop ? (start - stop - 1) / -step + 1 : 0);
        r.checkList(n);
        List<Object> out = new ArrayList<>((int) n);
        for (long i = 0, v = start; i < n; i++, v += step) out.add(v);
        return out;
    }

    // ---- operators ----------------------------------------------------------------------------------------------

    static Object arithmetic(TemplateRenderer r, String op, Object a, Object b) {
        if (a instanceof Undefined u) throw u.error();
        if (b instanceof Undefined u) throw u.error();
        try {
            if (Py.isNumber(a) && Py.isNumber(b)) return numeric(op, a, b);
        } catch (ArithmeticException e) {
            throw new TemplateError("integer overflow in " + Py.repr(a) + " " + op + " " + Py.repr(b));
        }
        switch (op) {
            case "+" -> {
                if (a instanceof String x && b instanceof String y) { r.checkString((long) x.length() + y.length()); return x + y; }
                if (a instanceof List<?> x && b instanceof List<?> y && (a instanceof Tuple) == (b instanceof Tuple)) {
                    r.checkList((long) x.size() + y.size());
                    List<Object> out = new ArrayList<>(x);
                    out.addAll(y);
                    return a instanceof Tuple ? new Tuple(out) : out;
                }
            }
            case "*" -> {
                if (Py.isInt(b) && (a instanceof String || a instanceof List<?>)) return repeat(r, a, Py.asLong(b));
                if (Py.isInt(a) && (b instanceof String || b instanceof List<?>)) return repeat(r, b, Py.asLong(a));
            }
            case "%" -> {
                if (a instanceof String fmt) return percentFormat(r, fmt, b);
            }
            default -> { }
        }
        throw new TemplateError("unsupported operand type(s) for " + op + ": '" + Py.typeName(a) + "' and '" + Py.typeName(b) + "'");
    }

    private static Object repeat(TemplateRenderer r, Object v, long times) {
        if (times <= 0) return v instanceof String ? "" : v instanceof Tuple ? new Tuple() : new ArrayList<>();
        if (v instanceof String s) {
            if (s.isEmpty()) return s;
            if (times > Integer.MAX_VALUE) r.checkString(Long.MAX_VALUE);
            r.checkString((long) s.length() * times);
            return s.repeat((int) times);
        }
        List<?> l = (List<?>) v;
        if (l.isEmpty()) return v instanceof Tuple ? new Tuple() : new ArrayList<>();
        if (times > Integer.MAX_VALUE) r.checkList(Long.MAX_VALUE);
        r.checkList((long) l.size() * times);
        List<Object> out = new ArrayList<>();
        for (long i = 0; i < times; i++) out.addAll(l);
        return v instanceof Tuple ? new Tuple(out) : out;
    }

    private static Object numeric(String op, Object a, Object b) {
        boolean ints = Py.isInt(a) && Py.isInt(b);
        if (ints) {
            long x = Py.asLong(a), y = Py.asLong(b);
            switch (op) {
                case "+" -> { return Math.addExact(x, y); }
                case "-" -> { return Math.subtractExact(x, y); }
                case "*" -> { return Math.multiplyExact(x, y); }
                case "//" -> { if (y == 0) throw zero(); return Math.floorDiv(x, y); }
                case "%" -> { if (y == 0) throw zero(); return Math.floorMod(x, y); }
                case "**" -> {
                    if (y >= 0) {
                        long result = 1, base = x;
                        for (long e = y; e > 0; e >>= 1) {
                            if ((e & 1) == 1) result = Math.multiplyExact(result, base);
                            if (e > 1) base = Math.multiplyExact(base, base);
                        }
                        return result;
                    }
                }
                default -> { }
            }
        }
        double x = Py.asDouble(a), y = Py.asDouble(b);
        return switch (op) {
            case "+" -> x + y;
            case "-" -> x - y;
            case "*" -> x * y;
            case "/" -> { if (y == 0) throw zero(); yield x / y; }
            case "//" -> { if (y == 0) throw zero(); yield Math.floor(x / y); }
            case "%" -> {
                if (y == 0) throw zero();
                double m = x % y;
                yield m != 0 && (m < 0) != (y < 0) ? m + y : m;
            }
            case "**" -> Math.pow(x, y);
            default -> throw new TemplateError("unknown operator " + op);
        };
    }

    private static TemplateError zero() { return new TemplateError("division by zero"); }

    private static final Pattern PERCENT = Pattern.compile("%([-+ 0#]*)(\\d*)(?:\\.(\\d+))?([sdirfxXeEgG%])");

    /** Python's {@code fmt % args} for the common conversions. */
    static String percentFormat(TemplateRenderer r, String fmt, Object args) {
        List<?> values = args instanceof Tuple t ? t : List.of(args == null ? "None" : args);
        if (args == null) values = java.util.Collections.singletonList(null);
        Matcher m = PERCENT.matcher(fmt);
        StringBuilder sb = new StringBuilder();
        int k = 0, last = 0;
        while (m.find()) {
            sb.append(fmt, last, m.start());
            last = m.end();
            char conv = m.group(4).charAt(0);
            if (conv == '%') { sb.append('%'); continue; }
            if (k >= values.size()) throw new TemplateError("not enough arguments for format string");
            Object v = values.get(k++);
            String flags = m.group(1), width = m.group(2), prec = m.group(3);
            String body = switch (conv) {
                case 's' -> Py.str(v);
                case 'r' -> Py.repr(v);
                case 'd', 'i' -> Long.toString(v instanceof Double d ? (long) (double) d : Py.asLong(v));
                case 'x' -> Long.toHexString(Py.asLong(v));
                case 'X' -> Long.toHexString(Py.asLong(v)).toUpperCase(Locale.ROOT);
                case 'f' -> String.format(Locale.ROOT, "%." + (prec == null ? 6 : Integer.parseInt(prec)) + "f", Py.asDouble(v));
                default -> String.format(Locale.ROOT, "%" + (prec == null ? "" : "." + prec) + conv, Py.asDouble(v));
            };
            if (conv == 's' && prec != null && body.length() > Integer.parseInt(prec)) body = body.substring(0, Integer.parseInt(prec));
            int w = width.isEmpty() ? 0 : Integer.parseInt(width);
            r.checkString(w);
            if (body.length() < w) {
                String pad = (flags.contains("0") && conv != 's' && !flags.contains("-") ? "0" : " ").repeat(w - body.length());
                body = flags.contains("-") ? body + pad : pad + body;
            }
            sb.append(body);
            r.checkString(sb.length());
        }
        if (k < values.size() && args instanceof Tuple) throw new TemplateError("not all arguments converted during string formatting");
        sb.append(fmt, last, fmt.length());
        return sb.toString();
    }

    static Object slice(TemplateRenderer r, Object obj, Object start, Object stop, Object step) {
        if (obj instanceof Undefined u) throw u.error();
        long st = step == null ? 1 : Py.asLong(step);
        if (st == 0) throw new TemplateError("slice step cannot be zero");
        int[] cps = obj instanceof String s ? s.codePoints().toArray() : null;
        List<?> list = obj instanceof List<?> l ? l : null;
        if (cps == null && list == null) throw new TemplateError("'" + Py.typeName(obj) + "' object is not subscriptable");
        long n = cps != null ? cps.length : list.size();
        long lo = adjust(start, n, st, st < 0 ? n - 1 : 0);
        long hi = adjust(stop, n, st, st < 0 ? -1 : n);
        List<Object> out = new ArrayList<>();
        StringBuilder sb = new StringBuilder();
        for (long i = lo; st > 0 ? i < hi : i > hi; i += st) {
            if (cps != null) sb.appendCodePoint(cps[(int) i]);
            else out.add(list.get((int) i));
        }
        if (cps != null) return sb.toString();
        return obj instanceof Tuple ? new Tuple(out) : out;
    }

    private static long adjust(Object v, long n, long step, long dflt) {
        if (v == null) return dflt;
        long i = Py.asLong(v);
        if (i < 0) {
            i += n;
            if (i < 0) i = step < 0 ? -1 : 0;
        } else if (i >= n) {
            i = step < 0 ? n - 1 : n;
        }
        return i;
    }

    // ---- attributes and methods ---------------------------------------------------------------------------------

    static boolean hasMethod(Object obj, String name) {
        return switch (obj) {
            case null -> false;
            case String s -> PyStr.METHODS.contains(name);
            case Map<?, ?> m -> DICT_METHODS.contains(name) || UNSAFE_DICT.contains(name);
            case Tuple t -> name.equals("index") || name.equals("count");
            case List<?> l -> LIST_METHODS.contains(name) || UNSAFE_LIST.contains(name);
            default -> false;
        };
    }

    static Fn method(Object self, String name) {
        return new Builtin(Py.typeName(self) + "." + name, (r, a, kw) -> callMethod(r, self, name, a, kw));
    }

    private static Object callMethod(TemplateRenderer r, Object self, String name, List<Object> a, Map<String, Object> kw) {
        if (self instanceof String s) return PyStr.call(r, s, name, a, kw);
        if ((self instanceof Map<?, ?> && UNSAFE_DICT.contains(name)) || (self instanceof List<?> && UNSAFE_LIST.contains(name)))
            throw new TemplateError("access to attribute '" + name + "' of '" + Py.typeName(self)
                    + "' object is unsafe: chat templates cannot modify lists or dicts (immutable sandbox, as in transformers)");
        if (self instanceof Map<?, ?> m) {
            return switch (name) {
                case "items" -> items(m);
                case "keys" -> new ArrayList<Object>(m.keySet());
                case "values" -> new ArrayList<Object>(m.values());
                case "get" -> {
                    Object k = Py.normKey(PyStr.arg(a, kw, 0, "key"));
                    yield m.containsKey(k) ? m.get(k) : PyStr.opt(a, kw, 1, "default");
                }
                default -> new LinkedHashMap<Object, Object>(m);
            };
        }
        List<?> l = (List<?>) self;
        return switch (name) {
            case "index" -> {
                Object x = PyStr.arg(a, kw, 0, "value");
                for (int i = 0; i < l.size(); i++) if (Py.eq(l.get(i), x)) yield (long) i;
                throw new TemplateError(Py.repr(x) + " is not in list");
            }
            case "count" -> {
                Object x = PyStr.arg(a, kw, 0, "value");
                long n = 0;
                for (Object o : l) if (Py.eq(o, x)) n++;
                yield n;
            }
            default -> new ArrayList<Object>(l);
        };
    }

    private static List<Object> items(Map<?, ?> m) {
        List<Object> out = new ArrayList<>();
        for (Map.Entry<?, ?> e : m.entrySet()) out.add(new Tuple(e.getKey(), e.getValue()));
        return out;
    }

    static Object loopAttr(TemplateRenderer r, Loop l, String name) {
        int n = l.items.size(), i = l.index0;
        return switch (name) {
            case "index" -> (long) i + 1;
            case "index0" -> (long) i;
            case "revindex" -> (long) (n - i);
            case "revindex0" -> (long) (n - i - 1);
            case "first" -> i == 0;
            case "last" -> i == n - 1;
            case "length" -> (long) n;
            case "depth" -> 1L;
            case "depth0" -> 0L;
            case "previtem" -> i > 0 ? l.items.get(i - 1) : new Undefined("there is no previous item");
            case "nextitem" -> i < n - 1 ? l.items.get(i + 1) : new Undefined("there is no next item");
            case "cycle" -> new Builtin("loop.cycle", (rr, a, kw) -> {
                if (a.isEmpty()) throw new TemplateError("no items for cycling given");
                return a.get(l.index0 % a.size());
            });
            default -> new Undefined("'LoopContext object' has no attribute '" + name + "'");
        };
    }

    // ---- filters ------------------------------------------------------------------------------------------------

    static Object filter(TemplateRenderer r, String name, Object v, List<Object> a, Map<String, Object> kw) {
        return switch (name) {
            case "default", "d" -> {
                Object dv = PyStr.opt(a, kw, 0, "default_value");
                boolean bool = Py.truthy(PyStr.opt(a, kw, 1, "boolean"));
                yield v instanceof Undefined || (bool && !Py.truthy(v)) ? (dv == null && a.isEmpty() && !kw.containsKey("default_value") ? "" : dv) : v;
            }
            case "length", "count" -> (long) Py.len(v);
            case "join" -> {
                Object sep = PyStr.opt(a, kw, 0, "d");
                Object attribute = PyStr.opt(a, kw, 1, "attribute");
                StringBuilder sb = new StringBuilder();
                boolean first = true;
                for (Object o : Py.iterate(v)) {
                    if (!first) sb.append(sep == null ? "" : Py.str(sep));
                    first = false;
                    sb.append(Py.str(attribute == null ? o : attrPath(r, o, attribute)));
                    r.checkString(sb.length());
                }
                yield sb.toString();
            }
            case "trim" -> {
                Object chars = PyStr.opt(a, kw, 0, "chars");
                yield PyStr.strip(Py.str(v), chars == null ? null : PyStr.text(chars), true, true);
            }
            case "upper" -> Py.str(v).toUpperCase(Locale.ROOT);
            case "lower" -> Py.str(v).toLowerCase(Locale.ROOT);
            case "capitalize" -> PyStr.capitalize(Py.str(v));
            case "title" -> jinjaTitle(Py.str(v));
            case "string" -> Py.str(v);
            case "safe" -> Py.str(v);
            case "escape", "e", "forceescape" -> Py.escapeHtml(Py.str(v));
            case "replace" -> {
                Object count = PyStr.opt(a, kw, 2, "count");
                yield PyStr.replace(r, Py.str(v), PyStr.text(PyStr.arg(a, kw, 0, "old")), Py.str(PyStr.arg(a, kw, 1, "new")),
                        count == null ? -1 : Py.asLong(count));
            }
            case "first" -> {
                List<Object> items = Py.iterate(v);
                yield items.isEmpty() ? new Undefined("No first item, sequence was empty.") : items.getFirst();
            }
            case "last" -> {
                List<Object> items = Py.iterate(v);
                yield items.isEmpty() ? new Undefined("No last item, sequence was empty.") : items.getLast();
            }
            case "reverse" -> {
                if (v instanceof String s) yield new StringBuilder(s).reverse().toString();
                List<Object> items = Py.iterate(v);
                yield new ArrayList<>(items.reversed());
            }
            case "list" -> Py.iterate(v);
            case "int" -> toInt(v, PyStr.opt(a, kw, 0, "default"), PyStr.opt(a, kw, 1, "base"));
            case "float" -> toFloat(v, PyStr.opt(a, kw, 0, "default"));
            case "abs" -> {
                if (v instanceof Double d) yield Math.abs(d);
                long x = Py.asLong(v);
                if (x == Long.MIN_VALUE) throw new TemplateError("integer overflow in abs");
                yield Math.abs(x);
            }
            case "round" -> round(v, PyStr.opt(a, kw, 0, "precision"), PyStr.opt(a, kw, 1, "method"));
            case "sort" -> sort(r, Py.iterate(v), Py.truthy(PyStr.opt(a, kw, 0, "reverse")),
                    Py.truthy(PyStr.opt(a, kw, 1, "case_sensitive")), PyStr.opt(a, kw, 2, "attribute"));
            case "unique" -> {
                boolean cs = Py.truthy(PyStr.opt(a, kw, 0, "case_sensitive"));
                Object attribute = PyStr.opt(a, kw, 1, "attribute");
                List<Object> out = new ArrayList<>(), seen = new ArrayList<>();
                for (Object o : Py.iterate(v)) {
                    Object key = sortKey(attribute == null ? o : attrPath(r, o, attribute), cs);
                    boolean dup = false;
                    for (Object s : seen) if (Py.eq(s, key)) { dup = true; break; }
                    if (!dup) { seen.add(key); out.add(o); }
                }
                yield out;
            }
            case "dictsort" -> {
                if (!(v instanceof Map<?, ?> m)) throw new TemplateError("dictsort needs a dict, got " + Py.typeName(v));
                boolean cs = Py.truthy(PyStr.opt(a, kw, 0, "case_sensitive"));
                Object by = PyStr.opt(a, kw, 1, "by");
                int pos = by == null || "key".equals(by) ? 0 : "value".equals(by) ? 1 : -1;
                if (pos < 0) throw new TemplateError("You can only sort by either \"key\" or \"value\"");
                List<Object> items = items(m);
                items.sort((x, y) -> Py.compare(sortKey(((Tuple) x).get(pos), cs), sortKey(((Tuple) y).get(pos), cs)));
                if (Py.truthy(PyStr.opt(a, kw, 2, "reverse"))) java.util.Collections.reverse(items);
                yield items;
            }
            case "items" -> {
                if (v instanceof Undefined) yield new ArrayList<>();
                if (!(v instanceof Map<?, ?> m)) throw new TemplateError("Can only get item pairs from a mapping.");
                yield items(m);
            }
            case "map" -> {
                List<Object> out = new ArrayList<>();
                if (kw.containsKey("attribute")) {
                    Object attribute = kw.get("attribute");
                    Object dflt = kw.get("default");
                    for (Object o : truthyItems(v)) {
                        Object x = attrPath(r, o, attribute);
                        out.add(x instanceof Undefined && kw.containsKey("default") ? dflt : x);
                    }
                } else {
                    if (a.isEmpty()) throw new TemplateError("map requires a filter name or attribute=");
                    String f = PyStr.text(a.get(0));
                    for (Object o : truthyItems(v)) { r.step(); out.add(filter(r, f, o, a.subList(1, a.size()), kw)); }
                }
                yield out;
            }
            case "select", "reject" -> {
                boolean keep = name.equals("select");
                List<Object> out = new ArrayList<>();
                for (Object o : truthyItems(v)) {
                    r.step();
                    boolean t = a.isEmpty() ? Py.truthy(o) : test(r, PyStr.text(a.get(0)), o, a.subList(1, a.size()));
                    if (t == keep) out.add(o);
                }
                yield out;
            }
            case "selectattr", "rejectattr" -> {
                boolean keep = name.equals("selectattr");
                if (a.isEmpty()) throw new TemplateError(name + " requires an attribute name");
                List<Object> out = new ArrayList<>();
                for (Object o : truthyItems(v)) {
                    r.step();
                    Object x = attrPath(r, o, a.get(0));
                    boolean t = a.size() < 2 ? Py.truthy(x) : test(r, PyStr.text(a.get(1)), x, a.subList(2, a.size()));
                    if (t == keep) out.add(o);
                }
                yield out;
            }
            case "tojson" -> tojson(r, v, a, kw);
            case "indent" -> indent(r, Py.str(v), PyStr.opt(a, kw, 0, "width"), Py.truthy(PyStr.opt(a, kw, 1, "first")),
                    Py.truthy(PyStr.opt(a, kw, 2, "blank")));
            case "wordcount" -> {
                Matcher m = Pattern.compile("\\w+", Pattern.UNICODE_CHARACTER_CLASS).matcher(Py.str(v));
                long n = 0;
                while (m.find()) n++;
                yield n;
            }
            case "center" -> {
                Object w = PyStr.opt(a, kw, 0, "width");
                yield PyStr.call(r, Py.str(v), "center", List.of(w == null ? 80L : w), Map.of());
            }
            case "batch" -> {
                long size = Py.asLong(PyStr.arg(a, kw, 0, "linecount"));
                if (size <= 0) throw new TemplateError("batch size must be positive, got " + size);
                boolean fill = a.size() > 1 || kw.containsKey("fill_with");
                Object filler = PyStr.opt(a, kw, 1, "fill_with");
                List<Object> out = new ArrayList<>(), cur = new ArrayList<>();
                for (Object o : Py.iterate(v)) {
                    cur.add(o);
                    if (cur.size() == size) { out.add(cur); cur = new ArrayList<>(); }
                }
                if (!cur.isEmpty()) {
                    if (fill) { r.checkList(size); while (cur.size() < size) cur.add(filler); }
                    out.add(cur);
                }
                yield out;
            }
            case "sum" -> {
                Object attribute = PyStr.opt(a, kw, 0, "attribute");
                Object total = PyStr.opt(a, kw, 1, "start");
                if (total == null) total = 0L;
                for (Object o : Py.iterate(v)) total = arithmetic(r, "+", total, attribute == null ? o : attrPath(r, o, attribute));
                yield total;
            }
            case "min", "max" -> {
                boolean cs = Py.truthy(PyStr.opt(a, kw, 0, "case_sensitive"));
                Object attribute = PyStr.opt(a, kw, 1, "attribute");
                Object best = null, bestKey = null;
                boolean any = false;
                for (Object o : Py.iterate(v)) {
                    Object key = sortKey(attribute == null ? o : attrPath(r, o, attribute), cs);
                    int c = any ? Py.compare(key, bestKey) : 0;
                    if (!any || (name.equals("min") ? c < 0 : c > 0)) { best = o; bestKey = key; any = true; }
                }
                yield any ? best : new Undefined("No aggregated item, sequence was empty.");
            }
            case "attr" -> {
                String attrName = PyStr.text(PyStr.arg(a, kw, 0, "name"));
                yield v instanceof Map<?, ?> && !hasMethod(v, attrName) ? new Undefined("'dict object' has no attribute '" + attrName + "'")
                        : r.getattr(v, attrName);
            }
            case "format" -> percentFormat(r, Py.str(v), a.size() == 1 ? a.getFirst() : new Tuple(a));
            default -> throw new TemplateError("no filter named '" + name + "'");
        };
    }

    /** Jinja's map/select family iterate only a truthy value ({@code if value: for item in value}). */
    private static List<Object> truthyItems(Object v) {
        return Py.truthy(v) ? Py.iterate(v) : new ArrayList<>();
    }

    /** {@code attribute="a.b.0"} lookups of map/select/sort/...: items first, then attributes, as Jinja's getitem. */
    private static Object attrPath(TemplateRenderer r, Object o, Object attribute) {
        if (Py.isInt(attribute)) return r.getitem(o, attribute);
        Object cur = o;
        for (String part : PyStr.text(attribute).split("\\.")) {
            Object key = !part.isEmpty() && part.chars().allMatch(Character::isDigit) ? (Object) Long.parseLong(part) : part;
            cur = r.getitem(cur, key);
        }
        return cur;
    }

    private static Object sortKey(Object v, boolean caseSensitive) {
        return !caseSensitive && v instanceof String s ? s.toLowerCase(Locale.ROOT) : v;
    }

    private static List<Object> sort(TemplateRenderer r, List<Object> items, boolean reverse, boolean cs, Object attribute) {
        List<Object> out = new ArrayList<>(items);
        Comparator<Object> c = (x, y) -> Py.compare(sortKey(attribute == null ? x : attrPath(r, x, attribute), cs),
                sortKey(attribute == null ? y : attrPath(r, y, attribute), cs));
        out.sort(reverse ? c.reversed() : c);
        return out;
    }

    /** Jinja2's {@code title} filter: upper-cases the first letter of each word (words split at spaces, -, brackets). */
    private static String jinjaTitle(String s) {
        StringBuilder sb = new StringBuilder();
        Matcher m = Pattern.compile("([-\\s({\\[<]+)").matcher(s);
        int last = 0;
        while (m.find()) {
            word(sb, s.substring(last, m.start()));
            sb.append(m.group());
            last = m.end();
        }
        word(sb, s.substring(last));
        return sb.toString();
    }

    private static void word(StringBuilder sb, String w) {
        if (w.isEmpty()) return;
        sb.append(w.substring(0, 1).toUpperCase(Locale.ROOT)).append(w.substring(1).toLowerCase(Locale.ROOT));
    }

    private static Object toInt(Object v, Object dflt, Object base) {
        Object d = dflt == null ? 0L : dflt;
        return switch (v) {
            case null -> d;
            case Boolean b -> b ? 1L : 0L;
            case Long l -> l;
            case Double x -> Double.isFinite(x) && Math.abs(x) < 9.2e18 ? (Object) (long) (double) x : d;
            case String s -> {
                String t = s.strip().replace("_", "");
                try {
                    yield Long.parseLong(t, base == null ? 10 : (int) Py.asLong(base));
                } catch (NumberFormatException e) {
                    try {
                        double x = Double.parseDouble(t);
                        yield Double.isFinite(x) && Math.abs(x) < 9.2e18 ? (Object) (long) x : d;
                    } catch (NumberFormatException e2) {
                        yield d;
                    }
                }
            }
            default -> d;
        };
    }

    private static Object toFloat(Object v, Object dflt) {
        Object d = dflt == null ? 0.0 : dflt;
        if (Py.isNumber(v)) return Py.asDouble(v);
        if (v instanceof String s) {
            String t = s.strip().toLowerCase(Locale.ROOT);
            if (t.matches("[+-]?(inf|infinity)")) return t.startsWith("-") ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY;
            if (t.matches("[+-]?nan")) return Double.NaN;
            try {
                if (!t.matches("[+-]?(\\d[\\d_]*\\.?[\\d_]*|\\.\\d[\\d_]*)(e[+-]?\\d+)?")) return d;
                return Double.parseDouble(t.replace("_", ""));
            } catch (NumberFormatException e) {
                return d;
            }
        }
        return d;
    }

    private static Object round(Object v, Object precision, Object method) {
        int p = precision == null ? 0 : (int) Py.asLong(precision);
        String how = method == null ? "common" : PyStr.text(method);
        double x = Py.asDouble(v);
        if (!Double.isFinite(x)) return x;
        RoundingMode mode = switch (how) {
            case "common" -> RoundingMode.HALF_EVEN;
            case "ceil" -> RoundingMode.CEILING;
            case "floor" -> RoundingMode.FLOOR;
            default -> throw new TemplateError("method must be common, ceil or floor");
        };
        if (how.equals("common")) return new BigDecimal(x).setScale(p, mode).doubleValue();
        double f = Math.pow(10, p);
        return (how.equals("ceil") ? Math.ceil(x * f) : Math.floor(x * f)) / f;
    }

    private static String tojson(TemplateRenderer r, Object v, List<Object> a, Map<String, Object> kw) {
        boolean ascii = Py.truthy(PyStr.opt(a, kw, 0, "ensure_ascii"));
        Object indent = PyStr.opt(a, kw, 1, "indent");
        Object separators = PyStr.opt(a, kw, 2, "separators");
        boolean sortKeys = Py.truthy(PyStr.opt(a, kw, 3, "sort_keys"));
        String ind = switch (indent) {
            case null -> null;
            case String s -> s;
            default -> {
                long n = Py.asLong(indent);
                r.checkString(n);
                yield " ".repeat((int) Math.max(0, n));
            }
        };
        String itemSep = null, keySep = null;
        if (separators != null) {
            List<Object> seps = Py.iterate(separators);
            if (seps.size() != 2) throw new TemplateError("separators must be a (item_separator, key_separator) pair");
            itemSep = PyStr.text(seps.get(0));
            keySep = PyStr.text(seps.get(1));
        }
        return Py.toJson(v, ind, itemSep, keySep, sortKeys, ascii, r.limits.maxOutputChars());
    }

    private static String indent(TemplateRenderer r, String s, Object width, boolean first, boolean blank) {
        String ind = width == null ? "    " : width instanceof String w ? w : " ".repeat((int) Math.max(0, Math.min(r.limits.maxOutputChars(), Py.asLong(width))));
        String text = s + "\n";
        List<String> lines = new ArrayList<>();
        for (Object o : PyStr.split(text, "\n", -1)) lines.add((String) o);
        lines.removeLast(); // Python's splitlines drops the empty piece after the final newline
        StringBuilder sb = new StringBuilder();
        if (blank) {
            sb.append(String.join("\n" + ind, lines));
        } else {
            sb.append(lines.getFirst());
            for (int i = 1; i < lines.size(); i++) {
                sb.append('\n');
                if (!lines.get(i).isEmpty()) sb.append(ind);
                sb.append(lines.get(i));
                r.checkString(sb.length());
            }
        }
        if (first) sb.insert(0, ind);
        r.checkString(sb.length());
        return sb.toString();
    }

    // ---- tests --------------------------------------------------------------------------------------------------

    static boolean test(TemplateRenderer r, String name, Object v, List<Object> a) {
        return switch (name) {
            case "defined" -> !(v instanceof Undefined);
            case "undefined" -> v instanceof Undefined;
            case "none" -> v == null;
            case "boolean" -> v instanceof Boolean;
            case "true" -> Boolean.TRUE.equals(v);
            case "false" -> Boolean.FALSE.equals(v);
            case "integer" -> v instanceof Long;
            case "float" -> v instanceof Double;
            case "number" -> Py.isNumber(v);
            case "string" -> v instanceof String;
            case "mapping" -> v instanceof Map<?, ?>;
            case "iterable" -> v instanceof String || v instanceof List<?> || v instanceof Map<?, ?> || v instanceof Undefined;
            case "sequence" -> v instanceof String || v instanceof List<?> || v instanceof Map<?, ?>;
            case "callable" -> v instanceof Fn;
            case "odd" -> Math.floorMod(Py.asLong(v), 2) == 1;
            case "even" -> Math.floorMod(Py.asLong(v), 2) == 0;
            case "divisibleby" -> {
                long d = Py.asLong(arg(a, 0, name));
                if (d == 0) throw zero();
                yield Math.floorMod(Py.asLong(v), d) == 0;
            }
            case "eq", "equalto", "==" -> Py.eq(v, arg(a, 0, name));
            case "ne", "!=" -> !Py.eq(v, arg(a, 0, name));
            case "lt", "lessthan", "<" -> Py.compare(v, arg(a, 0, name)) < 0;
            case "le", "<=" -> Py.compare(v, arg(a, 0, name)) <= 0;
            case "gt", "greaterthan", ">" -> Py.compare(v, arg(a, 0, name)) > 0;
            case "ge", ">=" -> Py.compare(v, arg(a, 0, name)) >= 0;
            case "in" -> Py.contains(arg(a, 0, name), v);
            case "sameas" -> {
                Object o = arg(a, 0, name);
                yield v == o || (v == null ? o == null : (v instanceof Boolean || v instanceof Long || v instanceof String) && v.equals(o));
            }
            case "lower" -> v instanceof String s && (boolean) PyStr.call(r, s, "islower", List.of(), Map.of());
            case "upper" -> v instanceof String s && (boolean) PyStr.call(r, s, "isupper", List.of(), Map.of());
            case "escaped" -> false;
            case "filter" -> v instanceof String s && FILTERS.contains(s);
            case "test" -> v instanceof String s && TESTS.contains(s);
            default -> throw new TemplateError("no test named '" + name + "'");
        };
    }

    private static Object arg(List<Object> a, int i, String test) {
        if (i >= a.size()) throw new TemplateError("test '" + test + "' needs an argument");
        return a.get(i);
    }

    private static final Set<String> FILTERS = Set.of("default", "d", "length", "count", "join", "trim", "upper", "lower",
            "capitalize", "title", "string", "safe", "escape", "e", "forceescape", "replace", "first", "last", "reverse",
            "list", "int", "float", "abs", "round", "sort", "unique", "dictsort", "items", "map", "select", "reject",
            "selectattr", "rejectattr", "tojson", "indent", "wordcount", "center", "batch", "sum", "min", "max", "attr", "format");
    private static final Set<String> TESTS = Set.of("defined", "undefined", "none", "boolean", "true", "false", "integer",
            "float", "number", "string", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq",
            "equalto", "ne", "lt", "lessthan", "le", "gt", "greaterthan", "ge", "in", "sameas", "lower", "upper", "escaped",
            "filter", "test");

    // ---- strftime -----------------------------------------------------------------------------------------------

    /** Python's {@code strftime} for the C-locale codes (and glibc's {@code %-d} style unpadded variants). */
    static String strftime(LocalDateTime t, String fmt) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < fmt.length(); i++) {
            char c = fmt.charAt(i);
            if (c != '%' || i + 1 == fmt.length()) { sb.append(c); continue; }
            char f = fmt.charAt(++i);
            boolean unpadded = false;
            if (f == '-' && i + 1 < fmt.length()) { unpadded = true; f = fmt.charAt(++i); }
            String two = unpadded ? "%d" : "%02d";
            int hour12 = t.getHour() % 12 == 0 ? 12 : t.getHour() % 12;
            switch (f) {
                case 'd' -> sb.append(String.format(two, t.getDayOfMonth()));
                case 'e' -> sb.append(String.format("%2d", t.getDayOfMonth()));
                case 'm' -> sb.append(String.format(two, t.getMonthValue()));
                case 'Y' -> sb.append(t.getYear());
                case 'y' -> sb.append(String.format(two, t.getYear() % 100));
                case 'H' -> sb.append(String.format(two, t.getHour()));
                case 'I' -> sb.append(String.format(two, hour12));
                case 'M' -> sb.append(String.format(two, t.getMinute()));
                case 'S' -> sb.append(String.format(two, t.getSecond()));
                case 'p' -> sb.append(t.getHour() < 12 ? "AM" : "PM");
                case 'b', 'h' -> sb.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> sb.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'a' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> sb.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'j' -> sb.append(String.format(unpadded ? "%d" : "%03d", t.getDayOfYear()));
                case 'w' -> sb.append(t.getDayOfWeek().getValue() % 7);
                case 'F' -> sb.append(String.format("%04d-%02d-%02d", t.getYear(), t.getMonthValue(), t.getDayOfMonth()));
                case 'T' -> sb.append(String.format("%02d:%02d:%02d", t.getHour(), t.getMinute(), t.getSecond()));
                case '%' -> sb.append('%');
                default -> sb.append('%').append(unpadded ? "-" : "").append(f);
            }
        }
        return sb.toString();
    }

}
