package io.vlmflux.llm.constrain;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Compiles the supported JSON Schema subset to an {@link Rx} that matches the schema's instances in canonical form:
 * no whitespace anywhere, object members in the order of {@code properties} (required ones always present, optional
 * ones present or absent), strings with only the escapes {@code \" \\ \b \f \n \r \t} and {@code \\u00XX} for
 * control characters, numbers as JSON writes them. The result is a {@link Cfg} with one rule per schema that a
 * {@code $ref} names (rule 0: the root); without recursive references it compiles to a byte DFA, otherwise to a
 * pushdown automaton.
 *
 * <p>Keywords: {@code type} (one name or a list), {@code properties}, {@code required}, {@code additionalProperties}
 * ({@code false}, {@code true} or absent: only declared properties are ever produced), {@code items}, {@code minItems},
 * {@code maxItems}, {@code enum}, {@code const}, {@code anyOf}, {@code oneOf} (alternatives checked disjoint),
 * {@code $ref} (local JSON pointers) with {@code $defs}/{@code definitions}, {@code minLength}, {@code maxLength}, {@code pattern}
 * (a full match of the string's characters, in the {@link RegexParser} dialect; quotes, backslashes and control
 * characters are excluded from it), {@code minimum}/{@code maximum}/{@code exclusiveMinimum}/{@code exclusiveMaximum}
 * on integers and numbers (bounded numbers are written without exponent; fractional bounds exact), and the annotations
 * {@code title}, {@code description}, {@code default}, {@code examples},
 * {@code $schema}, {@code $id}, {@code $comment}. Any other keyword is refused by name with its JSON pointer. One
 * compiler per call.
 */
final class JsonSchemaCompiler {
    static final int MAX_BOUND = 2000;
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema", "$id", "$comment");
    private static final Set<String> KNOWN = Set.of("type", "properties", "required", "additionalProperties", "items", "minItems",
            "maxItems", "enum", "const", "anyOf", "oneOf", "$ref", "minLength", "maxLength", "pattern", "minimum", "maximum",
            "exclusiveMinimum", "exclusiveMaximum");
    private static final Set<String> CONTAINERS = Set.of("$defs", "definitions");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Rx.Chars FORBIDDEN_IN_STRING = Rx.set(new int[] {0, 0x1F, '"', '"', '\\', '\\'});
    private static final Rx STRING_CHAR = Rx.alt(List.of(
            Rx.complement(FORBIDDEN_IN_STRING),
            Rx.cat(Rx.text("\\"), Rx.set(new int[] {'"', '"', '\\', '\\', 'b', 'b', 'f', 'f', 'n', 'n', 'r', 'r', 't', 't'})),
            Rx.cat(Rx.text("\\u00"), Rx.range('0', '1'), Rx.set(new int[] {'0', '9', 'a', 'f', 'A', 'F'}))));
    private static final Rx DIGITS = new Rx.Rep(Rx.range('0', '9'), 1, -1);
    private static final Rx INT = Rx.cat(new Rx.Rep(Rx.text("-"), 0, 1),
            Rx.alt(List.of(Rx.text("0"), Rx.cat(Rx.range('1', '9'), new Rx.Rep(Rx.range('0', '9'), 0, -1)))));
    private static final Rx NUMBER = Rx.cat(INT, new Rx.Rep(Rx.cat(Rx.text("."), DIGITS), 0, 1),
            new Rx.Rep(Rx.cat(Rx.set(new int[] {'e', 'e', 'E', 'E'}), new Rx.Rep(Rx.set(new int[] {'+', '+', '-', '-'}), 0, 1), DIGITS), 0, 1));

    private final JsonNode root;
    private final List<Rx> rules = new ArrayList<>();
    private final List<String> ruleNames = new ArrayList<>(), ruleWhere = new ArrayList<>();
    private final Map<String, Integer> ruleOf = new LinkedHashMap<>();   // JSON pointer -> rule

    private JsonSchemaCompiler(JsonNode root) { this.root = root; }

    static Cfg compile(String schemaJson) {
        JsonNode root;
        try {
            root = JSON.readTree(schemaJson);
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            throw new ConstraintException("JSON schema is not valid JSON" + (loc == null ? "" : " at line " + loc.getLineNr()
                    + ", column " + loc.getColumnNr()) + ": " + e.getOriginalMessage());
        }
        if (root == null || root.isMissingNode()) throw new ConstraintException("JSON schema is empty");
        JsonSchemaCompiler c = new JsonSchemaCompiler(root);
        c.rule("", "/");
        for (int i = 0; i < c.rules.size(); i++) {   // rules are added while compiling: referenced schemas
            String ptr = c.ruleNames.get(i).substring(1);
            JsonNode target = ptr.isEmpty() ? root : root.at(ptr);
            if (target.isMissingNode()) throw err(c.ruleWhere.get(i), "$ref '#" + ptr + "' points at nothing in the schema");
            c.rules.set(i, c.schema(target, ptr));
        }
        List<String> where = c.ruleWhere.stream().map(w -> "JSON schema, referenced at " + w).toList();
        return new Cfg(c.ruleNames, c.rules, where, 0);
    }

    /** The rule of the schema at JSON pointer {@code ptr}, added (to be compiled) on first use. */
    private int rule(String ptr, String from) {
        Integer r = ruleOf.get(ptr);
        if (r != null) return r;
        ruleOf.put(ptr, rules.size());
        rules.add(null);
        ruleNames.add("#" + ptr);
        ruleWhere.add(from);
        return rules.size() - 1;
    }

    /** {@code $ref}: a local JSON pointer ({@code #}, {@code #/$defs/x}, ...) becomes a reference to that schema's rule. */
    private Rx ref(JsonNode s, String ptr) {
        JsonNode r = s.get("$ref");
        if (!r.isTextual()) throw err(ptr + "/$ref", "$ref must be a string");
        String ref = r.asText();
        if (!ref.startsWith("#")) throw err(ptr + "/$ref", "only local references ('#...') are supported, not '" + ref + "'");
        String target = java.net.URLDecoder.decode(ref.substring(1).replace("+", "%2B"), java.nio.charset.StandardCharsets.UTF_8);
        if (!target.isEmpty() && !target.startsWith("/"))
            throw err(ptr + "/$ref", "only JSON-pointer references are supported ('#/...'), not anchors like '" + ref + "'");
        try {
            com.fasterxml.jackson.core.JsonPointer.compile(target);
        } catch (IllegalArgumentException e) {
            throw err(ptr + "/$ref", "bad JSON pointer '" + target + "': " + e.getMessage());
        }
        if ((target.isEmpty() ? root : root.at(target)).isMissingNode())
            throw err(ptr + "/$ref", "$ref '" + ref + "' points at nothing in the schema");
        return new Rx.Ref(rule(target, ptr.isEmpty() ? "/" : ptr));
    }

    private static ConstraintException err(String ptr, String why) {
        return new ConstraintException("JSON schema at " + (ptr.isEmpty() ? "/" : ptr) + ": " + why);
    }

    private static String esc(String key) { return key.replace("~", "~0").replace("/", "~1"); }

    private Rx schema(JsonNode s, String ptr) {
        if (s.isBoolean()) throw err(ptr, "boolean schema '" + s + "' (any value / no value) is not supported");
        if (!s.isObject()) throw err(ptr, "a schema must be an object, found " + s.getNodeType().toString().toLowerCase());
        for (Iterator<String> it = s.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!KNOWN.contains(k) && !ANNOTATIONS.contains(k) && !CONTAINERS.contains(k))
                throw err(ptr, "unsupported keyword '" + k + "'");
            if (CONTAINERS.contains(k) && !s.get(k).isObject()) throw err(ptr + "/" + k, k + " must be an object of schemas");
        }
        List<String> constraintKeys = new ArrayList<>();
        s.fieldNames().forEachRemaining(k -> { if (KNOWN.contains(k) && !k.equals("type")) constraintKeys.add(k); });
        if (s.has("$ref")) {
            if (s.has("type")) throw err(ptr, "combining 'type' with $ref is not supported");
            for (String k : constraintKeys) if (!k.equals("$ref")) throw err(ptr, "combining '" + k + "' with $ref is not supported");
            return ref(s, ptr);
        }
        Set<String> types = types(s, ptr);
        if (s.has("enum") || s.has("const")) {
            for (String k : constraintKeys)
                if (!k.equals("enum") && !k.equals("const")) throw err(ptr, "combining '" + k + "' with enum/const is not supported");
            List<JsonNode> values = new ArrayList<>();
            if (s.has("const")) values.add(s.get("const"));
            if (s.has("enum")) {
                if (!s.get("enum").isArray() || s.get("enum").isEmpty()) throw err(ptr + "/enum", "enum must be a non-empty array");
                s.get("enum").forEach(values::add);
                if (s.has("const")) values.removeIf(v -> !v.equals(s.get("const")));
            }
            List<Rx> opts = new ArrayList<>();
            for (JsonNode v : values) if (types == null || types.contains(typeOf(v)) || (types.contains("number") && typeOf(v).equals("integer")))
                opts.add(Rx.text(canonical(v)));
            if (opts.isEmpty()) throw err(ptr, "no enum/const value has the allowed type " + types);
            return Rx.alt(opts);
        }
        for (String comb : List.of("anyOf", "oneOf")) {
            if (!s.has(comb)) continue;
            for (String k : constraintKeys) if (!k.equals(comb)) throw err(ptr, "combining '" + k + "' with " + comb + " is not supported");
            if (types != null) throw err(ptr, "combining 'type' with " + comb + " is not supported (put the type in each option)");
            JsonNode a = s.get(comb);
            if (!a.isArray() || a.isEmpty()) throw err(ptr + "/" + comb, comb + " must be a non-empty array of schemas");
            List<Rx> opts = new ArrayList<>();
            for (int i = 0; i < a.size(); i++) opts.add(schema(a.get(i), ptr + "/" + comb + "/" + i));
            if (comb.equals("oneOf")) disjoint(opts, ptr);
            return Rx.alt(opts);
        }
        if (types == null) throw err(ptr, "a schema without type, enum, const or anyOf (any JSON value) is not supported");
        for (String k : constraintKeys) {
            String owner = switch (k) {
                case "properties", "required", "additionalProperties" -> "object";
                case "items", "minItems", "maxItems" -> "array";
                case "minLength", "maxLength", "pattern" -> "string";
                default -> "integer";   // minimum, maximum, exclusive*
            };
            if (owner.equals("integer") && types.contains("number")) continue;   // checked by number()
            if (!types.contains(owner)) throw err(ptr + "/" + k, "'" + k + "' applies to type " + owner + ", but the type is " + types);
        }
        List<Rx> opts = new ArrayList<>();
        for (String t : types) opts.add(switch (t) {
            case "null" -> Rx.text("null");
            case "boolean" -> Rx.alt(List.of(Rx.text("true"), Rx.text("false")));
            case "number" -> number(s, ptr);
            case "integer" -> integer(s, ptr);
            case "string" -> string(s, ptr);
            case "array" -> array(s, ptr);
            case "object" -> object(s, ptr);
            default -> throw new IllegalStateException(t);
        });
        return Rx.alt(opts);
    }

    /**
     * oneOf is compiled as anyOf, which is the same language when no instance matches two alternatives: that is
     * checked exactly (the product of the alternatives' byte automata has no common accepting pair) and an overlap is
     * refused with a witness. Alternatives that contain {@code $ref} cannot be checked and are refused.
     */
    private static void disjoint(List<Rx> opts, String ptr) {
        ByteDfa[] d = new ByteDfa[opts.size()];
        for (int i = 0; i < d.length; i++) {
            boolean[] hasRef = {false};
            Cfg.refs(opts.get(i), x -> hasRef[0] = true);
            if (hasRef[0]) throw err(ptr + "/oneOf/" + i, "oneOf alternatives with $ref are not supported (their overlap cannot be checked); use anyOf");
            d[i] = ByteDfa.compile(opts.get(i));
        }
        for (int i = 0; i < d.length; i++)
            for (int j = i + 1; j < d.length; j++) {
                String w = ByteDfa.commonWitness(d[i], d[j]);
                if (w != null) throw err(ptr + "/oneOf", "alternatives " + i + " and " + j + " overlap (both accept " + w
                        + "), so oneOf would reject what anyOf accepts; use anyOf or make them exclusive");
            }
    }

    /** The declared types in a stable order, or null without {@code type}. */
    private static Set<String> types(JsonNode s, String ptr) {
        JsonNode t = s.get("type");
        if (t == null) return null;
        List<String> names = new ArrayList<>();
        if (t.isTextual()) names.add(t.asText());
        else if (t.isArray() && !t.isEmpty()) t.forEach(n -> names.add(n.isTextual() ? n.asText() : n.toString()));
        else throw err(ptr + "/type", "type must be a name or a non-empty array of names, found " + t);
        Set<String> out = new java.util.LinkedHashSet<>();
        for (String n : names) {
            if (!Set.of("null", "boolean", "number", "integer", "string", "array", "object").contains(n))
                throw err(ptr + "/type", "unknown type '" + n + "'");
            out.add(n);
        }
        if (out.contains("number")) out.remove("integer");   // number already covers integers
        return out;
    }

    private static String typeOf(JsonNode v) {
        if (v.isNull()) return "null";
        if (v.isBoolean()) return "boolean";
        if (v.isIntegralNumber() || (v.isNumber() && v.asDouble() == Math.rint(v.asDouble()))) return "integer";
        if (v.isNumber()) return "number";
        if (v.isTextual()) return "string";
        if (v.isArray()) return "array";
        return "object";
    }

    static String canonical(JsonNode v) {
        try {
            return JSON.writeValueAsString(v);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int count(JsonNode s, String key, String ptr) {
        JsonNode n = s.get(key);
        if (n == null) return -1;
        if (!n.canConvertToInt() || !n.isIntegralNumber() || n.asInt() < 0)
            throw err(ptr + "/" + key, key + " must be a non-negative integer, found " + n);
        if (n.asInt() > MAX_BOUND) throw err(ptr + "/" + key, key + " " + n.asInt() + " is above the supported " + MAX_BOUND);
        return n.asInt();
    }

    private Rx string(JsonNode s, String ptr) {
        int min = count(s, "minLength", ptr), max = count(s, "maxLength", ptr);
        if (min >= 0 && max >= 0 && max < min) throw err(ptr, "maxLength " + max + " < minLength " + min);
        Rx body;
        if (s.has("pattern")) {
            if (min >= 0 || max >= 0) throw err(ptr + "/pattern", "combining pattern with minLength/maxLength is not supported");
            if (!s.get("pattern").isTextual()) throw err(ptr + "/pattern", "pattern must be a string");
            Rx p;
            try {
                p = RegexParser.parse(s.get("pattern").asText());
            } catch (ConstraintException e) {
                throw err(ptr + "/pattern", e.getMessage());
            }
            body = withoutJsonSpecials(p);
        } else body = new Rx.Rep(STRING_CHAR, Math.max(min, 0), max);
        return Rx.cat(Rx.text("\""), body, Rx.text("\""));
    }

    /** The pattern with quotes, backslashes and control characters removed from every character set. */
    private static Rx withoutJsonSpecials(Rx r) {
        return switch (r) {
            case Rx.Chars c -> Rx.minus(c, FORBIDDEN_IN_STRING);
            case Rx.Bytes b -> b;
            case Rx.Cat c -> new Rx.Cat(c.parts().stream().map(JsonSchemaCompiler::withoutJsonSpecials).toList());
            case Rx.Alt a -> new Rx.Alt(a.options().stream().map(JsonSchemaCompiler::withoutJsonSpecials).toList());
            case Rx.Rep p -> new Rx.Rep(withoutJsonSpecials(p.body()), p.min(), p.max());
            case Rx.Ref f -> f;
        };
    }

    private Rx array(JsonNode s, String ptr) {
        if (!s.has("items")) throw err(ptr, "arrays need 'items' (arbitrary JSON values are not supported)");
        int min = Math.max(count(s, "minItems", ptr), 0), max = count(s, "maxItems", ptr);
        if (max >= 0 && max < min) throw err(ptr, "maxItems " + max + " < minItems " + min);
        if (max == 0) return Rx.text("[]");
        Rx item = schema(s.get("items"), ptr + "/items");
        Rx more = new Rx.Rep(Rx.cat(Rx.text(","), item), Math.max(min - 1, 0), max < 0 ? -1 : max - 1);
        Rx nonEmpty = Rx.cat(Rx.text("["), item, more, Rx.text("]"));
        return min == 0 ? Rx.alt(List.of(Rx.text("[]"), nonEmpty)) : nonEmpty;
    }

    private Rx object(JsonNode s, String ptr) {
        JsonNode ap = s.get("additionalProperties");
        if (ap != null && !ap.isBoolean())
            throw err(ptr + "/additionalProperties", "only false or true is supported (a schema for additional properties is not)");
        Map<String, Rx> props = new LinkedHashMap<>();
        JsonNode p = s.get("properties");
        if (p != null) {
            if (!p.isObject()) throw err(ptr + "/properties", "properties must be an object");
            for (var it = p.fields(); it.hasNext(); ) {
                var e = it.next();
                props.put(e.getKey(), schema(e.getValue(), ptr + "/properties/" + esc(e.getKey())));
            }
        }
        Set<String> required = new java.util.HashSet<>();
        JsonNode r = s.get("required");
        if (r != null) {
            if (!r.isArray()) throw err(ptr + "/required", "required must be an array of property names");
            for (int i = 0; i < r.size(); i++) {
                if (!r.get(i).isTextual()) throw err(ptr + "/required/" + i, "a required name must be a string");
                if (!props.containsKey(r.get(i).asText()))
                    throw err(ptr + "/required/" + i, "required property '" + r.get(i).asText()
                            + "' is not declared in properties (undeclared properties are not supported)");
                required.add(r.get(i).asText());
            }
        }
        List<String> names = new ArrayList<>(props.keySet());
        List<Rx> members = new ArrayList<>();
        for (String n : names) members.add(Rx.cat(Rx.text(canonical(JSON.getNodeFactory().textNode(n)) + ":"), props.get(n)));
        // tail[i][first]: members i.. where 'first' means no member was written yet (so no leading comma)
        Rx[] tailFirst = new Rx[names.size() + 1], tailAfter = new Rx[names.size() + 1];
        tailFirst[names.size()] = Rx.empty();
        tailAfter[names.size()] = Rx.empty();
        for (int i = names.size() - 1; i >= 0; i--) {
            Rx withFirst = Rx.cat(members.get(i), tailAfter[i + 1]);
            Rx withAfter = Rx.cat(Rx.text(","), members.get(i), tailAfter[i + 1]);
            boolean req = required.contains(names.get(i));
            tailFirst[i] = req ? withFirst : Rx.alt(List.of(withFirst, tailFirst[i + 1]));
            tailAfter[i] = req ? withAfter : Rx.alt(List.of(withAfter, tailAfter[i + 1]));
        }
        return Rx.cat(Rx.text("{"), tailFirst[0], Rx.text("}"));
    }

    // ---- numbers ----

    private static final Rx FRACTION = new Rx.Rep(Rx.cat(Rx.text("."), DIGITS), 0, 1);
    private static final Rx ZERO_FRACTION = new Rx.Rep(Rx.cat(Rx.text("."), new Rx.Rep(Rx.text("0"), 1, -1)), 0, 1);

    /**
     * Any JSON number, or with bounds ({@code minimum}/{@code maximum}/{@code exclusiveMinimum}/{@code exclusiveMaximum},
     * integral or fractional, up to 1e15 in magnitude): the decimals (no exponent) within them, exactly. A decimal
     * {@code i.D} (integer part {@code i}, fraction digits {@code D}, possibly none) is within {@code [a, b]} iff
     * {@code a.int < i < b.int}, or {@code i} equals a bound's integer part and {@code 0.D} compares right with that
     * bound's fraction digits (a digit-by-digit automaton, {@link #fraction}); negative numbers mirror that.
     */
    private Rx number(JsonNode s, String ptr) {
        Bound lo = decimalBound(s, "minimum", ptr, false), hi = decimalBound(s, "maximum", ptr, false);
        Bound xlo = decimalBound(s, "exclusiveMinimum", ptr, true), xhi = decimalBound(s, "exclusiveMaximum", ptr, true);
        if (xlo != null && (lo == null || xlo.v.compareTo(lo.v) >= 0)) lo = xlo;
        if (xhi != null && (hi == null || xhi.v.compareTo(hi.v) <= 0)) hi = xhi;
        if (lo == null && hi == null) return NUMBER;
        if (lo != null && hi != null && (lo.v.compareTo(hi.v) > 0 || lo.v.compareTo(hi.v) == 0 && (lo.exclusive || hi.exclusive)))
            throw err(ptr, "no number lies within " + lo + " and " + hi);
        java.math.BigDecimal zero = java.math.BigDecimal.ZERO;
        List<Rx> opts = new ArrayList<>();
        // x >= 0 part: [max(lo, 0), hi]
        if (hi == null || hi.v.signum() > 0 || hi.v.signum() == 0 && !hi.exclusive) {
            Bound from = lo == null || lo.v.signum() < 0 ? new Bound(zero, false) : lo;
            opts.add(nonNegativeDecimal(from, hi));
        }
        // x < 0 part: "-" y with y in [max(-hi, 0), -lo]  (y = 0 gives "-0", equal to 0, allowed when 0 is)
        if (lo == null || lo.v.signum() < 0) {
            Bound from = hi == null || hi.v.signum() >= 0 ? new Bound(zero, false) : new Bound(hi.v.negate(), hi.exclusive);
            Bound to = lo == null ? null : new Bound(lo.v.negate(), lo.exclusive);
            if (hi != null && hi.v.signum() == 0 && hi.exclusive) from = new Bound(zero, true);
            opts.add(Rx.cat(Rx.text("-"), nonNegativeDecimal(from, to)));
        }
        return Rx.alt(opts);
    }

    private record Bound(java.math.BigDecimal v, boolean exclusive) {
        @Override public String toString() { return (exclusive ? "exclusive " : "") + v.toPlainString(); }
        long intPart() { return v.setScale(0, java.math.RoundingMode.DOWN).longValueExact(); }
        /** Fraction digits without trailing zeros ("" for an integer). */
        String frac() {
            String f = v.subtract(new java.math.BigDecimal(intPart())).abs().stripTrailingZeros().toPlainString();
            return f.equals("0") ? "" : f.substring(2);
        }
    }

    private static Bound decimalBound(JsonNode s, String key, String ptr, boolean exclusive) {
        JsonNode n = s.get(key);
        if (n == null) return null;
        if (!n.isNumber()) throw err(ptr + "/" + key, key + " must be a number, found " + n);
        java.math.BigDecimal v = n.decimalValue();
        if (v.abs().compareTo(new java.math.BigDecimal("1e15")) > 0)
            throw err(ptr + "/" + key, key + " " + n + " is beyond the supported magnitude 1e15");
        if (v.stripTrailingZeros().scale() > 30) throw err(ptr + "/" + key, key + " " + n + " has more than 30 fraction digits");
        return new Bound(v, exclusive);
    }

    /** Decimals {@code x >= 0} with {@code a <= x <= b} (each bound possibly exclusive; {@code b == null}: unbounded). */
    private static Rx nonNegativeDecimal(Bound a, Bound b) {
        long ai = a.intPart();
        String af = a.frac();
        if (b == null)
            return Rx.alt(List.of(Rx.cat(Rx.text(Long.toString(ai)), decimalTail(af, !a.exclusive, null, false)),
                    Rx.cat(nonNegative(ai + 1, null), FRACTION)));
        long bi = b.intPart();
        String bf = b.frac();
        if (ai == bi) return Rx.cat(Rx.text(Long.toString(ai)), decimalTail(af, !a.exclusive, bf, !b.exclusive));
        List<Rx> opts = new ArrayList<>();
        opts.add(Rx.cat(Rx.text(Long.toString(ai)), decimalTail(af, !a.exclusive, null, false)));
        if (ai + 1 <= bi - 1) opts.add(Rx.cat(nonNegative(ai + 1, bi - 1), FRACTION));
        opts.add(Rx.cat(Rx.text(Long.toString(bi)), decimalTail(null, false, bf, !b.exclusive)));
        return Rx.alt(opts);
    }

    private static final Rx NO_MATCH = new Rx.Chars(new int[0]);

    /** After the integer part: nothing or "." digits, with {@code lo <=/< 0.D <=/< hi} ({@code null}: no bound). */
    private static Rx decimalTail(String lo, boolean loIncl, String hi, boolean hiIncl) {
        List<Rx> opts = new ArrayList<>();
        if (zeroOk(lo, loIncl, hi, hiIncl)) opts.add(Rx.empty());
        Rx digits = fractionFirst(lo, loIncl, hi, hiIncl);
        if (digits != NO_MATCH) opts.add(Rx.cat(Rx.text("."), digits));
        return opts.isEmpty() ? NO_MATCH : Rx.alt(opts);
    }

    /** Whether the all-zero fraction (value 0) lies within the fraction bounds. */
    private static boolean zeroOk(String lo, boolean loIncl, String hi, boolean hiIncl) {
        boolean aboveLo = lo == null || lo.isEmpty() && loIncl;   // a non-empty lo is > 0
        boolean belowHi = hi == null || !hi.isEmpty() || hiIncl;  // a non-empty hi is > 0
        return aboveLo && belowHi;
    }

    /** Non-empty digit strings D with {@code 0.D} within the bounds (bounds are digit strings without trailing zeros). */
    private static Rx fractionFirst(String lo, boolean loIncl, String hi, boolean hiIncl) {
        int l = lo == null ? -1 : lo.isEmpty() ? 0 : lo.charAt(0) - '0';
        int h = hi == null ? 10 : hi.isEmpty() ? 0 : hi.charAt(0) - '0';
        String lr = lo == null ? null : lo.isEmpty() ? "" : strip(lo.substring(1));
        String hr = hi == null ? null : hi.isEmpty() ? "" : strip(hi.substring(1));
        List<Rx> opts = new ArrayList<>();
        Rx anyRest = new Rx.Rep(Rx.range('0', '9'), 0, -1);
        if (l + 1 <= h - 1) opts.add(Rx.cat(Rx.range('0' + l + 1, '0' + h - 1), anyRest));
        if (l >= 0 && l == h) {
            Rx rest = fraction(lr, loIncl, hr, hiIncl);
            if (rest != NO_MATCH) opts.add(Rx.cat(Rx.range('0' + l, '0' + l), rest));
        } else {
            if (l >= 0) { Rx rest = fraction(lr, loIncl, null, false); if (rest != NO_MATCH) opts.add(Rx.cat(Rx.range('0' + l, '0' + l), rest)); }
            if (h <= 9) { Rx rest = fraction(null, false, hr, hiIncl); if (rest != NO_MATCH) opts.add(Rx.cat(Rx.range('0' + h, '0' + h), rest)); }
        }
        return opts.isEmpty() ? NO_MATCH : Rx.alt(opts);
    }

    /** Digit strings D (possibly empty) with {@code 0.D} within the bounds. */
    static Rx fraction(String lo, boolean loIncl, String hi, boolean hiIncl) {
        Rx anyRest = new Rx.Rep(Rx.range('0', '9'), 0, -1);
        if (lo == null && hi == null) return anyRest;
        if (lo != null && lo.isEmpty() && hi == null)   // >= 0 (any) or > 0 (some non-zero digit)
            return loIncl ? anyRest : Rx.cat(anyRest, Rx.range('1', '9'), anyRest);
        if (hi != null && hi.isEmpty() && (lo == null || lo.isEmpty()))   // <= 0: zeros only (< 0: nothing)
            return hiIncl && (lo == null || loIncl) ? new Rx.Rep(Rx.text("0"), 0, -1) : NO_MATCH;
        List<Rx> opts = new ArrayList<>();
        if (zeroOk(lo, loIncl, hi, hiIncl)) opts.add(Rx.empty());
        Rx first = fractionFirst(lo, loIncl, hi, hiIncl);
        if (first != NO_MATCH) opts.add(first);
        return opts.isEmpty() ? NO_MATCH : Rx.alt(opts);
    }

    private static String strip(String digits) {
        int e = digits.length();
        while (e > 0 && digits.charAt(e - 1) == '0') e--;
        return digits.substring(0, e);
    }

    // ---- integers ----

    private Rx integer(JsonNode s, String ptr) {
        Long lo = bound(s, "minimum", ptr, true, false), hi = bound(s, "maximum", ptr, false, false);
        Long xlo = bound(s, "exclusiveMinimum", ptr, true, true), xhi = bound(s, "exclusiveMaximum", ptr, false, true);
        if (xlo != null) lo = lo == null ? xlo : Math.max(lo, xlo);
        if (xhi != null) hi = hi == null ? xhi : Math.min(hi, xhi);
        if (lo == null && hi == null) return INT;
        if (lo != null && hi != null && lo > hi) throw err(ptr, "no integer lies within minimum " + lo + " and maximum " + hi);
        List<Rx> opts = new ArrayList<>();
        // non-negative part [max(lo,0), hi]
        if (hi == null || hi >= 0) opts.add(nonNegative(lo == null ? 0 : Math.max(lo, 0), hi));
        // negative part: -(k) with k in [max(1, -hi), -lo]
        if (lo == null || lo < 0) opts.add(Rx.cat(Rx.text("-"), nonNegative(hi == null ? 1 : Math.max(1, -hi), lo == null ? null : -lo)));
        return Rx.alt(opts);
    }

    /** An integer bound rounded inward (ceil for lower, floor for upper; exclusive bounds moved by one). */
    private static Long bound(JsonNode s, String key, String ptr, boolean lower, boolean exclusive) {
        JsonNode n = s.get(key);
        if (n == null) return null;
        if (!n.isNumber()) throw err(ptr + "/" + key, key + " must be a number, found " + n);
        double v = n.asDouble();
        if (Math.abs(v) > 1e15) throw err(ptr + "/" + key, key + " " + n + " is beyond the supported magnitude 1e15");
        long r = lower ? (long) Math.ceil(v) : (long) Math.floor(v);
        if (exclusive && r == v) r += lower ? 1 : -1;
        return r;
    }

    /** Decimal strings (no leading zeros) of the integers in {@code [lo, hi]}, {@code hi == null}: unbounded. */
    static Rx nonNegative(long lo, Long hi) {
        List<Rx> opts = new ArrayList<>();
        int loLen = Long.toString(lo).length();
        int hiLen = hi == null ? loLen : Long.toString(hi).length();
        for (int d = loLen; d <= hiLen; d++) {
            long from = Math.max(lo, d == 1 ? 0 : pow10(d - 1));
            long to = hi == null ? pow10(d) - 1 : Math.min(hi, pow10(d) - 1);
            if (from <= to) opts.add(sameLength(Long.toString(from), Long.toString(to)));
        }
        if (hi == null) opts.add(Rx.cat(Rx.range('1', '9'), new Rx.Rep(Rx.range('0', '9'), loLen, -1)));
        return Rx.alt(opts);
    }

    private static long pow10(int n) {
        long r = 1;
        for (int i = 0; i < n; i++) r *= 10;
        return r;
    }

    /** Digit strings of equal length between {@code a} and {@code b} inclusive. */
    private static Rx sameLength(String a, String b) {
        if (a.isEmpty()) return Rx.empty();
        char a0 = a.charAt(0), b0 = b.charAt(0);
        String ar = a.substring(1), br = b.substring(1);
        if (a0 == b0) return Rx.cat(Rx.range(a0, a0), sameLength(ar, br));
        if (ar.chars().allMatch(c -> c == '0') && br.chars().allMatch(c -> c == '9'))
            return Rx.cat(Rx.range(a0, b0), new Rx.Rep(Rx.range('0', '9'), ar.length(), ar.length()));
        List<Rx> opts = new ArrayList<>();
        opts.add(Rx.cat(Rx.range(a0, a0), sameLength(ar, "9".repeat(ar.length()))));
        if (a0 + 1 <= b0 - 1) opts.add(Rx.cat(Rx.range(a0 + 1, b0 - 1), new Rx.Rep(Rx.range('0', '9'), ar.length(), ar.length())));
        opts.add(Rx.cat(Rx.range(b0, b0), sameLength("0".repeat(br.length()), br)));
        return Rx.alt(opts);
    }
}
