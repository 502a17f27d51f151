package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static io.vlmflux.demos.GenerateCommandTest.run;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The embedded demo model answers its held-out cases through the product's own path: {@code vlmflux generate} with
 * the model's chat template, the real tokenizer, the image/video processors and the cpu runtime, greedy. The cases
 * ({@code demos/models/shapes-vl/heldout/cases.json}) are scenes the training never saw, written by
 * {@code demos/tools/train_demo_model.py} with the answers it drew them from and whether transformers got each one
 * right: images for every image question type (caption, colour, shape, position, "Is there …?", count) and 2 fps
 * frame folders for the video questions (motion, video caption).
 */
class DemoModelHeldOutTest {
    static final Path SHAPES = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");

    @Test void heldOutCasesAreAnsweredThroughTheCliAsTransformersAnswersThem() throws Exception { check("cpu"); }

    /**
     * Every held-out case through {@code vlmflux generate --backend BACKEND}; the cases of {@code -Dvlmflux.heldout=DIR}
     * instead of the model's own when given (a larger set written by {@code train_demo_model.py --write-cases DIR},
     * without transformers' verdicts).
     */
    static void check(String backend) throws Exception {
        Path held = Path.of(System.getProperty("vlmflux.heldout", SHAPES.resolve("heldout").toString()));
        JsonNode cases = new ObjectMapper().readTree(held.resolve("cases.json").toFile());
        assertTrue(cases.size() >= 30, "a sample of every question type: " + cases.size());
        Map<String, int[]> perType = new TreeMap<>();
        List<String> wrong = new ArrayList<>();
        int agree = 0, judged = 0;
        for (JsonNode c : cases) {
            boolean video = c.has("video");
            String media = c.get(video ? "video" : "image").asText();
            List<String> args = new ArrayList<>(List.of("--model", SHAPES.toString(), "--prompt", c.get("question").asText()));
            if (video) args.addAll(List.of("--video", held.resolve(media).toString(), "--video-fps", c.get("fps").asText()));
            else args.addAll(List.of("--image", held.resolve(media).toString()));
            args.addAll(List.of("--greedy", "--max-tokens", "40", "--json", "--backend", backend));
            assertTrue(Files.exists(held.resolve(media)), media);
            String text = run(args).get("text").asText().trim();
            boolean ok = text.equals(c.get("answer").asText());
            String type = media.replaceAll("_\\d+_\\d+(\\.png)?$", "");   // caption_0_1.png, video_caption_1_0
            int[] t = perType.computeIfAbsent(type, k -> new int[2]);
            t[0] += ok ? 1 : 0; t[1]++;
            if (c.has("ok_transformers")) {
                judged++;
                if (ok == c.get("ok_transformers").asBoolean()) agree++;
            }
            if (!ok) wrong.add(media + ": '" + c.get("question").asText() + "' -> '" + text + "' (expected '" + c.get("answer").asText() + "')");
        }
        StringBuilder report = new StringBuilder();
        perType.forEach((k, v) -> report.append(String.format("%s %d/%d  ", k, v[0], v[1])));
        System.out.println("held-out cases through generate on " + backend + " (" + held + "): " + report + "; as transformers on " + agree + "/"
                + judged + "\n  wrong: " + String.join("\n  wrong: ", wrong));
        // eval.json holds the model's accuracy (1,200 images and 320 videos through transformers); this sample checks
        // that the product's path answers as transformers does, case by case, and that no question type is broken
        int right = perType.values().stream().mapToInt(v -> v[0]).sum();
        assertTrue(right >= 0.85 * cases.size(), "exact answers " + right + "/" + cases.size() + ": " + report + wrong);
        for (var e : perType.entrySet())
            assertTrue(e.getValue()[0] >= 0.5 * e.getValue()[1], "question type " + e.getKey() + ": " + report + wrong);
        assertTrue(agree >= 0.95 * judged, "right/wrong as transformers on " + agree + "/" + judged + ": " + wrong);
    }
}
