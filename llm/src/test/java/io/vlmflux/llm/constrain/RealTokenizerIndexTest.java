package io.vlmflux.llm.constrain;

import io.vlmflux.llm.tokenizer.RealTokenizers;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.BitSet;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The token-level index on the real Qwen3 (151k ids) and Llama 3 (128k ids) vocabularies: allowed sets equal a
 * brute-force walk of every token, special tokens are never allowed except the end token in accepting states, and the
 * compile / per-state costs are printed.
 */
class RealTokenizerIndexTest {
    static final String SCHEMA = """
            {"type":"object","properties":{
              "name":{"type":"string","maxLength":40},
              "age":{"type":"integer","minimum":0,"maximum":150},
              "tags":{"type":"array","items":{"enum":["a","b","long tag"]},"maxItems":5},
              "score":{"type":"number"},
              "ok":{"type":"boolean"},
              "kind":{"anyOf":[{"type":"null"},{"type":"string","pattern":"[A-Z][a-z]+"}]}},
             "required":["name","age","ok"],"additionalProperties":false}""";

    static Tokenizer load(String which) {
        Path dir = which.equals("qwen3") ? RealTokenizers.qwen3() : RealTokenizers.llama3();
        return Tokenizer.load(dir);
    }

    /** Brute force: every non-special token whose bytes keep the automaton alive from {@code state}. */
    static BitSet bruteForce(ByteDfa d, Tokenizer t, int state, int eos) {
        BitSet b = new BitSet();
        for (int id = 0; id < t.vocabSize(); id++) {
            if (t.isSpecial(id)) continue;
            byte[] bs = t.tokenBytes(id);
            if (bs == null || bs.length == 0) continue;
            if (d.walk(state, bs) != ByteDfa.DEAD) b.set(id);
        }
        if (d.accepts(state)) b.set(eos);
        return b;
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "llama3"})
    void choiceAllowsExactlyThePrefixTokens(String which) {
        Tokenizer t = load(which);
        int eos = t.eosId().orElseThrow();
        Constraint c = Constraints.compile(ConstraintSpec.choice("yes", "no"), t);
        BitSet want = new BitSet();
        for (int id = 0; id < t.vocabSize(); id++) {
            if (t.isSpecial(id)) continue;
            String s = new String(t.tokenBytes(id), StandardCharsets.ISO_8859_1);
            if (!s.isEmpty() && ("yes".startsWith(s) || "no".startsWith(s))) want.set(id);
        }
        assertEquals(want, c.allowed(c.start()));
        assertTrue(want.cardinality() >= 4, "y, ye, yes, n, no at least: " + want);
        int s = c.start();
        for (int id : t.encode("yes")) s = c.advance(s, id);
        assertTrue(c.accepts(s));
        BitSet end = new BitSet();
        end.set(eos);
        assertEquals(end, c.allowed(s), "after a full choice only the end token is allowed");
        assertSame(c, Constraints.compile(ConstraintSpec.choice("yes", "no"), t), "compiled constraints are cached");
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "llama3"})
    void schemaIndexMatchesBruteForceAndCostIsReported(String which) {
        Tokenizer t = load(which);
        int eos = t.eosId().orElseThrow();
        ConstraintSpec spec = ConstraintSpec.jsonSchema(SCHEMA);
        long v0 = System.nanoTime();
        Constraints.compile(ConstraintSpec.regex("warm"), t);   // vocabulary index built once per tokenizer
        long v1 = System.nanoTime();
        long t0 = System.nanoTime();
        TokenConstraint c = (TokenConstraint) Constraints.compile(spec, t);
        long t1 = System.nanoTime();
        c.allowed(c.start());
        long t2 = System.nanoTime();
        String instance = "{\"name\":\"Zoë 🚀 \\\"x\\\"\",\"age\":42,\"tags\":[\"long tag\",\"a\"],\"score\":-1.5e3,\"ok\":true,\"kind\":\"Cat\"}";
        int[] ids = t.encode(instance);
        ByteDfa d = Constraints.automaton(spec);
        int s = c.start();
        long rows = 0, rowNanos = 0;
        for (int id : ids) {
            long a = System.nanoTime();
            BitSet got = c.allowed(s);
            rowNanos += System.nanoTime() - a;
            rows++;
            assertEquals(bruteForce(d, t, s, eos), got, which + " state " + s);
            for (int sp = 0; sp < t.vocabSize(); sp++) if (t.isSpecial(sp) && sp != eos) assertFalse(got.get(sp), "special token " + sp);
            s = c.advance(s, id);
        }
        assertTrue(c.accepts(s));
        assertTrue(c.allowed(s).get(eos));
        System.out.printf("[constrain] %s: %d ids, schema automaton %d states, compile %.1f ms, first row %.1f ms, "
                        + "%d rows (one per token of a %d-token instance) %.2f ms avg%n", which, t.vocabSize(), c.automatonStates(),
                (t1 - t0) / 1e6, (t2 - t1) / 1e6, rows, ids.length, rowNanos / 1e6 / rows);
        long e0 = System.nanoTime();
        for (int st = 0; st < c.automatonStates(); st++) c.allowed(st);
        System.out.printf("[constrain] %s: vocabulary index (first compile) %.1f ms; rows of all %d states %.0f ms, %d distinct%n",
                which, (v1 - v0) / 1e6, c.automatonStates(), (System.nanoTime() - e0) / 1e6, c.distinctRows());
        float[] logits = new float[t.vocabSize()];
        long m0 = System.nanoTime();
        for (int i = 0; i < 100; i++) c.mask(c.start(), logits);
        System.out.printf("[constrain] %s: mask of a cached row %.3f ms%n", which, (System.nanoTime() - m0) / 1e6 / 100);
        assertEquals(Float.NEGATIVE_INFINITY, logits[Arrays.stream(t.encode("x")).findFirst().orElseThrow()]);
    }
}
