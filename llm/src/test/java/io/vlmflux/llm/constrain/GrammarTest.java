package io.vlmflux.llm.constrain;

import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Grammars (GBNF and Lark-like): the compiled automaton (byte DFA or pushdown) agrees with a straightforward
 * character-level matcher on random grammars and strings; token rows of the pushdown equal a brute-force walk of every
 * token; syntax errors name line, column and reason; left recursion and never-finishing rules are refused.
 */
class GrammarTest {
    static final String JSON_GBNF = """
            # JSON (recursive), llama.cpp style
            root   ::= value
            value  ::= object | array | string | number | ("true" | "false" | "null")
            object ::=
              "{" ws (
                        string ":" ws value
                ("," ws string ":" ws value)*
              )? "}"
            array  ::= "[" ws ( value ("," ws value)* )? "]"
            string ::= "\\"" ( [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\\"" ws
            number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
            ws ::= | " " | "\\n" [ \\t]{0,20}
            """;

    private static List<String> samples(RandomGrammars g, SplittableRandom r) {
        List<String> out = new ArrayList<>();
        for (int j = 0; j < 30; j++) {
            String s = g.sentence(r);
            if (s == null) continue;
            out.add(s);
            if (!s.isEmpty()) {   // mutations near the language
                int cut = r.nextInt(s.length() + 1);
                out.add(s.substring(0, cut));
                out.add(s.substring(0, cut) + RandomGrammars.LITS[r.nextInt(RandomGrammars.LITS.length)] + s.substring(cut));
            }
        }
        for (int j = 0; j < 30; j++) {
            StringBuilder sb = new StringBuilder();
            int n = r.nextInt(6);
            for (int k = 0; k < n; k++) sb.append(RandomGrammars.LITS[r.nextInt(RandomGrammars.LITS.length)]);
            out.add(sb.toString());
        }
        return out;
    }

    @Test void randomGrammarsAgreeWithAReferenceMatcher() {
        SplittableRandom r = new SplittableRandom(4242);
        int positives = 0, checks = 0, recursive = 0, grammars = 0;
        for (int i = 0; i < 400; i++) {
            RandomGrammars g = RandomGrammars.random(r);
            boolean lark = i % 3 == 2;
            String text = lark ? g.lark() : g.gbnf();
            Language lang = Constraints.language(ConstraintSpec.grammar(text, lark ? ConstraintSpec.Syntax.LARK : ConstraintSpec.Syntax.GBNF));
            grammars++;
            if (lang instanceof Pushdown) recursive++;
            for (String s : samples(g, r)) {
                boolean want = g.matches(s);
                assertEquals(want, lang.matches(s.getBytes(StandardCharsets.UTF_8)), () -> text + "on \"" + s + "\"");
                if (want) positives++;
                checks++;
            }
        }
        assertTrue(recursive > grammars / 3 && recursive < grammars, "both kinds compiled: " + recursive + " recursive of " + grammars);
        assertTrue(positives > checks / 5, "enough positives: " + positives + " of " + checks);
    }

    /** Brute force over the pushdown: every non-special token whose bytes walk from the configuration. */
    static BitSet bruteForce(Pushdown pd, Tokenizer t, int state, int eos) {
        BitSet b = new BitSet();
        for (int id = 0; id < t.vocabSize(); id++) {
            if (t.isSpecial(id)) continue;
            byte[] bs = t.tokenBytes(id);
            if (bs == null || bs.length == 0) continue;
            if (pd.walk(state, bs) != Pushdown.DEAD) b.set(id);
        }
        if (pd.accepts(state)) b.set(eos);
        return b;
    }

    static int checkRows(Tokenizer t, ConstraintSpec spec, SplittableRandom r, int walks, int steps) {
        int eos = t.eosId().orElseThrow(), compared = 0;
        Constraint c = Constraints.compile(spec, t);
        if (!(c instanceof GrammarConstraint gc)) return 0;
        Pushdown pd = gc.pushdown();
        for (int w = 0; w < walks; w++) {
            int s = c.start();
            for (int step = 0; step < steps; step++) {
                BitSet got = c.allowed(s);
                int st = s;
                assertEquals(bruteForce(pd, t, s, eos), got, () -> spec + " state " + st);
                compared++;
                got.clear(eos);
                if (got.isEmpty()) break;
                int k = r.nextInt(got.cardinality()), tok = got.nextSetBit(0);
                for (int j = 0; j < k; j++) tok = got.nextSetBit(tok + 1);
                s = c.advance(s, tok);
            }
        }
        return compared;
    }

