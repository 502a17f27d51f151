package io.vlmflux.llm;

import static io.vlmflux.llm.LogitRows.*;
import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/**
 * CPU decoders against the transformers float32 goldens: logits at every prompt position and every teacher-forced
 * generated step within 1e-3, and free-running greedy tokens identical (up to the first golden near-tie, which none
 * of the fixtures has), from both config layouts.
 */
class GoldenModelTest {
    static final float TOL = 1e-3f;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"tiny-qwen2,config.json", "tiny-qwen2,config.hub.json", "tiny-qwen3,config.json", "tiny-qwen3,config.hub.json",
            "tiny-llama,config.json", "tiny-llama,config.hub.json"})
    void textModelMatchesGolden(String model, String configFile) throws Exception {
        JsonNode golden = Fixtures.golden(model);
        try (Decoder d = Models.load(Fixtures.dir(model), configFile, "cpu"); SafetensorsFile g = Fixtures.goldenTensors(model)) {
            int V = d.config().vocabSize();
            for (int j = 0; j < golden.get("prompts").size(); j++) {
                JsonNode p = golden.get("prompts").get(j);
                int[] ids = Fixtures.ints(p.get("input_ids"));
                int[] gold = Fixtures.ints(p.get("greedy_new_tokens"));
                float[] all = g.tensor("prompt" + j + ".all_logits").toFloatArray();
                float[] gen = g.tensor("prompt" + j + ".gen_logits").toFloatArray();
                try (KvCache cache = d.newCache(256)) {
                    float[] logits = d.forward(cache, ForwardInput.tokens(ids), true);
                    assertEquals(ids.length * V, logits.length);
                    for (int t = 0; t < ids.length; t++)
                        assertTrue(maxDiff(logits, t * V, all, t * V, V) < TOL, model + " prompt " + j + " position " + t + " diff " + maxDiff(logits, t * V, all, t * V, V));
                    float[] step = Arrays.copyOfRange(logits, (ids.length - 1) * V, ids.length * V);
                    for (int s = 0; s < gold.length; s++) {   // teacher-forced on the golden tokens
                        assertTrue(maxDiff(step, 0, gen, s * V, V) < TOL, model + " prompt " + j + " step " + s + " diff " + maxDiff(step, 0, gen, s * V, V));
                        if (gap(gen, s * V, V) >= TOL) assertEquals(gold[s], CpuOps.argmax(step, 0, V), model + " prompt " + j + " greedy step " + s);
                        step = d.forward(cache, ForwardInput.tokens(gold[s]), false);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"tiny-qwen2vl,config.json", "tiny-qwen2vl,config.hub.json", "tiny-qwen25vl,config.json", "tiny-qwen25vl,config.hub.json"})
    void vlmTextSideMatchesGolden(String model, String configFile) throws Exception {
        JsonNode golden = Fixtures.golden(model);
        try (Decoder d = Models.load(Fixtures.dir(model), configFile, "cpu"); SafetensorsFile g = Fixtures.goldenTensors(model)) {
            int V = d.config().vocabSize();
            for (int j = 0; j < golden.get("prompts").size(); j++) {
                MultimodalPrompt prompt = Fixtures.prompt(model, golden, g, j, d.config().hiddenSize());
                int[] gold = Fixtures.ints(golden.get("prompts").get(j).get("greedy_new_tokens"));
                MropePositions mp = MropePositions.compute(prompt, d.config());
                int[] goldPos = g.tensor("prompt" + j + ".position_ids").toIntArray();
                int n = prompt.length();
                for (int a = 0; a < 3; a++)
                    assertArrayEquals(Arrays.copyOfRange(goldPos, a * n, (a + 1) * n), mp.positions()[a], model + " prompt " + j + " axis " + a);
                float[] last = g.tensor("prompt" + j + ".last_logits").toFloatArray();
                float[] gen = g.tensor("prompt" + j + ".gen_logits").toFloatArray();
                try (KvCache cache = d.newCache(512)) {
                    float[] step = d.forward(cache, new ForwardInput(prompt.tokens(), prompt.spans(), mp.positions()), false);
                    cache.positionDelta(mp.delta());
                    assertTrue(maxDiff(step, 0, last, 0, V) < TOL, model + " prompt " + j + " last logits diff " + maxDiff(step, 0, last, 0, V));
                    for (int s = 0; s < gold.length; s++) {
                        assertTrue(maxDiff(step, 0, gen, s * V, V) < TOL, model + " prompt " + j + " step " + s + " diff " + maxDiff(step, 0, gen, s * V, V));
                        if (gap(gen, s * V, V) >= TOL) assertEquals(gold[s], CpuOps.argmax(step, 0, V), model + " prompt " + j + " greedy step " + s);
                        step = d.forward(cache, ForwardInput.tokens(gold[s]), false);
                    }
                }
            }
        }
    }
}
