package io.vlmflux.demos.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.constrain.ConstraintSpec;

/**
 * OpenAI's {@code response_format} as a decoding constraint. {@code {"type": "text"}} (or none) constrains nothing;
 * {@code {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}} constrains the answer to instances of the
 * schema (always enforced, {@code strict} or not, in the runtime's JSON Schema subset and canonical whitespace-free
 * form); {@code {"type": "json_object"}} constrains it to a JSON object, nested at most {@link #JSON_OBJECT_DEPTH}
 * levels, without whitespace. Errors name the field.
 */
final class ResponseFormats {
    /** Nesting depth of {@code json_object} answers: an object whose values may hold objects and arrays of scalars. */
    static final int JSON_OBJECT_DEPTH = 3;
    /** Largest schema text accepted (the compiled automaton grows with it). */
    static final int MAX_SCHEMA_CHARS = 64 * 1024;
    private static final ObjectMapper JSON = new ObjectMapper();

    private static final String STRING = "\"(?:[^\"\\\\\\x00-\\x1F]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4})*\"";
    private static final String NUMBER = "-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?";
    private static final String SCALAR = STRING + "|" + NUMBER + "|true|false|null";

    /** The spec every {@code json_object} request shares (equal specs share one compilation). */
    static final ConstraintSpec JSON_OBJECT = ConstraintSpec.regex(object(value(JSON_OBJECT_DEPTH - 1)));

    private ResponseFormats() {}

    /** The constraint for a request's {@code response_format} node, or null for plain text. */
    static ConstraintSpec parse(JsonNode rf) {
        if (rf == null || rf.isNull()) return null;
        if (!rf.isObject()) throw ApiException.invalid("response_format", "'response_format' must be an object, got " + ChatRequest.shape(rf));
        JsonNode t = rf.get("type");
        String type = t != null && t.isTextual() ? t.asText() : "";
        return switch (type) {
            case "text" -> null;
            case "json_object" -> JSON_OBJECT;
            case "json_schema" -> {
                JsonNode js = rf.get("json_schema");
                if (js == null || !js.isObject())
                    throw ApiException.invalid("response_format.json_schema", "'response_format.json_schema' must be an object with a 'schema'");
                JsonNode name = js.get("name");
                if (name != null && !name.isNull() && !(name.isTextual() && name.asText().matches("[A-Za-z0-9_-]{1,64}")))
                    throw ApiException.invalid("response_format.json_schema.name", "'response_format.json_schema.name' must be 1 to 64 of a-z, A-Z, 0-9, _ and -");
                JsonNode strict = js.get("strict");
                if (strict != null && !strict.isNull() && !strict.isBoolean())
                    throw ApiException.invalid("response_format.json_schema.strict", "'response_format.json_schema.strict' must be true or false");
                JsonNode schema = js.get("schema");
                if (schema == null || !schema.isObject())
                    throw ApiException.invalid("response_format.json_schema.schema", "'response_format.json_schema.schema' must be a JSON Schema object");
                String text;
                try {
                    text = JSON.writeValueAsString(schema);
                } catch (JsonProcessingException e) {
                    throw new IllegalStateException(e);
                }
                if (text.length() > MAX_SCHEMA_CHARS)
                    throw ApiException.invalid("response_format.json_schema.schema", "the schema is " + text.length() + " characters; at most " + MAX_SCHEMA_CHARS + " are accepted");
                yield ConstraintSpec.jsonSchema(text);
            }
            default -> throw ApiException.invalid("response_format.type", "'response_format.type' must be 'text', 'json_object' or 'json_schema', got "
                    + (t == null ? "none" : ChatRequest.shape(t)));
        };
    }

    /** A JSON value nested at most {@code depth} more levels (0: a scalar). */
    static String value(int depth) {
        if (depth == 0) return "(?:" + SCALAR + ")";
        String inner = value(depth - 1);
        return "(?:" + SCALAR + "|" + object(inner) + "|" + array(inner) + ")";
    }

    private static String object(String value) {
        String member = STRING + ":" + value;
        return "\\{(?:" + member + "(?:," + member + ")*)?\\}";
    }

    private static String array(String value) { return "\\[(?:" + value + "(?:," + value + ")*)?\\]"; }
}
