package io.vlmflux.llm.chat;

import io.vlmflux.llm.chat.Py.Fn;
import io.vlmflux.llm.chat.Py.Namespace;
import io.vlmflux.llm.chat.Py.TemplateError;
import io.vlmflux.llm.chat.Py.Tuple;
import io.vlmflux.llm.chat.Py.Undefined;
import io.vlmflux.llm.chat.TemplateAst.*;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Evaluates one parsed chat template once (one instance per render, not thread-safe). Owns the scopes, the output
 * buffer and the resource accounting: every statement, loop iteration, call and filter is a step; output, strings
 * and lists are bounded; macro recursion and wall time are bounded. A limit hit throws {@link LimitError}.
 */
final class TemplateRenderer {

    /** Bounds on one render; a template that exceeds one fails with an error naming it. */
    record Limits(int maxOutputChars, long maxSteps, int maxCallDepth, long maxMillis, int maxListLength) {
        static final Limits DEFAULT = new Limits(4 << 20, 1_000_000, 64, 2_000, 1_000_000);

        Limits {
            if (maxOutputChars <= 0 || maxSteps <= 0 || maxCallDepth <= 0 || maxMillis <= 0 || maxListLength <= 0)
                throw new IllegalArgumentException("template limits must be positive: " + maxOutputChars + ", " + maxSteps
                        + ", " + maxCallDepth + ", " + maxMillis + ", " + maxListLength);
        }
    }

    /** A resource limit was hit. */
    static final class LimitError extends TemplateError {
        LimitError(String msg) { super(msg); }
    }

    /** {@code raise_exception(msg)} was called by the template. */
    static final class RaisedError extends TemplateError {
        RaisedError(String msg) { super(msg); }
    }

    private static final class BreakSignal extends RuntimeException {
        BreakSignal() { super(null, null, false, false); }
    }

    private static final class ContinueSignal extends RuntimeException {
        ContinueSignal() { super(null, null, false, false); }
    }

    private static final BreakSignal BREAK = new BreakSignal();
    private static final ContinueSignal CONTINUE = new ContinueSignal();
    private static final Object MISSING = new Object();

    /** Variables of one level: template top level, a loop, a macro call, a with block. */
    static final class Scope {
        final Map<String, Object> vars = new HashMap<>();
        final Scope parent;
        Scope(Scope parent) { this.parent = parent; }

        Object get(String name) {
            for (Scope s = this; s != null; s = s.parent) {
                Object v = s.vars.getOrDefault(name, MISSING);
                if (v != MISSING) return v;
            }
            return MISSING;
        }
    }

    /** The {@code loop} variable of a for loop. */
    static final class Loop {
        final List<Object> items;
        int index0;
        Loop(List<Object> items) { this.items = items; }
    }

    final Limits limits;
    final Clock clock;
    private final long deadline;
    private long steps;
    private int callDepth;
    int line;

    TemplateRenderer(Limits limits, Clock clock) {
        this.limits = limits;
        this.clock = clock;
        this.deadline = System.nanoTime() + limits.maxMillis() * 1_000_000L;
    }

    String render(List<Node> body, Map<String, Object> variables) {
        Scope globals = new Scope(null);
        TemplateBuiltins.globals(globals.vars);
        Scope top = new Scope(globals);
        top.vars.putAll(variables);
        StringBuilder out = new StringBuilder();
        exec(body, top, out);
        return out.toString();
    }

    // ---- accounting ---------------------------------------------------------------------------------------------

    void step() {
        if (++steps > limits.maxSteps())
            throw new LimitError("exceeded the limit of " + limits.maxSteps() + " evaluation steps (loop iterations, statements, calls)");
        if ((steps & 255) == 0 && System.nanoTime() > deadline)
            throw new LimitError("exceeded the render time limit of " + limits.maxMillis() + " ms");
    }

    /** Fails before building a string of {@code length} chars when it would exceed the output limit. */
    void checkString(long length) {
        if (length > limits.maxOutputChars())
            throw new LimitError("a string of " + length + " characters exceeds the limit of " + limits.maxOutputChars());
    }

    void checkList(long length) {
        if (length > limits.maxListLength())
            throw new LimitError("a list of " + length + " items exceeds the limit of " + limits.maxListLength());
    }

    private void append(StringBuilder out, String s) {
        if ((long) out.length() + s.length() > limits.maxOutputChars())
            throw new LimitError("output exceeds the limit of " + limits.maxOutputChars() + " characters");
        out.append(s);
    }

    // ---- statements ---------------------------------------------------------------------------------------------

