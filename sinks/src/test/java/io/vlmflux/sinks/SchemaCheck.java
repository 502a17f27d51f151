package io.vlmflux.sinks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Checks JSON against a record schema (docs/schemas/record-v*.schema.json): the subset of JSON Schema that file uses (oneOf, $ref to
 * #/$defs, type, const, enum, required, properties, additionalProperties false, items, minimum). Returns the
 * violations, each naming the JSON path.
 */
public final class SchemaCheck {
    public static final ObjectMapper JSON = new ObjectMapper();
    private final JsonNode root;

    public SchemaCheck(Path schema) throws IOException {
        this.root = JSON.readTree(schema.toFile());
    }

    /** The schema of the records this build makes ({@link Records#SCHEMA_FILE}). */
    public static SchemaCheck records() throws IOException {
        return new SchemaCheck(Path.of(System.getProperty("vlmflux.root", "..")).resolve(Records.SCHEMA_FILE));
    }

    public List<String> check(String json) throws IOException {
        List<String> errors = new ArrayList<>();
        check(JSON.readTree(json), root, "$", errors);
        return errors;
    }

    private void check(JsonNode v, JsonNode s, String at, List<String> errors) {
        if (s.has("$ref")) {
            String ref = s.get("$ref").asText();
            if (!ref.startsWith("#/$defs/")) throw new IllegalArgumentException("unsupported $ref " + ref);
            check(v, root.get("$defs").get(ref.substring("#/$defs/".length())), at, errors);
        }
        if (s.has("oneOf")) {
            int ok = 0;
            List<String> why = new ArrayList<>();
            for (JsonNode alt : s.get("oneOf")) {
                List<String> e = new ArrayList<>();
                check(v, alt, at, e);
                if (e.isEmpty()) ok++;
                else why.add(e.getFirst());
            }
            if (ok != 1) errors.add(at + ": matches " + ok + " of oneOf (" + why + ")");
        }
        if (s.has("const") && !s.get("const").equals(v)) errors.add(at + ": expected " + s.get("const") + ", got " + v);
        if (s.has("enum")) {
            boolean in = false;
            for (JsonNode e : s.get("enum")) in |= e.equals(v);
            if (!in) errors.add(at + ": " + v + " not in " + s.get("enum"));
        }
        if (s.has("type")) {
            String t = s.get("type").asText();
            boolean ok = switch (t) {
                case "object" -> v.isObject();
                case "array" -> v.isArray();
                case "string" -> v.isTextual();
                case "integer" -> v.isIntegralNumber();
                case "number" -> v.isNumber();
                case "boolean" -> v.isBoolean();
                default -> throw new IllegalArgumentException("unsupported type " + t);
            };
            if (!ok) {
                errors.add(at + ": expected " + t + ", got " + v);
                return;
            }
        }
        if (s.has("minimum") && v.isNumber() && v.asDouble() < s.get("minimum").asDouble())
            errors.add(at + ": " + v + " < minimum " + s.get("minimum"));
        if (v.isObject()) {
            if (s.has("required")) for (JsonNode r : s.get("required")) if (!v.has(r.asText())) errors.add(at + ": missing '" + r.asText() + "'");
            JsonNode props = s.get("properties");
            for (Iterator<String> it = v.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (props != null && props.has(f)) check(v.get(f), props.get(f), at + "." + f, errors);
                else if (s.has("additionalProperties") && !s.get("additionalProperties").asBoolean(true)) errors.add(at + ": undocumented field '" + f + "'");
            }
        }
        if (v.isArray() && s.has("items")) for (int i = 0; i < v.size(); i++) check(v.get(i), s.get("items"), at + "[" + i + "]", errors);
    }
}
