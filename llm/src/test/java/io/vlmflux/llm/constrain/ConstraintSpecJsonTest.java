package io.vlmflux.llm.constrain;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@link ConstraintSpec#fromJson}: each kind, and the errors for everything else. */
class ConstraintSpecJsonTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static ConstraintSpec parse(String json) throws Exception { return ConstraintSpec.fromJson(JSON.readTree(json)); }

    private static String error(String json) {
        return assertThrows(ConstraintException.class, () -> parse(json)).getMessage();
    }

    @Test void eachKind() throws Exception {
        assertEquals(ConstraintSpec.choice("yes", "no"), parse("{\"choice\":[\"yes\",\"no\"]}"));
        assertEquals(ConstraintSpec.regex("[0-9]+"), parse("{\"regex\":\"[0-9]+\"}"));
        ConstraintSpec s = parse("{\"json_schema\":{\"type\":\"integer\",\"minimum\":3}}");
        assertInstanceOf(ConstraintSpec.JsonSchema.class, s);
        assertTrue(s.matches("3") && s.matches("17") && !s.matches("2"));
        assertEquals(s, parse("{\"json_schema\":\"{\\\"type\\\":\\\"integer\\\",\\\"minimum\\\":3}\"}"));
        assertEquals(new ConstraintSpec.Grammar("root ::= \"a\"+", ConstraintSpec.Syntax.GBNF), parse("{\"grammar\":\"root ::= \\\"a\\\"+\"}"));
        assertEquals(new ConstraintSpec.Grammar("start: \"a\"+", ConstraintSpec.Syntax.LARK), parse("{\"grammar\":\"start: \\\"a\\\"+\",\"syntax\":\"lark\"}"));
        assertEquals(ConstraintSpec.Syntax.LARK, ((ConstraintSpec.Grammar) parse("{\"grammar\":\"start: \\\"a\\\"\",\"syntax\":\"EBNF\"}")).syntax());
        assertTrue(parse("{\"grammar\":\"root ::= \\\"a\\\"+\"}").matches("aaa"));
    }

    @Test void errorsNameTheFieldAndReason() {
        for (var c : List.of(
                List.of("[1]", "must be a JSON object"),
                List.of("{}", "exactly one of json_schema, regex, choice, grammar is needed, found none"),
                List.of("{\"regex\":\"a\",\"choice\":[\"a\"]}", "found regex, choice"),
                List.of("{\"regexp\":\"a\"}", "unknown field 'regexp'"),
                List.of("{\"regex\":5}", "regex must be a string"),
                List.of("{\"choice\":[]}", "choice must be a non-empty array"),
                List.of("{\"choice\":[\"a\",1]}", "choice[1] must be a string"),
                List.of("{\"json_schema\":5}", "json_schema must be a schema object"),
                List.of("{\"grammar\":{}}", "grammar must be a string"),
                List.of("{\"grammar\":\"root ::= \\\"a\\\"\",\"syntax\":\"peg\"}", "unknown grammar syntax 'peg'"),
                List.of("{\"regex\":\"a\",\"syntax\":\"gbnf\"}", "'syntax' only goes with 'grammar'"))) {
            String m = error(c.get(0));
            assertTrue(m.contains(c.get(1)), c.get(0) + " -> " + m);
        }
    }

    @Test void checkSurfacesCompileErrorsEarly() throws Exception {
        ConstraintSpec bad = parse("{\"grammar\":\"root ::= foo\"}");
        String m = assertThrows(ConstraintException.class, bad::check).getMessage();
        assertTrue(m.contains("line 1, column 10") && m.contains("'foo' is used but never defined"), m);
    }
}
