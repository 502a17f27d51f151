package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static io.vlmflux.demos.GenerateCommandTest.fixture;
import static io.vlmflux.demos.GenerateCommandTest.run;
import static io.vlmflux.demos.GenerateVlmGoldenTest.firstNearTie;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Video prompts through the CLI on the cpu backend, the contract of the fixtures' README: {@code vlmflux generate
 * --model DIR --raw --prompt TEXT --video DIR/golden_video_v --video-fps FPS --greedy --ignore-eos --max-tokens 24
 * --json --backend cpu} gives the golden {@code input_ids} and greedy tokens (up to a golden near-tie) for every video
 * prompt of {@code tiny-qwen2vl-video}, {@code tiny-qwen25vl-video} and {@code tiny-qwen3vl}, with both config layouts;
 * plus the chat template's video turn, {@code --video-frames}, a GStreamer source spec, and usage errors.
 */
class GenerateVideoGoldenTest {
    static final List<String> MODELS = List.of("tiny-qwen2vl-video", "tiny-qwen25vl-video", "tiny-qwen3vl");
    @TempDir Path tmp;

    static JsonNode golden(String model) throws IOException {
        return new ObjectMapper().readTree(fixture(model).resolve("golden.json").toFile());
    }

    static Stream<Arguments> cases() throws IOException {
        List<Arguments> out = new ArrayList<>();
        for (String m : MODELS)
            for (String layout : List.of("nested", "hub"))
                for (JsonNode p : golden(m).get("prompts"))
                    if ("video".equals(p.path("kind").asText())) out.add(Arguments.of(m, layout, p.get("index").asInt()));
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1} prompt {2}") @MethodSource("cases")
    void rawVideoPromptReproducesGoldenTokens(String model, String layout, int j) throws Exception {
        Path dir = layout.equals("hub") ? hubCopy(fixture(model)) : fixture(model);
        JsonNode g = golden(model);
        JsonNode p = null;
        for (JsonNode x : g.get("prompts")) if (x.get("index").asInt() == j) p = x;
        JsonNode v = g.get("videos").get(p.get("media").asInt());
        JsonNode o = run(List.of("--model", dir.toString(), "--raw", "--prompt", p.get("prompt_text").asText(),
                "--video", fixture(model).resolve(v.get("dir").asText()).toString(), "--video-fps", v.get("fps").asText(),
                "--greedy", "--ignore-eos", "--max-tokens", "24", "--json", "--backend", "cpu"));
        assertEquals(p.get("input_ids"), o.get("input_ids"), "input_ids (video slot expanded)");
        JsonNode gold = p.get("greedy_new_tokens");
        int upTo = firstNearTie(fixture(model), j, gold.size());
        if (upTo < gold.size()) System.out.printf("%s %s prompt %d: near-tie at generated step %d%n", model, layout, j, upTo);
        for (int s = 0; s <= Math.min(upTo, gold.size() - 1); s++)
            assertEquals(gold.get(s).asInt(), o.get("tokens").get(s).asInt(), "generated token " + s + " of " + o.get("tokens"));
        assertEquals(gold.size(), o.get("tokens").size());
        assertEquals("length", o.get("finish_reason").asText());
    }

    /** Without --raw the chat template writes the video turn (video, then the question): the golden prompt. */
    @Test void chatTemplateVideoTurnGivesTheGoldenIds() throws Exception {
        for (String model : List.of("tiny-qwen25vl-video", "tiny-qwen3vl")) {
            JsonNode g = golden(model);
            for (JsonNode p : g.get("prompts")) {
                if (!"video".equals(p.path("kind").asText())) continue;
                JsonNode v = g.get("videos").get(p.get("media").asInt());
                JsonNode o = run(List.of("--model", fixture(model).toString(), "--prompt", p.get("question").asText(),
                        "--video", fixture(model).resolve(v.get("dir").asText()).toString(), "--video-fps", v.get("fps").asText(),
                        "--greedy", "--ignore-eos", "--max-tokens", "2", "--json", "--backend", "cpu"));
                assertEquals(p.get("input_ids"), o.get("input_ids"), model + " prompt " + p.get("index"));
            }
        }
    }

    static int pads(JsonNode o) {
        int n = 0;
        for (JsonNode x : o.get("input_ids")) if (x.asInt() == 3013) n++;
        return n;
    }