    private void exec(List<Node> nodes, Scope s, StringBuilder out) {
        for (Node n : nodes) {
            step();
            line = n.line();
            switch (n) {
                case Text t -> append(out, t.text());
                case Output o -> append(out, Py.str(eval(o.expr(), s)));
                case If i -> {
                    List<Node> chosen = i.orElse();
                    for (int k = 0; k < i.tests().size(); k++) {
                        if (Py.truthy(eval(i.tests().get(k), s))) { chosen = i.bodies().get(k); break; }
                    }
                    exec(chosen, s, out);
                }
                case For f -> forLoop(f, s, out);
                case Set st -> assign(st.target(), eval(st.value(), s), s);
                case SetBlock sb -> {
                    StringBuilder buf = new StringBuilder();
                    exec(sb.body(), s, buf);
                    Object v = buf.toString();
                    for (FilterCall fc : sb.filters()) v = applyFilter(fc, v, s);
                    assign(sb.target(), v, s);
                }
                case Macro m -> s.vars.put(m.name(), new MacroFn(m.name(), m.params(), m.defaults(), m.body(), s));
                case CallBlock cb -> {
                    MacroFn caller = new MacroFn("caller", cb.params(), cb.defaults(), cb.body(), s);
                    Object fn = eval(cb.call().fn(), s);
                    List<Object> args = new ArrayList<>();
                    Map<String, Object> kwargs = new LinkedHashMap<>();
                    evalArgs(cb.call().args(), s, args, kwargs);
                    kwargs.put("caller", caller);
                    append(out, Py.str(call(fn, args, kwargs)));
                }
                case FilterBlock fb -> {
                    StringBuilder buf = new StringBuilder();
                    exec(fb.body(), s, buf);
                    Object v = buf.toString();
                    for (FilterCall fc : fb.filters()) v = applyFilter(fc, v, s);
                    append(out, Py.str(v));
                }
                case With w -> {
                    Scope inner = new Scope(s);
                    for (int k = 0; k < w.targets().size(); k++) assign(w.targets().get(k), eval(w.values().get(k), s), inner);
                    exec(w.body(), inner, out);
                }
                case Break b -> throw BREAK;
                case Continue c -> throw CONTINUE;
            }
        }
    }

    private void forLoop(For f, Scope s, StringBuilder out) {
        Object it = eval(f.iter(), s);
        if (it instanceof Undefined u && u.hint().startsWith("access to")) throw u.error();
        List<Object> items = Py.iterate(it);
        Scope inner = new Scope(s);
        if (f.filter() != null) {
            List<Object> kept = new ArrayList<>();
            for (Object item : items) {
                step();
                assign(f.target(), item, inner);
                if (Py.truthy(eval(f.filter(), inner))) kept.add(item);
            }
            items = kept;
        }
        if (items.isEmpty()) {
            exec(f.orElse(), s, out);
            return;
        }
        Loop loop = new Loop(items);
        for (int i = 0; i < items.size(); i++) {
            step();
            loop.index0 = i;
            assign(f.target(), items.get(i), inner);
            inner.vars.put("loop", loop);
            try {
                exec(f.body(), inner, out);
            } catch (ContinueSignal c) {
                // next item
            } catch (BreakSignal b) {
                break;
            }
        }
    }

    private void assign(Target t, Object v, Scope s) {
        switch (t) {
            case NameTarget n -> s.vars.put(n.name(), v);
            case AttrTarget a -> {
                Object ns = s.get(a.name());
                if (!(ns instanceof Namespace n))
                    throw new TemplateError("cannot assign attribute '" + a.attr() + "' on " + (ns == MISSING ? "undefined '" + a.name() + "'" : "a " + Py.typeName(ns)) + "; only a namespace() accepts attribute assignment");
                n.attrs.put(a.attr(), v);
            }
            case TupleTarget tt -> {
                List<Object> values = v instanceof List<?> || v instanceof String || v instanceof Map<?, ?> ? Py.iterate(v) : null;
                if (values == null) throw new TemplateError("cannot unpack non-iterable " + Py.typeName(v) + " object");
                if (values.size() != tt.items().size())
                    throw new TemplateError("cannot unpack " + values.size() + " values into " + tt.items().size() + " names");
                for (int i = 0; i < values.size(); i++) assign(tt.items().get(i), values.get(i), s);
            }
        }
    }

    // ---- macros -------------------------------------------------------------------------------------------------

    /** A macro defined in the template (also the {@code caller} of a call block): renders its body to a string. */
    final class MacroFn implements Fn {
        private final String name;
        private final List<String> params;
        private final List<Expr> defaults;
        private final List<Node> body;
        private final Scope closure;

        MacroFn(String name, List<String> params, List<Expr> defaults, List<Node> body, Scope closure) {
            this.name = name;
            this.params = params;
            this.defaults = defaults;
            this.body = body;
            this.closure = closure;
        }

        @Override public String name() { return name; }

