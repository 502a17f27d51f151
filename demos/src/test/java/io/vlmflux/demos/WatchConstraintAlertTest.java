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

/**
 * {@code vlmflux watch} with the constraint flags and {@code --alert} on the demo model (cpu) over a non-live
 * GStreamer ball. shapes-vl only knows "Describe the image.": the regex pins the answers to its position phrase, so
 * these show the flags reach the answers and the events, not that the model understands a question.
 */
class WatchConstraintAlertTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    static final String POSITION = "a white circle (at|in) the (top left|top right|bottom left|bottom right|top|bottom|left|right|center)";
    static final String SOURCE = "test:ball?live=false&width=112&height=112&fps=2&num-buffers=";

    static List<JsonNode> run(String stdin, String... args) throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        List<String> argv = new ArrayList<>(List.of("--model", ROOT.resolve("demos/models/shapes-vl").toString(), "--backend", "cpu",
                "--narrate", "off", "--window", "2s", "--json"));
        argv.addAll(List.of(args));
        assertEquals(0, new WatchCommand(new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)), out).run(argv));
        List<JsonNode> lines = new ArrayList<>();
        for (String l : buf.toString(StandardCharsets.UTF_8).split("\n")) if (!l.isBlank()) lines.add(new ObjectMapper().readTree(l));
        lines.forEach(System.out::println);
        return lines;
    }

    @Test void regexAndLogprobsShapeTheAnswerToATypedQuestion() throws Exception {
        List<JsonNode> out = run("Describe the image.\n", "--source", SOURCE + "8", "--regex", POSITION, "--logprobs", "--max-tokens", "24");
        assertEquals(1, out.size());
        JsonNode a = out.getFirst();
        assertEquals("answer", a.get("kind").asText());
        assertTrue(a.get("text").asText().matches(POSITION), a.toString());
        assertTrue(a.get("logprob").isNumber() && a.get("logprob").asDouble() <= 0, a.toString());
    }

    @Test void alertsOverTheWindowPrintEventsAsJson() throws Exception {
        // 12 frames at 2 fps: 6 groups of 1 s; checks every 2 s of video after groups 0, 2, 4
        List<JsonNode> out = run("", "--source", SOURCE + "12", "--alert", "Where is it? /" + POSITION + "/", "--alert-agree", "1",
                "--alert-every", "2s");
        assertFalse(out.isEmpty());
        for (JsonNode e : out) {
            assertEquals("alert", e.get("event").asText(), e.toString());
            assertEquals("changed", e.get("kind").asText().toLowerCase(java.util.Locale.ROOT), e.toString());
            assertTrue(e.get("answer").asText().matches(POSITION), e.toString());
            assertEquals(0, e.get("evidence").get(0).get("sequence").asLong() % 2, e.toString());
            assertTrue(e.get("logprob").asDouble() <= 0, e.toString());
        }
        assertTrue(out.size() <= 3, "at most one event per check: " + out);
    }

    @Test void badFlagsNameTheFlag() {
        WatchCommand cmd = new WatchCommand(new ByteArrayInputStream(new byte[0]), System.out);
        UsageException e = assertThrows(UsageException.class, () -> cmd.run(List.of("--regex", "a(b", "--backend", "cpu")));
        assertTrue(e.getMessage().startsWith("--regex"), e.getMessage());
        e = assertThrows(UsageException.class, () -> cmd.run(List.of("--regex", "a", "--choice", "a,b")));
        assertTrue(e.getMessage().contains("at most one"), e.getMessage());
        e = assertThrows(UsageException.class, () -> cmd.run(List.of("--alert-every", "2s")));
        assertTrue(e.getMessage().contains("--alert-every"), e.getMessage());
        e = assertThrows(UsageException.class, () -> cmd.run(List.of("--alert", "no question mark")));
        assertTrue(e.getMessage().startsWith("--alert"), e.getMessage());
    }
}
