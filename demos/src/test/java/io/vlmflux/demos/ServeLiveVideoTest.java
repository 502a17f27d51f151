package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.serve.ChatServer;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.demos.serve.ServeOptions;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code vlmflux serve --live}: the flags as the command parses them, the real server on 127.0.0.1 with GStreamer's
 * live {@code test:ball} captioned by the demo model (cpu) AND watched by a live-video session: narrations over the
 * window arrive as {@code narration} events between the captions, a question is answered over the window (its
 * tokens as {@code answer} events spelling the returned answer, the response naming the window), the stream shows its
 * {@code live_window}; every sequence ends when the streams close.
 */
class ServeLiveVideoTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final ObjectMapper JSON = new ObjectMapper();

    static Args args(String... a) { return Args.parse(List.of(a), ServeStreams.VALUED, Set.of("no-streams")); }

    @Test @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void questionsAreAnsweredOverTheLiveWindowAndNarrationsStreamNextToCaptions() throws Exception {
        try (VlmRuntime runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU));
             HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build()) {
            Args a = args("--source", "test:ball", "--every", "2s", "--caption-tokens", "8", "--live", "all", "--live-fps", "2",
                    "--live-window", "6s", "--live-narrate", "3s", "--live-tokens", "12");
            LiveStreams streams = new LiveStreams(runtime, ServeStreams.options(a));
            ServeStreams.add(streams, a, null, runtime);
            ChatServer server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0), streams);
            try {
                ServeStreams.wire(streams, server, a, null, runtime);
                streams.start();
                HttpResponse<InputStream> r = http.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/ball/events")).build(),
                        HttpResponse.BodyHandlers.ofInputStream());
                assertEquals(200, r.statusCode());
                List<JsonNode> events = new ArrayList<>();
                CompletableFuture<HttpResponse<String>> asked = null;
                JsonNode done = null;
                long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(200);
                try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        assertTrue(System.nanoTime() < end, "within 200 s: " + events.stream().map(e -> e.get("type").asText()).toList());
                        if (!line.startsWith("data: ")) continue;
                        JsonNode ev = JSON.readTree(line.substring(6));
                        events.add(ev);
                        String type = ev.get("type").asText();
                        if (type.equals("narration") && asked == null)   // the window has video now: ask
                            asked = http.sendAsync(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/ball/questions"))
                                    .header("Content-Type", "application/json")
                                    .POST(HttpRequest.BodyPublishers.ofString("{\"question\":\"What shape is it?\",\"max_tokens\":12}")).build(),
                                    HttpResponse.BodyHandlers.ofString());
                        if (type.equals("answer") && ev.get("state").asText().equals("done")) done = ev;
                        if (done != null && events.stream().filter(e -> e.get("type").asText().equals("narration")).count() >= 2
                                && events.stream().anyMatch(e -> e.get("type").asText().equals("caption"))) break;
                    }
                }
                assertNotNull(done, "an answer: " + events);
                HttpResponse<String> res = asked.get(60, TimeUnit.SECONDS);
                assertEquals(200, res.statusCode(), res.body());
                JsonNode body = JSON.readTree(res.body());
                assertEquals(done.get("text").asText(), body.get("answer").asText());
                assertFalse(body.get("answer").asText().isBlank());
                JsonNode win = body.get("window");
                assertNotNull(win, "the answer names the live window: " + body);
                assertTrue(win.get("window_groups").asInt() >= 1, win.toString());
                assertTrue(win.get("window_end_s").asDouble() > win.get("window_start_s").asDouble(), win.toString());
                assertTrue(win.get("window_end_s").asDouble() - win.get("window_start_s").asDouble() <= 6.0 + 1.0, "the window is bounded: " + win);
                String qid = done.get("id").asText();
                StringBuilder spelled = new StringBuilder();
                for (JsonNode e : events)
                    if (e.get("type").asText().equals("answer") && e.get("id").asText().equals(qid) && e.get("state").asText().equals("token"))
                        spelled.append(e.get("delta").asText());
                assertEquals(done.get("text").asText(), spelled.toString().strip(), "the answer's tokens were streamed as events");
                for (JsonNode n : events) {
                    if (!n.get("type").asText().equals("narration")) continue;
                    assertEquals("Describe the video.", n.get("prompt").asText());   // the demo model's vlmflux_live.json
                    assertFalse(n.get("text").asText().isBlank(), n.toString());
                    assertTrue(n.get("window_groups").asInt() >= 1, n.toString());
                }
                JsonNode stream = JSON.readTree(http.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/ball")).build(),
                        HttpResponse.BodyHandlers.ofString()).body());
                JsonNode lw = stream.get("live_window");
                assertTrue(lw.get("groups_appended").asLong() >= 2, lw.toString());
                assertEquals(1, lw.get("answers").asLong(), lw.toString());
                assertTrue(lw.get("narrations").asLong() >= 2, lw.toString());
                assertTrue(stream.get("captions").asLong() >= 1, "captions go on next to the session: " + stream);
            } finally {
                streams.close();
                server.close();
            }
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (runtime.activeSequences() != 0 && System.nanoTime() < end) Thread.sleep(5);
            assertEquals(0, runtime.activeSequences(), "every caption, narration and answer ended");
        }
    }

    @Test void liveFlagsAreChecked() throws Exception {
        try (VlmRuntime runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            for (String[] bad : List.of(new String[]{"--live", "nope"}, new String[]{"--live-fps", "3"}, new String[]{"--live", "all", "--live-fps", "0"},
                    new String[]{"--live", "all", "--live-window", "0s"}, new String[]{"--live", "all", "--live-tokens", "0"},
                    new String[]{"--no-streams", "--live", "all"})) {
                Args a = args(bad);
                try (LiveStreams streams = new LiveStreams(runtime, ServeStreams.options(a))) {
                    UsageException e = assertThrows(UsageException.class, () -> ServeStreams.add(streams, a, null, runtime), String.join(" ", bad));
                    assertTrue(e.getMessage().contains("--live"), e.getMessage());
                }
            }
        }
    }
}
