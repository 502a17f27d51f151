package io.vlmflux.llm.constrain;

import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.tokenizer.RealTokenizers;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.util.BitSet;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The per-state token rows (sorted-vocabulary walk with dead-prefix skips) equal a brute-force walk of every token, for
 * random regexes at states reached by random token walks; advance agrees with walking the token's bytes.
 */
class TokenIndexTest {
    private static int checkRandomRegexes(Tokenizer t, long seed, int regexes, int steps) {
        SplittableRandom r = new SplittableRandom(seed);
        int eos = t.eosId().orElseThrow(), compared = 0;
        for (int i = 0; i < regexes; i++) {
            String re = RegexAutomatonTest.randomRegex(r, 0);
            ConstraintSpec spec = ConstraintSpec.regex(re);
            ByteDfa d;
            try {
                d = Constraints.automaton(spec);
            } catch (ConstraintException e) {
                continue;   // empty language
            }
            Constraint c = Constraints.compile(spec, t);
            int s = c.start();
            for (int step = 0; step < steps; step++) {
                BitSet got = c.allowed(s);
                assertEquals(RealTokenizerIndexTest.bruteForce(d, t, s, eos), got, () -> "regex " + re);
                compared++;
                got.clear(eos);
                if (got.isEmpty()) break;
                int k = r.nextInt(got.cardinality()), tok = got.nextSetBit(0);
                for (int j = 0; j < k; j++) tok = got.nextSetBit(tok + 1);
                int next = c.advance(s, tok);
                assertEquals(d.walk(s, t.tokenBytes(tok)), next);
                s = next;
            }
        }
        return compared;
    }

    @Test void randomRegexRowsOnTheFixtureVocabulary() {
        Tokenizer t = Tokenizer.load(Fixtures.dir("tiny-qwen3"));
        assertTrue(checkRandomRegexes(t, 21, 300, 6) > 600);
    }

    @Test void randomRegexRowsOnTheRealQwenVocabulary() {
        Tokenizer t = Tokenizer.load(RealTokenizers.qwen3());
        assertTrue(checkRandomRegexes(t, 22, 15, 4) > 20);
    }

    @Test void disallowedAdvanceAndBadStatesAreRefused() {
        Tokenizer t = Tokenizer.load(Fixtures.dir("tiny-qwen3"));
        Constraint c = Constraints.compile(ConstraintSpec.choice("ab"), t);
        int x = t.encode("x")[0];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.advance(c.start(), x));
        assertTrue(e.getMessage().contains("token " + x), e.getMessage());
        int eos = t.eosId().orElseThrow();
        assertThrows(IllegalArgumentException.class, () -> c.advance(c.start(), eos), "end token before the output is complete");
        assertThrows(IllegalArgumentException.class, () -> c.allowed(12345));
        ConstraintException none = assertThrows(ConstraintException.class, () -> Constraints.compile(ConstraintSpec.choice(), t));
        assertTrue(none.getMessage().contains("at least one option"), none.getMessage());
    }
}
