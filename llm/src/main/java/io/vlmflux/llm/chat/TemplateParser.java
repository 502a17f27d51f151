package io.vlmflux.llm.chat;

import io.vlmflux.llm.chat.TemplateAst.*;
import io.vlmflux.llm.chat.TemplateLexer.Kind;
import io.vlmflux.llm.chat.TemplateLexer.Token;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Parses chat-template tokens into a {@link TemplateAst} with Jinja2's grammar and operator precedence. Tags that
 * would reach outside the template ({@code include}, {@code import}, {@code from}, {@code extends}, {@code block})
 * are syntax errors. Nesting depth is bounded so a hostile template cannot overflow the stack while parsing.
 */
final class TemplateParser {
    static final int MAX_NESTING = 64;

    private final List<Token> tokens;
    private final String source;
    private int p;
    private int depth;

    private TemplateParser(List<Token> tokens, String source) {
        this.tokens = tokens;
        this.source = source;
    }

    static List<Node> parse(String template, String source) {
        TemplateParser parser = new TemplateParser(TemplateLexer.tokenize(template, source), source);
        List<Node> body = parser.body();
        if (parser.peek().kind() != Kind.EOF) throw parser.error("unexpected '" + parser.peek().text() + "'");
        return body;
    }

    // ---- token helpers ------------------------------------------------------------------------------------------

    private Token peek() { return tokens.get(p); }
    private Token peek(int k) { return tokens.get(Math.min(p + k, tokens.size() - 1)); }
    private Token next() { Token t = tokens.get(p); if (t.kind() != Kind.EOF) p++; return t; }

    private IllegalArgumentException error(String msg) {
        return new IllegalArgumentException("chat template of " + source + ": syntax error at line " + peek().line() + ": " + msg);
    }

    private static String describe(Token t) {
        return switch (t.kind()) {
            case EOF -> "end of template";
            case BLOCK_END -> "'%}'";
            case VAR_END -> "'}}'";
            case DATA -> "template text";
            default -> "'" + t.text() + "'";
        };
    }

    private void expectOp(String op) {
        if (!peek().isOp(op)) throw error("expected '" + op + "', found " + describe(peek()));
        next();
    }

    private String expectName() {
        if (peek().kind() != Kind.NAME) throw error("expected a name, found " + describe(peek()));
        return next().text();
    }

    private void expectName(String name) {
        if (!peek().isName(name)) throw error("expected '" + name + "', found " + describe(peek()));
        next();
    }

    private void blockEnd() {
        if (peek().kind() != Kind.BLOCK_END) throw error("expected '%}', found " + describe(peek()));
        next();
    }

    private void enter() {
        if (++depth > MAX_NESTING) throw error("nesting deeper than " + MAX_NESTING + " levels");
    }

    // ---- statements ---------------------------------------------------------------------------------------------

    /** Statements up to (not including) a block tag named in {@code ends}; on return the current token is that name. */
    private List<Node> body(String... ends) {
        enter();
        List<Node> out = new ArrayList<>();
        while (true) {
            Token t = peek();
            switch (t.kind()) {
                case DATA -> { next(); out.add(new Text(t.text(), t.line())); }
                case VAR_BEGIN -> {
                    next();
                    Expr e = tuple(true);
                    if (peek().kind() != Kind.VAR_END) throw error("expected '}}', found " + describe(peek()));
                    next();
                    out.add(new Output(e, t.line()));
                }
                case BLOCK_BEGIN -> {
                    Token name = peek(1);
                    if (name.kind() == Kind.NAME && Arrays.asList(ends).contains(name.text())) {
                        next();
                        depth--;
                        return out;
                    }
                    next();
                    out.add(statement());
                }
                case EOF -> {
                    if (ends.length > 0) throw error("missing {% " + String.join(" %} or {% ", ends) + " %} before the end of the template");
                    depth--;
                    return out;
                }
                default -> throw error("unexpected " + describe(t));
            }
        }
    }

    private Node statement() {
        Token t = peek();
        if (t.kind() != Kind.NAME) throw error("expected a tag name after '{%', found " + describe(t));
        int line = t.line();
        String tag = next().text();
        return switch (tag) {
            case "if" -> ifStatement(line);
            case "for" -> forStatement(line);
            case "set" -> setStatement(line);
            case "macro" -> macro(line);
            case "call" -> callBlock(line);
            case "filter" -> {
                List<FilterCall> filters = filterChain();
                blockEnd();
                List<Node> body = body("endfilter");
                next();
                blockEnd();
                yield new FilterBlock(filters, body, line);
            }
            case "with" -> withStatement(line);
            case "generation" -> { // transformers' extension: marks the assistant's part; renders the body as is
                blockEnd();
                List<Node> body = body("endgeneration");
                next();
                blockEnd();
                yield new With(List.of(), List.of(), body, line);
            }
            case "break" -> { blockEnd(); yield new Break(line); }
            case "continue" -> { blockEnd(); yield new Continue(line); }
            case "include", "import", "from", "extends", "block" -> throw error("'{% " + tag
                    + " %}' is not supported: a chat template cannot load or define other templates");
            default -> throw error("unknown tag '" + tag + "'");
        };
    }

