package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux watch} on the demo model and a real GStreamer test source (cpu): a question typed on stdin gets one JSON answer. */
class WatchCommandTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();

    @Test void answersAQuestionFromStdinAsJson() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        WatchCommand cmd = new WatchCommand(new ByteArrayInputStream("What shape is it?\n".getBytes(StandardCharsets.UTF_8)), out);
        int rc = cmd.run(List.of("--model", ROOT.resolve("demos/models/shapes-vl").toString(), "--source",
                "test:ball?live=false&width=112&height=112&fps=2&num-buffers=16", "--backend", "cpu", "--narrate", "off", "--max-tokens", "6",
                "--window", "4s", "--json"));   // a non-live source: lossless, the run ends with its 16 frames
        assertEquals(0, rc);
        List<JsonNode> lines = new ArrayList<>();
        for (String l : buf.toString(StandardCharsets.UTF_8).split("\n")) if (!l.isBlank()) lines.add(new ObjectMapper().readTree(l));
        JsonNode a = lines.stream().filter(n -> n.get("kind").asText().equals("answer")).findFirst().orElseThrow(() -> new AssertionError("no answer in " + buf));
        assertEquals("What shape is it?", a.get("question").asText());
        assertTrue(a.get("tokens").asInt() >= 1);
        if (a.get("window_groups").asInt() > 0) assertTrue(a.get("window_end_s").asDouble() > a.get("window_start_s").asDouble());
        else assertTrue(a.get("window_start_s").isNull());
        assertTrue(a.has("ttft_ms") && a.has("total_ms") && a.has("dropped_groups") && a.has("finish_reason"));
    }

    /**
     * With no flags but a source, {@code watch} on the demo model takes the model folder's live settings
     * (vlmflux_live.json): a 4 s window and the narration "Describe the video.", which the model answers with a caption
     * of the motion ("a white circle moves ... on a black background"). Narration runs on the wall clock: the source
     * is the live ball, for 6 s.
     */
    @Test void defaultsComeFromTheModelFolder() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        WatchCommand cmd = new WatchCommand(new ByteArrayInputStream(new byte[0]), out);
        int rc = cmd.run(List.of("--source", "test:ball?width=320&height=240", "--backend", "cpu", "--narrate", "1s", "--duration", "9s", "--json"));
        assertEquals(0, rc);
        List<JsonNode> narrations = new ArrayList<>();
        for (String l : buf.toString(StandardCharsets.UTF_8).split("\n"))
            if (!l.isBlank()) {
                JsonNode n = new ObjectMapper().readTree(l);
                if (n.get("kind").asText().equals("narration")) narrations.add(n);
            }
        assertFalse(narrations.isEmpty(), "narrations in 9 s: " + buf);
        int captioned = 0, slid = 0;
        for (JsonNode n : narrations) {
            assertEquals("Describe the video.", n.get("question").asText());
            if (n.get("window_groups").asInt() >= 2) {   // 4 s, held until half a second more is out (then re-prefilled)
                assertTrue(n.get("window_end_s").asDouble() - n.get("window_start_s").asDouble() <= 5.5 + 1e-9, n.toString());
                assertTrue(n.get("text").asText().matches("a white circle (moves (to the left|to the right|up|down)|is not moving) on a black background"),
                        n.toString());
                captioned++;
                if (n.get("window_start_s").asDouble() > 0) slid++;   // never within 9 s with the default 30 s window
            }
        }
        assertTrue(captioned > 0 && slid > 0, "narrations over 2+ groups (" + captioned + ") and over a window that slid (" + slid + "): " + narrations);
    }

    /** A Qwen3-VL folder (the tiny fixture): groups with timestamps and DeepStack rows; the question gets its answer. */
    @Test void watchesWithAQwen3VlFolder() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        WatchCommand cmd = new WatchCommand(new ByteArrayInputStream("What moves?\n".getBytes(StandardCharsets.UTF_8)), out);
        int rc = cmd.run(List.of("--model", ROOT.resolve("llm/src/test/resources/fixtures/tiny-qwen3vl").toString(), "--source",
                "test:ball?live=false&width=112&height=112&fps=2&num-buffers=8", "--backend", "cpu", "--narrate", "off", "--max-tokens", "4",
                "--window", "2s", "--json"));
        assertEquals(0, rc);
        List<JsonNode> lines = new ArrayList<>();
        for (String l : buf.toString(StandardCharsets.UTF_8).split("\n")) if (!l.isBlank()) lines.add(new ObjectMapper().readTree(l));
        JsonNode a = lines.stream().filter(n -> n.get("kind").asText().equals("answer")).findFirst().orElseThrow(() -> new AssertionError("no answer in " + buf));
        assertEquals("What moves?", a.get("question").asText());
        assertTrue(a.get("tokens").asInt() >= 1 && a.get("tokens").asInt() <= 4, a.toString());
    }

    @Test void badFlagsAreUsageErrors() {
        WatchCommand cmd = new WatchCommand(new ByteArrayInputStream(new byte[0]), System.out);
        assertThrows(UsageException.class, () -> cmd.run(List.of("--fps", "0")));
        assertThrows(UsageException.class, () -> cmd.run(List.of("--eviction", "sometimes")));
    }
}
