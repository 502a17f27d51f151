package io.vlmflux.llm.cuda;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.LogitRows;
import io.vlmflux.llm.MropePositions;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.SpanRows;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.Prompt;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;
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
 * Qwen2-VL / Qwen2.5-VL video prompts on the cuda backend ({@code tiny-qwen2vl-video}, {@code tiny-qwen25vl-video}):
 * the CUDA decoder teacher-forced over a video prompt (golden video embeddings as the span, scaled M-RoPE ids) within
 * 2e-2 x max|logit| of the golden at every position; and the whole runtime from the PNG frames (host preprocessing, the
 * cuda tower on a t x h x w grid, rows spliced on the device): golden input ids, and greedy tokens equal to the golden
 * before the first step whose golden top-2 gap is under that tolerance (a bf16 near-tie, which either token may win:
 * tiny-qwen2vl-video prompt 3 step 1 has a relative gap of 1.2e-3), and equal to the cpu runtime's there.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class CudaVideoTest {
    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    static List<Frame> frames(Path dir) throws Exception {
        List<Frame> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path f : s.filter(p -> p.toString().endsWith(".png")).sorted().toList()) out.add(Images.read(f));
        }
        return out;
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"tiny-qwen2vl-video,config.json", "tiny-qwen25vl-video,config.json", "tiny-qwen25vl-video,config.hub.json"})
    void decoderTeacherForcedOverVideoPrompts(String model, String configFile) throws Exception {
        JsonNode g = Fixtures.golden(model);
        try (Decoder d = CudaDecoderTest.load(model, configFile); SafetensorsFile gt = Fixtures.goldenTensors(model)) {
            int V = d.config().vocabSize();
            for (JsonNode p : g.get("prompts")) {
                if (!"video".equals(p.path("kind").asText())) continue;
                int j = p.get("index").asInt(), media = p.get("media").asInt();
                JsonNode v = g.get("videos").get(media);
                int[] ids = Fixtures.ints(p.get("input_ids")), grid = Fixtures.ints(v.get("grid_thw"));
                float[] emb = gt.tensor("video" + media + ".embeds").toFloatArray();
                int start = -1;
                for (int i = 0; i < ids.length; i++) if (ids[i] == 3013) { start = i; break; }
                double spgt = v.has("second_per_grid_ts") ? v.get("second_per_grid_ts").get(0).asDouble() : 2 / v.get("fps").asDouble();
                MultimodalPrompt prompt = new MultimodalPrompt(ids, List.of(new EmbeddingSpan(start, emb.length / d.config().hiddenSize(), d.config().hiddenSize(),
                        emb, grid[0], grid[1], grid[2], 17L * media + 1, spgt)));
                MropePositions mp = MropePositions.compute(prompt, d.config());
                int[] goldPos = gt.tensor("prompt" + j + ".position_ids").toIntArray();
                for (int a = 0; a < 3; a++) assertArrayEquals(Arrays.copyOfRange(goldPos, a * ids.length, (a + 1) * ids.length), mp.positions()[a]);
                int[] gold = Fixtures.ints(p.get("greedy_new_tokens"));
                float[] last = gt.tensor("prompt" + j + ".last_logits").toFloatArray();
                float[] gen = gt.tensor("prompt" + j + ".gen_logits").toFloatArray();
                float worst;
                try (KvCache cache = d.newCache(512)) {
                    float[] step = d.forward(cache, new ForwardInput(prompt.tokens(), prompt.spans(), mp.positions()), false);
                    cache.positionDelta(mp.delta());
                    worst = CudaDecoderTest.check(model + " prompt " + j + " last", step, 0, last, 0, V);
                    for (int s = 0; s < gold.length; s++) {
                        worst = Math.max(worst, CudaDecoderTest.check(model + " prompt " + j + " step " + s, step, 0, gen, s * V, V));
                        step = d.forward(cache, ForwardInput.tokens(gold[s]), false);
                    }
                }
                System.err.printf("cuda %s %s video prompt %d: worst relative logit error %.2e%n", model, configFile, j, worst);
            }
        }
    }

    @ParameterizedTest(name = "{0}") @CsvSource({"tiny-qwen2vl-video", "tiny-qwen25vl-video"})
    void runtimeFromFramesMatchesGoldenAndCpu(String model) throws Exception {
        Path dir = Fixtures.dir(model);
        JsonNode g = Fixtures.golden(model);
        try (VlmRuntime gpu = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CUDA));
             VlmRuntime cpu = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CPU));
             SafetensorsFile gt = Fixtures.goldenTensors(model)) {
            for (JsonNode p : g.get("prompts")) {
                if (!"video".equals(p.path("kind").asText())) continue;
                int j = p.get("index").asInt();
                JsonNode v = g.get("videos").get(p.get("media").asInt());
                Path frames = dir.resolve(v.get("dir").asText());
                double fps = v.get("fps").asDouble();
                Prompt onGpu = gpu.prepareVideoBlocking(p.get("prompt_text").asText(), frames(frames), fps);
                assertArrayEquals(Fixtures.ints(p.get("input_ids")), onGpu.input().tokens(), model + " prompt " + j);
                EmbeddingSpan s = onGpu.input().spans().getFirst();
                assertInstanceOf(SpanRows.Device.class, s.rows(), "video rows stay on the device");
                assertArrayEquals(Fixtures.ints(v.get("grid_thw")), new int[]{s.gridT(), s.gridH(), s.gridW()});
                Prompt onCpu = cpu.prepareVideoBlocking(p.get("prompt_text").asText(), frames(frames), fps);
                int[] gold = Fixtures.ints(p.get("greedy_new_tokens"));
                int[] a = greedy(gpu, onGpu, gold.length), b = greedy(cpu, onCpu, gold.length);
                int upTo = bf16NearTie(gt, j, gold.length);
                System.err.printf("cuda %s video prompt %d: bf16 near-tie at step %d of %d; gpu %s%n", model, j, upTo, gold.length, Arrays.toString(a));
                int n = Math.min(upTo, gold.length);   // the near-tie step itself may go either way in bf16
                assertArrayEquals(Arrays.copyOf(gold, n), Arrays.copyOf(a, n), model + " prompt " + j + " vs golden");
                assertArrayEquals(Arrays.copyOf(b, n), Arrays.copyOf(a, n), model + " prompt " + j + " vs cpu");
            }
        }
    }

    static int[] greedy(VlmRuntime rt, Prompt prompt, int n) {
        GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), n, Set.of(), List.of(), 0, null);
        return rt.generate(prompt, o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList().block(Duration.ofSeconds(120))
                .stream().mapToInt(Integer::intValue).toArray();
    }

    /** First generated step whose golden top-2 gap is below 2e-2 x max|logit| (bf16 tolerance), else {@code steps}. */
    static int bf16NearTie(SafetensorsFile g, int prompt, int steps) {
        float[] l = g.tensor("prompt" + prompt + ".gen_logits").toFloatArray();
        int V = l.length / steps;
        for (int s = 0; s < steps; s++) if (LogitRows.gap(l, s * V, V) < CudaDecoderTest.REL_TOL * LogitRows.maxAbs(l, s * V, V)) return s;
        return steps;
    }
}