    private Node ifStatement(int line) {
        List<Expr> tests = new ArrayList<>();
        List<List<Node>> bodies = new ArrayList<>();
        tests.add(tuple(false));
        blockEnd();
        while (true) {
            bodies.add(body("elif", "else", "endif"));
            String end = next().text();
            if (end.equals("elif")) {
                tests.add(tuple(false));
                blockEnd();
            } else if (end.equals("else")) {
                blockEnd();
                List<Node> orElse = body("endif");
                next();
                blockEnd();
                return new If(tests, bodies, orElse, line);
            } else {
                blockEnd();
                return new If(tests, bodies, List.of(), line);
            }
        }
    }

    private Node forStatement(int line) {
        Target target = assignTarget(false);
        expectName("in");
        Expr iter = tuple(false);
        Expr filter = null;
        if (peek().isName("if")) { next(); filter = expression(); }
        if (peek().isName("recursive")) throw error("recursive loops are not supported");
        blockEnd();
        List<Node> body = body("endfor", "else");
        List<Node> orElse = List.of();
        if (next().text().equals("else")) {
            blockEnd();
            orElse = body("endfor");
            next();
        }
        blockEnd();
        return new For(target, iter, filter, body, orElse, line);
    }

    private Node setStatement(int line) {
        Target target = assignTarget(true);
        if (peek().isOp("=")) {
            next();
            Expr value = tuple(true);
            blockEnd();
            return new Set(target, value, line);
        }
        List<FilterCall> filters = peek().isOp("|") ? filterChain() : List.of();
        blockEnd();
        List<Node> body = body("endset");
        next();
        blockEnd();
        return new SetBlock(target, body, filters, line);
    }

    private Node macro(int line) {
        String name = expectName();
        List<String> params = new ArrayList<>();
        List<Expr> defaults = new ArrayList<>();
        signature(params, defaults);
        blockEnd();
        List<Node> body = body("endmacro");
        next();
        if (peek().kind() == Kind.NAME) next(); // {% endmacro name %}
        blockEnd();
        return new Macro(name, List.copyOf(params), java.util.Collections.unmodifiableList(defaults), body, line);
    }

    private void signature(List<String> params, List<Expr> defaults) {
        expectOp("(");
        while (!peek().isOp(")")) {
            if (!params.isEmpty()) expectOp(",");
            if (peek().isOp(")")) break;
            params.add(expectName());
            if (peek().isOp("=")) { next(); defaults.add(expression()); }
            else if (!defaults.isEmpty()) throw error("parameter without a default after one with a default");
            else defaults.add(null);
        }
        next();
    }

    private Node callBlock(int line) {
        List<String> params = new ArrayList<>();
        List<Expr> defaults = new ArrayList<>();
        if (peek().isOp("(")) signature(params, defaults);
        Expr e = expression();
        if (!(e instanceof Call call)) throw error("{% call %} needs a macro call");
        blockEnd();
        List<Node> body = body("endcall");
        next();
        blockEnd();
        return new CallBlock(call, List.copyOf(params), java.util.Collections.unmodifiableList(defaults), body, line);
    }

    private Node withStatement(int line) {
        List<Target> targets = new ArrayList<>();
        List<Expr> values = new ArrayList<>();
        while (peek().kind() != Kind.BLOCK_END) {
            if (!targets.isEmpty()) expectOp(",");
            targets.add(assignTarget(false));
            expectOp("=");
            values.add(expression());
        }
        blockEnd();
        List<Node> body = body("endwith");
        next();
        blockEnd();
        return new With(targets, values, body, line);
    }

    private Target assignTarget(boolean allowAttr) {
        List<Target> items = new ArrayList<>();
        boolean comma = false;
        while (true) {
            Target t;
            if (peek().isOp("(")) {
                next();
                t = assignTarget(false);
                expectOp(")");
            } else {
                String name = expectName();
                if (allowAttr && peek().isOp(".")) {
                    next();
                    t = new AttrTarget(name, expectName());
                } else {
                    t = new NameTarget(name);
                }
            }
            items.add(t);
            if (!peek().isOp(",")) break;
            next();
            comma = true;
            if (peek().kind() != Kind.NAME && !peek().isOp("(")) break;
            if (peek().isName("in")) break;
        }
        return comma ? new TupleTarget(List.copyOf(items)) : items.get(0);
    }

    // ---- expressions --------------------------------------------------------------------------------------------

