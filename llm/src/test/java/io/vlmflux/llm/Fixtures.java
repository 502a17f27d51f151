package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.cuda.safetensors.SafetensorsFile;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Access to {@code llm/src/test/resources/fixtures/*}: golden.json, golden.safetensors, prompts as MultimodalPrompts. */
public final class Fixtures {
    private Fixtures() {}

    public static Path dir(String model) {
        return Path.of(System.getProperty("vlmflux.root", "..")).resolve("llm/src/test/resources/fixtures").resolve(model);
    }

    public static JsonNode golden(String model) {
        try {
            return new ObjectMapper().readTree(dir(model).resolve("golden.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static SafetensorsFile goldenTensors(String model) {
        try {
            return SafetensorsFile.open(dir(model).resolve("golden.safetensors"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int[] ints(JsonNode arr) {
        int[] a = new int[arr.size()];
        for (int i = 0; i < a.length; i++) a[i] = arr.get(i).asInt();
        return a;
    }

    /** Prompt {@code j} of a fixture with its image span (from the golden image embeddings) when it has one. */
    public static MultimodalPrompt prompt(String model, JsonNode golden, SafetensorsFile g, int j, int hidden) {
        JsonNode p = golden.get("prompts").get(j);
        int[] ids = ints(p.get("input_ids"));
        List<EmbeddingSpan> spans = new ArrayList<>();
        if (p.has("image") && !p.get("image").isNull()) {
            int img = p.get("image").asInt();
            int[] grid = ints(golden.get("images").get(img).get("grid_thw"));
            float[] emb = g.tensor("image" + img + ".embeds").toFloatArray();
            int start = -1;
            for (int i = 0; i < ids.length; i++) if (ids[i] == 3012) { start = i; break; }
            spans.add(new EmbeddingSpan(start, emb.length / hidden, hidden, emb, grid[0], grid[1], grid[2],
                    (long) img * 0x9E3779B97F4A7C15L + 1, 0));
        }
        return new MultimodalPrompt(ids, spans);
    }
}
