package io.vlmflux.llm.constrain;

import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** JSON Schema $ref/$defs (recursive ones through the pushdown), oneOf, and fractional number bounds. */
class SchemaRefAndBoundsTest {
    @Test void recursiveRefsBecomeAPushdown() {
        String tree = """
                {"$defs":{"node":{"type":"object","properties":{
                    "v":{"type":"integer","minimum":0,"maximum":9},
                    "kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":3}},
                  "required":["v"],"additionalProperties":false}},
                 "$ref":"#/$defs/node"}""";
        ConstraintSpec s = ConstraintSpec.jsonSchema(tree);
        assertInstanceOf(Pushdown.class, Constraints.language(s));
        for (String ok : List.of("{\"v\":1}", "{\"v\":1,\"kids\":[]}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":3}]},{\"v\":4}]}"))
            assertTrue(s.matches(ok), ok);
        for (String bad : List.of("{\"v\":10}", "{\"kids\":[]}", "{\"v\":1,\"kids\":[{\"v\":1},{\"v\":1},{\"v\":1},{\"v\":1}]}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{}]}]}"))
            assertFalse(s.matches(bad), bad);
        // a self-reference through "#" and the legacy "definitions"
        ConstraintSpec list = ConstraintSpec.jsonSchema("{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#\"},\"minItems\":1,\"maxItems\":2}]}");
        assertTrue(list.matches("[[null],null]") && list.matches("null") && !list.matches("[]"));
        ConstraintSpec legacy = ConstraintSpec.jsonSchema("{\"definitions\":{\"a\":{\"enum\":[1,2]}},\"type\":\"array\",\"items\":{\"$ref\":\"#/definitions/a\"}}");
        assertInstanceOf(ByteDfa.class, Constraints.language(legacy), "non-recursive references are inlined");
        assertTrue(legacy.matches("[1,2,2]") && !legacy.matches("[3]"));
        String m = assertThrows(ConstraintException.class, () -> Constraints.language(ConstraintSpec.jsonSchema(
                "{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"null\"}]}},\"$ref\":\"#/$defs/a\"}"))).getMessage();
        assertTrue(m.contains("#/$defs/a") && m.contains("left recursion"), m);
        m = assertThrows(ConstraintException.class, () -> Constraints.language(ConstraintSpec.jsonSchema(
                "{\"$defs\":{\"a\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/a\"},\"minItems\":1}},\"$ref\":\"#/$defs/a\"}"))).getMessage();
        assertTrue(m.contains("#/$defs/a") && m.contains("can never finish"), m);
    }

    @Test void oneOfWithDisjointAlternatives() {
        ConstraintSpec s = ConstraintSpec.jsonSchema("{\"oneOf\":[{\"type\":\"integer\",\"maximum\":0},{\"type\":\"integer\",\"minimum\":1},{\"type\":\"string\",\"maxLength\":1}]}");
        for (String ok : List.of("0", "-5", "7", "\"a\"")) assertTrue(s.matches(ok), ok);
        assertFalse(s.matches("\"ab\""));
    }

    /** Random decimal bounds: every canonical decimal near them is accepted exactly when it is within them. */
    @Test void fractionalBoundsAreExact() {
        SplittableRandom r = new SplittableRandom(5);
        String[] keysLo = {"minimum", "exclusiveMinimum"}, keysHi = {"maximum", "exclusiveMaximum"};
        int checks = 0, inside = 0;
        for (int i = 0; i < 300; i++) {
            BigDecimal a = randomDecimal(r), b = randomDecimal(r);
            if (a.compareTo(b) > 0) { BigDecimal t = a; a = b; b = t; }
            boolean useLo = r.nextInt(5) > 0, useHi = r.nextInt(5) > 0;
            String kl = keysLo[r.nextInt(2)], kh = keysHi[r.nextInt(2)];
            if (a.compareTo(b) == 0 && (kl.startsWith("exclusive") || kh.startsWith("exclusive"))) kl = kh = null;
            if (kl == null) { kl = "minimum"; kh = "maximum"; }
            String schema = "{\"type\":\"number\"" + (useLo ? ",\"" + kl + "\":" + a.toPlainString() : "") + (useHi ? ",\"" + kh + "\":" + b.toPlainString() : "") + "}";
            ByteDfa d = Constraints.automaton(ConstraintSpec.jsonSchema(schema));
            for (int j = 0; j < 40; j++) {
                BigDecimal x = j < 8 ? near(j < 4 ? a : b, r) : randomDecimal(r);
                String text = x.toPlainString();
                if (r.nextInt(4) == 0 && x.scale() > 0) text = text + "0";   // trailing zeros are fine
                boolean want = (!useLo || (kl.startsWith("exclusive") ? x.compareTo(a) > 0 : x.compareTo(a) >= 0))
                        && (!useHi || (kh.startsWith("exclusive") ? x.compareTo(b) < 0 : x.compareTo(b) <= 0));
                String tx = text;
                assertEquals(want, d.matches(text.getBytes()), () -> schema + " on " + tx);
                checks++;
                if (want) inside++;
            }
        }
        assertTrue(inside > checks / 5 && inside < checks * 4 / 5, inside + " of " + checks + " inside");
    }

    private static BigDecimal randomDecimal(SplittableRandom r) {
        long ip = r.nextInt(4) == 0 ? r.nextLong(-100000, 100000) : r.nextInt(-30, 30);
        int scale = r.nextInt(4);
        long frac = scale == 0 ? 0 : r.nextLong((long) Math.pow(10, scale));
        BigDecimal v = new BigDecimal(Math.abs(ip)).add(BigDecimal.valueOf(frac, scale));
        return ip < 0 || (ip == 0 && r.nextBoolean()) ? v.negate() : v;
    }

    private static BigDecimal near(BigDecimal v, SplittableRandom r) {
        BigDecimal step = BigDecimal.valueOf(1, r.nextInt(4));
        return switch (r.nextInt(3)) {
            case 0 -> v;
            case 1 -> v.add(step);
            default -> v.subtract(step);
        };
    }
}