    private boolean tupleEnds() {
        Token t = peek();
        return t.kind() == Kind.VAR_END || t.kind() == Kind.BLOCK_END || t.kind() == Kind.EOF || t.isOp(")");
    }

    /** Comma-separated expressions: one expression, or a tuple when a comma appears. */
    private Expr tuple(boolean withCondexpr) {
        int line = peek().line();
        List<Expr> items = new ArrayList<>();
        boolean comma = false;
        while (true) {
            if (!items.isEmpty()) {
                if (!peek().isOp(",")) break;
                next();
                comma = true;
            }
            if (tupleEnds()) break;
            items.add(withCondexpr ? expression() : or());
        }
        if (!comma) {
            if (items.isEmpty()) throw error("expected an expression, found " + describe(peek()));
            return items.get(0);
        }
        return new TupleLit(List.copyOf(items), line);
    }

    Expr expression() {
        Expr e = or();
        while (peek().isName("if")) {
            int line = next().line();
            Expr test = or();
            Expr orElse = null;
            if (peek().isName("else")) { next(); orElse = expression(); }
            e = new Cond(test, e, orElse, line);
        }
        return e;
    }

    private Expr or() {
        Expr e = and();
        while (peek().isName("or")) { int line = next().line(); e = new Or(e, and(), line); }
        return e;
    }

    private Expr and() {
        Expr e = not();
        while (peek().isName("and")) { int line = next().line(); e = new And(e, not(), line); }
        return e;
    }

    private Expr not() {
        if (peek().isName("not")) {
            int line = next().line();
            enter();
            Expr e = new Not(not(), line);
            depth--;
            return e;
        }
        return compare();
    }

    private Expr compare() {
        int line = peek().line();
        Expr first = math1();
        List<String> ops = new ArrayList<>();
        List<Expr> rest = new ArrayList<>();
        while (true) {
            Token t = peek();
            String op;
            if (t.kind() == Kind.OP && List.of("==", "!=", "<", "<=", ">", ">=").contains(t.text())) { next(); op = t.text(); }
            else if (t.isName("in")) { next(); op = "in"; }
            else if (t.isName("not") && peek(1).isName("in")) { next(); next(); op = "not in"; }
            else break;
            ops.add(op);
            rest.add(math1());
        }
        return ops.isEmpty() ? first : new Compare(first, List.copyOf(ops), List.copyOf(rest), line);
    }

    private Expr math1() {
        Expr e = concat();
        while (peek().isOp("+") || peek().isOp("-")) { Token t = next(); e = new Binary(t.text(), e, concat(), t.line()); }
        return e;
    }

    private Expr concat() {
        int line = peek().line();
        List<Expr> parts = new ArrayList<>();
        parts.add(math2());
        while (peek().isOp("~")) { next(); parts.add(math2()); }
        return parts.size() == 1 ? parts.get(0) : new Concat(List.copyOf(parts), line);
    }

    private Expr math2() {
        Expr e = pow();
        while (peek().isOp("*") || peek().isOp("/") || peek().isOp("//") || peek().isOp("%")) {
            Token t = next();
            e = new Binary(t.text(), e, pow(), t.line());
        }
        return e;
    }

    private Expr pow() {
        Expr e = unary(true);
        while (peek().isOp("**")) { Token t = next(); e = new Binary("**", e, unary(true), t.line()); }
        return e;
    }

    private Expr unary(boolean withFilter) {
        enter();
        Token t = peek();
        Expr e;
        if (t.isOp("-") || t.isOp("+")) {
            next();
            e = new Unary(t.text(), unary(false), t.line());
        } else {
            e = primary();
        }
        e = postfix(e);
        if (withFilter) e = filterExpr(e);
        depth--;
        return e;
    }

    private Expr primary() {
        Token t = peek();
        int line = t.line();
        switch (t.kind()) {
            case NAME -> {
                next();
                return switch (t.text()) {
                    case "true", "True" -> new Const(Boolean.TRUE, line);
                    case "false", "False" -> new Const(Boolean.FALSE, line);
                    case "none", "None" -> new Const(null, line);
                    default -> new Var(t.text(), line);
                };
            }
            case STRING -> {
                StringBuilder sb = new StringBuilder();
                while (peek().kind() == Kind.STRING) sb.append(next().text());
                return new Const(sb.toString(), line);
            }
            case INT, FLOAT -> { next(); return new Const(t.value(), line); }
            case OP -> {
                switch (t.text()) {
                    case "(" -> {
                        next();
                        if (peek().isOp(")")) { next(); return new TupleLit(List.of(), line); }
                        Expr e = tuple(true);
                        expectOp(")");
                        return e;
                    }
                    case "[" -> {
                        next();
                        List<Expr> items = new ArrayList<>();
                        while (!peek().isOp("]")) {
                            if (!items.isEmpty()) expectOp(",");
                            if (peek().isOp("]")) break;
                            items.add(expression());
                        }
                        next();
                        return new ListLit(List.copyOf(items), line);
                    }
                    case "{" -> {
                        next();
                        List<Expr> keys = new ArrayList<>();
                        List<Expr> values = new ArrayList<>();
                        while (!peek().isOp("}")) {
                            if (!keys.isEmpty()) expectOp(",");
                            if (peek().isOp("}")) break;
                            keys.add(expression());
                            expectOp(":");
                            values.add(expression());
                        }
                        next();
                        return new DictLit(List.copyOf(keys), List.copyOf(values), line);
                    }
                    default -> { }
                }
            }
            default -> { }
        }
        throw error("unexpected " + describe(t));
    }

