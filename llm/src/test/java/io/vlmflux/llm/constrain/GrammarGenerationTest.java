package io.vlmflux.llm.constrain;

import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Constrained generation with a real tiny fixture model on the CPU for random grammars (GBNF and Lark, recursive and
 * not) and random regexes: every finished output is a sentence by an independent matcher (the grammar generator's own
 * reference matcher, java.util.regex), EOS comes exactly where the constraint accepts, and under greedy decoding each
 * token is the argmax over the allowed tokens (checked against a full-sequence forward's logits).
 */
class GrammarGenerationTest {
    private static List<TokenEvent> generate(Generator gen, int[] prompt, Constraint c, Tokenizer tok, boolean greedy, int seed, int max) {
        SamplingParams p = greedy ? SamplingParams.greedyDecoding() : SamplingParams.sample(1.0, 0, 1.0, 0.0, seed);
        GenerateOptions o = new GenerateOptions(p, max, Set.of(), List.of(), 0, null, TokenControls.constrained(c));
        return gen.generateBlocking(MultimodalPrompt.text(prompt), o, tok.streamingDecoder(true));
    }

    @Test void randomGrammarsAndRegexesDecodeToSentences() throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir("tiny-qwen3"));
        int[] prompt = tok.encode("Say something: ");
        SplittableRandom r = new SplittableRandom(31);
        int grammarsStopped = 0, regexesStopped = 0, recursive = 0, greedyChecked = 0;
        try (Decoder dec = Models.load(Fixtures.dir("tiny-qwen3"), "cpu"); Generator gen = new Generator(dec, null, null)) {
            for (int i = 0; i < 160; i++) {
                RandomGrammars g = RandomGrammars.random(r);
                boolean lark = i % 4 == 3;
                ConstraintSpec spec = ConstraintSpec.grammar(lark ? g.lark() : g.gbnf(), lark ? ConstraintSpec.Syntax.LARK : ConstraintSpec.Syntax.GBNF);
                Constraint c = Constraints.compile(spec, tok);
                if (c instanceof GrammarConstraint) recursive++;
                boolean greedy = i % 2 == 0;
                List<TokenEvent> ev = generate(gen, prompt, c, tok, greedy, i, 48);
                String where = "grammar " + i + ":\n" + (lark ? g.lark() : g.gbnf());
                if (check(ev, c, tok, where, text -> g.matches(text))) grammarsStopped++;
                if (greedy) { ConstrainedGenerationTest.assertGreedyOverAllowedPrefix(dec, c, prompt, ids(ev), where); greedyChecked++; }
            }
            for (int i = 0; i < 120; i++) {
                String re = RegexAutomatonTest.randomRegex(r, 0);
                Constraint c;
                try {
                    c = Constraints.compile(ConstraintSpec.regex(re), tok);
                } catch (ConstraintException e) {
                    continue;   // empty language
                }
                boolean greedy = i % 2 == 0;
                List<TokenEvent> ev = generate(gen, prompt, c, tok, greedy, i, 48);
                Pattern p = Pattern.compile(re);
                if (check(ev, c, tok, "regex " + re, text -> p.matcher(text).matches())) regexesStopped++;
                if (greedy) { ConstrainedGenerationTest.assertGreedyOverAllowedPrefix(dec, c, prompt, ids(ev), "regex " + re); greedyChecked++; }
            }
        }
        assertTrue(recursive > 40, "recursive grammars decoded: " + recursive);
        assertTrue(grammarsStopped > 100, "grammar outputs that finished: " + grammarsStopped + " of 160");
        assertTrue(regexesStopped > 60, "regex outputs that finished: " + regexesStopped);
        assertTrue(greedyChecked > 100, "greedy runs checked: " + greedyChecked);
    }

    private static int[] ids(List<TokenEvent> ev) { return ev.stream().mapToInt(TokenEvent::tokenId).toArray(); }

    /** True when the output finished (then it must be a sentence); a length cut must leave a live prefix. */
    private static boolean check(List<TokenEvent> ev, Constraint c, Tokenizer tok, String where, java.util.function.Predicate<String> sentence) {
        TokenEvent last = ev.get(ev.size() - 1);
        StringBuilder text = new StringBuilder();
        ev.forEach(e -> text.append(e.textDelta()));
        int state = c.start();
        for (TokenEvent e : ev) state = c.advance(state, e.tokenId());   // throws if any token was not allowed
        if (last.finishReason() == FinishReason.STOP) {
            assertTrue(c.isEnd(last.tokenId()), where);
            assertTrue(c.accepts(state), where);
            int[] out = ids(ev);
            assertEquals(text.toString(), tok.decode(Arrays.copyOf(out, out.length - 1)), where);
            assertTrue(sentence.test(text.toString()), () -> where + " -> \"" + text + "\"");
            return true;
        }
        assertEquals(FinishReason.LENGTH, last.finishReason(), where);
        return false;
    }
}
