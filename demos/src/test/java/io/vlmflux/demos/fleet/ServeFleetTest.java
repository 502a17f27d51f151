package io.vlmflux.demos.fleet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.sinks.InProcessKafka;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
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
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code vlmflux serve --fleet} with the demo model on cpu: two serve nodes in separate JVMs and two live
 * test-pattern cameras (one per partition) on a real in-process KRaft broker. The first node owns both cameras and
 * its page lists both; when the second joins, Kafka moves one camera to it and the first node's stream list (the
 * page's {@code GET /v1/streams}, which the page polls) drops it; {@code GET /v1/fleet} of each node shows its
 * camera and both members; model captions of both cameras, from their owners, land in the one fleet topic as
 * schema-v1 records; a deleted camera record leaves its owner's streams without a restart; SIGKILL of a node moves
 * its camera to the other within session timeout + 5 s.
 */
class ServeFleetTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    static final int PARTITIONS = 2;
    static final Duration SESSION = Duration.ofSeconds(6);
    static final String GROUP = "serve-fleet-test", CAMS = "serve-cams", EVENTS = "serve-events";
    static final Pattern OWNS = Pattern.compile("fleet: (\\S+) owns \\[(.*)]");
    static final Pattern URL = Pattern.compile(".*serving .* at (http://\\S+)/v1 .*");
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir static Path dir;
    static InProcessKafka kafka;

    @BeforeAll static void broker() throws Exception { kafka = FleetTest.startBroker(dir, CAMS, EVENTS, PARTITIONS); }

    @AfterAll static void stopBroker() { if (kafka != null) kafka.close(); }

    /** A serve node JVM, what it printed on stdout, and its URL (from its stderr). */
    static final class Node {
        final String name;
        final Process process;
        final Path log;
        volatile Set<String> owns = Set.of();
        final Map<String, Long> gained = new ConcurrentHashMap<>(), lost = new ConcurrentHashMap<>();   // camera -> when (test clock)

        Node(String name, Path log) throws IOException {
            this.name = name;
            this.log = log;
            Files.deleteIfExists(log);   // its URL is read from it: never an earlier run's
            List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector", "-Xmx512m", "-XX:+UseSerialGC",
                    "-cp", System.getProperty("java.class.path"), "io.vlmflux.demos.Main", "serve",
                    "--model", ROOT.resolve("demos/models/shapes-vl").toString(), "--backend", "cpu", "--port", "0", "--view-fps", "1",
                    "--caption-tokens", "12",
                    "--fleet", "kafka://" + kafka.bootstrap(), "--group", GROUP, "--node", name, "--cameras-topic", CAMS,
                    "--events-topic", EVENTS, "--session-timeout", SESSION.toSeconds() + "s");
            process = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
            Thread.ofPlatform().daemon().name("drain-" + name).start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String l; (l = r.readLine()) != null; ) {
                        Matcher m = OWNS.matcher(l);
                        if (m.matches()) {
                            Set<String> now = m.group(2).isBlank() ? Set.of() : Set.of(m.group(2).split(",\\s*"));
                            long t = System.currentTimeMillis();
                            for (String c : now) if (!owns.contains(c)) gained.put(c, t);
                            for (String c : owns) if (!now.contains(c)) lost.put(c, t);
                            owns = now;
                        }
                    }
                } catch (IOException ignored) {
                    // the process ended
                }
            });
        }

        String url() {
            List<String> lines;
            try {
                lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            } catch (IOException e) {
                return null;
            }
            for (String l : lines) {
                Matcher m = URL.matcher(l);
                if (m.matches()) return m.group(1);
            }
            return null;
        }
    }

    record Event(String camera, String node, long time, JsonNode record) {}

    final Map<String, List<Event>> events = new ConcurrentHashMap<>();
    volatile boolean reading = true;
    final List<String> violations = new CopyOnWriteArrayList<>();
    final Map<String, Integer> types = new ConcurrentHashMap<>();
    final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @Test void twoServeNodesCaptionTheirCamerasWithTheModel() throws Exception {
        List<String> cameras = camerasOnePerPartition();
        KafkaProducer<String, byte[]> producer = new KafkaProducer<>(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()),
                new StringSerializer(), new ByteArraySerializer());
        for (String c : cameras) producer.send(new ProducerRecord<>(CAMS, c, camera(c, 128))).get();
        Thread reader = Thread.ofPlatform().daemon().name("events-reader").start(this::readEvents);
        Map<String, Node> nodes = new LinkedHashMap<>();
        Path logs = Files.createDirectories(Path.of("target", "serve-fleet-test"));
        try {
            // 1. one node: it owns both cameras, its page lists both, model captions of both arrive from it
            Node n1 = new Node("s1", logs.resolve("s1.log"));
            nodes.put("s1", n1);
            FleetTest.awaitTrue(Duration.ofSeconds(120), "s1 owns both cameras and captions them", () -> n1.owns.equals(Set.copyOf(cameras)) && n1.url() != null
                    && cameras.stream().allMatch(c -> lastFrom(c, "s1", 0)));
            assertEquals(new TreeSet<>(cameras), streamIds(n1), "s1's page lists its cameras");

            // 2. a second node joins: one camera moves to it; s1's stream list drops it (stop on revoke, no restart)
            long joinedAt = System.currentTimeMillis();
            Node n2 = new Node("s2", logs.resolve("s2.log"));
            nodes.put("s2", n2);
            FleetTest.awaitTrue(Duration.ofSeconds(120), "each node owns one camera, captioned by it", () -> n1.owns.size() == 1 && n2.owns.size() == 1 && n2.url() != null
                    && !n1.owns.equals(n2.owns) && lastFrom(only(n1.owns), "s1", joinedAt) && lastFrom(only(n2.owns), "s2", joinedAt));
            String moved = only(n2.owns), kept = only(n1.owns);
            assertEquals(Set.of(kept), streamIds(n1), "s1's page after the rebalance");
            assertEquals(Set.of(moved), streamIds(n2), "s2's page after the rebalance");
            for (Node n : List.of(n1, n2)) {
                JsonNode f = get(n, "/v1/fleet");
                assertEquals(n.name, f.get("node").asText());
                assertEquals(n.owns, fieldNames(f.get("cameras")), n.name + "'s /v1/fleet cameras: " + f);
                FleetTest.awaitTrue(Duration.ofSeconds(10), n.name + "'s /v1/fleet shows both members", () -> members(get(n, "/v1/fleet")).equals(Set.of("s1", "s2")));
            }
            long handover = firstFrom(moved, "s2").time() - lastBefore(moved, "s1", firstFrom(moved, "s2").time()).time();
            System.out.println("SERVE-FLEET hand-over of " + moved + " to the joining node: " + handover + " ms between the last caption of s1 and the first of s2"
                    + " (s1 stopped it " + (n1.lost.get(moved) - joinedAt) + " ms after s2's JVM was started; s2 started it "
                    + (n2.gained.get(moved) - n1.lost.get(moved)) + " ms after that; its first caption on s2 " + (firstFrom(moved, "s2").time() - n2.gained.get(moved)) + " ms later)");

            // the records are model captions (schema v1), never interleaved between the two owners
            for (String c : cameras) {
                List<Event> ev = List.copyOf(events.get(c));
                List<String> runs = new ArrayList<>();
                for (Event e : ev) if (runs.isEmpty() || !runs.getLast().equals(e.node())) runs.add(e.node());
                assertEquals(c.equals(moved) ? List.of("s1", "s2") : List.of("s1"), runs, "owners of " + c + " in the events topic");
                Event last = ev.getLast();
                assertEquals(io.vlmflux.sinks.Records.SCHEMA, last.record().get("schema").asText());
                assertEquals("caption", last.record().get("type").asText());
                assertEquals(c, last.record().get("source").asText());
                String text = last.record().get("text").asText();
                // the model's caption: text it generated, its vision encoder and prefill timed (the stats captioner has zeros)
                assertTrue(!text.isBlank() && !text.matches("a \\d+x\\d+ frame.*"), "a caption of the demo model about the ball: " + last.record());
                JsonNode t = last.record().get("timings");
                assertTrue(t.get("encode_ms").asDouble() > 0 && t.get("prefill_ms").asDouble() > 0, "model timings: " + last.record());
                System.out.println("SERVE-FLEET " + c + ": " + ev.size() + " captions, owners " + runs + ", last '" + text + "'");
            }

            // 3. deleting a camera record takes effect on its owner without a restart
            producer.send(new ProducerRecord<>(CAMS, kept, null)).get();
            FleetTest.awaitTrue(Duration.ofSeconds(30), "s1 stopped the deleted camera", () -> n1.owns.isEmpty() && streamIds(n1).isEmpty());
            long deletedAt = System.currentTimeMillis();

            // 4. SIGKILL s2: its camera moves to s1 within session timeout + 5 s
            long killedAt = System.currentTimeMillis();
            n2.process.destroyForcibly();
            assertTrue(n2.process.waitFor(30, TimeUnit.SECONDS));
            long limit = SESSION.toMillis() + 5000;
            FleetTest.awaitTrue(Duration.ofMillis(limit + 20_000), "s1 captions " + moved, () -> n1.owns.equals(Set.of(moved)) && lastFrom(moved, "s1", killedAt));
            long failover = firstAfter(moved, killedAt, "s1").time() - killedAt;
            System.out.println("SERVE-FLEET failover after SIGKILL of s2 (session timeout " + SESSION.toMillis() + " ms): first caption of s1 after " + failover + " ms");
            assertTrue(failover <= limit, "failover took " + failover + " ms; limit " + limit);
            assertEquals(Set.of(moved), streamIds(n1));
            assertTrue(events.get(kept).stream().noneMatch(e -> e.time() > deletedAt), "captions of the deleted camera after it was stopped");
        } finally {
            producer.close();
            reading = false;
            for (Node n : nodes.values()) n.process.destroy();
            for (Node n : nodes.values()) if (!n.process.waitFor(30, TimeUnit.SECONDS)) n.process.destroyForcibly();
            reader.join(5000);
        }
        System.out.println("SERVE-FLEET records in the fleet topic by type: " + new TreeMap<>(types));
        assertTrue(violations.isEmpty(), "records not of " + io.vlmflux.sinks.Records.SCHEMA_FILE + ": " + violations);
        assertTrue(types.getOrDefault("caption", 0) > 0, "captions: " + types);
        Node n1 = nodes.get("s1");
        assertTrue(n1.process.exitValue() == 143 || n1.process.exitValue() == 0, "s1 exited with " + n1.process.exitValue() + " after SIGTERM");
    }

    static byte[] camera(String id, int size) {
        return new CameraDef(id, "test:ball?live=true&width=" + size + "&height=" + size + "&fps=5", "1s", null, null).toJson();
    }

    static List<String> camerasOnePerPartition() { return FleetTest.camerasOnePerPartition(PARTITIONS); }

    private JsonNode get(Node n, String path) {
        try {
            String url = n.url();
            if (url == null) throw new IllegalStateException(n.name + " has not printed its URL yet");
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(10)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), path + ": " + r.body());
            return JSON.readTree(r.body());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
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

    private void readEvents() {
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()),
                new StringDeserializer(), new StringDeserializer())) {
            io.vlmflux.sinks.SchemaCheck schema = io.vlmflux.sinks.SchemaCheck.records();
            List<TopicPartition> parts = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) parts.add(new TopicPartition(EVENTS, i));
            c.assign(parts);
            c.seekToBeginning(parts);
            while (reading) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    JsonNode rec = JSON.readTree(r.value());
                    for (String v : schema.check(r.value())) violations.add(v + " in " + r.value());
                    types.merge(rec.path("type").asText() + (rec.has("event") ? "/" + rec.get("event").asText() : ""), 1, Integer::sum);
                    if (!rec.path("type").asText().equals("caption")) continue;
                    Header h = r.headers().lastHeader("vlmflux-node");
                    events.computeIfAbsent(r.key(), k -> new CopyOnWriteArrayList<>())
                            .add(new Event(r.key(), h == null ? "?" : new String(h.value(), StandardCharsets.UTF_8), r.timestamp(), rec));
                }
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private boolean lastFrom(String camera, String node, long after) {
        List<Event> ev = events.get(camera);
        return ev != null && !ev.isEmpty() && ev.getLast().node().equals(node) && ev.getLast().time() > after;
    }

    private Event firstFrom(String camera, String node) {
        for (Event e : events.get(camera)) if (e.node().equals(node)) return e;
        throw new AssertionError("no caption of " + camera + " from " + node);
    }

    private Event lastBefore(String camera, String node, long before) {
        Event last = null;
        for (Event e : events.get(camera)) if (e.node().equals(node) && e.time() <= before) last = e;
        if (last == null) throw new AssertionError("no caption of " + camera + " from " + node + " before " + before);
        return last;
    }

    private Event firstAfter(String camera, long after, String from) {
        for (Event e : events.get(camera)) if (e.time() > after && e.node().equals(from)) return e;
        throw new AssertionError("no caption of " + camera + " from " + from + " after " + after);
    }
}
