package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
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
 * Qwen3-VL through the CLI on the cpu backend: {@code vlmflux generate --model DIR --raw --prompt TEXT --image PNG
 * --greedy --ignore-eos --max-tokens 24 --json --backend cpu} feeds the golden {@code input_ids} and produces the
 * golden greedy tokens (up to a golden near-tie) for every image and text prompt of {@code tiny-qwen3vl}, with the
 * nested ({@code config.json}) and the published ({@code config.hub.json}) config layout. Video prompts:
 * {@link GenerateVideoGoldenTest}.
 */
class GenerateQwen3VlGoldenTest {
    static final String MODEL = "tiny-qwen3vl";
    @TempDir Path tmp;

    static Stream<Arguments> cases() throws IOException {
        JsonNode g = new ObjectMapper().readTree(fixture(MODEL).resolve("golden.json").toFile());
        List<Arguments> out = new ArrayList<>();
        for (String layout : List.of("nested", "hub"))
            for (JsonNode p : g.get("prompts"))
                if (!"video".equals(p.path("kind").asText())) out.add(Arguments.of(layout, p.get("index").asInt()));
        return out.stream();
    }

    @ParameterizedTest(name = "{0} prompt {1}") @MethodSource("cases")
    void rawPromptWithImageReproducesGoldenTokens(String layout, int j) throws Exception {
        Path dir = layout.equals("hub") ? hubCopy(fixture(MODEL)) : fixture(MODEL);
        JsonNode g = new ObjectMapper().readTree(fixture(MODEL).resolve("golden.json").toFile());
        JsonNode p = g.get("prompts").get(j);
        List<String> args = new ArrayList<>(List.of("--model", dir.toString(), "--raw", "--prompt", p.get("prompt_text").asText(),
                "--greedy", "--ignore-eos", "--max-tokens", "24", "--json", "--backend", "cpu"));
        if ("image".equals(p.path("kind").asText()))
            args.addAll(List.of("--image", fixture(MODEL).resolve(g.get("images").get(p.get("media").asInt()).get("file").asText()).toString()));
        JsonNode o = run(args);

        assertEquals(p.get("input_ids"), o.get("input_ids"), "input_ids (image slot expanded)");
        JsonNode golden = p.get("greedy_new_tokens");
        int upTo = firstNearTie(fixture(MODEL), j, golden.size());
        if (upTo < golden.size()) System.out.printf("%s %s prompt %d: near-tie at generated step %d%n", MODEL, layout, j, upTo);
        for (int s = 0; s <= Math.min(upTo, golden.size() - 1); s++)
            assertEquals(golden.get(s).asInt(), o.get("tokens").get(s).asInt(), "generated token " + s + " of " + o.get("tokens"));
        assertEquals(golden.size(), o.get("tokens").size());
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