    @Test void pushdownRowsEqualBruteForceOnTheFixtureVocabulary() {
        Tokenizer t = Tokenizer.load(Fixtures.dir("tiny-qwen3"));
        SplittableRandom r = new SplittableRandom(77);
        int compared = checkRows(t, ConstraintSpec.grammar(JSON_GBNF), r, 20, 40);
        for (int i = 0; i < 150; i++) compared += checkRows(t, ConstraintSpec.grammar(RandomGrammars.random(r).gbnf()), r, 2, 8);
        assertTrue(compared > 500, "compared " + compared);
    }

    @Test void jsonGrammar() {
        ConstraintSpec g = ConstraintSpec.grammar(JSON_GBNF);
        assertInstanceOf(Pushdown.class, Constraints.language(g));
        for (String ok : List.of("{}", "[]", "{\"a\": [1, 2.5, {\"b\": null}], \"c\": \"x\\n\"}", "[[[[[[true]]]]]]", "-0.5e7", "\"\\u00e9\""))
            assertTrue(g.matches(ok), ok);
        for (String bad : List.of("{", "[1,]", "{\"a\" 1}", "[[[[[]]]]", "01", "\"\\q\"", "{}}"))
            assertFalse(g.matches(bad), bad);
    }

    private static String error(String grammar, ConstraintSpec.Syntax syntax) {
        return assertThrows(ConstraintException.class, () -> Constraints.language(ConstraintSpec.grammar(grammar, syntax))).getMessage();
    }

    @Test void errorsNamePositionAndReason() {
        var gbnf = ConstraintSpec.Syntax.GBNF;
        String[][] cases = {
                {"root ::= \"a\" foo", "line 1, column 14", "'foo' is used but never defined"},
                {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1", "defined twice"},
                {"root ::= (\"a\" | \"b\"", "line 1, column 10", "unclosed '('"},
                {"root ::= \"abc", "line 1, column 10", "unterminated string literal"},
                {"root ::= [a-", "line 1, column 10", "unterminated character class"},
                {"root ::= [z-a]", "line 1, column 11", "empty range"},
                {"root ::= \"a\"{3,1}", "line 1, column 13", "maximum is below the minimum"},
                {"root ::= \"\\q\"", "line 1, column 11", "unknown escape '\\q'"},
                {"root ::= <think>", "line 1, column 10", "token references"},
                {"a ::= \"x\"", "line 1, column 1", "no start rule 'root'"},
                {"root ::= \"x\" @", "line 1, column 14", "unexpected '@'"},
                {"# nothing\n", "line 2, column 1", "the grammar is empty"},
                {"root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"", "rule 'expr' (line 2, column 1)", "left recursion"},
                {"root ::= a\na ::= b \"x\"\nb ::= \"\" | a", "rule 'a'", "left recursion"},
                {"root ::= \"x\" loop\nloop ::= \"(\" loop \")\"", "rule 'loop' (line 2, column 1)", "can never finish"},
        };
        for (String[] c : cases) {
            String m = error(c[0], gbnf);
            assertTrue(m.contains(c[1]) && m.contains(c[2]), c[0] + " -> " + m);
        }
        var lark = ConstraintSpec.Syntax.LARK;
        String[][] larkCases = {
                {"start: \"a\"\n%import common.WS", "line 2, column 1", "directive '%import'"},
                {"start: /a(?=b)/", "line 1, column 8", "lookaround"},
                {"start: \"a\"i", "line 1, column 11", "literal flags"},
                {"start: [\"a\"", "line 1, column 8", "expected ']'"},
                {"begin: \"a\"", "line 1, column 1", "no start rule 'start'"},
        };
        for (String[] c : larkCases) {
            String m = error(c[0], lark);
            assertTrue(m.contains(c[1]) && m.contains(c[2]), c[0] + " -> " + m);
        }
    }

    @Test void larkFeatures() {
        ConstraintSpec g = ConstraintSpec.grammar("""
                // a list of signed numbers
                ?start: "[" [item ("," item)*] "]"
                item: SIGN? DIGIT ~ 1..3 -> num
                SIGN: "+" | "-"
                DIGIT: "0".."9"
                """, ConstraintSpec.Syntax.LARK);
        for (String ok : List.of("[]", "[1]", "[-12,+345,0]")) assertTrue(g.matches(ok), ok);
        for (String bad : List.of("[", "[1234]", "[1,]", "[--1]")) assertFalse(g.matches(bad), bad);
    }

    @Test void nonRecursiveGrammarsBecomeAByteDfa() {
        assertInstanceOf(ByteDfa.class, Constraints.language(ConstraintSpec.grammar("root ::= greeting \" \" name\ngreeting ::= \"hi\" | \"hello\"\nname ::= [A-Z] [a-z]*")));
    }
}
