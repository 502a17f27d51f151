package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
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
import static org.junit.jupiter.api.Assertions.*;

/**
 * The vision-language "done when" through the CLI: for every prompt of both VLM fixtures, in both config layouts,
 * {@code vlmflux generate --raw --prompt-file P --image PNG --greedy --max-tokens 24 --ignore-eos --json} feeds the golden
 * {@code input_ids} (image slot expanded) and produces the golden 24 greedy tokens — from the PNG, through the
 * preprocessing and the CPU vision encoder. Tokens are compared up to the first near-tie (a golden step whose top-2
 * logit gap is below 1e-3, per the fixtures README); the test prints where a near-tie cut a comparison short.
 */
class GenerateVlmGoldenTest {
    static final double NEAR_TIE = 1e-3;
    @TempDir Path tmp;

    static Stream<Arguments> cases() throws IOException {
        List<Arguments> out = new ArrayList<>();
        for (String m : List.of("tiny-qwen2vl", "tiny-qwen25vl")) {
            int n = new ObjectMapper().readTree(fixture(m).resolve("golden.json").toFile()).get("prompts").size();
            for (String layout : List.of("nested", "hub"))
                for (int j = 0; j < n; j++) out.add(Arguments.of(m, layout, j));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1} prompt {2}") @MethodSource("cases")
    void rawPromptWithImageReproducesGoldenTokens(String model, String layout, int j) throws Exception {
        Path dir = layout.equals("hub") ? hubCopy(fixture(model)) : fixture(model);
        JsonNode g = new ObjectMapper().readTree(fixture(model).resolve("golden.json").toFile());
        JsonNode p = g.get("prompts").get(j);
        Path promptFile = tmp.resolve("prompt.txt");
        Files.writeString(promptFile, p.get("prompt_text").asText());
        List<String> args = new ArrayList<>(List.of("--model", dir.toString(), "--prompt-file", promptFile.toString(), "--raw",
                "--greedy", "--max-tokens", "24", "--ignore-eos", "--backend", "cpu", "--json"));
        if (!p.get("image").isNull())
            args.addAll(List.of("--image", fixture(model).resolve(g.get("images").get(p.get("image").asInt()).get("file").asText()).toString()));
        JsonNode o = run(args);

        assertEquals(p.get("input_ids"), o.get("input_ids"), "input_ids (image slot expanded)");
        JsonNode golden = p.get("greedy_new_tokens");
        int upTo = firstNearTie(fixture(model), j, golden.size());
        if (upTo < golden.size()) System.out.printf("%s %s prompt %d: near-tie at generated step %d, compared %d tokens%n", model, layout, j, upTo, upTo + 1);
        for (int s = 0; s <= Math.min(upTo, golden.size() - 1); s++)
            assertEquals(golden.get(s).asInt(), o.get("tokens").get(s).asInt(), "generated token " + s + " of " + o.get("tokens"));
        assertEquals(golden.size(), o.get("tokens").size());
    }

    /** First generated step whose golden top-2 logit gap is below {@link #NEAR_TIE} (the size when there is none). */
    static int firstNearTie(Path dir, int prompt, int steps) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("golden.safetensors"))) {
            var t = f.tensor("prompt" + prompt + ".gen_logits");
            float[] logits = t.toFloatArray();
            int vocab = (int) t.shape()[1];
            for (int s = 0; s < steps; s++) {
                float a = Float.NEGATIVE_INFINITY, b = Float.NEGATIVE_INFINITY;
                for (int v = 0; v < vocab; v++) {
                    float x = logits[s * vocab + v];
                    if (x > a) { b = a; a = x; } else if (x > b) b = x;
                }
                if (a - b < NEAR_TIE) return s;
            }
            return steps;
        }
    }

    /** The fixture with its flat-layout twins ({@code config.hub.json}, {@code preprocessor_config.hub.json}) in place. */
    private Path hubCopy(Path src) throws IOException {
        Path dst = Files.createDirectories(tmp.resolve(src.getFileName() + "-hub"));
        try (Stream<Path> files = Files.list(src)) {
            for (Path f : files.toList()) {
                String name = f.getFileName().toString();
                if (name.endsWith(".hub.json") || name.equals("config.json") || name.equals("preprocessor_config.json")) continue;
                Files.createSymbolicLink(dst.resolve(name), f.toAbsolutePath());
            }
        }
        Files.copy(src.resolve("config.hub.json"), dst.resolve("config.json"));
        Files.copy(src.resolve("preprocessor_config.hub.json"), dst.resolve("preprocessor_config.json"));
        return dst;
    }
}
