package io.vlmflux.llm.constrain;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Schema → automaton: integer ranges exactly, canonical instances accepted, bad schemas refused by keyword and pointer. */
class JsonSchemaCompilerTest {
    private static boolean accepts(String schema, String text) { return ConstraintSpec.jsonSchema(schema).matches(text); }

    @Test void integerRangesAreExact() {
        SplittableRandom r = new SplittableRandom(5);
        for (int i = 0; i < 60; i++) {
            int lo = r.nextInt(-3000, 3000), hi = lo + r.nextInt(0, 4000);
            ByteDfa d = Constraints.automaton(ConstraintSpec.jsonSchema("{\"type\":\"integer\",\"minimum\":" + lo + ",\"maximum\":" + hi + "}"));
            for (int v = lo - 50; v <= hi + 50; v += 1 + r.nextInt(7)) {
                int x = v;
                assertEquals(x >= lo && x <= hi, d.matches(Integer.toString(x).getBytes()), () -> x + " in [" + lo + ", " + hi + "]");
            }
            assertFalse(d.matches("-0".getBytes()), "-0 is not canonical");
            assertFalse(d.matches(("0" + Math.max(lo, 1)).getBytes()), "leading zero");
        }
        ByteDfa open = Constraints.automaton(ConstraintSpec.jsonSchema("{\"type\":\"integer\",\"exclusiveMinimum\":-7}"));
        assertTrue(open.matches("-6".getBytes()));
        assertTrue(open.matches("123456789012".getBytes()));
        assertFalse(open.matches("-7".getBytes()));
        assertFalse(open.matches("-70".getBytes()));
    }

    @Test void numbersStringsAndObjectsInCanonicalForm() {
        String num = "{\"type\":\"number\"}";
        for (String ok : new String[] {"0", "-0.5", "12e+3", "1.25E-7", "7"}) assertTrue(accepts(num, ok), ok);
        for (String bad : new String[] {"01", ".5", "1.", "+1", "1e", "NaN", " 1"}) assertFalse(accepts(num, bad), bad);
        String str = "{\"type\":\"string\",\"minLength\":1,\"maxLength\":3}";
        assertTrue(accepts(str, "\"中😀a\""));
        assertTrue(accepts(str, "\"\\\"\\n\\u001f\""));
        assertFalse(accepts(str, "\"\""));
        assertFalse(accepts(str, "\"abcd\""));
        assertFalse(accepts(str, "\"a\nb\""), "raw control characters are not JSON");
        String obj = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"},\"b\":{\"type\":\"null\"},\"c\":{\"type\":\"integer\"}},\"required\":[\"b\"]}";
        for (String ok : new String[] {"{\"b\":null}", "{\"a\":true,\"b\":null}", "{\"b\":null,\"c\":-4}", "{\"a\":false,\"b\":null,\"c\":0}"})
            assertTrue(accepts(obj, ok), ok);
        for (String bad : new String[] {"{}", "{\"a\":true}", "{\"b\":null,}", "{\"b\":null,\"a\":true}", "{ \"b\":null}"})
            assertFalse(accepts(obj, bad), bad);
        String arr = "{\"type\":\"array\",\"items\":{\"enum\":[1,\"x\"]},\"minItems\":1,\"maxItems\":2}";
        assertTrue(accepts(arr, "[1]"));
        assertTrue(accepts(arr, "[\"x\",1]"));
        assertFalse(accepts(arr, "[]"));
        assertFalse(accepts(arr, "[1,1,1]"));
    }

    @Test void numberBoundsAreExact() {
        SplittableRandom r = new SplittableRandom(8);
        for (int i = 0; i < 40; i++) {
            int lo = r.nextInt(-30, 30), hi = lo + r.nextInt(0, 40);
            boolean openLo = r.nextInt(4) == 0, openHi = r.nextInt(4) == 0;
            String schema = "{\"type\":\"number\"" + (openLo ? "" : ",\"minimum\":" + lo) + (openHi ? "" : ",\"maximum\":" + hi) + "}";
            if (openLo && openHi) continue;
            ByteDfa d = Constraints.automaton(ConstraintSpec.jsonSchema(schema));
            for (int k = 0; k < 300; k++) {
                double x = r.nextInt(-50, 50) + (r.nextBoolean() ? 0 : r.nextInt(1000) / 1000.0);
                String text = r.nextInt(5) == 0 ? String.format(java.util.Locale.ROOT, "%.3f", x) : new java.math.BigDecimal(x).setScale(3, java.math.RoundingMode.HALF_UP).stripTrailingZeros().toPlainString();
                double v = Double.parseDouble(text);
                boolean want = (openLo || v >= lo) && (openHi || v <= hi);
                assertEquals(want, d.matches(text.getBytes()), () -> text + " for " + schema);
            }
            assertFalse(d.matches("1e2".getBytes()), "bounded numbers are written without exponent");
        }
        assertTrue(accepts("{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", "0.25"));
        assertTrue(accepts("{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", "1.000"));
        assertFalse(accepts("{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", "1.0001"));
        assertFalse(accepts("{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", "-0.5"));
        assertTrue(accepts("{\"type\":\"number\",\"minimum\":-1,\"maximum\":0}", "-0.5"));
    }

