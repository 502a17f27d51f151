package io.vlmflux.llm.constrain;

import java.util.List;

/**
 * What the output has to look like, independent of any tokenizer: one of a fixed list of {@link Choice choices}, a
 * full match of a {@link Regex regular expression} (the {@link RegexParser} dialect), or an instance of a
 * {@link JsonSchema JSON Schema} (the {@link JsonSchemaCompiler} subset, canonical whitespace-free form), or a
 * sentence of a context-free {@link Grammar}. Records:
 * equal specs share a cached compilation ({@link Constraints#compile}).
 */
public sealed interface ConstraintSpec {
    record Choice(List<String> options) implements ConstraintSpec {
        public Choice {
            if (options == null || options.isEmpty()) throw new ConstraintException("a choice constraint needs at least one option");
            options = List.copyOf(options);
        }
    }

    record Regex(String pattern) implements ConstraintSpec {
        public Regex {
            if (pattern == null) throw new ConstraintException("regex is null");
        }
    }

    record JsonSchema(String schema) implements ConstraintSpec {
        public JsonSchema {
            if (schema == null) throw new ConstraintException("JSON schema is null");
        }
    }

    /**
     * A context-free grammar: {@code syntax} {@link Syntax#GBNF} (llama.cpp's GBNF, start rule {@code root}) or
     * {@link Syntax#LARK} (a Lark-like EBNF subset, start rule {@code start}); see {@link GrammarParser}.
     */
    record Grammar(String text, Syntax syntax) implements ConstraintSpec {
        public Grammar {
            if (text == null) throw new ConstraintException("grammar is null");
            if (syntax == null) syntax = Syntax.GBNF;
        }
    }

    enum Syntax {
        GBNF, LARK;

        /** By name, case-insensitive ({@code gbnf}, {@code lark}; {@code ebnf} is an alias of lark). */
        public static Syntax of(String name) {
            return switch (name.toLowerCase(java.util.Locale.ROOT)) {
                case "gbnf" -> GBNF;
                case "lark", "ebnf" -> LARK;
                default -> throw new ConstraintException("unknown grammar syntax '" + name + "' (gbnf, lark or ebnf)");
            };
        }
    }

    static ConstraintSpec choice(String... options) { return new Choice(List.of(options)); }

    static ConstraintSpec regex(String pattern) { return new Regex(pattern); }

    static ConstraintSpec jsonSchema(String schema) { return new JsonSchema(schema); }

    static ConstraintSpec grammar(String text) { return new Grammar(text, Syntax.GBNF); }

    static ConstraintSpec grammar(String text, Syntax syntax) { return new Grammar(text, syntax); }

    /**
     * A spec from a JSON object, for configuration files and servers: exactly one of
     * <pre>
     * {"json_schema": {...schema...}}          (or the schema as a JSON string)
     * {"regex": "[0-9]+"}
     * {"choice": ["yes", "no"]}
     * {"grammar": "root ::= ...", "syntax": "gbnf"}    (syntax optional: gbnf (default), lark or ebnf)
     * </pre>
     * Nothing else is accepted; errors name the field and the reason. Compilation errors (bad schema, regex, grammar)
     * surface later, from {@link Constraints#compile}, or at once through {@link #check}.
     *
     * @throws ConstraintException for anything else
     */
    static ConstraintSpec fromJson(com.fasterxml.jackson.databind.JsonNode node) {
        if (node == null || !node.isObject())
            throw new ConstraintException("a constraint must be a JSON object with one of json_schema, regex, choice, grammar; found "
                    + (node == null ? "nothing" : node.getNodeType().toString().toLowerCase(java.util.Locale.ROOT)));
        java.util.List<String> kinds = new java.util.ArrayList<>();
        for (var it = node.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            switch (f) {
                case "json_schema", "regex", "choice", "grammar" -> kinds.add(f);
                case "syntax" -> { }
                default -> throw new ConstraintException("constraint: unknown field '" + f + "' (expected one of json_schema, regex, choice, grammar; syntax with grammar)");
            }
        }
        if (kinds.size() != 1)
            throw new ConstraintException("constraint: exactly one of json_schema, regex, choice, grammar is needed, found "
                    + (kinds.isEmpty() ? "none" : String.join(", ", kinds)));
        String kind = kinds.get(0);
        if (node.has("syntax") && !kind.equals("grammar")) throw new ConstraintException("constraint: 'syntax' only goes with 'grammar'");
        var v = node.get(kind);
        return switch (kind) {
            case "json_schema" -> {
                if (v.isObject() || v.isBoolean()) yield new JsonSchema(v.toString());
                if (v.isTextual()) yield new JsonSchema(v.asText());
                throw new ConstraintException("constraint: json_schema must be a schema object (or its JSON text), found " + v.getNodeType().toString().toLowerCase(java.util.Locale.ROOT));
            }
            case "regex" -> {
                if (!v.isTextual()) throw new ConstraintException("constraint: regex must be a string, found " + v);
                yield new Regex(v.asText());
            }
            case "choice" -> {
                if (!v.isArray() || v.isEmpty()) throw new ConstraintException("constraint: choice must be a non-empty array of strings, found " + v);
                java.util.List<String> opts = new java.util.ArrayList<>();
                for (int i = 0; i < v.size(); i++) {
                    if (!v.get(i).isTextual()) throw new ConstraintException("constraint: choice[" + i + "] must be a string, found " + v.get(i));
                    opts.add(v.get(i).asText());
                }
                yield new Choice(opts);
            }
            default -> {
                if (!v.isTextual()) throw new ConstraintException("constraint: grammar must be a string (the grammar text), found " + v.getNodeType().toString().toLowerCase(java.util.Locale.ROOT));
                var syn = node.get("syntax");
                if (syn != null && !syn.isTextual()) throw new ConstraintException("constraint: syntax must be a string (gbnf, lark or ebnf), found " + syn);
                yield new Grammar(v.asText(), syn == null ? Syntax.GBNF : Syntax.of(syn.asText()));
            }
        };
    }

    /** Compiles the tokenizer-independent part now (syntax, keywords, size), so errors surface early. */
    default ConstraintSpec check() {
        Constraints.language(this);
        return this;
    }

    /** Whether {@code text} (as UTF-8) is in this spec's language; for tests and checking given outputs (compiles each call). */
    default boolean matches(String text) {
        return Constraints.language(this).matches(text.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
}
