package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The live streams of {@link LiveStreams} mounted in a real {@link ChatServer} on 127.0.0.1: GStreamer's live
 * {@code test:ball} captioned by the embedded demo model on the cpu backend, spoken to over real sockets.
 */
class LiveStreamsTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    static final Duration WAIT = Duration.ofSeconds(90);

    static VlmRuntime runtime;
    static LiveStreams streams;
    static ChatServer server;
    static TrackedSource source;

    @BeforeAll static void start() {
        runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU));
        streams = new LiveStreams(runtime, LiveStreams.Options.defaults().withEventQueue(32));
        source = new TrackedSource(Sources.parse("test:ball"));
        streams.add("ball", "test:ball", source, CaptionOptions.defaults().withMaxTokens(16), SamplingPolicy.parse("500ms"));
        server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withMaxTokens(64), streams);
        streams.start();
    }

    @AfterAll static void stop() throws Exception {
        // the streams first (ends event streams and views), then the server, then the model: nothing may be left
        if (streams != null) streams.close();
        HTTP.shutdownNow();   // its idle keep-alive connections would otherwise stay open for its keep-alive time
        if (server != null) {
            awaitTrue(() -> server.openConnections() == 0, "open connections to close (" + server.openConnections() + ")");
            server.close();
        }
        if (source != null) awaitTrue(() -> source.open.get() == 0, "every frame taken from the source to be closed (" + source.open.get() + " open)");
        if (runtime != null) {
            awaitTrue(() -> runtime.activeSequences() == 0, "the runtime's sequences to end");
            runtime.close();
        }
    }

    static HttpResponse<String> get(String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + path)).timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> post(String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + path)).timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** Reads the event stream until {@code until} matches an event (returned with all before it); fails after {@link #WAIT}. */
    static List<JsonNode> readEvents(BufferedReader r, Predicate<JsonNode> until) throws Exception {
        List<JsonNode> seen = new ArrayList<>();
        long end = System.nanoTime() + WAIT.toNanos();
        String line;
        while ((line = r.readLine()) != null) {
            if (line.startsWith("data: ")) {
                JsonNode ev = JSON.readTree(line.substring(6));
                seen.add(ev);
                if (until.test(ev)) return seen;
            }
            if (System.nanoTime() > end) fail("no matching event within " + WAIT + "; saw " + seen.size() + " events");
        }
        fail("the event stream ended; saw " + seen);
        return seen;
    }

    static InputStream openEvents(String id) throws Exception {
        HttpResponse<InputStream> r = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/" + id + "/events")).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        assertEquals(200, r.statusCode());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        return r.body();
    }

    // ---- listing ---------------------------------------------------------------------------------------------------

    @Test void streamsAreListedWithTheirLinksAndCounters() throws Exception {
        HttpResponse<String> r = get("/v1/streams");
        assertEquals(200, r.statusCode(), r.body());
        JsonNode list = JSON.readTree(r.body());
        assertEquals(1, list.get("data").size(), r.body());
        JsonNode s = list.get("data").get(0);
        assertEquals("ball", s.get("id").asText());
        assertEquals("test:ball", s.get("source").asText());
        assertTrue(s.get("live").asBoolean());
        assertEquals("/v1/streams/ball/events", s.get("links").get("events").asText());
        awaitTrue(() -> source.stats().produced() > 0, "the source's first frame");
        JsonNode one = JSON.readTree(get("/v1/streams/ball").body());
        assertEquals("running", one.get("status").asText(), one.toString());
        assertTrue(one.get("stages").isArray());
    }

    // ---- events ----------------------------------------------------------------------------------------------------

    @Test void captionsArriveAsEventsAfterTheirLiveTokens() throws Exception {
        try (InputStream in = openEvents("ball"); BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            // the first caption may have begun before we subscribed: wait for a second one, whose tokens we saw
            List<JsonNode> seen = new ArrayList<>();
            int[] captions = {0};
            seen.addAll(readEvents(r, ev -> ev.get("type").asText().equals("caption") && ++captions[0] == 2));
            JsonNode caption = seen.getLast();
            assertEquals("ball", caption.get("stream").asText());
            assertFalse(caption.get("text").asText().isBlank(), caption.toString());
            assertTrue(caption.get("timings").get("total_ms").asDouble() > 0, caption.toString());
            long frame = caption.get("frame").asLong();
            StringBuilder tokens = new StringBuilder();
            for (JsonNode ev : seen)
                if (ev.get("type").asText().equals("token") && ev.get("frame").asLong() == frame) tokens.append(ev.get("delta").asText());
            assertEquals(caption.get("text").asText(), tokens.toString().strip(), "the live tokens spell the caption");
            long prev = 0;
            for (JsonNode ev : seen) {
                assertTrue(ev.get("seq").asLong() > prev, "seq grows: " + seen);
                prev = ev.get("seq").asLong();
            }
        }
        awaitTrue(() -> streams.watchers() == 0, "the event stream to be released when the client left");
    }

    @Test void unknownAndInvalidStreamIdsAre404WithoutEchoingThem() throws Exception {
        HttpResponse<String> r = get("/v1/streams/nope/events");
        assertEquals(404, r.statusCode());
        assertEquals("stream_not_found", JSON.readTree(r.body()).get("error").get("code").asText());
        r = get("/v1/streams/%3Cscript%3E/events");
        assertEquals(404, r.statusCode());
        assertFalse(r.body().contains("<script>") || r.body().contains("script"), r.body());
        assertEquals(405, HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/ball/questions")).build(),
                HttpResponse.BodyHandlers.ofString()).statusCode());
        assertEquals(404, get("/v1/streams/ball/../../etc/passwd").statusCode());
    }

    // ---- questions -------------------------------------------------------------------------------------------------

    @Test void aQuestionIsAnsweredAndItsTokensPublished() throws Exception {
        awaitTrue(() -> streams.stream("ball").latest() != null, "a frame to ask about");
        try (InputStream in = openEvents("ball"); BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            HttpResponse<String> resp = post("/v1/streams/ball/questions", "{\"question\": \"What shape is in the image?\", \"max_tokens\": 12}");
            assertEquals(200, resp.statusCode(), resp.body());
            JsonNode a = JSON.readTree(resp.body());
            String id = a.get("id").asText();
            assertFalse(a.get("answer").asText().isBlank(), resp.body());
            assertTrue(a.get("frame").get("sequence").asLong() >= 0, resp.body());
            List<JsonNode> seen = readEvents(r, ev -> ev.get("type").asText().equals("answer") && ev.get("id").asText().equals(id)
                    && ev.get("state").asText().equals("done"));
            JsonNode done = seen.getLast();
            assertEquals(a.get("answer").asText(), done.get("text").asText());
            StringBuilder deltas = new StringBuilder();
            for (JsonNode ev : seen)
                if (ev.get("type").asText().equals("answer") && ev.get("id").asText().equals(id) && ev.get("state").asText().equals("token"))
                    deltas.append(ev.get("delta").asText());
            assertEquals(a.get("answer").asText(), deltas.toString().strip(), "the answer's token events spell it");
        }
    }

    @Test void badQuestionsAreRefusedNamingTheField() throws Exception {
        assertEquals("question", JSON.readTree(post("/v1/streams/ball/questions", "{\"question\": \"  \"}").body()).get("error").get("param").asText());
        assertEquals(400, post("/v1/streams/ball/questions", "{\"question\": \"hi\", \"shell\": \"rm -rf /\"}").statusCode());
        assertEquals(400, post("/v1/streams/ball/questions", "[1,2]").statusCode());
        assertEquals(400, post("/v1/streams/ball/questions", "{\"question\": \"hi\", \"max_tokens\": 100000}").statusCode());
        assertEquals(400, post("/v1/streams/ball/questions", "{\"question\": \"" + "x".repeat(LiveStreams.MAX_QUESTION_CHARS + 1) + "\"}").statusCode());
        assertEquals(413, post("/v1/streams/ball/questions", "{\"question\": \"" + "x".repeat(LiveStreams.MAX_QUESTION_BODY) + "\"}").statusCode());
    }

    // ---- sharing the model -----------------------------------------------------------------------------------------

    @Test void chatCompletionsRunWhileTheStreamIsCaptioned() throws Exception {
        awaitTrue(() -> streams.stream("ball").captions() > 0, "the first caption");
        long before = streams.stream("ball").captions();
        String body = "{\"model\": \"shapes-vl\", \"max_tokens\": 24, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"a red circle\"}]}";
        List<CompletableFuture<HttpResponse<String>>> calls = new ArrayList<>();
        for (int i = 0; i < 3; i++)
            calls.add(HTTP.sendAsync(HttpRequest.newBuilder(URI.create(server.url() + "/v1/chat/completions")).timeout(Duration.ofSeconds(120))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()));
        String first = null;
        for (var c : calls) {
            HttpResponse<String> r = c.get();
            assertEquals(200, r.statusCode(), r.body());
            String text = JSON.readTree(r.body()).get("choices").get(0).get("message").get("content").asText();
            if (first == null) first = text;
            assertEquals(first, text, "greedy completions agree while captions run beside them");
        }
        awaitTrue(() -> streams.stream("ball").captions() > before + 1, "captions to go on beside the requests");
    }

    // ---- the view --------------------------------------------------------------------------------------------------

    @Test void theViewServesJpegFramesAndAnMjpegStream() throws Exception {
        awaitTrue(() -> streams.stream("ball").view().latest() != null, "the first view frame");
        HttpResponse<byte[]> r = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/ball/frame.jpg")).build(), HttpResponse.BodyHandlers.ofByteArray());
        assertEquals(200, r.statusCode());
        assertEquals("image/jpeg", r.headers().firstValue("Content-Type").orElse(""));
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(r.body()));
        assertNotNull(img, "a decodable JPEG");
        assertEquals(streams.stream("ball").latest().width(), img.getWidth());
        assertTrue(streams.stream("ball").view().gstreamer(), "the view is encoded by GStreamer's jpegenc");

        HttpResponse<InputStream> m = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/streams/ball/view.mjpeg")).build(), HttpResponse.BodyHandlers.ofInputStream());
        assertEquals(200, m.statusCode());
        assertTrue(m.headers().firstValue("Content-Type").orElse("").startsWith("multipart/x-mixed-replace; boundary=" + LiveStreams.BOUNDARY));
        try (DataInputStream in = new DataInputStream(m.body())) {
            long firstSeq = -1;
            for (int part = 0; part < 2; part++) {
                assertEquals("--" + LiveStreams.BOUNDARY, line(in));
                assertEquals("Content-Type: image/jpeg", line(in));
                String len = line(in);
                assertTrue(len.startsWith("Content-Length: "), len);
                assertEquals("", line(in));
                byte[] jpeg = new byte[Integer.parseInt(len.substring(16))];
                in.readFully(jpeg);
                assertEquals("", line(in));
                assertNotNull(ImageIO.read(new ByteArrayInputStream(jpeg)), "part " + part + " is a JPEG");
            }
        }
    }

    static String line(DataInputStream in) throws Exception {
        StringBuilder b = new StringBuilder();
        int c;
        while ((c = in.read()) != -1 && c != '\n') if (c != '\r') b.append((char) c);
        return b.toString();
    }

    // ---- slow clients ----------------------------------------------------------------------------------------------

    /**
     * A client that stops reading: publishing never waits for it; once its socket and queue are full it loses the
     * oldest events, and every gap it sees is announced by a {@code dropped} event giving exactly the gap's size.
     */
    @Test void aSlowEventClientLosesOldEventsCountedAndIsToldSo() throws Exception {
        EventHub hub = streams.stream("ball").hub();
        long droppedBefore = hub.dropped();
        int subscribersBefore = hub.subscribers();
        try (Socket s = new Socket()) {
            s.setReceiveBufferSize(4096);
            s.connect(new InetSocketAddress("127.0.0.1", server.port()), 10_000);
            OutputStream out = s.getOutputStream();
            out.write(("GET /v1/streams/ball/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            awaitTrue(() -> hub.subscribers() > subscribersBefore, "the slow client's subscription");
            String pad = "x".repeat(2000);
            int n = 3000;
            long t0 = System.nanoTime();
            for (int i = 0; i < n; i++) hub.publish("alert", hub.fields().put("message", "test " + i).put("pad", pad));
            long publishMs = (System.nanoTime() - t0) / 1_000_000;
            // ~6 MB against a 4 kB receive buffer and a queue of 32: the bulk must have been dropped, without waiting
            assertTrue(hub.dropped() - droppedBefore > n / 2, "dropped " + (hub.dropped() - droppedBefore) + " of " + n);
            assertTrue(publishMs < 5_000, "publishing " + n + " events took " + publishMs + " ms");
            hub.publish("alert", hub.fields().put("message", "last"));

            BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
            String line;
            while (!(line = r.readLine()).isEmpty()) { /* response headers */ }
            long prevSeq = -1, pendingDrop = 0, droppedSeen = 0, received = 0;
            while ((line = r.readLine()) != null) {
                int at = line.indexOf("data: {");
                if (at < 0) continue;   // chunk sizes, ids, comments
                JsonNode ev = JSON.readTree(line.substring(at + 6));
                if (ev.get("type").asText().equals("dropped")) {
                    assertEquals(0, pendingDrop, "two dropped events in a row");
                    pendingDrop = ev.get("count").asLong();
                    assertTrue(pendingDrop > 0);
                    droppedSeen += pendingDrop;
                    continue;
                }
                long seq = ev.get("seq").asLong();
                if (prevSeq >= 0) assertEquals(prevSeq + 1 + pendingDrop, seq, "a gap is announced by a dropped event of its size");
                else assertEquals(0, pendingDrop);
                pendingDrop = 0;
                prevSeq = seq;
                received++;
                if (ev.has("message") && ev.get("message").asText().equals("last")) break;
            }
            assertTrue(droppedSeen > n / 2, "the client was told of " + droppedSeen + " lost events");
            assertTrue(received > 0);
        }
        awaitTrue(() -> hub.subscribers() == subscribersBefore, "the slow client's subscription to end when it left");
    }

    // ---- the page --------------------------------------------------------------------------------------------------

    @Test void thePageAndItsFilesAreServedWithAStrictContentPolicy() throws Exception {
        HttpResponse<String> r = get("/");
        assertEquals(200, r.statusCode());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
        String csp = r.headers().firstValue("Content-Security-Policy").orElse("");
        assertTrue(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), csp);
        assertTrue(r.body().contains("/ui/app.js"));
        assertTrue(get("/ui/app.js").body().contains("EventSource"));
        assertEquals(200, get("/ui/app.css").statusCode());
        assertEquals(404, get("/ui/../pom.xml").statusCode());
        assertEquals(404, get("/ui/index.html").statusCode());
    }

    static void awaitTrue(BooleanSupplier condition, String what) throws InterruptedException {
        io.vlmflux.demos.Await.until(WAIT, Duration.ofMillis(5), what, condition);
    }
}
