package io.vlmflux.llm.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.LogitRows;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MropePositions;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Qwen2-VL and Qwen2.5-VL video prompts on the cpu backend from the PNG frames of {@code tiny-qwen2vl-video} /
 * {@code tiny-qwen25vl-video} (a 4-frame clip at 2 fps and a 7-frame clip at 4 fps): the expanded input ids, the span's
 * grid and {@code second_per_grid_t}, the M-RoPE ids (Qwen2.5-VL: temporal ids scaled, 0.5 s per group truncated to 0
 * as transformers 5.17 does), the logits of the prompt and of every golden step within 1e-3, and 24 greedy tokens
 * (up to a golden near-tie), for both config layouts.
 */
class Qwen2VlVideoRuntimeTest {
    static final float TOL = 1e-3f;

    static List<Frame> frames(Path dir) throws Exception {
        List<Frame> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path f : s.filter(p -> p.toString().endsWith(".png")).sorted().toList()) out.add(Images.read(f));
        }
        return out;
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"tiny-qwen2vl-video,config.json", "tiny-qwen2vl-video,config.hub.json", "tiny-qwen25vl-video,config.json", "tiny-qwen25vl-video,config.hub.json"})
    void videoPromptsReproduceTheGolden(String model, String configFile) throws Exception {
        Path dir = Fixtures.dir(model);
        JsonNode g = Fixtures.golden(model);
        try (VlmRuntime rt = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CPU).withConfigFile(configFile));
             Decoder d = Models.load(dir, configFile, "cpu");
             SafetensorsFile gt = Fixtures.goldenTensors(model)) {
            int V = d.config().vocabSize(), checked = 0;
            for (JsonNode p : g.get("prompts")) {
                if (!"video".equals(p.path("kind").asText())) continue;
                int j = p.get("index").asInt();
                JsonNode v = g.get("videos").get(p.get("media").asInt());
                List<Frame> fs = frames(dir.resolve(v.get("dir").asText()));
                assertEquals(v.get("frames").asInt(), fs.size());
                Prompt prompt = rt.prepareVideoBlocking(p.get("prompt_text").asText(), fs, v.get("fps").asDouble());
                assertTrue(fs.stream().allMatch(Frame::isReleased), "the runtime closes the frames");
                assertArrayEquals(Fixtures.ints(p.get("input_ids")), prompt.input().tokens(), model + " input ids of prompt " + j);
                assertEquals(1, prompt.input().spans().size());
                EmbeddingSpan s = prompt.input().spans().getFirst();
                assertArrayEquals(Fixtures.ints(v.get("grid_thw")), new int[]{s.gridT(), s.gridH(), s.gridW()});
                if (v.has("second_per_grid_ts")) assertEquals(v.get("second_per_grid_ts").get(0).asDouble(), s.secondPerGridT(), 1e-12);
                // video embeddings (our pixels through the cpu tower)
                float[] emb = gt.tensor("video" + p.get("media").asInt() + ".embeds").toFloatArray();
                float[] rows = s.embeddings();
                assertTrue(LogitRows.maxDiff(rows, 0, emb, 0, emb.length) <= TOL, "video embeddings diff " + LogitRows.maxDiff(rows, 0, emb, 0, emb.length));
                int n = prompt.length();
                int[] goldPos = gt.tensor("prompt" + j + ".position_ids").toIntArray();
                MropePositions mp = MropePositions.compute(prompt.input(), rt.config());
                for (int a = 0; a < 3; a++) assertArrayEquals(Arrays.copyOfRange(goldPos, a * n, (a + 1) * n), mp.positions()[a], model + " prompt " + j + " axis " + a);

                // teacher-forced logits along the golden tokens
                int[] gold = Fixtures.ints(p.get("greedy_new_tokens"));
                float[] last = gt.tensor("prompt" + j + ".last_logits").toFloatArray();
                float[] gen = gt.tensor("prompt" + j + ".gen_logits").toFloatArray();
                float worst;
                try (KvCache cache = d.newCache(512)) {
                    float[] step = d.forward(cache, new ForwardInput(prompt.input().tokens(), prompt.input().spans(), mp.positions()), false);
                    cache.positionDelta(mp.delta());
                    worst = LogitRows.maxDiff(step, 0, last, 0, V);
                    for (int k = 0; k < gold.length; k++) {
                        float diff = LogitRows.maxDiff(step, 0, gen, k * V, V);
                        worst = Math.max(worst, diff);
                        assertTrue(diff < TOL, model + " prompt " + j + " step " + k + " logits diff " + diff);
                        if (LogitRows.gap(gen, k * V, V) >= TOL) assertEquals(gold[k], CpuOps.argmax(step, 0, V), model + " prompt " + j + " greedy step " + k);
                        step = d.forward(cache, ForwardInput.tokens(gold[k]), false);
                    }
                }
                System.out.printf("%s %s prompt %d: logits max |d| %.3e over prompt + %d steps%n", model, configFile, j, worst, gold.length);

                // free-running greedy through the runtime
                GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), gold.length, Set.of(), List.of(), 0, null);
                int[] got = rt.generate(prompt, o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList().block(Duration.ofSeconds(60))
                        .stream().mapToInt(Integer::intValue).toArray();
                int upTo = Qwen3VlRuntimeTest.firstNearTie(gt, j, gold.length);
                if (upTo < gold.length) System.out.printf("%s prompt %d: golden near-tie at step %d%n", model, j, upTo);
                assertArrayEquals(Arrays.copyOf(gold, Math.min(upTo + 1, gold.length)), Arrays.copyOf(got, Math.min(upTo + 1, gold.length)), model + " prompt " + j);
                checked++;
            }
            assertEquals(2, checked);
        }
    }

    /** The golden position ids of each video prompt, rebuilt group by group with the API a live session appends with. */
    @ParameterizedTest(name = "{0}") @CsvSource({"tiny-qwen2vl-video", "tiny-qwen25vl-video"})
    void positionsGroupByGroupEqualTheGolden(String model) throws Exception {
        JsonNode g = Fixtures.golden(model);
        try (SafetensorsFile gt = Fixtures.goldenTensors(model)) {
            io.vlmflux.llm.ModelConfig c = io.vlmflux.llm.ModelConfig.load(Fixtures.dir(model));
            for (JsonNode p : g.get("prompts")) {
                if (!"video".equals(p.path("kind").asText())) continue;
                int j = p.get("index").asInt();
                JsonNode v = g.get("videos").get(p.get("media").asInt());
                int[] grid = Fixtures.ints(v.get("grid_thw"));
                double spgt = v.has("second_per_grid_ts") ? v.get("second_per_grid_ts").get(0).asDouble() : 2 / v.get("fps").asDouble();
                MropePositions.Temporal time = MropePositions.Temporal.of(c, spgt);
                int[] ids = Fixtures.ints(p.get("input_ids"));
                int n = ids.length, start = -1, len = 0;
                for (int i = 0; i < n; i++) if (ids[i] == 3013) { if (start < 0) start = i; len++; }
                int[] goldPos = gt.tensor("prompt" + j + ".position_ids").toIntArray();
                int perGroup = len / grid[0];
                for (int t = 0; t < grid[0]; t++) {
                    int[][] block = MropePositions.videoGroups(start, t, 1, grid[1], grid[2], c.spatialMergeSize(), time);
                    for (int a = 0; a < 3; a++) {
                        int from = a * n + start + t * perGroup;
                        assertArrayEquals(Arrays.copyOfRange(goldPos, from, from + perGroup), block[a], model + " prompt " + j + " group " + t + " axis " + a);
                    }
                }
                int next = MropePositions.nextAfter(start, grid[0], grid[1], grid[2], c.spatialMergeSize(), time);
                int[][] text = MropePositions.text(next, n - start - len);
                for (int a = 0; a < 3; a++)
                    assertArrayEquals(Arrays.copyOfRange(goldPos, a * n + start + len, (a + 1) * n), text[a], model + " prompt " + j + " text after, axis " + a);
            }
        }
    }

    @Test void temporalRuleTruncatesSecondsPerGroupAsTransformers() {
        MropePositions.Temporal scaled = new MropePositions.Temporal(true, 0.5, 2);
        assertEquals(0, scaled.index(3));                                           // 2 frames at 4 fps: int(0.5) = 0
        assertEquals(8, new MropePositions.Temporal(true, 2.0, 2).index(2));         // 1 fps: 2 s per group
        assertEquals(20, new MropePositions.Temporal(true, 2.5, 2).index(5));        // 0.8 fps: int(2.5) = 2, 5 * 2 * 2
        assertEquals(7, new MropePositions.Temporal(true, 1.0, 2.5).index(3));       // float tokens_per_second: 7.5 -> 7
        assertEquals(3, MropePositions.Temporal.UNSCALED.index(3));
        assertThrows(IllegalArgumentException.class, () -> new MropePositions.Temporal(true, -1, 2));
        assertThrows(IllegalArgumentException.class, () -> MropePositions.videoGroups(0, 0, 1, 6, 5, 2, scaled));
    }

    @Test void badVideoPromptsAreRefusedClearly() throws Exception {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            var none = assertThrows(IllegalArgumentException.class, () -> rt.prepareVideoBlocking("<|video_pad|>", List.of(), 2.0));
            assertTrue(none.getMessage().contains("at least one frame"), none.getMessage());
            List<Frame> fs = frames(dir.resolve("golden_video_0"));
            var two = assertThrows(IllegalArgumentException.class, () -> rt.prepareVideoBlocking("<|video_pad|><|video_pad|>", fs, 2.0));
            assertTrue(two.getMessage().contains("exactly one <|video_pad|>"), two.getMessage());
            assertTrue(fs.stream().allMatch(Frame::isReleased), "frames closed on error too");
            List<Frame> fs2 = frames(dir.resolve("golden_video_0"));
            var fps = assertThrows(IllegalArgumentException.class, () -> rt.prepareVideoBlocking("<|video_pad|>", fs2, 0));
            assertTrue(fps.getMessage().contains("fps"), fps.getMessage());
        }
    }
}
