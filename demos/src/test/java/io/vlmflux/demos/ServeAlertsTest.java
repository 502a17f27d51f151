package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.serve.ChatServer;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.demos.serve.ServeOptions;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code vlmflux serve --alert} and the streams' meters, end to end: the flags as the command parses them, a real
 * {@link ChatServer} on 127.0.0.1 with GStreamer's live {@code test:ball} captioned by the demo model (cpu), the
 * alert asking where the ball is next to the captions, read back over SSE and {@code GET /metrics}.
 */
class ServeAlertsTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final String WHERE = CaptionAlertCommandTest.WHERE;
    static final Pattern REGION = Pattern.compile("a white circle (at|in) the (top left|top right|bottom left|bottom right|top|bottom|left|right|center)");
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    static final Duration WAIT = Duration.ofSeconds(120);

    static VlmRuntime runtime;
    static LiveStreams streams;
    static ChatServer server;

    static Args args(String... a) {
        return Args.parse(List.of(a), ServeStreams.VALUED, Set.of("no-streams"));
    }

    @BeforeAll static void start() {
        runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU));
        Args a = args("--source", "test:ball", "--every", "500ms", "--caption-tokens", "8", "--alert", WHERE, "--alert-agree", "1");
        streams = new LiveStreams(runtime, ServeStreams.options(a));
        ServeStreams.add(streams, a, null, runtime);
        server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0), streams);
        ServeStreams.wire(streams, server, a, null, runtime);
        streams.start();
    }

    @AfterAll static void stop() throws Exception {
        if (streams != null) streams.close();
        HTTP.shutdownNow();
        if (server != null) server.close();
        if (runtime != null) {
            long end = System.nanoTime() + WAIT.toNanos();
            while (runtime.activeSequences() != 0 && System.nanoTime() < end) Thread.sleep(5);
            assertEquals(0, runtime.activeSequences(), "every caption and alert answer ended");
            runtime.close();
        }
    }

    @Test void alertsAreServedAsEventsNextToCaptionsAndEverythingIsMetered() throws Exception {
        List<JsonNode> alerts = new ArrayList<>();
        int captions = 0;
        HttpResponse<InputStream> r = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/ball/events")).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        assertEquals(200, r.statusCode());
        try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            long end = System.nanoTime() + WAIT.toNanos();
            String line;
            while ((alerts.size() < 2 || captions < 2) && (line = in.readLine()) != null) {
                if (System.nanoTime() > end) fail("within " + WAIT + ": " + alerts.size() + " alerts, " + captions + " captions");
                if (!line.startsWith("data: ")) continue;
                JsonNode ev = JSON.readTree(line.substring(6));
                if (ev.get("type").asText().equals("caption")) captions++;
                if (ev.get("type").asText().equals("alert")) alerts.add(ev);
            }
        }
        for (JsonNode e : alerts) {
            assertEquals("ball", e.get("stream").asText());
            assertEquals(WHERE, e.get("watch").asText(), e.toString());
            assertEquals("changed", e.get("kind").asText(), e.toString());
            assertTrue(REGION.matcher(e.get("answer").asText()).matches(), e.toString());
            double c = e.get("confidence").asDouble();
            assertTrue(c > 0 && c <= 1, e.toString());
            assertEquals(1, e.get("evidence").size(), "--alert-agree 1: one answer confirms: " + e);
            assertTrue(e.get("message").asText().startsWith(WHERE + ": a white circle"), e.toString());
        }
        assertNotEquals(alerts.get(0).get("answer").asText(), alerts.get(1).get("answer").asText(), "a change is a new answer: " + alerts);
        assertEquals(alerts.get(0).get("answer").asText(), alerts.get(1).get("previous").asText());

        JsonNode stream = JSON.readTree(get("/v1/streams/ball").body());
        assertTrue(stream.get("alerts").asLong() >= 2, stream.toString());

        String m1 = get("/metrics").body();
        double in1 = value(m1, "vlmflux_frames_in_total\\{source=\"ball\",?\\}");
        double cap1 = value(m1, "vlmflux_caption_latency_seconds_count\\{source=\"ball\",?\\}");
        assertTrue(in1 > 0, "frames in: " + in1);
        assertTrue(cap1 >= 2, "captions timed: " + cap1);
        assertTrue(value(m1, "vlmflux_caption_ttft_seconds_sum\\{source=\"ball\",?\\}") > 0);
        assertTrue(value(m1, "vlmflux_alerts_total\\{kind=\"changed\",source=\"ball\",watch=\"[^\"]*\",?\\}") >= 2, m1);
        // the meters move while the stream runs
        long end = System.nanoTime() + WAIT.toNanos();
        String m2;
        do {
            Thread.sleep(200);
            m2 = get("/metrics").body();
            if (System.nanoTime() > end) fail("the frame and caption meters did not move");
        } while (value(m2, "vlmflux_frames_in_total\\{source=\"ball\",?\\}") <= in1 || value(m2, "vlmflux_caption_latency_seconds_count\\{source=\"ball\",?\\}") <= cap1);

        // one vision encoding per frame serves the caption and the alert: the second one is an encoder cache hit
        assertTrue(runtime.encoderCacheStats().hits() >= 2, "encoder cache: " + runtime.encoderCacheStats());
    }

    @Test void badServeAlertsAreUsageErrors() {
        UsageException e = assertThrows(UsageException.class, () -> AlertMode.alerts(args("--alert", "Is there a person"), null));
        assertTrue(e.getMessage().contains("has no '?'"), e.getMessage());
        e = assertThrows(UsageException.class, () -> {
            try (LiveStreams s = new LiveStreams(runtime, LiveStreams.Options.defaults())) {
                ServeStreams.wire(s, server, args("--no-streams", "--alert", "Q? a|b"), null, runtime);
            }
        });
        assertTrue(e.getMessage().contains("--no-streams"), e.getMessage());
    }

    static double value(String text, String series) {
        Matcher m = Pattern.compile("(?m)^" + series + " ([0-9.eE+-]+)$").matcher(text);
        assertTrue(m.find(), "no " + series + " in /metrics");
        return Double.parseDouble(m.group(1));
    }

    static HttpResponse<String> get(String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + path)).timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }
}
