package io.vlmflux.demos.fleet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.fleet.FleetHarness.Event;
import io.vlmflux.demos.fleet.FleetHarness.Node;
import io.vlmflux.sinks.InProcessKafka;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import static io.vlmflux.demos.fleet.FleetHarness.awaitTrue;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code vlmflux serve --fleet} with the demo model on cpu, on a real in-process KRaft broker.
 *
 * <p>Two nodes, two live test-pattern cameras (one per partition), the first with its own {@code alerts}: the first node
 * owns both cameras and its page lists both; when the second joins, Kafka moves one camera to it and the first node's
 * stream list (the page's {@code GET /v1/streams}, which the page polls) drops it; {@code GET /v1/fleet} of each node
 * shows its camera and both members; model captions of both cameras, from their owners, land in the one fleet topic as
 * schema-valid records; the camera named by {@code --live} has a live-video session on its owner, answers a question
 * over its window and the reply is a record of the topic; the camera record's alerts run on its owner (alert records in the topic), a change of them
 * takes effect without a restart, a record with a bad alert is refused naming the field; a deleted camera record
 * leaves its owner's streams without a restart; SIGKILL of a node moves its camera to the other within session timeout
 * + 5 s.
 *
 * <p>Three nodes, six cameras: the failover scenario of {@link FleetHarness.Failover} with the model.
 */
class ServeFleetTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    static final int PARTITIONS = 2;
    static final Duration SESSION = Duration.ofSeconds(6);
    static final String GROUP = "serve-fleet-test", CAMS = "serve-cams", EVENTS = "serve-events";
    static final ObjectMapper JSON = new ObjectMapper();
    /** The demo model's one question, asked as an alert: where the ball is. */
    static final String WHERE_QUESTION = "Describe the image.",
            WHERE_ANSWERS = "/a white circle (at|in) the (top left|top right|bottom left|bottom right|top|bottom|left|right|center)/";

    @TempDir static Path dir;
    static InProcessKafka kafka;

    @BeforeAll static void broker() throws Exception { kafka = FleetHarness.startBroker(dir, CAMS, EVENTS, PARTITIONS); }

    @AfterAll static void stopBroker() { if (kafka != null) kafka.close(); }

    /** A serve node's JVM command line: the demo model on cpu, any port, the fleet flags. */
    static List<String> serveNode(String name, String group, String cams, String events, int captionTokens, String heap, String... extra) {
        List<String> args = new ArrayList<>(List.of("serve", "--model", ROOT.resolve("demos/models/shapes-vl").toString(), "--backend", "cpu",
                "--port", "0", "--view-fps", "1", "--caption-tokens", Integer.toString(captionTokens)));
        args.addAll(FleetHarness.fleetFlags(kafka, group, name, cams, events, SESSION));
        args.addAll(List.of(extra));
        return FleetHarness.java(List.of("--add-modules", "jdk.incubator.vector", "-Xmx" + heap, "-XX:+UseSerialGC"), args);
    }

    final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @Test void twoServeNodesCaptionTheirCamerasWithTheModel() throws Exception {
        List<String> cameras = FleetHarness.camerasOnePerPartition(PARTITIONS);
        String alerted = cameras.getFirst(), watched = cameras.get(1);   // watched: a live-video session on it (--live)
        String[] live = {"--live", watched, "--live-fps", "1", "--live-window", "4s"};
        KafkaProducer<String, byte[]> producer = FleetHarness.producer(kafka);
        producer.send(new ProducerRecord<>(CAMS, alerted, camera(alerted, 128, "where"))).get();
        producer.send(new ProducerRecord<>(CAMS, cameras.get(1), camera(cameras.get(1), 128, null))).get();
        // a record whose alert has no question: refused by the node that owns its partition, naming the field
        producer.send(new ProducerRecord<>(CAMS, "bad-alerts", ("{\"id\":\"bad-alerts\",\"source\":\"test:ball\",\"alerts\":[{\"answers\":\"yes|no\"}]}")
                .getBytes(java.nio.charset.StandardCharsets.UTF_8))).get();
        FleetHarness.EventLog events = new FleetHarness.EventLog(kafka, EVENTS, PARTITIONS);
        Map<String, Node> nodes = new LinkedHashMap<>();
        Map<String, Integer> gains = new ConcurrentHashMap<>();
        Path logs = Files.createDirectories(Path.of("target", "serve-fleet-test"));
        try {
            // 1. one node: it owns both cameras, its page lists both, model captions of both arrive from it, the camera's alerts run
            Node n1 = new Node("s1", serveNode("s1", GROUP, CAMS, EVENTS, 12, "512m", live), logs.resolve("s1.log"), gains);
            nodes.put("s1", n1);
            awaitTrue(Duration.ofSeconds(120), "s1 owns both cameras and captions them", () -> n1.owns.equals(Set.copyOf(cameras)) && n1.url() != null
                    && cameras.stream().allMatch(c -> events.lastFrom(c, "s1", 0)));
            assertEquals(new TreeSet<>(cameras), streamIds(n1), "s1's page lists its cameras");
            awaitTrue(Duration.ofSeconds(60), "alert records of " + alerted + " (its record's alerts)", () -> !alerts(events, alerted, "where", 0).isEmpty());
            Event firstAlert = alerts(events, alerted, "where", 0).getFirst();
            assertEquals("changed", firstAlert.record().get("kind").asText(), firstAlert.record().toString());
            assertTrue(firstAlert.record().get("answer").asText().startsWith("a white circle"), firstAlert.record().toString());
            assertTrue(alerts(events, cameras.get(1), null, 0).isEmpty(), "the other camera has no alerts (its record has none, the node none)");
            // the --live camera answers over its window; the reply goes to the fleet topic
            JsonNode[] reply = new JsonNode[1];
            awaitTrue(Duration.ofSeconds(60), "an answer over " + watched + "'s live window", () -> (reply[0] = ask(n1, watched, "What shape is it?")) != null);
            assertTrue(reply[0].get("window").get("window_groups").asInt() >= 1, reply[0].toString());
            assertTrue(get(n1, "/v1/streams/" + watched).get("live_window").get("window_s").asDouble() == 4.0, "the fleet camera's live window");
            assertTrue(get(n1, "/v1/streams/" + alerted).path("live_window").isMissingNode() || get(n1, "/v1/streams/" + alerted).path("live_window").isNull(),
                    "--live names only " + watched);
            String qid = reply[0].get("id").asText();
            awaitTrue(Duration.ofSeconds(30), "the reply record of " + qid, () -> events.all.getOrDefault(watched, List.of()).stream()
                    .anyMatch(e -> e.type().equals("reply") && e.record().get("id").asText().equals(qid)));
            JsonNode replyRecord = events.all.get(watched).stream().filter(e -> e.type().equals("reply")).findFirst().orElseThrow().record();
            assertEquals("window", replyRecord.get("over").asText(), replyRecord.toString());
            assertEquals(reply[0].get("answer").asText(), replyRecord.get("text").asText());
            JsonNode refused = get(n1, "/v1/fleet").get("refused");
            assertTrue(refused.path("bad-alerts").asText().contains("field 'alerts[0]': field 'question' is required"), "refused: " + refused);

            // 2. a second node joins: one camera moves to it; s1's stream list drops it (stop on revoke, no restart)
            long joinedAt = System.currentTimeMillis();
            Node n2 = new Node("s2", serveNode("s2", GROUP, CAMS, EVENTS, 12, "512m", live), logs.resolve("s2.log"), gains);
            nodes.put("s2", n2);
            awaitTrue(Duration.ofSeconds(120), "each node owns one camera, captioned by it", () -> n1.owns.size() == 1 && n2.owns.size() == 1 && n2.url() != null
                    && !n1.owns.equals(n2.owns) && events.lastFrom(only(n1.owns), "s1", joinedAt) && events.lastFrom(only(n2.owns), "s2", joinedAt));
            String moved = only(n2.owns), kept = only(n1.owns);
            assertEquals(Set.of(kept), streamIds(n1), "s1's page after the rebalance");
            assertEquals(Set.of(moved), streamIds(n2), "s2's page after the rebalance");
            for (Node n : List.of(n1, n2)) {
                JsonNode f = get(n, "/v1/fleet");
                assertEquals(n.name, f.get("node").asText());
                assertEquals(n.owns, fieldNames(f.get("cameras")), n.name + "'s /v1/fleet cameras: " + f);
                awaitTrue(Duration.ofSeconds(10), n.name + "'s /v1/fleet shows both members", () -> members(get(n, "/v1/fleet")).equals(Set.of("s1", "s2")));
            }
            Event firstOnS2 = firstFrom(events, moved, "s2");
            long handover = firstOnS2.time() - lastBefore(events, moved, "s1", firstOnS2.time()).time();
            System.out.println("SERVE-FLEET hand-over of " + moved + " to the joining node: " + handover + " ms between the last caption of s1 and the first of s2"
                    + " (s1 stopped it " + (n1.lost.get(moved) - joinedAt) + " ms after s2's JVM was started; s2 started it "
                    + (n2.gained.get(moved) - n1.lost.get(moved)) + " ms after that; its first caption on s2 " + (firstOnS2.time() - n2.gained.get(moved)) + " ms later)");

            // the records are model captions, never interleaved between the two owners
            for (String c : cameras) {
                List<Event> ev = List.copyOf(events.captions(c));
                List<String> runs = new ArrayList<>();
                for (Event e : ev) if (runs.isEmpty() || !runs.getLast().equals(e.node())) runs.add(e.node());
                assertEquals(c.equals(moved) ? List.of("s1", "s2") : List.of("s1"), runs, "owners of " + c + " in the events topic");
                Event last = ev.getLast();
                assertEquals(io.vlmflux.sinks.Records.SCHEMA, last.record().get("schema").asText());
                assertEquals(c, last.record().get("source").asText());
                String text = last.record().get("text").asText();
                // the model's caption: text it generated, its vision encoder and prefill timed (the stats captioner has zeros)
                assertTrue(!text.isBlank() && !text.matches("a \\d+x\\d+ frame.*"), "a caption of the demo model about the ball: " + last.record());
                JsonNode t = last.record().get("timings");
                assertTrue(t.get("encode_ms").asDouble() > 0 && t.get("prefill_ms").asDouble() > 0, "model timings: " + last.record());
                System.out.println("SERVE-FLEET " + c + ": " + ev.size() + " captions, owners " + runs + ", last '" + text + "'");
            }

            // 3. the camera's alerts change with its record, on its owner, without a restart of the node
            String owner = FleetHarness.ownerOf(nodes.values(), alerted);
            long changedAt = System.currentTimeMillis();
            producer.send(new ProducerRecord<>(CAMS, alerted, camera(alerted, 128, "where-2"))).get();
            awaitTrue(Duration.ofSeconds(60), "alert records of the changed alert", () -> !alerts(events, alerted, "where-2", changedAt).isEmpty());
            Event changed = alerts(events, alerted, "where-2", changedAt).getFirst();
            assertEquals(owner, changed.node(), "the camera's owner runs its new alerts");
            assertTrue(nodes.get(owner).process.isAlive(), owner + " was not restarted");
            assertTrue(alerts(events, alerted, "where", changed.time()).isEmpty(),
                    "the old alert stopped with the record's change");
            System.out.println("SERVE-FLEET camera alerts: " + alerts(events, alerted, "where", 0).size() + " record(s) of its first alert; the changed alert in effect after "
                    + (changed.time() - changedAt) + " ms (first record of the new alert, on " + owner + ")");

            // 4. deleting a camera record takes effect on its owner without a restart
            producer.send(new ProducerRecord<>(CAMS, kept, null)).get();
            awaitTrue(Duration.ofSeconds(30), "s1 stopped the deleted camera", () -> n1.owns.isEmpty() && streamIds(n1).isEmpty());
            long deletedAt = System.currentTimeMillis();

            // 5. SIGKILL s2: its camera moves to s1 within session timeout + 5 s
            long killedAt = System.currentTimeMillis();
            n2.process.destroyForcibly();
            assertTrue(n2.process.waitFor(30, TimeUnit.SECONDS));
            long limit = SESSION.toMillis() + 5000;
            awaitTrue(Duration.ofMillis(limit + 20_000), "s1 captions " + moved, () -> n1.owns.equals(Set.of(moved)) && events.lastFrom(moved, "s1", killedAt));
            long failover = events.firstAfter(moved, killedAt, "s2").time() - killedAt;
            System.out.println("SERVE-FLEET failover after SIGKILL of s2 (session timeout " + SESSION.toMillis() + " ms): first caption of s1 after " + failover + " ms");
            assertTrue(failover <= limit, "failover took " + failover + " ms; limit " + limit);
            assertEquals(Set.of(moved), streamIds(n1));
            assertTrue(events.captions(kept).stream().noneMatch(e -> e.time() > deletedAt), "captions of the deleted camera after it was stopped");
        } finally {
            producer.close();
            for (Node n : nodes.values()) n.process.destroy();
            for (Node n : nodes.values()) if (!n.process.waitFor(30, TimeUnit.SECONDS)) n.process.destroyForcibly();
            events.close();
        }
        System.out.println("SERVE-FLEET records in the fleet topic by type: " + new TreeMap<>(events.types));
        assertTrue(events.violations.isEmpty(), "records not of " + io.vlmflux.sinks.Records.SCHEMA_FILE + ": " + events.violations);
        assertTrue(events.types.getOrDefault("caption", 0) > 0, "captions: " + events.types);
        Node n1 = nodes.get("s1");
        assertTrue(n1.process.exitValue() == 143 || n1.process.exitValue() == 0, "s1 exited with " + n1.process.exitValue() + " after SIGTERM");
    }

    /**
     * Issue 16's fleet test with the model: three serve nodes (separate JVMs, the demo model on cpu) and six live
     * test-pattern cameras, one per partition: {@link FleetHarness.Failover}. Sized for a 2-core CI machine: small
     * frames, a caption every {@value #THREE_EVERY_MS} ms per camera, 8-token captions.
     */
    static final long THREE_EVERY_MS = 2000;

    @Test void threeServeNodesShareSixCamerasAndFailOver() throws Exception {
        String cams = "serve3-cams", evts = "serve3-events";
        int partitions = 6;
        FleetHarness.createTopics(kafka, cams, evts, partitions);
        FleetHarness.Setup setup = new FleetHarness.Setup(kafka, cams, evts, partitions, SESSION, THREE_EVERY_MS,
                SESSION.plusSeconds(5).plusMillis(2 * THREE_EVERY_MS), Duration.ofSeconds(180),
                name -> serveNode(name, "serve3-fleet", cams, evts, 8, "384m"),
                id -> new CameraDef(id, "test:ball?live=true&width=64&height=64&fps=5", THREE_EVERY_MS + "ms", null, null).toJson(),
                "SERVE-FLEET-3");
        try (FleetHarness.Failover f = new FleetHarness.Failover(setup, Path.of("target", "serve-fleet-3"))) {
            f.run();
            for (String c : f.cameras) {
                JsonNode last = f.events.captions(c).getLast().record();
                assertTrue(last.get("timings").get("encode_ms").asDouble() > 0, "captions of the model: " + last);
            }
        }
    }

    /** A camera of the 2-node test: the ball at {@code size}², every 1 s; with {@code alert} the record's own alert of that name (where the ball is). */
    static byte[] camera(String id, int size, String alert) {
        com.fasterxml.jackson.databind.node.ArrayNode alerts = null;
        if (alert != null) {
            alerts = JSON.createArrayNode();
            alerts.addObject().put("name", alert).put("question", WHERE_QUESTION).put("answers", WHERE_ANSWERS).put("agree", 1);
        }
        return new CameraDef(id, "test:ball?live=true&width=" + size + "&height=" + size + "&fps=5", "1s", null, alerts).toJson();
    }

    /** Alert records of {@code camera} (of alert {@code watch}; null: any) made after {@code after}. */
    private static List<Event> alerts(FleetHarness.EventLog events, String camera, String watch, long after) {
        return events.all.getOrDefault(camera, List.of()).stream().filter(e -> e.type().equals("event/alert") && e.time() > after
                && (watch == null || watch.equals(e.record().path("watch").asText()))).toList();
    }

    /** Asks stream {@code id} of node {@code n} a question: the answer, or null while it is not ready (409). */
    private JsonNode ask(Node n, String id, String question) {
        HttpResponse<String> r = send(HttpRequest.newBuilder(URI.create(n.url() + "/v1/streams/" + id + "/questions")).timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                        JSON.createObjectNode().put("question", question).put("max_tokens", 12).toString())).build());
        if (r.statusCode() == 409) return null;
        assertEquals(200, r.statusCode(), r.body());
        return json(r.body());
    }

    private JsonNode get(Node n, String path) {
        String url = n.url();
        if (url == null) throw new IllegalStateException(n.name + " has not printed its URL yet");
        HttpResponse<String> r = send(HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(10)).build());
        assertEquals(200, r.statusCode(), path + ": " + r.body());
        return json(r.body());
    }

    private HttpResponse<String> send(HttpRequest request) {
        try {
            return http.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static JsonNode json(String body) {
        try {
            return JSON.readTree(body);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** The ids of GET /v1/streams: what the page lists (it polls this every 2 s and drops cards of streams gone). */
    private Set<String> streamIds(Node n) {
        Set<String> ids = new TreeSet<>();
        for (JsonNode s : get(n, "/v1/streams").get("data")) ids.add(s.get("id").asText());
        return ids;
    }

    private static Set<String> members(JsonNode fleet) {
        Set<String> m = new HashSet<>();
        for (JsonNode x : fleet.path("group_state").path("members")) m.add(x.get("node").asText());
        return m;
    }

    private static Set<String> fieldNames(JsonNode o) {
        Set<String> s = new HashSet<>();
        o.fieldNames().forEachRemaining(s::add);
        return s;
    }

    private static String only(Set<String> s) { return s.iterator().next(); }

    private static Event firstFrom(FleetHarness.EventLog events, String camera, String node) {
        for (Event e : events.captions(camera)) if (e.node().equals(node)) return e;
        throw new AssertionError("no caption of " + camera + " from " + node);
    }

    private static Event lastBefore(FleetHarness.EventLog events, String camera, String node, long before) {
        Event last = null;
        for (Event e : events.captions(camera)) if (e.node().equals(node) && e.time() <= before) last = e;
        if (last == null) throw new AssertionError("no caption of " + camera + " from " + node + " before " + before);
        return last;
    }
}
