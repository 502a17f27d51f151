package io.vlmflux.vision.fuzz;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Seeded structural mutations of a JSON tree for the model-file fuzz tests: walks from the root to a random node
 * (stopping early a third of the time, so top-level fields are hit often even in a 150k-entry vocab) and replaces it
 * with a hostile value (0, -1, 2^31-1, 2^63-1, 2^70, 1e9, 4e7, 0.5, strings, booleans, null, empty containers, a long
 * string) or a scaled copy of a number, or deletes it. {@link Mutant#field} is the innermost object key on the path:
 * the field an error message must name.
 */
public final class JsonMutator {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    public record Mutant(JsonNode root, String field, String description) {}

    private JsonMutator() {}

    public static Mutant mutate(JsonNode original, Random r) {
        JsonNode root = original.deepCopy();
        JsonNode parent = null, cur = root;
        String key = null, field = null;
        int idx = -1;
        StringBuilder path = new StringBuilder();
        while (cur.isContainerNode() && !cur.isEmpty() && (parent == null || r.nextInt(3) != 0)) {
            parent = cur;
            if (cur.isObject()) {
                List<String> names = new ArrayList<>();
                cur.fieldNames().forEachRemaining(names::add);
                key = names.get(r.nextInt(names.size()));
                idx = -1;
                field = key;
                path.append('.').append(key);
                cur = cur.get(key);
            } else {
                idx = r.nextInt(cur.size());
                key = null;
                path.append('[').append(idx).append(']');
                cur = cur.get(idx);
            }
        }
        if (parent == null) return new Mutant(value(r, cur), null, "root replaced");
        boolean delete = r.nextInt(10) == 0;
        JsonNode v = delete ? null : value(r, cur);
        if (parent instanceof ObjectNode o) {
            if (delete) o.remove(key); else o.set(key, v);
        } else {
            ArrayNode a = (ArrayNode) parent;
            if (delete) a.remove(idx); else a.set(idx, v);
        }
        return new Mutant(root, field, path + (delete ? " deleted" : " = " + abbreviate(String.valueOf(v))));
    }

    private static String abbreviate(String s) { return s.length() > 60 ? s.substring(0, 60) + "..." : s; }

    static JsonNode value(Random r, JsonNode cur) {
        if (cur.isNumber() && r.nextInt(3) == 0) {
            double d = cur.asDouble();
            return switch (r.nextInt(5)) {
                case 0 -> F.numberNode(-cur.asLong());
                case 1 -> F.numberNode(cur.asLong() * 1_000_000L);
                case 2 -> F.numberNode(cur.asLong() + 1);
                case 3 -> F.numberNode(d * 1e30);
                default -> F.numberNode(cur.asLong() - 1);
            };
        }
        return switch (r.nextInt(22)) {
            case 0 -> F.numberNode(0);
            case 1 -> F.numberNode(-1);
            case 2 -> F.numberNode(1);
            case 3 -> F.numberNode(Integer.MAX_VALUE);
            case 4 -> F.numberNode(1L << 31);
            case 5 -> F.numberNode(Long.MAX_VALUE);
            case 6 -> F.numberNode(BigInteger.TWO.pow(70));
            case 7 -> F.numberNode(1e9);
            case 8 -> F.numberNode(4e7);
            case 9 -> F.numberNode(40_000_000);
            case 10 -> F.numberNode(0.5);
            case 11 -> F.numberNode(1e308);
            case 12 -> F.textNode("x");
            case 13 -> F.textNode("");
            case 14 -> F.booleanNode(r.nextBoolean());
            case 15 -> F.nullNode();
            case 16 -> F.arrayNode();
            case 17 -> F.objectNode();
            case 18 -> F.arrayNode().add(1).add("a");
            case 19 -> F.objectNode().put("a", 1);
            case 20 -> F.textNode("é".repeat(5000));
            default -> F.numberNode(-2147483648);
        };
    }
}
