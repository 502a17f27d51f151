package io.vlmflux.llm.cuda;

import static org.junit.jupiter.api.Assertions.*;

import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code Decoder.profileForward} on the cuda decoder ({@code bench llm --profile-prefill}): the same cache as an
 * unprofiled prefill (the next step's logits bit for bit: timing events change no result), and every kind of a
 * layer's work counted once a layer (norms twice) with positive time. Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class PrefillProfileTest {
    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-qwen2", "tiny-qwen3"})
    void profiledPrefillGivesThePlainLogitsAndEveryKind(String model) throws Exception {
        try (Decoder d = Models.load(Fixtures.dir(model), "config.json", "cuda")) {
            int layers = d.config().numLayers(), n = 37;
            int[] prompt = new int[n];
            for (int i = 0; i < n; i++) prompt[i] = (i * 7919 + 13) % d.config().vocabSize();
            try (KvCache a = d.newCache(64); KvCache b = d.newCache(64)) {
                d.forward(a, ForwardInput.tokens(prompt), false);
                Map<String, double[]> prof = d.profileForward(b, ForwardInput.tokens(prompt));
                assertEquals(n, b.length(), "the profiled prefill fills the cache");
                // the same cache: the next step's logits from either are the same bits
                int next = prompt[n - 1];
                assertArrayEquals(d.forward(a, ForwardInput.tokens(next), false), d.forward(b, ForwardInput.tokens(next), false));
                for (String kind : new String[] {"rms norm", "q/k/v product", "attention (rope, KV write, attention)", "o product",
                        "gate/up product", "SiLU-gate", "down product"}) {
                    double[] v = prof.get(kind);
                    assertNotNull(v, kind + " in " + prof.keySet());
                    assertTrue(v[0] > 0, kind + ": " + v[0] + " ms");
                    assertEquals(kind.equals("rms norm") ? 2 * layers : layers, (int) v[1], kind + " pieces");
                }
                assertTrue(prof.containsKey("embedding") && prof.containsKey("final norm + lm head"), prof.keySet().toString());
                System.out.println(model + ": " + prof.entrySet().stream().map(e -> e.getKey() + " " + String.format("%.3f", e.getValue()[0]) + " ms").toList());
            }
        }
    }
}