        @Override public Object call(TemplateRenderer r, List<Object> args, Map<String, Object> kwargs) {
            if (++callDepth > limits.maxCallDepth())
                throw new LimitError("macro calls nested deeper than the limit of " + limits.maxCallDepth() + " (recursion?)");
            int savedLine = line;
            try {
                Scope scope = new Scope(closure);
                Map<String, Object> kw = new LinkedHashMap<>(kwargs);
                for (int i = 0; i < params.size(); i++) {
                    String p = params.get(i);
                    Object v;
                    if (i < args.size()) v = args.get(i);
                    else if (kw.containsKey(p)) v = kw.remove(p);
                    else if (defaults.get(i) != null) v = eval(defaults.get(i), scope);
                    else v = new Undefined("parameter '" + p + "' was not provided");
                    kw.remove(p);
                    scope.vars.put(p, v);
                }
                scope.vars.put("varargs", args.size() > params.size() ? new ArrayList<>(args.subList(params.size(), args.size())) : new ArrayList<>());
                if (kw.containsKey("caller")) scope.vars.put("caller", kw.remove("caller"));
                scope.vars.put("kwargs", new LinkedHashMap<Object, Object>(kw));
                StringBuilder buf = new StringBuilder();
                exec(body, scope, buf);
                return buf.toString();
            } finally {
                callDepth--;
                line = savedLine;
            }
        }
    }

    // ---- expressions --------------------------------------------------------------------------------------------

    Object eval(Expr e, Scope s) {
        return switch (e) {
            case Const c -> c.value();
            case Var v -> {
                Object val = s.get(v.name());
                yield val == MISSING ? new Undefined("'" + v.name() + "' is undefined") : val;
            }
            case TupleLit t -> {
                Object[] items = new Object[t.items().size()];
                for (int i = 0; i < items.length; i++) items[i] = eval(t.items().get(i), s);
                yield new Tuple(items);
            }
            case ListLit l -> {
                List<Object> items = new ArrayList<>(l.items().size());
                for (Expr x : l.items()) items.add(eval(x, s));
                yield items;
            }
            case DictLit d -> {
                Map<Object, Object> m = new LinkedHashMap<>();
                for (int i = 0; i < d.keys().size(); i++) {
                    Object k = eval(d.keys().get(i), s);
                    if (k instanceof List<?> && !(k instanceof Tuple) || k instanceof Map<?, ?> || k instanceof Undefined)
                        throw new TemplateError("unhashable dict key of type '" + Py.typeName(k) + "'");
                    m.put(Py.normKey(k), eval(d.values().get(i), s));
                }
                yield m;
            }
            case Unary u -> {
                Object v = eval(u.operand(), s);
                if (v instanceof Undefined x) throw x.error();
                if (!Py.isNumber(v)) throw new TemplateError("bad operand type for unary " + u.op() + ": '" + Py.typeName(v) + "'");
                if (u.op().equals("+")) yield v instanceof Boolean ? Py.asLong(v) : v;
                yield v instanceof Double d ? -d : Math.negateExact(Py.asLong(v));
            }
            case Binary b -> TemplateBuiltins.arithmetic(this, b.op(), eval(b.left(), s), eval(b.right(), s));
            case Concat c -> {
                StringBuilder sb = new StringBuilder();
                for (Expr x : c.parts()) {
                    String part = Py.str(eval(x, s));
                    checkString((long) sb.length() + part.length());
                    sb.append(part);
                }
                yield sb.toString();
            }
            case Compare c -> {
                Object left = eval(c.first(), s);
                for (int i = 0; i < c.ops().size(); i++) {
                    Object right = eval(c.rest().get(i), s);
                    if (!compare(c.ops().get(i), left, right)) yield false;
                    left = right;
                }
                yield true;
            }
            case And a -> {
                Object l = eval(a.left(), s);
                yield Py.truthy(l) ? eval(a.right(), s) : l;
            }
            case Or o -> {
                Object l = eval(o.left(), s);
                yield Py.truthy(l) ? l : eval(o.right(), s);
            }
            case Not n -> !Py.truthy(eval(n.operand(), s));
            case Cond c -> Py.truthy(eval(c.test(), s)) ? eval(c.then(), s)
                    : c.orElse() != null ? eval(c.orElse(), s)
                    : new Undefined("the inline if-expression on line " + c.line() + " evaluated to false and no else section was defined.");
            case GetAttr g -> getattr(eval(g.obj(), s), g.attr());
            case GetItem g -> getitem(eval(g.obj(), s), eval(g.key(), s));
            case Slice sl -> TemplateBuiltins.slice(this, eval(sl.obj(), s), sl.start() == null ? null : eval(sl.start(), s),
                    sl.stop() == null ? null : eval(sl.stop(), s), sl.step() == null ? null : eval(sl.step(), s));
            case Call c -> {
                Object fn = eval(c.fn(), s);
                List<Object> args = new ArrayList<>();
                Map<String, Object> kwargs = new LinkedHashMap<>();
                evalArgs(c.args(), s, args, kwargs);
                line = c.line();
                yield call(fn, args, kwargs);
            }
            case Filter f -> applyFilter(f.filter(), eval(f.input(), s), s);
            case Test t -> {
                Object v = eval(t.input(), s);
                List<Object> args = new ArrayList<>();
                Map<String, Object> kwargs = new LinkedHashMap<>();
                evalArgs(t.args(), s, args, kwargs);
                line = t.line();
                boolean r = TemplateBuiltins.test(this, t.name(), v, args);
                yield t.negated() != r;
            }
        };
    }

