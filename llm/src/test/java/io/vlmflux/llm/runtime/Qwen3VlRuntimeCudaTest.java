package io.vlmflux.llm.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.LogitRows;
import io.vlmflux.llm.MropePositions;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Qwen3-VL end to end on the cuda runtime from the PNGs and video frames of {@code tiny-qwen3vl}: GPU preprocessing
 * (images) or host video preprocessing, the cuda vision tower, device image rows spliced by the cuda decoder, DeepStack
 * features on the spans; input ids and M-RoPE positions equal the golden, the span rows and DeepStack features are
 * within the GPU tolerance of the golden encoder outputs, and greedy tokens equal the golden up to the first step whose
 * golden top-2 gap is within the GPU tolerance (2e-2 x max|logit|, as Qwen3VlCudaTest). Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class Qwen3VlRuntimeCudaTest {
    static final Path DIR = Qwen3VlRuntimeTest.DIR;
    static final float REL_TOL = 2e-2f;

    @BeforeAll
    static void gpu() {
        assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    /** First generated step whose golden top-2 gap is within the GPU tolerance (the step count when none). */
    static int firstGpuNearTie(SafetensorsFile g, int prompt, int steps) {
        float[] l = g.tensor("prompt" + prompt + ".gen_logits").toFloatArray();
        int V = l.length / steps;
        for (int s = 0; s < steps; s++) if (LogitRows.gap(l, s * V, V) <= REL_TOL * LogitRows.maxAbs(l, s * V, V)) return s;
        return steps;
    }

    static void generateMatches(VlmRuntime rt, SafetensorsFile gt, Prompt prompt, int j, int[] gold, int sharedPrefix) {
        GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), gold.length, Set.of(), List.of(), sharedPrefix, null);
        int[] got = rt.generate(prompt, o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList().block(Duration.ofSeconds(60))
                .stream().mapToInt(Integer::intValue).toArray();
        int upTo = firstGpuNearTie(gt, j, gold.length);
        System.out.printf("tiny-qwen3vl cuda runtime prompt %d: greedy compared for %d/%d steps%s%n", j, Math.min(upTo + 1, gold.length), gold.length,
                upTo < gold.length ? " (golden near-tie at step " + upTo + ")" : "");
        assertArrayEquals(Arrays.copyOf(gold, Math.min(upTo + 1, gold.length)), Arrays.copyOf(got, Math.min(upTo + 1, gold.length)), "prompt " + j);
    }

    static void checkDeepstack(String what, EmbeddingSpan s, SafetensorsFile gt, String media, int row0) {
        assertEquals(2, s.deepstack().size(), what + ": DeepStack features of the span");
        for (int k = 0; k < 2; k++) {
            float[] all = gt.tensor(media + ".deepstack" + k).toFloatArray();
            int n = s.length() * s.hidden(), off = row0 * s.hidden();
            float d = LogitRows.maxDiff(s.deepstack().get(k), 0, all, off, n), m = LogitRows.maxAbs(all, off, n);
            assertTrue(d <= REL_TOL * m, what + ": DeepStack feature " + k + " max |diff| " + d + " > 2e-2 x " + m);
        }
    }

    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"config.json", "config.hub.json"})
    void imagePromptsReproduceTheGoldenOnCuda(String configFile) throws Exception {
        JsonNode g = Fixtures.golden("tiny-qwen3vl");
        try (VlmRuntime rt = VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CUDA).withConfigFile(configFile));
             SafetensorsFile gt = Fixtures.goldenTensors("tiny-qwen3vl")) {
            assertEquals(Backend.CUDA, rt.backend());
            int checked = 0;
            for (JsonNode p : g.get("prompts")) {
                String kind = p.hasNonNull("kind") ? p.get("kind").asText() : "text";
                if (kind.equals("video")) continue;
                boolean image = kind.equals("image");
                int j = p.get("index").asInt();
                PromptTemplate t = rt.promptTemplate(null, p.get("question").asText(), image ? 1 : 0);
                List<Frame> frames = image ? List.of(Images.read(DIR.resolve(g.get("images").get(p.get("media").asInt()).get("file").asText()))) : List.of();
                try (Prompt prompt = rt.prepareBlocking(t, frames)) {
                    assertArrayEquals(Fixtures.ints(p.get("input_ids")), prompt.input().tokens(), "input ids of prompt " + j);
                    if (image) {
                        EmbeddingSpan s = prompt.input().spans().get(0);
                        assertTrue(s.onDevice(), "cuda image rows stay on the device");
                        checkDeepstack("prompt " + j, s, gt, "image" + p.get("media").asInt(), 0);
                    }
                    int n = prompt.length();
                    int[] goldPos = gt.tensor("prompt" + j + ".position_ids").toIntArray();
                    MropePositions mp = MropePositions.compute(prompt.input(), rt.config());
                    for (int a = 0; a < 3; a++) assertArrayEquals(Arrays.copyOfRange(goldPos, a * n, (a + 1) * n), mp.positions()[a], "prompt " + j + " axis " + a);
                    generateMatches(rt, gt, prompt, j, Fixtures.ints(p.get("greedy_new_tokens")), t.sharedPrefix());
                }
                checked++;
            }
            assertEquals(4, checked);
            // the same image again: an encoder-output cache hit, with its DeepStack rows
            try (Prompt again = rt.prepareBlocking(rt.promptTemplate(null, "again", 1), List.of(Images.read(DIR.resolve("golden_image_1.png"))))) {
                assertEquals(1, again.cacheHits());
                checkDeepstack("cached image 1", again.input().spans().get(0), gt, "image1", 0);
            }
        }
    }

    /** Video prompts on cuda: per-group spans are views of the clip's device rows, each with its DeepStack rows. */
    @Test void videoPromptsReproduceTheGoldenOnCuda() throws Exception {
        JsonNode g = Fixtures.golden("tiny-qwen3vl");
        try (VlmRuntime rt = VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CUDA));
             SafetensorsFile gt = Fixtures.goldenTensors("tiny-qwen3vl")) {
            int checked = 0;
            for (JsonNode p : g.get("prompts")) {
                if (!"video".equals(p.path("kind").asText())) continue;
                int j = p.get("index").asInt();
                int media = p.get("media").asInt();
                JsonNode v = g.get("videos").get(media);
                List<Frame> frames = new java.util.ArrayList<>();
                try (var files = java.nio.file.Files.list(DIR.resolve(v.get("dir").asText()))) {
                    for (Path f : files.filter(f -> f.toString().endsWith(".png")).sorted().toList()) frames.add(Images.read(f));
                }
                try (Prompt prompt = rt.prepareVideoBlocking(p.get("prompt_text").asText(), frames, v.get("fps").asDouble())) {
                    assertArrayEquals(Fixtures.ints(p.get("input_ids")), prompt.input().tokens(), "input ids of prompt " + j);
                    List<EmbeddingSpan> spans = prompt.input().spans();
                    assertEquals(v.get("grid_thw").get(0).asInt(), spans.size(), "one span per temporal group");
                    int row = 0;
                    for (EmbeddingSpan s : spans) {
                        assertTrue(s.onDevice(), "cuda video rows stay on the device");
                        checkDeepstack("prompt " + j + " group at " + s.start(), s, gt, "video" + media, row);
                        row += s.length();
                    }
                    int n = prompt.length();
                    int[] goldPos = gt.tensor("prompt" + j + ".position_ids").toIntArray();
                    MropePositions mp = MropePositions.compute(prompt.input(), rt.config());
                    for (int a = 0; a < 3; a++) assertArrayEquals(Arrays.copyOfRange(goldPos, a * n, (a + 1) * n), mp.positions()[a], "prompt " + j + " axis " + a);
                    generateMatches(rt, gt, prompt, j, Fixtures.ints(p.get("greedy_new_tokens")), 0);
                }
                checked++;
            }
            assertEquals(2, checked);
        }
    }
}
