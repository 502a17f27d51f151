package io.vlmflux.llm.runtime;

import com.fasterxml.jackson.databind.JsonNode;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Qwen3-VL end to end on the cpu backend, from the PNGs of {@code tiny-qwen3vl}: the chat template's prompt and the
 * expanded input ids equal the golden, the spans carry the tower's DeepStack features, the M-RoPE positions equal the
 * golden, and 24 greedy tokens equal the golden (up to a golden near-tie), from both config layouts. The cuda runtime
 * is {@code Qwen3VlRuntimeCudaTest}.
 */
class Qwen3VlRuntimeTest {
    static final Path DIR = Fixtures.dir("tiny-qwen3vl");

    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"config.json", "config.hub.json"})
    void imagePromptsReproduceTheGolden(String configFile) throws Exception {
        JsonNode g = Fixtures.golden("tiny-qwen3vl");
        try (VlmRuntime rt = VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CPU).withConfigFile(configFile));
             SafetensorsFile gt = Fixtures.goldenTensors("tiny-qwen3vl")) {
            assertEquals(3012, rt.imagePadId());
            int checked = 0;
            for (JsonNode p : g.get("prompts")) {
                String kind = p.hasNonNull("kind") ? p.get("kind").asText() : "text";
                if (kind.equals("video")) continue;   // video input is not wired into the runtime yet
                boolean image = kind.equals("image");
                int j = p.get("index").asInt();
                PromptTemplate t = rt.promptTemplate(null, p.get("question").asText(), image ? 1 : 0);
                assertEquals(p.get("prompt_text").asText(), t.text());
                List<Frame> frames = image ? List.of(Images.read(DIR.resolve(g.get("images").get(p.get("media").asInt()).get("file").asText()))) : List.of();
                Prompt prompt = rt.prepareBlocking(t, frames);
                assertArrayEquals(Fixtures.ints(p.get("input_ids")), prompt.input().tokens(), "input ids of prompt " + j);
                if (image) {
                    EmbeddingSpan s = prompt.input().spans().get(0);
                    assertEquals(2, s.deepstack().size(), "DeepStack features of the span");
                    float[] ds1 = gt.tensor("image" + p.get("media").asInt() + ".deepstack1").toFloatArray();
                    assertTrue(LogitRows.maxDiff(s.deepstack().get(1), 0, ds1, 0, ds1.length) < 1e-3f * Math.max(1f, LogitRows.maxAbs(ds1, 0, ds1.length)),
                            "DeepStack feature 1 of prompt " + j);
                }
                int n = prompt.length();
                int[] goldPos = gt.tensor("prompt" + j + ".position_ids").toIntArray();
                MropePositions mp = MropePositions.compute(prompt.input(), rt.config());
                for (int a = 0; a < 3; a++) assertArrayEquals(Arrays.copyOfRange(goldPos, a * n, (a + 1) * n), mp.positions()[a], "prompt " + j + " axis " + a);
                int[] gold = Fixtures.ints(p.get("greedy_new_tokens"));
                GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), gold.length, Set.of(), List.of(), t.sharedPrefix(), null);
                int[] got = rt.generate(prompt, o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList().block(Duration.ofSeconds(60))
                        .stream().mapToInt(Integer::intValue).toArray();
                int upTo = firstNearTie(gt, j, gold.length);
                if (upTo < gold.length) System.out.printf("tiny-qwen3vl prompt %d: golden near-tie at step %d%n", j, upTo);
                assertArrayEquals(Arrays.copyOf(gold, Math.min(upTo + 1, gold.length)), Arrays.copyOf(got, Math.min(upTo + 1, gold.length)), "prompt " + j);
                checked++;
            }
            assertEquals(4, checked);
        }
    }

    /** Video prompts: frames of golden_video_v at the golden fps; timestamps, per-group spans, ids, positions, tokens. */
    @Test void videoPromptsReproduceTheGolden() throws Exception {
        JsonNode g = Fixtures.golden("tiny-qwen3vl");
        try (VlmRuntime rt = VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CPU));
             SafetensorsFile gt = Fixtures.goldenTensors("tiny-qwen3vl")) {
            int checked = 0;
            for (JsonNode p : g.get("prompts")) {
                if (!"video".equals(p.path("kind").asText())) continue;
                int j = p.get("index").asInt();
                JsonNode v = g.get("videos").get(p.get("media").asInt());
                List<Frame> frames = new java.util.ArrayList<>();
                try (var files = java.nio.file.Files.list(DIR.resolve(v.get("dir").asText()))) {
                    for (Path f : files.filter(f -> f.toString().endsWith(".png")).sorted().toList()) frames.add(Images.read(f));
                }
                assertEquals(v.get("frames").asInt(), frames.size());
                Prompt prompt = rt.prepareVideoBlocking(p.get("prompt_text").asText(), frames, v.get("fps").asDouble());
                assertArrayEquals(Fixtures.ints(p.get("input_ids")), prompt.input().tokens(), "input ids of prompt " + j);
                assertEquals(v.get("grid_thw").get(0).asInt(), prompt.input().spans().size(), "one span per temporal group");
                int n = prompt.length();
                int[] goldPos = gt.tensor("prompt" + j + ".position_ids").toIntArray();
                MropePositions mp = MropePositions.compute(prompt.input(), rt.config());
                for (int a = 0; a < 3; a++) assertArrayEquals(Arrays.copyOfRange(goldPos, a * n, (a + 1) * n), mp.positions()[a], "prompt " + j + " axis " + a);
                int[] gold = Fixtures.ints(p.get("greedy_new_tokens"));
                GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), gold.length, Set.of(), List.of(), 0, null);
                int[] got = rt.generate(prompt, o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList().block(Duration.ofSeconds(60))
                        .stream().mapToInt(Integer::intValue).toArray();
                int upTo = firstNearTie(gt, j, gold.length);
                if (upTo < gold.length) System.out.printf("tiny-qwen3vl prompt %d: golden near-tie at step %d%n", j, upTo);
                assertArrayEquals(Arrays.copyOf(gold, Math.min(upTo + 1, gold.length)), Arrays.copyOf(got, Math.min(upTo + 1, gold.length)), "prompt " + j);
                checked++;
            }
            assertEquals(2, checked);
            var e = assertThrows(IllegalArgumentException.class, () -> rt.prepareVideoBlocking("no video here", List.of(), 2.0));
            assertTrue(e.getMessage().contains("at least one frame"), e.getMessage());
        }
    }

    @Test void videoInputIsRefusedClearlyWhereItDoesNotFit() {
        try (VlmRuntime text = VlmRuntime.load(Fixtures.dir("tiny-qwen2"), RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            Frame f = Images.read(DIR.resolve("golden_image_0.png"));
            var e = assertThrows(IllegalArgumentException.class, () -> text.prepareVideoBlocking("<|video_pad|>", List.of(f), 2.0));
            assertTrue(e.getMessage().contains("video prompts need a Qwen2-VL or Qwen2.5-VL model"), e.getMessage());
            assertTrue(f.isReleased());
        }
        try (VlmRuntime rt = VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            Frame f = Images.read(DIR.resolve("golden_image_0.png"));
            var e = assertThrows(IllegalArgumentException.class, () -> rt.prepareVideoBlocking("<|vision_start|><|image_pad|><|vision_end|>", List.of(f), 2.0));
            assertTrue(e.getMessage().contains("exactly one <|video_pad|>"), e.getMessage());
        }
    }

    /** The family is no longer refused on cuda (Qwen3VlRuntimeCudaTest runs it): without a GPU the only error is the missing GPU. */
    @Test void cudaIsRefusedOnlyForLackOfAGpu() {
        org.junit.jupiter.api.Assumptions.assumeFalse(io.vlmflux.cuda.gpu.Gpu.isAvailable(), "a GPU is present: Qwen3VlRuntimeCudaTest covers cuda");
        var e = assertThrows(IllegalStateException.class, () -> VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CUDA)));
        assertTrue(e.getMessage().contains("backend 'cuda' cannot run here"), e.getMessage());
    }

    /** First generated step whose golden top-2 gap is below 1e-3 (the step count when none). */
    static int firstNearTie(SafetensorsFile g, int prompt, int steps) {
        float[] l = g.tensor("prompt" + prompt + ".gen_logits").toFloatArray();
        int V = l.length / steps;
        for (int s = 0; s < steps; s++) if (LogitRows.gap(l, s * V, V) < 1e-3f) return s;
        return steps;
    }
}
