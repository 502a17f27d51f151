package io.vlmflux.llm.constrain;

import java.util.List;

/**
 * What the output has to look like, independent of any tokenizer: one of a fixed list of {@link Choice choices}, a
 * full match of a {@link Regex regular expression} (the {@link RegexParser} dialect), or an instance of a
 * {@link JsonSchema JSON Schema} (the {@link JsonSchemaCompiler} subset, canonical whitespace-free form). Records:
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

    static ConstraintSpec choice(String... options) { return new Choice(List.of(options)); }

    static ConstraintSpec regex(String pattern) { return new Regex(pattern); }

    static ConstraintSpec jsonSchema(String schema) { return new JsonSchema(schema); }

    /** Whether {@code text} (as UTF-8) is in this spec's language; for tests and checking given outputs (compiles each call). */
    default boolean matches(String text) {
        return Constraints.automaton(this).matches(text.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
}
