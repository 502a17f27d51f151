package io.vlmflux.llm.chat;

import java.util.List;

/**
 * The syntax tree of a chat template: statements ({@link Node}) and expressions ({@link Expr}), each with its source
 * line. Only the constructs the interpreter knows exist; there is no node that loads, includes or imports anything.
 */
final class TemplateAst {
    private TemplateAst() {}

    sealed interface Node permits Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue {
        int line();
    }

    record Text(String text, int line) implements Node {}
    record Output(Expr expr, int line) implements Node {}
    record If(List<Expr> tests, List<List<Node>> bodies, List<Node> orElse, int line) implements Node {}
    record For(Target target, Expr iter, Expr filter, List<Node> body, List<Node> orElse, int line) implements Node {}
    record Set(Target target, Expr value, int line) implements Node {}
    record SetBlock(Target target, List<Node> body, List<FilterCall> filters, int line) implements Node {}
    record Macro(String name, List<String> params, List<Expr> defaults, List<Node> body, int line) implements Node {}
    record CallBlock(Call call, List<String> params, List<Expr> defaults, List<Node> body, int line) implements Node {}
    record FilterBlock(List<FilterCall> filters, List<Node> body, int line) implements Node {}
    record With(List<Target> targets, List<Expr> values, List<Node> body, int line) implements Node {}
    record Break(int line) implements Node {}
    record Continue(int line) implements Node {}

    /** Left side of an assignment: a name, a tuple of targets, or {@code ns.attr}. */
    sealed interface Target permits NameTarget, TupleTarget, AttrTarget {}
    record NameTarget(String name) implements Target {}
    record TupleTarget(List<Target> items) implements Target {}
    record AttrTarget(String name, String attr) implements Target {}

    sealed interface Expr permits Const, Var, TupleLit, ListLit, DictLit, Unary, Binary, Concat, Compare, And, Or, Not,
            Cond, GetAttr, GetItem, Slice, Call, Filter, Test {
        int line();
    }

    record Const(Object value, int line) implements Expr {}
    record Var(String name, int line) implements Expr {}
    record TupleLit(List<Expr> items, int line) implements Expr {}
    record ListLit(List<Expr> items, int line) implements Expr {}
    record DictLit(List<Expr> keys, List<Expr> values, int line) implements Expr {}
    record Unary(String op, Expr operand, int line) implements Expr {}
    record Binary(String op, Expr left, Expr right, int line) implements Expr {}
    record Concat(List<Expr> parts, int line) implements Expr {}
    record Compare(Expr first, List<String> ops, List<Expr> rest, int line) implements Expr {}
    record And(Expr left, Expr right, int line) implements Expr {}
    record Or(Expr left, Expr right, int line) implements Expr {}
    record Not(Expr operand, int line) implements Expr {}
    record Cond(Expr test, Expr then, Expr orElse, int line) implements Expr {}
    record GetAttr(Expr obj, String attr, int line) implements Expr {}
    record GetItem(Expr obj, Expr key, int line) implements Expr {}
    record Slice(Expr obj, Expr start, Expr stop, Expr step, int line) implements Expr {}
    record Call(Expr fn, Args args, int line) implements Expr {}
    record Filter(Expr input, FilterCall filter, int line) implements Expr {}
    record Test(Expr input, String name, Args args, boolean negated, int line) implements Expr {}

    record Args(List<Expr> positional, List<String> names, List<Expr> values) {
        static final Args NONE = new Args(List.of(), List.of(), List.of());
    }

    record FilterCall(String name, Args args, int line) {}
}
