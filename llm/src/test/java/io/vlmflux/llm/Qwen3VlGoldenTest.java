package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.vlmflux.llm.LogitRows.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The Qwen3-VL text side on the CPU against the transformers float32 goldens of {@code tiny-qwen3vl}, from both config
 * layouts: position ids (images and videos, whose temporal groups are separate spans between timestamp text), the last
 * prompt position's logits and every teacher-forced generated step within 1e-3 of max|logit|, greedy tokens identical
 * (up to a golden near-tie). The image/video rows and DeepStack features are the golden encoder outputs.
 */
class Qwen3VlGoldenTest {
    static final String MODEL = "tiny-qwen3vl";
    static final float REL = 1e-3f;

    /** The golden prompt {@code j}: one span per run of image or video pad tokens, rows and DeepStack sliced in order. */
    static MultimodalPrompt prompt(JsonNode golden, SafetensorsFile g, int j, ModelConfig c) {
        JsonNode p = golden.get("prompts").get(j);
        int[] ids = Fixtures.ints(p.get("input_ids"));
        List<EmbeddingSpan> spans = new ArrayList<>();
        if (p.hasNonNull("kind")) {
            boolean video = p.get("kind").asText().equals("video");
            int m = p.get("media").asInt();
            String name = (video ? "video" : "image") + m;
            JsonNode media = golden.get(video ? "videos" : "images").get(m);
            int[] grid = Fixtures.ints(media.get("grid_thw"));
            float[] rows = g.tensor(name + ".embeds").toFloatArray();
            List<float[]> ds = new ArrayList<>();
            for (int k = 0; g.names().contains(name + ".deepstack" + k); k++) ds.add(g.tensor(name + ".deepstack" + k).toFloatArray());
            int pad = video ? c.videoTokenId() : c.imageTokenId(), H = c.hiddenSize(), groups = video ? grid[0] : 1;
            int per = rows.length / H / groups, group = 0;
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] != pad || (i > 0 && ids[i - 1] == pad)) continue;
                int from = group * per * H, to = from + per * H;
                List<float[]> dsg = ds.stream().map(d -> Arrays.copyOfRange(d, from, to)).toList();
                spans.add(new EmbeddingSpan(i, per, H, new SpanRows.Host(Arrays.copyOfRange(rows, from, to)), video ? 1 : grid[0], grid[1], grid[2],
                        name.hashCode() * 31L + group, 0, dsg));
                group++;
            }
            assertEquals(groups, group, "pad runs of prompt " + j);
        }
        return new MultimodalPrompt(ids, spans);
    }

    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"config.json", "config.hub.json"})
    void textSideMatchesGolden(String configFile) throws Exception {
        JsonNode golden = Fixtures.golden(MODEL);
        try (Decoder d = Models.load(Fixtures.dir(MODEL), configFile, "cpu"); SafetensorsFile g = Fixtures.goldenTensors(MODEL)) {
            ModelConfig c = d.config();
            assertTrue(c.rope().mropeInterleaved());
            assertArrayEquals(new int[] {4, 4, 4}, c.rope().mropeSection());
            assertEquals(5e6, c.rope().theta());
            int V = c.vocabSize();
            for (int j = 0; j < golden.get("prompts").size(); j++) {
                MultimodalPrompt prompt = prompt(golden, g, j, c);
                int[] gold = Fixtures.ints(golden.get("prompts").get(j).get("greedy_new_tokens"));
                MropePositions mp = MropePositions.compute(prompt, c);
                int[] goldPos = g.tensor("prompt" + j + ".position_ids").toIntArray();
                int n = prompt.length();
                for (int a = 0; a < 3; a++)
                    assertArrayEquals(Arrays.copyOfRange(goldPos, a * n, (a + 1) * n), mp.positions()[a], "prompt " + j + " axis " + a);
                float[] last = g.tensor("prompt" + j + ".last_logits").toFloatArray();
                float[] gen = g.tensor("prompt" + j + ".gen_logits").toFloatArray();
                try (KvCache cache = d.newCache(512)) {
                    float[] step = d.forward(cache, new ForwardInput(prompt.tokens(), prompt.spans(), mp.positions()), false);
                    cache.positionDelta(mp.delta());
                    float tol = REL * maxAbs(last, 0, V);
                    assertTrue(maxDiff(step, 0, last, 0, V) < tol, "prompt " + j + " last logits diff " + maxDiff(step, 0, last, 0, V) + " tol " + tol);
                    for (int s = 0; s < gold.length; s++) {
                        float ts = REL * maxAbs(gen, s * V, V);
                        assertTrue(maxDiff(step, 0, gen, s * V, V) < ts, "prompt " + j + " step " + s + " diff " + maxDiff(step, 0, gen, s * V, V));
                        if (gap(gen, s * V, V) >= 1e-3f) assertEquals(gold[s], CpuOps.argmax(step, 0, V), "prompt " + j + " greedy step " + s);
                        step = d.forward(cache, ForwardInput.tokens(gold[s]), false);
                    }
                }
            }
        }
    }

    /** DeepStack matters: the same image prompt without its features gives other logits (the test above is not blind to it). */
    @Test void deepstackChangesTheLogits() throws Exception {
        JsonNode golden = Fixtures.golden(MODEL);
        try (Decoder d = Models.load(Fixtures.dir(MODEL), "cpu"); SafetensorsFile g = Fixtures.goldenTensors(MODEL)) {
            MultimodalPrompt p = prompt(golden, g, 0, d.config());
            MultimodalPrompt bare = new MultimodalPrompt(p.tokens(), p.spans().stream().map(s -> s.withDeepstack(List.of())).toList());
            MropePositions mp = MropePositions.compute(p, d.config());
            float[] a, b;
            try (KvCache c1 = d.newCache(128); KvCache c2 = d.newCache(128)) {
                a = d.forward(c1, new ForwardInput(p.tokens(), p.spans(), mp.positions()), false);
                b = d.forward(c2, new ForwardInput(bare.tokens(), bare.spans(), mp.positions()), false);
            }
            float[] last = g.tensor("prompt0.last_logits").toFloatArray();
            int V = d.config().vocabSize();
            assertTrue(maxDiff(a, 0, b, 0, V) > 10 * REL * maxAbs(last, 0, V), "DeepStack changed the logits by only " + maxDiff(a, 0, b, 0, V));
        }
    }

    /** transformers' apply_interleaved_mrope: h at i%3==1 below 3*section[1], w at i%3==2 below 3*section[2], t elsewhere. */
    @Test void interleavedAxesFollowTransformers() {
        int[] ax = TextModelSpec.mropeAxes(new int[] {24, 20, 20}, 64, true);
        int[] count = new int[3];
        for (int i = 0; i < 64; i++) {
            count[ax[i]]++;
            int want = i < 60 && i % 3 == 1 ? 1 : i < 60 && i % 3 == 2 ? 2 : 0;
            assertEquals(want, ax[i], "frequency " + i);
        }
        assertArrayEquals(new int[] {24, 20, 20}, count);
        assertArrayEquals(new int[] {0, 1, 2, 0, 0, 0}, TextModelSpec.mropeAxes(new int[] {4, 1, 1}, 6, true));
        assertArrayEquals(new int[] {0, 0, 0, 0, 1, 2}, TextModelSpec.mropeAxes(new int[] {4, 1, 1}, 6, false));
    }

    @Test void deepstackRowsOfTheWrongSizeOrTooManyAreRefused() throws Exception {
        var e = assertThrows(IllegalArgumentException.class, () -> new EmbeddingSpan(0, 2, 4, new SpanRows.Host(new float[8]), 1, 2, 4, 1L, 0,
                List.of(new float[7])));
        assertTrue(e.getMessage().contains("DeepStack rows 0 hold 7 floats"), e.getMessage());
        try (Decoder d = Models.load(Fixtures.dir(MODEL), "cpu"); KvCache c = d.newCache(16)) {
            int H = d.config().hiddenSize(), layers = d.config().numLayers();
            List<float[]> ds = new ArrayList<>();
            for (int k = 0; k <= layers; k++) ds.add(new float[H]);
            EmbeddingSpan s = new EmbeddingSpan(1, 1, H, new SpanRows.Host(new float[H]), 1, 2, 2, 1L, 0, ds);
            var e2 = assertThrows(IllegalArgumentException.class, () -> d.forward(c, new ForwardInput(new int[] {1, 2, 3}, List.of(s), null), false));
            assertTrue(e2.getMessage().contains((layers + 1) + " DeepStack features"), e2.getMessage());
        }
    }
}
