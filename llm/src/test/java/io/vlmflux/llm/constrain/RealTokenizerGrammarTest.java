package io.vlmflux.llm.constrain;

import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.BitSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The pushdown's token index on the real Qwen3 (151k ids) and Llama 3 (128k ids) vocabularies for the recursive JSON
 * grammar: rows along the natural tokenization of nested documents equal a brute-force walk of every token (special
 * tokens never allowed, EOS exactly where the document is complete), and the per-token mask-computation cost is
 * printed (new configuration: union of cached frame rows plus the context-dependent walk; revisited: a lookup).
 */
class RealTokenizerGrammarTest {
    static final List<String> DOCS = List.of(
            "{\"name\": \"Zoë 🚀 \\\"x\\\"\", \"tags\": [\"a\", \"b\", [1, 2, {\"deep\": [true, false, null]}]], \"n\": -12.5e3}",
            "[{\"id\": 1, \"kids\": [{\"id\": 2, \"kids\": [{\"id\": 3, \"kids\": []}]}]}, {\"id\": 4}]",
            "{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": [[[[\"deep\"]]]]}}}}}");

    /** JIT warm-up on the fixture vocabulary, so the figures below measure the algorithm rather than the compiler. */
    @org.junit.jupiter.api.BeforeAll static void warmUp() {
        Tokenizer t = Tokenizer.load(io.vlmflux.llm.Fixtures.dir("tiny-qwen3"));
        for (int round = 0; round < 3; round++) {
            Constraint c = Constraints.compile(ConstraintSpec.grammar(GrammarTest.JSON_GBNF + "\n# round " + round), t);
            for (String doc : DOCS) {
                int s = c.start();
                for (int id : t.encode(doc)) { c.allowedWords(s, t.vocabSize()); s = c.advance(s, id); }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "llama3"})
    void jsonGrammarRowsMatchBruteForceAndCostIsReported(String which) {
        Tokenizer t = RealTokenizerIndexTest.load(which);
        int eos = t.eosId().orElseThrow();
        Constraints.compile(ConstraintSpec.regex("warm"), t);   // vocabulary index built once per tokenizer
        long c0 = System.nanoTime();
        GrammarConstraint c = (GrammarConstraint) Constraints.compile(ConstraintSpec.grammar(GrammarTest.JSON_GBNF), t);
        long c1 = System.nanoTime();
        Pushdown pd = c.pushdown();
        long tokens = 0, newNanos = 0, newRows = 0, hitNanos = 0, hits = 0;
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int pass = 0; pass < 2; pass++) {
            for (String doc : DOCS) {
                int s = c.start();
                for (int id : t.encode(doc)) {
                    boolean fresh = seen.add(s);
                    long a = System.nanoTime();
                    long[] w = c.allowedWords(s, t.vocabSize());
                    long dt = System.nanoTime() - a;
                    if (fresh) { newNanos += dt; newRows++; } else { hitNanos += dt; hits++; }
                    assertTrue((w[id / 64] >>> (id % 64) & 1) != 0, which + ": the document's own token " + id + " is allowed");
                    if (pass == 0 && tokens % 3 == 0) {
                        BitSet got = c.allowed(s);
                        assertEquals(GrammarTest.bruteForce(pd, t, s, eos), got, which + " state " + s + " in " + doc);
                        for (int sp = 0; sp < t.vocabSize(); sp++) if (t.isSpecial(sp) && sp != eos) assertFalse(got.get(sp), "special token " + sp);
                    }
                    assertFalse(c.allowed(s).get(eos) && !pd.accepts(s));
                    s = c.advance(s, id);
                    tokens++;
                }
                assertTrue(c.accepts(s) && c.allowed(s).get(eos), "EOS allowed once the document is complete");
            }
        }
        long[] fs = c.frameStats();
        System.out.printf("[constrain] %s JSON grammar: compile %.1f ms; %d tokens: %d new configurations %.2f ms avg per token "
                        + "(frames classified %d, context-dependent tokens %d in total), %d revisits %.4f ms avg; %d configurations, %d distinct rows%n",
                which, (c1 - c0) / 1e6, tokens, newRows, newNanos / 1e6 / Math.max(newRows, 1), fs[0], fs[1], hits,
                hitNanos / 1e6 / Math.max(hits, 1), pd.configs(), c.distinctRows());
        // the steady state: decoding new documents of the same shapes after warm-up (frames mostly classified)
        List<String> fresh = List.of("{\"x\": [{\"y\": [1, [2, [3, [4]]]]}, \"z\"], \"w\": {\"v\": {\"u\": \"t\"}}}",
                "[[{\"k\": \"v\"}, [[{\"q\": [null, true]}]]], {\"p\": -0.25}]",
                "{\"list\": [{\"a\": 1, \"b\": [2, 3]}, {\"a\": 4, \"b\": [{\"c\": [5]}]}], \"end\": \"yes\"}");
        long all = 0, n = 0, newOnly = 0, nNew = 0;
        int s = c.start();
        for (String doc : fresh) {
            s = c.start();
            for (int id : t.encode(doc)) {
                boolean isNew = seen.add(s);
                long a = System.nanoTime();
                c.allowedWords(s, t.vocabSize());
                s = c.advance(s, id);
                long dt = System.nanoTime() - a;
                all += dt;
                n++;
                if (isNew) { newOnly += dt; nNew++; }
            }
            assertTrue(c.accepts(s));
        }
        System.out.printf("[constrain] %s JSON grammar, %d tokens of 3 new nested documents after warm-up: %.3f ms per token "
                        + "(mask words + advance); %d new configurations among them %.3f ms each%n",
                which, n, all / 1e6 / n, nNew, newOnly / 1e6 / Math.max(nNew, 1));
        assertTrue(c.accepts(s));
    }
}
