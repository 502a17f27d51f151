package io.vlmflux.llm.constrain;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The device-mask path of constrained decoding (a backend that masks and selects where the logits are): a decoder that
 * says it masks on the device takes {@link Decoder#forwardSampleMasked} every step, and greedy outputs equal the host
 * path's token for token. The CUDA override is checked against this on the GPU machine ({@code CudaConstrainedTest}).
 */
class DeviceMaskWiringTest {
    /** The CPU decoder, claiming device masking: the default forwardSampleMasked (host mask) runs, counted. */
    static final class MaskingCpu implements Decoder {
        final Decoder d;
        final AtomicInteger masked = new AtomicInteger();
        MaskingCpu(Decoder d) { this.d = d; }
        @Override public ModelConfig config() { return d.config(); }
        @Override public String backend() { return "cpu-masking"; }
        @Override public KvCache newCache(int capacity) { return d.newCache(capacity); }
        @Override public float[] forward(KvCache cache, ForwardInput input, boolean allLogits) { return d.forward(cache, input, allLogits); }
        @Override public boolean samplesOnDevice(SamplingParams p) { return true; }
        @Override public boolean masksOnDevice(SamplingParams p) { return true; }
        @Override public int forwardSampleMasked(KvCache cache, ForwardInput input, SamplingParams p, long[] allowed) {
            masked.incrementAndGet();
            return Decoder.super.forwardSampleMasked(cache, input, p, allowed);
        }
        @Override public void close() { d.close(); }
    }

    @Test void greedyConstrainedOutputsEqualTheHostPathAndUseTheMaskedStep() throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir("tiny-qwen3"));
        int[] prompt = tok.encode("Answer in JSON: ");
        SplittableRandom r = new SplittableRandom(7);
        try (Decoder cpu = Models.load(Fixtures.dir("tiny-qwen3"), "cpu"); Generator host = new Generator(cpu, null, null)) {
            MaskingCpu dev = new MaskingCpu(cpu);
            Generator device = new Generator(dev, null, null);
            for (int i = 0; i < 20; i++) {
                ObjectNode schema = Schemas.random(r, 0);
                Constraint c = Constraints.compile(ConstraintSpec.jsonSchema(schema.toString()), tok);
                GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), 500, Set.of(), List.of(), 0, null, TokenControls.constrained(c));
                int before = dev.masked.get();
                List<TokenEvent> a = host.generateBlocking(MultimodalPrompt.text(prompt), o, null);
                List<TokenEvent> b = device.generateBlocking(MultimodalPrompt.text(prompt), o, null);
                assertEquals(a.stream().map(TokenEvent::tokenId).toList(), b.stream().map(TokenEvent::tokenId).toList(), "schema " + schema);
                assertEquals(b.size(), dev.masked.get() - before, "every token of the device path comes from forwardSampleMasked");
                assertTrue(c.isEnd(b.getLast().tokenId()), "ends with an end token where the schema accepts");
            }
            // a recursive grammar: the host decides the row per step (state = pushdown configuration), the device masks
            for (int i = 0; i < 6; i++) {
                Constraint c = Constraints.compile(ConstraintSpec.grammar(GrammarTest.JSON_GBNF), tok);
                assertInstanceOf(GrammarConstraint.class, c);
                GenerateOptions o = new GenerateOptions(SamplingParams.sample(1.0, 0, 1.0, 0.0, i), 60, Set.of(), List.of(), 0, null, TokenControls.constrained(c));
                GenerateOptions g = new GenerateOptions(SamplingParams.greedyDecoding(), 60, Set.of(), List.of(), 0, null, TokenControls.constrained(c));
                for (GenerateOptions opts : List.of(o, g)) {
                    int before = dev.masked.get();
                    List<TokenEvent> a = host.generateBlocking(MultimodalPrompt.text(prompt), opts, null);
                    List<TokenEvent> b = device.generateBlocking(MultimodalPrompt.text(prompt), opts, null);
                    if (opts == g) assertEquals(a.stream().map(TokenEvent::tokenId).toList(), b.stream().map(TokenEvent::tokenId).toList(), "JSON grammar, greedy");
                    assertEquals(b.size(), dev.masked.get() - before, "every token of the device path comes from forwardSampleMasked");
                    int s = c.start();
                    for (TokenEvent e : b) s = c.advance(s, e.tokenId());   // every device-chosen token was allowed
                }
            }
            // logprobs need the logits on the host: no masked step then
            Constraint c = Constraints.compile(ConstraintSpec.choice("yes", "no"), tok);
            int before = dev.masked.get();
            device.generateBlocking(MultimodalPrompt.text(prompt),
                    new GenerateOptions(SamplingParams.greedyDecoding(), 10, Set.of(), List.of(), 0, null, TokenControls.constrained(c).withLogprobs(2)), null);
            assertEquals(before, dev.masked.get());
        }
    }

    @Test void allowedWordsPadTheVocabulary() throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir("tiny-qwen2"));
        Constraint c = Constraints.compile(ConstraintSpec.choice("yes", "no"), tok);
        long[] w = c.allowedWords(c.start(), tok.vocabSize() + 200);
        assertEquals((tok.vocabSize() + 200 + 63) / 64, w.length);
        java.util.BitSet bs = java.util.BitSet.valueOf(w);
        assertEquals(c.allowed(c.start()), bs);
    }
}