    private Expr postfix(Expr e) {
        while (true) {
            Token t = peek();
            if (t.isOp(".")) {
                next();
                Token a = next();
                if (a.kind() == Kind.NAME) e = new GetAttr(e, a.text(), a.line());
                else if (a.kind() == Kind.INT) e = new GetItem(e, new Const(a.value(), a.line()), a.line());
                else throw error("expected an attribute name after '.', found " + describe(a));
            } else if (t.isOp("[")) {
                next();
                e = subscript(e, t.line());
            } else if (t.isOp("(")) {
                e = new Call(e, args(), t.line());
            } else {
                return e;
            }
        }
    }

    private Expr subscript(Expr obj, int line) {
        Expr start = null, stop = null, step = null;
        boolean slice = false;
        if (!peek().isOp(":")) start = expression();
        if (peek().isOp(":")) {
            slice = true;
            next();
            if (!peek().isOp("]") && !peek().isOp(":")) stop = expression();
            if (peek().isOp(":")) {
                next();
                if (!peek().isOp("]")) step = expression();
            }
        } else if (peek().isOp(",")) { // d[a, b] indexes with a tuple
            List<Expr> items = new ArrayList<>(List.of(start));
            while (peek().isOp(",")) { next(); if (peek().isOp("]")) break; items.add(expression()); }
            start = new TupleLit(List.copyOf(items), line);
        }
        expectOp("]");
        return slice ? new Slice(obj, start, stop, step, line) : new GetItem(obj, start, line);
    }

    private Expr filterExpr(Expr e) {
        while (true) {
            Token t = peek();
            if (t.isOp("|")) {
                next();
                e = new Filter(e, filterCall(), t.line());
            } else if (t.isName("is")) {
                next();
                boolean negated = false;
                if (peek().isName("not")) { next(); negated = true; }
                String name = dottedName();
                Args args = Args.NONE;
                Token a = peek();
                if (a.isOp("(")) {
                    args = args();
                } else if ((a.kind() == Kind.NAME || a.kind() == Kind.STRING || a.kind() == Kind.INT || a.kind() == Kind.FLOAT
                        || a.isOp("[") || a.isOp("{")) && !a.isName("else") && !a.isName("or") && !a.isName("and")) {
                    if (a.isName("is")) throw error("tests cannot be chained with 'is'");
                    args = new Args(List.of(postfix(primary())), List.of(), List.of());
                }
                e = new Test(e, name, args, negated, t.line());
            } else if (t.isOp("(")) {
                e = new Call(e, args(), t.line());
            } else {
                return e;
            }
        }
    }

    private List<FilterCall> filterChain() {
        List<FilterCall> out = new ArrayList<>();
        do {
            if (peek().isOp("|")) next();
            out.add(filterCall());
        } while (peek().isOp("|"));
        return List.copyOf(out);
    }

    private FilterCall filterCall() {
        int line = peek().line();
        String name = dottedName();
        Args args = peek().isOp("(") ? args() : Args.NONE;
        return new FilterCall(name, args, line);
    }

    private String dottedName() {
        StringBuilder sb = new StringBuilder(expectName());
        while (peek().isOp(".") && peek(1).kind() == Kind.NAME) { next(); sb.append('.').append(next().text()); }
        return sb.toString();
    }

    private Args args() {
        expectOp("(");
        List<Expr> positional = new ArrayList<>();
        List<String> names = new ArrayList<>();
        List<Expr> values = new ArrayList<>();
        boolean first = true;
        while (!peek().isOp(")")) {
            if (!first) expectOp(",");
            first = false;
            if (peek().isOp(")")) break;
            if (peek().isOp("*") || peek().isOp("**")) throw error("*args and **kwargs in calls are not supported");
            if (peek().kind() == Kind.NAME && peek(1).isOp("=")) {
                names.add(next().text());
                next();
                values.add(expression());
            } else {
                if (!names.isEmpty()) throw error("positional argument after a keyword argument");
                positional.add(expression());
            }
        }
        next();
        return new Args(List.copyOf(positional), List.copyOf(names), List.copyOf(values));
    }
}
