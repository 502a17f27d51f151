package io.vlmflux.llm.constrain;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Pattern;

/**
 * Test helper: a seeded generator of random schemas in the supported subset (finite languages, so greedy decoding of a
 * random model always terminates), and an independent validator with JSON Schema semantics (not the canonical form).
 */
final class Schemas {
    static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] NAMES = {"id", "name", "tags", "ok", "q\"uote", "x/y", "é", "count", "v"};

    private Schemas() {}

    static ObjectNode random(SplittableRandom r, int depth) {
        ObjectNode s = JSON.createObjectNode();
        int k = depth >= 3 ? r.nextInt(5) : r.nextInt(10);
        switch (k) {
            case 0 -> {
                s.put("type", "string");
                int max = r.nextInt(7);
                s.put("maxLength", max);
                if (r.nextBoolean()) s.put("minLength", r.nextInt(max + 1));
            }
            case 1 -> {
                s.put("type", "integer");
                int lo = r.nextInt(-2000, 2000), hi = lo + r.nextInt(0, 3000);
                s.put("minimum", lo);
                s.put("maximum", hi);
            }
            case 2 -> s.put("type", r.nextBoolean() ? "boolean" : "null");
            case 3 -> {
                ArrayNode e = s.putArray("enum");
                e.add("red");
                e.add(r.nextInt(100));
                if (r.nextBoolean()) e.addNull();
                if (r.nextBoolean()) e.addObject().put("k", "v");
                if (r.nextBoolean()) e.add("grün \"quoted\"");
            }
            case 4 -> {
                if (r.nextBoolean()) { s.put("type", "string"); s.put("pattern", "^[a-z]{1,4}(-[0-9]{2})?$"); }
                else s.set("const", JSON.createArrayNode().add(1).add("two"));
            }
            case 5, 6 -> {
                s.put("type", "array");
                s.set("items", random(r, depth + 1));
                int max = r.nextInt(4);
                s.put("maxItems", max);
                if (r.nextBoolean()) s.put("minItems", r.nextInt(max + 1));
            }
            case 7, 8 -> {
                s.put("type", "object");
                ObjectNode props = s.putObject("properties");
                ArrayNode req = JSON.createArrayNode();
                int n = 1 + r.nextInt(3);
                for (int i = 0; i < n; i++) {
                    String name = NAMES[r.nextInt(NAMES.length)];
                    if (props.has(name)) continue;
                    props.set(name, random(r, depth + 1));
                    if (r.nextBoolean()) req.add(name);
                }
                if (!req.isEmpty()) s.set("required", req);
                if (r.nextBoolean()) s.put("additionalProperties", false);
            }
            default -> {
                ArrayNode any = s.putArray("anyOf");
                any.add(random(r, depth + 1));
                any.add(random(r, depth + 1));
            }
        }
        return s;
    }

    /** Null when {@code v} is valid for {@code s}, else why not. */
    static String validate(JsonNode s, JsonNode v, String path) {
        if (s.has("const") && !s.get("const").equals(v)) return path + ": not the const";
        if (s.has("enum")) {
            boolean any = false;
            for (JsonNode e : s.get("enum")) any |= e.equals(v);
            if (!any) return path + ": not in enum";
        }
        if (s.has("anyOf")) {
            for (JsonNode o : s.get("anyOf")) if (validate(o, v, path) == null) return null;
            return path + ": matches no anyOf option";
        }
        if (s.has("type")) {
            List<String> types = new ArrayList<>();
            if (s.get("type").isArray()) s.get("type").forEach(t -> types.add(t.asText())); else types.add(s.get("type").asText());
            boolean ok = false;
            for (String t : types) ok |= switch (t) {
                case "null" -> v.isNull();
                case "boolean" -> v.isBoolean();
                case "integer" -> v.isIntegralNumber();
                case "number" -> v.isNumber();
                case "string" -> v.isTextual();
                case "array" -> v.isArray();
                case "object" -> v.isObject();
                default -> false;
            };
            if (!ok) return path + ": type is not " + types + ": " + v;
        }
        if (v.isTextual()) {
            long len = v.asText().codePoints().count();
            if (s.has("minLength") && len < s.get("minLength").asInt()) return path + ": shorter than minLength";
            if (s.has("maxLength") && len > s.get("maxLength").asInt()) return path + ": longer than maxLength";
            if (s.has("pattern") && !Pattern.compile(s.get("pattern").asText()).matcher(v.asText()).find()) return path + ": pattern";
        }
        if (v.isNumber()) {
            if (s.has("minimum") && v.asDouble() < s.get("minimum").asDouble()) return path + ": below minimum";
            if (s.has("maximum") && v.asDouble() > s.get("maximum").asDouble()) return path + ": above maximum";
        }
        if (v.isArray()) {
            if (s.has("minItems") && v.size() < s.get("minItems").asInt()) return path + ": too few items";
            if (s.has("maxItems") && v.size() > s.get("maxItems").asInt()) return path + ": too many items";
            if (s.has("items")) for (int i = 0; i < v.size(); i++) {
                String e = validate(s.get("items"), v.get(i), path + "/" + i);
                if (e != null) return e;
            }
        }
        if (v.isObject()) {
            JsonNode props = s.has("properties") ? s.get("properties") : JSON.createObjectNode();
            if (s.has("required")) for (JsonNode q : s.get("required")) if (!v.has(q.asText())) return path + ": missing " + q.asText();
            for (Iterator<String> it = v.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (props.has(f)) {
                    String e = validate(props.get(f), v.get(f), path + "/" + f);
                    if (e != null) return e;
                } else if (s.has("additionalProperties") && !s.get("additionalProperties").asBoolean()) return path + ": additional " + f;
            }
        }
        return null;
    }
}
