package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.vlmflux.demos.CaptionCommandTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux caption --alert} and a config's {@code alerts} on the demo model over GStreamer's ball. */
class CaptionAlertCommandTest {
    static final String WHERE = "Describe the image.? /a white circle (at|in) the (top left|top right|bottom left|bottom right|top|bottom|left|right|center)/";

    @Test void alertsPrintJsonEventsWhenTheBallChangesRegion() throws Exception {
        CaptionCommandTest.Result r = run("caption", "--json", "--source", "test:ball?live=false&num-buffers=60", "--every", "6f", "--backend", "cpu",
                "--alert", WHERE, "--alert", "Describe the image.? a white circle|a red square", "--alert-agree", "1");
        assertEquals(0, r.code(), r.err());
        List<JsonNode> events = new ArrayList<>();
        for (String line : r.out()) events.add(new ObjectMapper().readTree(line));
        assertFalse(events.isEmpty(), r.err());
        for (JsonNode e : events) {
            assertEquals("alert", e.get("event").asText(), e.toString());
            assertEquals("changed", e.get("kind").asText(), e.toString());
            assertEquals("test:ball?live=false&num-buffers=60", e.get("source").asText());
            assertTrue(e.get("confidence").asDouble() > 0 && e.get("confidence").asDouble() <= 1, e.toString());
            assertEquals(1, e.get("evidence").size(), "--alert-agree 1: one answer confirms: " + e);
        }
        List<JsonNode> shape = events.stream().filter(e -> e.get("watch").asText().endsWith("a red square")).toList();
        assertEquals(1, shape.size(), "the shape never changes: " + events);
        assertEquals("a white circle", shape.getFirst().get("answer").asText());
        assertTrue(events.stream().filter(e -> e.get("watch").asText().equals(WHERE)).count() >= 2, "the ball moves: " + events);
        assertTrue(r.err().contains("encoder cache 0 hits, 10 misses"), "10 frames, one encoding each for both alerts: " + r.err());
    }

    @Test void configAlertsWithAJsonConstraint(@TempDir Path tmp) throws Exception {
        Path cfg = tmp.resolve("alerts.json");
        Files.writeString(cfg, """
                {"sources": [{"uri": "test:ball?live=false&num-buffers=24", "id": "ball"}], "sampling": {"every": "6f"},
                 "model": {"dir": "demos/models/shapes-vl", "backend": "cpu"},
                 "alerts": [{"name": "shape", "question": "Describe the image.", "constraint": {"choice": ["a white circle", "a red square"]}, "agree": 1}]}""");
        CaptionCommandTest.Result r = run("caption", "--config", cfg.toString());
        assertEquals(0, r.code(), r.err());
        assertEquals(1, r.out().size(), r.out().toString());
        assertTrue(r.out().getFirst().startsWith("[alert changed | ball | shape] a white circle p="), r.out().getFirst());
    }

    @Test void badAlertsAreUsageErrors(@TempDir Path tmp) throws Exception {
        CaptionCommandTest.Result r = run("caption", "--alert", "Is there a person");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--alert: alert 'Is there a person' has no '?'"), r.err());
        r = run("caption", "--alert", "Is there a person? yes|no", "--choice", "a,b");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("not --choice"), r.err());
        r = run("caption", "--alert-agree", "3");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("need --alert"), r.err());
        r = run("caption", "--alert", "Q? a|b", "--alert-agree", "0");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("agree"), r.err());
        Path cfg = tmp.resolve("bad.json");
        Files.writeString(cfg, """
                {"sources": [{"uri": "test:ball"}], "model": {"dir": "demos/models/shapes-vl"},
                 "alerts": [{"question": "Q?", "constraint": {"grammar": "x", "regex": "y"}}]}""");
        r = run("caption", "--config", cfg.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("alerts[0]: field 'constraint': exactly one of json_schema, regex, choice, grammar is needed, found grammar, regex"), r.err());
    }
}
