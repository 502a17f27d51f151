package io.vlmflux.llm.constrain;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Constrained generation with the real tiny fixture models on the CPU: random schemas decode (greedy and sampled) to
 * JSON that parses and validates; under greedy decoding each token is the argmax of the full-sequence forward's logits
 * over the allowed tokens; logit bias and logprobs behave as documented.
 */
class ConstrainedGenerationTest {
    private static final ObjectMapper STRICT = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    @ParameterizedTest
    @ValueSource(strings = {"tiny-qwen2", "tiny-qwen3", "tiny-llama"})
    void randomSchemasDecodeToValidJson(String model) throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir(model));
        int[] prompt = tok.encode("Answer in JSON: ");
        SplittableRandom r = new SplittableRandom(model.hashCode());
        Set<String> distinct = new java.util.HashSet<>();
        int tokens = 0;
        try (Decoder dec = Models.load(Fixtures.dir(model), "cpu"); Generator gen = new Generator(dec, null, null)) {
            for (int i = 0; i < 100; i++) {
                ObjectNode schema = Schemas.random(r, 0);
                Constraint c = Constraints.compile(ConstraintSpec.jsonSchema(schema.toString()), tok);
                boolean greedy = i % 2 == 0;
                SamplingParams p = greedy ? SamplingParams.greedyDecoding() : SamplingParams.sample(1.0, 0, 1.0, 0.0, i);
                GenerateOptions o = new GenerateOptions(p, 2000, Set.of(), List.of(), 0, null, TokenControls.constrained(c));
                List<TokenEvent> ev = gen.generateBlocking(MultimodalPrompt.text(prompt), o, tok.streamingDecoder(true));
                TokenEvent last = ev.get(ev.size() - 1);
                String where = model + " schema " + i + " " + schema;
                assertEquals(FinishReason.STOP, last.finishReason(), where);
                assertTrue(c.isEnd(last.tokenId()), where);
                StringBuilder text = new StringBuilder();
                ev.forEach(e -> text.append(e.textDelta()));
                JsonNode v = STRICT.readTree(text.toString());
                assertNull(Schemas.validate(schema, v, ""), () -> where + " -> " + text);
                int[] out = ev.stream().mapToInt(TokenEvent::tokenId).toArray();
                assertEquals(text.toString(), tok.decode(Arrays.copyOf(out, out.length - 1)));
                if (greedy) assertGreedyOverAllowed(dec, c, prompt, out, where);
                distinct.add(text.toString());
                tokens += out.length;
            }
        }
        assertTrue(distinct.size() > 50, "outputs are varied: " + distinct.size() + " distinct of 100");
        assertTrue(tokens > 500, "outputs span many tokens: " + tokens);
    }

    /** Recomputes every step's logits with one full forward and checks the chosen token is the best allowed one. */
    static void assertGreedyOverAllowed(Decoder dec, Constraint c, int[] prompt, int[] out, String where) {
        int[] all = new int[prompt.length + out.length - 1];
        System.arraycopy(prompt, 0, all, 0, prompt.length);
        System.arraycopy(out, 0, all, prompt.length, out.length - 1);
        int vocab = dec.config().vocabSize();
        float[] logits;
        try (KvCache kv = dec.newCache(all.length)) {
            logits = dec.forward(kv, ForwardInput.tokens(all), true);
        }
        int state = c.start();
        for (int j = 0; j < out.length; j++) {
            int row = (prompt.length - 1 + j) * vocab;
            BitSet allowed = c.allowed(state);
            assertTrue(allowed.get(out[j]), where + ": step " + j + " chose disallowed token " + out[j]);
            float best = Float.NEGATIVE_INFINITY;
            int arg = -1;
            for (int t = allowed.nextSetBit(0); t >= 0 && t < vocab; t = allowed.nextSetBit(t + 1))
                if (logits[row + t] > best) { best = logits[row + t]; arg = t; }
            float bestF = best;
            int argF = arg, jF = j;
            assertTrue(logits[row + out[j]] >= best - 1e-3f,
                    () -> where + ": step " + jF + " chose " + out[jF] + " (" + logits[row + out[jF]] + "), best allowed " + argF + " (" + bestF + ")");
            state = c.advance(state, out[j]);
        }
        assertTrue(c.accepts(state), where);
    }

    /** {@link #assertGreedyOverAllowed} for an output that may have been cut by the token limit (no final end token). */
    static void assertGreedyOverAllowedPrefix(Decoder dec, Constraint c, int[] prompt, int[] out, String where) {
        int[] all = new int[prompt.length + out.length - 1];
        System.arraycopy(prompt, 0, all, 0, prompt.length);
        System.arraycopy(out, 0, all, prompt.length, out.length - 1);
        int vocab = dec.config().vocabSize();
        float[] logits;
        try (KvCache kv = dec.newCache(all.length)) {
            logits = dec.forward(kv, ForwardInput.tokens(all), true);
        }
        int state = c.start();
        for (int j = 0; j < out.length; j++) {
            int row = (prompt.length - 1 + j) * vocab;
            BitSet allowed = c.allowed(state);
            assertTrue(allowed.get(out[j]), where + ": step " + j + " chose disallowed token " + out[j]);
            float best = Float.NEGATIVE_INFINITY;
            for (int t = allowed.nextSetBit(0); t >= 0 && t < vocab; t = allowed.nextSetBit(t + 1)) best = Math.max(best, logits[row + t]);
            float bestF = best;
            int jF = j;
            assertTrue(logits[row + out[j]] >= best - 1e-3f, () -> where + ": step " + jF + " chose " + out[jF] + " (" + logits[row + out[jF]] + "), best allowed " + bestF);
            state = c.advance(state, out[j]);
        }
    }

    @Test void logprobsAndLogitBias() throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir("tiny-qwen2"));
        int[] prompt = tok.encode("Hello");
        try (Decoder dec = Models.load(Fixtures.dir("tiny-qwen2"), "cpu"); Generator gen = new Generator(dec, null, null)) {
            Constraint c = Constraints.compile(ConstraintSpec.choice("yes", "no", "maybe"), tok);
            GenerateOptions o = GenerateOptions.greedy(20, Set.of()).withControls(TokenControls.constrained(c).withLogprobs(5));
            List<TokenEvent> ev = gen.generateBlocking(MultimodalPrompt.text(prompt), o, tok.streamingDecoder(true));
            StringBuilder text = new StringBuilder();
            int state = c.start();
            for (TokenEvent e : ev) {
                text.append(e.textDelta());
                Logprobs lp = e.logprobs();
                assertNotNull(lp);
                assertFalse(lp.top().isEmpty());
                assertEquals(e.tokenId(), lp.top().get(0).tokenId(), "greedy picks the most likely token");
                assertEquals(lp.chosen(), lp.top().get(0).logprob(), 1e-6);
                double mass = 0;
                BitSet allowed = c.allowed(state);
                for (int k = 0; k < lp.top().size(); k++) {
                    Logprobs.Entry x = lp.top().get(k);
                    assertTrue(allowed.get(x.tokenId()), "masked tokens have no probability: " + x);
                    if (k > 0) assertTrue(x.logprob() <= lp.top().get(k - 1).logprob());
                    mass += Math.exp(x.logprob());
                }
                assertTrue(mass <= 1 + 1e-4, "probability mass " + mass);
                if (lp.top().size() < 5) assertEquals(1.0, mass, 1e-3, "all allowed tokens listed: their mass is 1");
                state = c.advance(state, e.tokenId());
            }
            assertTrue(List.of("yes", "no", "maybe").contains(text.toString()), text.toString());

            // bias: the unconstrained greedy first token, banned by -100, is not chosen; another forced by +100 is
            List<TokenEvent> plain = gen.generateBlocking(MultimodalPrompt.text(prompt), GenerateOptions.greedy(1, Set.of()), null);
            int first = plain.get(0).tokenId();
            int forced = (first + 17) % 2000;
            List<TokenEvent> banned = gen.generateBlocking(MultimodalPrompt.text(prompt),
                    GenerateOptions.greedy(1, Set.of()).withControls(TokenControls.none().withLogitBias(Map.of(first, -100f))), null);
            assertNotEquals(first, banned.get(0).tokenId());
            List<TokenEvent> pushed = gen.generateBlocking(MultimodalPrompt.text(prompt),
                    GenerateOptions.greedy(1, Set.of()).withControls(TokenControls.none().withLogitBias(Map.of(forced, 100f))), null);
            assertEquals(forced, pushed.get(0).tokenId());
            assertNull(pushed.get(0).logprobs(), "logprobs only when asked for");
            GenerateOptions beyond = GenerateOptions.greedy(1, Set.of()).withControls(TokenControls.none().withLogitBias(Map.of(999_999, 1f)));
            IllegalArgumentException x = assertThrows(IllegalArgumentException.class, () -> gen.generateBlocking(MultimodalPrompt.text(prompt), beyond, null));
            assertTrue(x.getMessage().contains("999999"), x.getMessage());
        }
    }

    @Test void batchGeneratorRunsConstrainedAndPlainSequencesTogether() throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir("tiny-qwen3"));
        int[] prompt = tok.encode("Pick a colour: ");
        ConstraintSpec spec = ConstraintSpec.regex("(red|green|blue)( and (red|green|blue)){0,2}");
        Constraint c = Constraints.compile(spec, tok);
        reactor.core.scheduler.Scheduler compute = reactor.core.scheduler.Schedulers.newSingle("constrained-batch-test");
        try (Decoder dec = Models.load(Fixtures.dir("tiny-qwen3"), "cpu");
             io.vlmflux.llm.BatchGenerator gen = new io.vlmflux.llm.BatchGenerator(dec, null, compute, 4)) {
            GenerateOptions constrained = new GenerateOptions(SamplingParams.sample(1.0, 0, 1.0, 0.0, 3), 200, Set.of(), List.of(), 0, null,
                    TokenControls.constrained(c));
            GenerateOptions plain = GenerateOptions.greedy(12, Set.of());
            var runs = reactor.core.publisher.Flux.range(0, 6)
                    .flatMap(k -> gen.generate(MultimodalPrompt.text(prompt), k % 2 == 0 ? constrained : plain, () -> tok.streamingDecoder(true))
                            .collectList().map(ev -> Map.entry(k, ev)))
                    .collectList().block(java.time.Duration.ofSeconds(60));
            assertEquals(6, runs.size());
            for (var run : runs) {
                StringBuilder text = new StringBuilder();
                run.getValue().forEach(e -> text.append(e.textDelta()));
                if (run.getKey() % 2 == 0) {
                    assertEquals(FinishReason.STOP, run.getValue().get(run.getValue().size() - 1).finishReason());
                    assertTrue(spec.matches(text.toString()), text.toString());
                } else assertEquals(12, run.getValue().size());
            }
        } finally {
            compute.dispose();
        }
    }
}
