package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.llm.cache.PrefixCache;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The generator asks the decoder whether it selects tokens on the device ({@link Decoder#samplesOnDevice}); if so every
 * step is one {@link Decoder#forwardSample} and no logits reach the host, else logits + the sequence's host sampler.
 * Runs on the CPU decoder wrapped as a "device-sampling" decoder that counts which entry points are used.
 */
class DeviceSamplingWiringTest {
    static Decoder cpu;

    @BeforeAll static void load() throws Exception { cpu = Models.load(Fixtures.dir("tiny-qwen2"), "cpu"); }

    @AfterAll static void close() { cpu.close(); }

    /** CPU decoder that claims device selection for repetition penalty 1 and counts calls. */
    static final class Counting implements Decoder {
        final Decoder d;
        final AtomicInteger forwards = new AtomicInteger(), samples = new AtomicInteger();
        Counting(Decoder d) { this.d = d; }
        @Override public ModelConfig config() { return d.config(); }
        @Override public String backend() { return "counting"; }
        @Override public KvCache newCache(int capacity) { return d.newCache(capacity); }
        @Override public float[] forward(KvCache c, ForwardInput in, boolean all) { forwards.incrementAndGet(); return d.forward(c, in, all); }
        @Override public boolean samplesOnDevice(SamplingParams p) { return p.repetitionPenalty() == 1.0; }
        @Override public int forwardSample(KvCache c, ForwardInput in, SamplingParams p) {
            samples.incrementAndGet();
            float[] l = d.forward(c, in, false);
            return CpuOps.argmax(l, 0, config().vocabSize());
        }
        @Override public void close() {}
    }

    static int[] tokens(List<TokenEvent> ev) { return ev.stream().mapToInt(TokenEvent::tokenId).toArray(); }

    @Test void greedyStepsGoThroughForwardSampleOnly() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(0).get("input_ids"));
        int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
        Counting dec = new Counting(cpu);
        try (Generator gen = new Generator(dec, null, null)) {
            List<TokenEvent> ev = gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(gold.length, Set.of()), null)
                    .collectList().block(Duration.ofSeconds(30));
            assertArrayEquals(gold, tokens(ev));
        }
        assertEquals(0, dec.forwards.get(), "no logits may be fetched when the decoder selects on the device");
        assertEquals(gold.length, dec.samples.get(), "one prefill + one step per further token");
    }

    @Test void prefixStoreStillPrefillsThePrefixThenSelectsOnTheDevice() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(0).get("input_ids"));
        int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
        Counting dec = new Counting(cpu);
        try (PrefixCache pc = new PrefixCache(16 << 20); Generator gen = new Generator(dec, pc, null)) {
            GenerateOptions o = GenerateOptions.greedy(gold.length, Set.of()).withCachePrefix(ids.length / 2);
            assertArrayEquals(gold, tokens(gen.generate(MultimodalPrompt.text(ids), o, null).collectList().block(Duration.ofSeconds(30))));
            assertEquals(1, dec.forwards.get(), "the shared prefix is one plain forward");
            assertArrayEquals(gold, tokens(gen.generate(MultimodalPrompt.text(ids), o, null).collectList().block(Duration.ofSeconds(30))));
            assertEquals(1, dec.forwards.get(), "the second run restores the prefix");
            assertEquals(1, pc.hits());
        }
        assertEquals(2 * gold.length, dec.samples.get());
    }

    @Test void settingsTheDeviceCannotDoUseTheHostSamplerWithItsState() {
        int[] ids = Fixtures.ints(Fixtures.golden("tiny-qwen2").get("prompts").get(0).get("input_ids"));
        SamplingParams p = SamplingParams.greedyDecoding().withRepetitionPenalty(1.5);
        GenerateOptions o = new GenerateOptions(p, 12, Set.of(), List.of(), 0, null);
        Counting dec = new Counting(cpu);
        int[] got;
        try (Generator gen = new Generator(dec, null, null)) {
            got = tokens(gen.generateBlocking(MultimodalPrompt.text(ids), o, null));
        }
        assertEquals(0, dec.samples.get());
        assertEquals(12, dec.forwards.get());
        // reference: forward + one host sampler that has seen the prompt and every output
        int[] ref = new int[12];
        try (KvCache c = cpu.newCache(ids.length + 13)) {
            io.vlmflux.llm.sampling.Sampler s = new io.vlmflux.llm.sampling.Sampler(p, cpu.config().vocabSize());
            s.observe(ids);
            float[] l = cpu.forward(c, ForwardInput.tokens(ids), false);
            for (int i = 0; i < ref.length; i++) {
                ref[i] = s.sample(l);
                if (i + 1 < ref.length) l = cpu.forward(c, ForwardInput.tokens(ref[i]), false);
            }
        }
        assertArrayEquals(ref, got);
    }

    @Test void cpuDecoderKeepsTheHostPath() {
        assertFalse(cpu.samplesOnDevice(SamplingParams.greedyDecoding()));
        assertFalse(cpu.samplesOnDevice(SamplingParams.sample(0.7, 20, 0.9, 0, 1)));
    }

    @Test void tokenControlsForceTheHostPathAndKeepUnbiasedGreedy() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(0).get("input_ids"));
        int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
        Counting dec = new Counting(cpu);
        try (Generator gen = new Generator(dec, null, null)) {
            GenerateOptions o = GenerateOptions.greedy(gold.length, Set.of())
                    .withControls(io.vlmflux.llm.constrain.TokenControls.none().withLogprobs(3));
            List<TokenEvent> ev = gen.generate(MultimodalPrompt.text(ids), o, null).collectList().block(Duration.ofSeconds(30));
            assertArrayEquals(gold, tokens(ev), "logprobs alone do not change greedy decoding");
            for (TokenEvent e : ev) assertEquals(e.tokenId(), e.logprobs().top().get(0).tokenId());
        }
        assertEquals(0, dec.samples.get(), "with token controls no selection happens on the device");
        assertEquals(gold.length, dec.forwards.get());
    }
}