    /** Every canonical serialization of instances the automaton accepts validates; checked via random walks. */
    @Test void randomWalksThroughRandomSchemasYieldValidInstances() throws Exception {
        SplittableRandom r = new SplittableRandom(77);
        int checked = 0;
        for (int i = 0; i < 300; i++) {
            ObjectNode schema = Schemas.random(r, 0);
            ByteDfa d = Constraints.automaton(ConstraintSpec.jsonSchema(schema.toString()));
            for (int w = 0; w < 5; w++) {
                byte[] out = randomWalk(d, r);
                if (out == null) continue;
                String text = new String(out, java.nio.charset.StandardCharsets.UTF_8);
                JsonNode v = Schemas.JSON.readTree(text);
                if (!text.contains("\\u00")) assertEquals(text, Schemas.JSON.writeValueAsString(v), "canonical form: " + text);
                assertNull(Schemas.validate(schema, v, ""), () -> schema + " / " + text);
                checked++;
            }
        }
        assertTrue(checked > 1000, "walks reached acceptance " + checked + " times");
    }

    /** A random path to acceptance (stopping with probability 1/3 in accepting states), or null when it runs long. */
    static byte[] randomWalk(ByteDfa d, SplittableRandom r) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        int s = 0;
        for (int step = 0; step < 400; step++) {
            if (d.accepts(s) && r.nextInt(3) == 0) return out.toByteArray();
            int[] live = new int[256];
            int n = 0;
            for (int b = 0; b < 256; b++) if (d.next(s, b) != ByteDfa.DEAD) live[n++] = b;
            if (n == 0) return d.accepts(s) ? out.toByteArray() : null;
            int b = live[r.nextInt(n)];
            out.write(b);
            s = d.next(s, b);
        }
        return null;
    }

    private static String error(String schema) {
        return assertThrows(ConstraintException.class, () -> Constraints.automaton(ConstraintSpec.jsonSchema(schema))).getMessage();
    }

    @Test void unsupportedKeywordsAndBadSchemasAreRefusedByName() {
        String m = error("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"email\"}}}");
        assertTrue(m.contains("'format'") && m.contains("/properties/a"), m);
        m = error("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"string\",\"maxLength\":2}]}");
        assertTrue(m.contains("/oneOf") && m.contains("alternatives 0 and 1 overlap") && m.contains("\"\"\"\""), m);
        m = error("{\"$ref\":\"#/$defs/x\"}");
        assertTrue(m.contains("/$ref") && m.contains("points at nothing"), m);
        m = error("{\"$ref\":\"other.json#/a\"}");
        assertTrue(m.contains("only local references"), m);
        m = error("{\"$ref\":\"#/$defs/a\",\"type\":\"string\",\"$defs\":{\"a\":{\"type\":\"null\"}}}");
        assertTrue(m.contains("combining 'type' with $ref"), m);
        m = error("{\"type\":\"string\",\"format\":\"date\",\"$defs\":{}}");
        assertTrue(m.contains("'format'"), m);
        m = error("{\"type\":\"strng\"}");
        assertTrue(m.contains("/type") && m.contains("strng"), m);
        m = error("{\"type\":\"array\"}");
        assertTrue(m.contains("items"), m);
        m = error("{\"type\":\"number\",\"minimum\":0.5,\"exclusiveMaximum\":0.5}");
        assertTrue(m.contains("no number lies within 0.5 and exclusive 0.5"), m);
        m = error("{\"type\":\"number\",\"maximum\":1e16}");
        assertTrue(m.contains("/maximum") && m.contains("1e15"), m);
        m = error("{\"type\":\"string\",\"maxLength\":-1}");
        assertTrue(m.contains("/maxLength") && m.contains("-1"), m);
        m = error("{\"type\":\"object\",\"properties\":{},\"required\":[\"z\"]}");
        assertTrue(m.contains("/required/0") && m.contains("'z'"), m);
        m = error("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}");
        assertTrue(m.contains("/additionalProperties"), m);
        m = error("{\"type\":\"string\",\"pattern\":\"a(b\"}");
        assertTrue(m.contains("/pattern") && m.contains("unclosed '('"), m);
        m = error("{\"type\": \"string\",\n \"maxLength\": }");
        assertTrue(m.contains("line 2"), m);
        m = error("{}");
        assertTrue(m.contains("any JSON value"), m);
        m = error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}");
        assertTrue(m.contains("minimum 5") && m.contains("maximum 4"), m);
    }
}
