package io.vlmflux.llm.cuda;

import org.junit.jupiter.api.condition.EnabledIf;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.sampling.Sampler;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The generator on the CUDA decoder: greedy and temperature/top-k/top-p select on the device (the tokens equal a manual
 * {@code forwardSample} loop), the repetition penalty goes through the host sampler with the sequence's seen tokens
 * (equal to a manual forward + {@link Sampler} loop). Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class CudaGeneratorTest {
    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    static int[] tokens(List<TokenEvent> ev) { return ev.stream().mapToInt(TokenEvent::tokenId).toArray(); }

    static int[] prompt() { return Fixtures.ints(Fixtures.golden("tiny-qwen2").get("prompts").get(0).get("input_ids")); }

    @Test
    void greedyGeneratorEqualsDeviceArgmaxLoop() throws Exception {
        int[] ids = prompt();
        int n = 24;
        try (Decoder d = Models.load(Fixtures.dir("tiny-qwen2"), "cuda")) {
            assertTrue(d.samplesOnDevice(SamplingParams.greedyDecoding()));
            int[] ref = new int[n];
            try (KvCache c = d.newCache(ids.length + n + 1)) {
                int tok = d.forwardSample(c, ForwardInput.tokens(ids), SamplingParams.greedyDecoding());
                for (int i = 0; i < n; i++) { ref[i] = tok; if (i + 1 < n) tok = d.forwardSample(c, ForwardInput.tokens(tok), SamplingParams.greedyDecoding()); }
            }
            try (Generator g = new Generator(d, null, null)) {
                int[] got = tokens(g.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(n, Set.of()), null).collectList().block(Duration.ofSeconds(60)));
                assertArrayEquals(ref, got);
                assertEquals(0, g.activeSequences());
            }
        }
    }

    @Test
    void repetitionPenaltyUsesTheHostSamplerWithSeenTokens() throws Exception {
        int[] ids = prompt();
        int n = 16;
        SamplingParams p = SamplingParams.greedyDecoding().withRepetitionPenalty(1.3);
        try (Decoder d = Models.load(Fixtures.dir("tiny-qwen2"), "cuda")) {
            assertFalse(d.samplesOnDevice(p));
            int[] ref = new int[n];
            try (KvCache c = d.newCache(ids.length + n + 1)) {
                Sampler s = new Sampler(p, d.config().vocabSize());
                s.observe(ids);
                float[] l = d.forward(c, ForwardInput.tokens(ids), false);
                for (int i = 0; i < n; i++) { ref[i] = s.sample(l); if (i + 1 < n) l = d.forward(c, ForwardInput.tokens(ref[i]), false); }
            }
            try (Generator g = new Generator(d, null, null)) {
                int[] got = tokens(g.generateBlocking(MultimodalPrompt.text(ids), new GenerateOptions(p, n, Set.of(), List.of(), 0, null), null));
                assertArrayEquals(ref, got);
            }
        }
    }

    @Test
    void sampledGenerationOnTheDeviceGivesValidIds() throws Exception {
        SamplingParams p = SamplingParams.sample(0.8, 40, 0.9, 0, 5);
        try (Decoder d = Models.load(Fixtures.dir("tiny-qwen2"), "cuda"); Generator g = new Generator(d, null, null)) {
            assertTrue(d.samplesOnDevice(p));
            int[] got = tokens(g.generate(MultimodalPrompt.text(prompt()), new GenerateOptions(p, 20, Set.of(), List.of(), 0, null), null)
                    .collectList().block(Duration.ofSeconds(60)));
            assertEquals(20, got.length);
            for (int t : got) assertTrue(t >= 0 && t < d.config().vocabSize(), "id " + t);
        }
    }
}