    /** --video-frames keeps N frames of a folder evenly (7 -> indices 0, 1, 3, 5: two temporal groups of 8x14 patches). */
    @Test void videoFramesSamplesAFolderEvenly() throws Exception {
        String model = "tiny-qwen2vl-video";
        JsonNode p = golden(model).get("prompts").get(0);
        JsonNode o = run(List.of("--model", fixture(model).toString(), "--raw", "--prompt", p.get("prompt_text").asText(),
                "--video", fixture(model).resolve("golden_video_1").toString(), "--video-fps", "4", "--video-frames", "4",
                "--greedy", "--max-tokens", "1", "--json", "--backend", "cpu"));
        assertEquals(2 * 4 * 7, pads(o));
        assertArrayEquals(new int[]{0, 1, 3, 5}, VideoClip.evenIndices(7, 4));
        assertArrayEquals(new int[]{0, 2, 4}, VideoClip.evenIndices(6, 3));
    }

    /** A source spec (GStreamer test pattern, 12 frames at 4 fps = 3 s of 64x48): sampled at 2 fps, or 4 frames evenly. */
    @Test void sourceSpecIsSampledByRateOrEvenly() throws Exception {
        String model = "tiny-qwen25vl-video";
        String prompt = golden(model).get("prompts").get(0).get("prompt_text").asText();
        String spec = "test:ball?live=false&num-buffers=12&fps=4&width=64&height=48";
        // 64x48 -> 56x56 per frame (3136 pixels, the minimum): 2x2 tokens per temporal group
        JsonNode byRate = run(List.of("--model", fixture(model).toString(), "--raw", "--prompt", prompt, "--video", spec, "--video-fps", "2",
                "--greedy", "--max-tokens", "1", "--json", "--backend", "cpu"));
        assertEquals(3 * 4, pads(byRate), "6 frames at 2 fps: 3 temporal groups");
        JsonNode evenly = run(List.of("--model", fixture(model).toString(), "--raw", "--prompt", prompt, "--video", spec, "--video-frames", "4",
                "--greedy", "--max-tokens", "1", "--json", "--backend", "cpu"));
        assertEquals(2 * 4, pads(evenly), "4 frames: 2 temporal groups");
    }

    @Test void usageErrorsNameTheFlag() throws Exception {
        String m = fixture("tiny-qwen2vl-video").toString();
        String v = fixture("tiny-qwen2vl-video").resolve("golden_video_0").toString();
        var e1 = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", m, "--prompt", "a", "--video-fps", "2")));
        assertTrue(e1.getMessage().contains("--video"), e1.getMessage());
        var e2 = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", m, "--prompt", "a", "--video", v,
                "--image", fixture("tiny-qwen3vl").resolve("golden_image_0.png").toString())));
        assertTrue(e2.getMessage().contains("--image"), e2.getMessage());
        var e3 = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", m, "--prompt", "a", "--video", "test:ball", "--backend", "cpu")));
        assertTrue(e3.getMessage().contains("live source") && e3.getMessage().contains("--video-frames"), e3.getMessage());
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        var e4 = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", m, "--prompt", "a", "--video", empty.toString(), "--backend", "cpu")));
        assertTrue(e4.getMessage().contains("no image files"), e4.getMessage());
        var e5 = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", m, "--prompt", "a", "--video", v, "--video-fps", "0", "--backend", "cpu")));
        assertTrue(e5.getMessage().contains("--video-fps"), e5.getMessage());
        var e6 = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", m, "--prompt", "a", "--video", v, "--video-frames", "9", "--backend", "cpu")));
        assertTrue(e6.getMessage().contains("exceeds the 4 frames"), e6.getMessage());
        // a raw prompt without the video slot: the runtime says what it needs
        var e7 = assertThrows(IllegalArgumentException.class, () -> new GenerateCommand().run(List.of("--model", m, "--raw", "--prompt", "no slot", "--video", v, "--backend", "cpu")));
        assertTrue(e7.getMessage().contains("exactly one <|video_pad|>"), e7.getMessage());
    }

    /** The fixture with {@code config.hub.json} (the published layout) as its {@code config.json}. */
    private Path hubCopy(Path src) throws IOException {
        Path dst = Files.createDirectories(tmp.resolve(src.getFileName() + "-hub"));
        try (Stream<Path> files = Files.list(src)) {
            for (Path f : files.toList()) {
                String name = f.getFileName().toString();
                if (name.equals("config.json") || name.equals("config.hub.json")) continue;
                Files.createSymbolicLink(dst.resolve(name), f.toAbsolutePath());
            }
        }
        Files.copy(src.resolve("config.hub.json"), dst.resolve("config.json"));
        return dst;
    }
}
