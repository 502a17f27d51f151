package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static io.vlmflux.llm.LogitRows.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The Qwen3-VL text side on the CUDA decoder (interleaved M-RoPE, DeepStack adds on the device) against the
 * transformers float32 goldens of {@code tiny-qwen3vl} (image and video prompts; rows and DeepStack features are the
 * golden encoder outputs) and against the CPU decoder, with the GPU tolerance of the fixtures README (2e-2 x
 * max|logit|): last prompt position, every teacher-forced step, argmax wherever the golden top-2 gap exceeds the
 * tolerance, free-running greedy (device argmax) identical up to the first near-tie. Also: a prefill chunk smaller than
 * a span (DeepStack rows split across chunks) equals one pass; the CUDA logits move without DeepStack. Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class Qwen3VlCudaTest {
    static final String MODEL = Qwen3VlGoldenTest.MODEL;
    static final float REL_TOL = 2e-2f;

    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    static void check(String what, float[] got, int gOff, float[] gold, int off, int V) {
        float tol = REL_TOL * maxAbs(gold, off, V);
        float d = maxDiff(got, gOff, gold, off, V);
        assertTrue(d <= tol, what + ": max |diff| " + d + " > " + tol + " (2e-2 x max|reference logit|)");
        if (gap(gold, off, V) > tol) assertEquals(CpuOps.argmax(gold, off, V), CpuOps.argmax(got, gOff, V), what + ": argmax");
    }

    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"config.json", "config.hub.json"})
    void cudaTextSideMatchesGoldenAndCpu(String configFile) throws Exception {
        JsonNode golden = Fixtures.golden(MODEL);
        try (Decoder d = Models.load(Fixtures.dir(MODEL), configFile, "cuda"); Decoder cpu = Models.load(Fixtures.dir(MODEL), configFile, "cpu");
             SafetensorsFile g = Fixtures.goldenTensors(MODEL)) {
            assertEquals("cuda", d.backend());
            ModelConfig c = d.config();
            int V = c.vocabSize();
            for (int j = 0; j < golden.get("prompts").size(); j++) {
                JsonNode gp = golden.get("prompts").get(j);
                String kind = gp.hasNonNull("kind") ? gp.get("kind").asText() : "text";
                String name = "prompt " + j + " (" + kind + ", " + configFile + ")";
                MultimodalPrompt prompt = Qwen3VlGoldenTest.prompt(golden, g, j, c);
                int[] gold = Fixtures.ints(gp.get("greedy_new_tokens"));
                MropePositions mp = MropePositions.compute(prompt, c);
                ForwardInput in = new ForwardInput(prompt.tokens(), prompt.spans(), mp.positions());
                float[] last = g.tensor("prompt" + j + ".last_logits").toFloatArray();
                float[] gen = g.tensor("prompt" + j + ".gen_logits").toFloatArray();
                try (KvCache cache = d.newCache(512); KvCache cc = cpu.newCache(512)) {
                    float[] step = d.forward(cache, in, false);
                    float[] cstep = cpu.forward(cc, in, false);
                    cache.positionDelta(mp.delta());
                    cc.positionDelta(mp.delta());
                    check(name + " last logits vs golden", step, 0, last, 0, V);
                    check(name + " last logits vs cpu", step, 0, cstep, 0, V);
                    for (int s = 0; s < gold.length; s++) {
                        check(name + " teacher-forced step " + s + " vs golden", step, 0, gen, s * V, V);
                        check(name + " teacher-forced step " + s + " vs cpu", step, 0, cstep, 0, V);
                        step = d.forward(cache, ForwardInput.tokens(gold[s]), false);
                        cstep = cpu.forward(cc, ForwardInput.tokens(gold[s]), false);
                    }
                }
                try (KvCache cache = d.newCache(512)) {
                    int tok = d.forwardSample(cache, in, SamplingParams.greedyDecoding());
                    cache.positionDelta(mp.delta());
                    int s = 0;
                    for (; s < gold.length; s++) {
                        if (gap(gen, s * V, V) <= REL_TOL * maxAbs(gen, s * V, V)) break;
                        assertEquals(gold[s], tok, name + " free-running greedy step " + s);
                        tok = d.forwardSample(cache, ForwardInput.tokens(tok), SamplingParams.greedyDecoding());
                    }
                    System.err.println(name + ": free-running greedy identical for " + s + "/" + gold.length + " steps"
                            + (s < gold.length ? " (stopped at a golden near-tie)" : ""));
                }
            }
        }
    }

    /** Prefill in chunks of 5 (spans and their DeepStack rows split across chunks) equals one pass; DeepStack moves the logits. */
    @Test void chunkedPrefillAndDeepstackOnCuda() throws Exception {
        JsonNode golden = Fixtures.golden(MODEL);
        String old = System.getProperty("vlmflux.cuda.prefillChunk");
        Decoder chunked;
        System.setProperty("vlmflux.cuda.prefillChunk", "5");
        try { chunked = Models.load(Fixtures.dir(MODEL), "config.json", "cuda"); }
        finally { if (old == null) System.clearProperty("vlmflux.cuda.prefillChunk"); else System.setProperty("vlmflux.cuda.prefillChunk", old); }
        try (Decoder d = Models.load(Fixtures.dir(MODEL), "config.json", "cuda"); Decoder ch = chunked; SafetensorsFile g = Fixtures.goldenTensors(MODEL)) {
            ModelConfig c = d.config();
            int V = c.vocabSize(), split = 0;
            for (int j = 0; j < golden.get("prompts").size(); j++) {
                MultimodalPrompt p = Qwen3VlGoldenTest.prompt(golden, g, j, c);
                if (p.spans().isEmpty()) continue;
                if (p.spans().stream().anyMatch(s -> s.length() > 5 && s.hasDeepstack())) split++;   // video groups may be shorter
                MropePositions mp = MropePositions.compute(p, c);
                ForwardInput in = new ForwardInput(p.tokens(), p.spans(), mp.positions());
                ForwardInput bare = new ForwardInput(p.tokens(), p.spans().stream().map(s -> s.withDeepstack(List.of())).toList(), mp.positions());
                try (KvCache a = d.newCache(512); KvCache b = ch.newCache(512); KvCache e = d.newCache(512)) {
                    float[] la = d.forward(a, in, true), lb = ch.forward(b, in, true), le = d.forward(e, bare, false);
                    int n = p.length();
                    for (int t = 0; t < n; t++)
                        assertTrue(maxDiff(la, t * V, lb, t * V, V) <= 1e-3f * maxAbs(la, t * V, V) + 1e-5f,
                                "prompt " + j + " position " + t + ": chunked prefill (5) differs from one pass by " + maxDiff(la, t * V, lb, t * V, V));
                    float move = maxDiff(la, (n - 1) * V, le, 0, V);
                    assertTrue(move > 10 * 1e-3f * maxAbs(la, (n - 1) * V, V), "prompt " + j + ": DeepStack moved the cuda logits by only " + move);
                }
            }
            assertTrue(split > 0, "no fixture prompt has a DeepStack span longer than a chunk (5): the test would not split one");
        }
    }
}