    private boolean compare(String op, Object l, Object r) {
        return switch (op) {
            case "==" -> Py.eq(l, r);
            case "!=" -> !Py.eq(l, r);
            case "in" -> Py.contains(r, l);
            case "not in" -> !Py.contains(r, l);
            default -> {
                if (l instanceof Undefined u) throw u.error();
                if (r instanceof Undefined u) throw u.error();
                int c = Py.compare(l, r);
                yield switch (op) {
                    case "<" -> c < 0;
                    case "<=" -> c <= 0;
                    case ">" -> c > 0;
                    default -> c >= 0;
                };
            }
        };
    }

    private void evalArgs(Args a, Scope s, List<Object> args, Map<String, Object> kwargs) {
        for (Expr x : a.positional()) args.add(eval(x, s));
        for (int i = 0; i < a.names().size(); i++) kwargs.put(a.names().get(i), eval(a.values().get(i), s));
    }

    Object call(Object fn, List<Object> args, Map<String, Object> kwargs) {
        step();
        if (fn instanceof Fn f) return f.call(this, args, kwargs);
        if (fn instanceof Undefined u) throw u.error();
        throw new TemplateError("'" + Py.typeName(fn) + "' object is not callable");
    }

    private Object applyFilter(FilterCall fc, Object input, Scope s) {
        List<Object> args = new ArrayList<>();
        Map<String, Object> kwargs = new LinkedHashMap<>();
        evalArgs(fc.args(), s, args, kwargs);
        step();
        line = fc.line();
        return TemplateBuiltins.filter(this, fc.name(), input, args, kwargs);
    }

    /** {@code obj.name}: an attribute (method, loop field, namespace field) first, then a dict item. */
    Object getattr(Object obj, String name) {
        if (obj instanceof Undefined u) throw u.error();
        if (name.startsWith("_"))
            return new Undefined("access to attribute '" + name + "' of '" + Py.typeName(obj) + "' object is unsafe");
        switch (obj) {
            case null -> { return new Undefined("'None' has no attribute '" + name + "'"); }
            case Namespace n -> {
                Object v = n.attrs.getOrDefault(name, MISSING);
                return v == MISSING ? new Undefined("'Namespace object' has no attribute '" + name + "'") : v;
            }
            case Loop l -> { return TemplateBuiltins.loopAttr(this, l, name); }
            case Map<?, ?> m -> {
                if (TemplateBuiltins.hasMethod(obj, name)) return TemplateBuiltins.method(obj, name);
                Object v = m.containsKey(name) ? m.get(name) : MISSING;
                return v == MISSING ? new Undefined("'dict object' has no attribute '" + name + "'") : v;
            }
            default -> {
                if (TemplateBuiltins.hasMethod(obj, name)) return TemplateBuiltins.method(obj, name);
                return new Undefined("'" + Py.typeName(obj) + " object' has no attribute '" + name + "'");
            }
        }
    }

    /** {@code obj[key]}: an item first, then an attribute when the key is a string. */
    Object getitem(Object obj, Object key) {
        if (obj instanceof Undefined u) throw u.error();
        if (key instanceof Undefined u) throw u.error();
        switch (obj) {
            case null -> { return new Undefined("'None' has no attribute " + Py.repr(key)); }
            case Map<?, ?> m -> {
                Object k = Py.normKey(key);
                if (m.containsKey(k)) return m.get(k);
            }
            case List<?> l -> {
                if (Py.isInt(key)) {
                    long i = Py.asLong(key);
                    if (i < 0) i += l.size();
                    if (i >= 0 && i < l.size()) return l.get((int) i);
                    return new Undefined("'" + Py.typeName(obj) + " object' has no element " + Py.asLong(key));
                }
            }
            case String str -> {
                if (Py.isInt(key)) {
                    int[] cps = str.codePoints().toArray();
                    long i = Py.asLong(key);
                    if (i < 0) i += cps.length;
                    if (i >= 0 && i < cps.length) return new String(cps, (int) i, 1);
                    return new Undefined("'str object' has no element " + Py.asLong(key));
                }
            }
            default -> { }
        }
        if (key instanceof String name) return getattr(obj, name);
        return new Undefined("'" + Py.typeName(obj) + " object' has no element " + Py.repr(key));
    }
}
