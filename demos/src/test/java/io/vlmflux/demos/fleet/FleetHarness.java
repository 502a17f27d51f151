package io.vlmflux.demos.fleet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.sinks.InProcessKafka;
import io.vlmflux.sinks.SchemaCheck;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
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
import org.apache.kafka.common.utils.Utils;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * What the fleet tests share: the in-process KRaft broker and its topics, node JVMs (their "owns" lines and URL),
 * the events-topic reader, camera ids one per partition, and the three-node failover scenario that {@code FleetTest}
 * runs with {@code vlmflux fleet} (stats captioner) and {@code ServeFleetTest} with {@code serve --fleet} and the model.
 */
final class FleetHarness {
    static final Pattern OWNS = Pattern.compile("fleet: (\\S+) owns \\[(.*)]");
    static final Pattern URL = Pattern.compile(".*serving .* at (http://\\S+)/v1 .*");
    static final ObjectMapper JSON = new ObjectMapper();

    private FleetHarness() {}

    /** An in-process KRaft broker with a compacted camera topic and an events topic of {@code partitions} each. */
    static InProcessKafka startBroker(Path dir, String cams, String events, int partitions) throws Exception {
        InProcessKafka k = new InProcessKafka(dir.resolve("kafka")).start();
        createTopics(k, cams, events, partitions);
        return k;
    }

    /** A compacted camera topic and an events topic of {@code partitions} each. */
    static void createTopics(InProcessKafka k, String cams, String events, int partitions) throws Exception {
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, k.bootstrap()))) {
            admin.createTopics(List.of(
                    new NewTopic(cams, partitions, (short) 1).configs(Map.of("cleanup.policy", "compact")),
                    new NewTopic(events, partitions, (short) 1))).all().get(60, TimeUnit.SECONDS);
        }
    }

    static KafkaProducer<String, byte[]> producer(InProcessKafka kafka) {
        return new KafkaProducer<>(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()), new StringSerializer(), new ByteArraySerializer());
    }

    /** The command line of a JVM running {@code io.vlmflux.demos.Main} with {@code jvmOptions} and {@code args}, on this test's class path. */
    static List<String> java(List<String> jvmOptions, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED"));
        cmd.addAll(jvmOptions);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.vlmflux.demos.Main"));
        cmd.addAll(args);
        return cmd;
    }

    /** The fleet flags of a node named {@code name} of {@code group}. */
    static List<String> fleetFlags(InProcessKafka kafka, String group, String name, String cams, String events, Duration session) {
        return List.of("--fleet", "kafka://" + kafka.bootstrap(), "--group", group, "--node", name, "--cameras-topic", cams,
                "--events-topic", events, "--session-timeout", session.toSeconds() + "s");
    }

    /** A node JVM: what it printed on stdout ("owns" lines: its cameras, when each was gained and lost) and its URL (serve, from its stderr). */
    static final class Node {
        final String name;
        final Process process;
        final Path log;
        volatile Set<String> owns = Set.of();
        final Map<String, Long> gained = new ConcurrentHashMap<>(), lost = new ConcurrentHashMap<>();   // camera -> when (test clock)

        /** Starts {@code command} with stderr appended to {@code log}; {@code gains} counts, per camera, how often some node started owning it. */
        Node(String name, List<String> command, Path log, Map<String, Integer> gains) throws IOException {
            this.name = name;
            this.log = log;
            Files.deleteIfExists(log);   // its URL is read from it: never an earlier run's
            process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
            Thread.ofPlatform().daemon().name("drain-" + name).start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String l; (l = r.readLine()) != null; ) {
                        Matcher m = OWNS.matcher(l);
                        if (m.matches()) {
                            Set<String> now = m.group(2).isBlank() ? Set.of() : Set.of(m.group(2).split(",\\s*"));
                            long t = System.currentTimeMillis();
                            for (String c : now) if (!owns.contains(c)) {
                                gained.put(c, t);
                                gains.merge(c, 1, Integer::sum);
                            }
                            for (String c : owns) if (!now.contains(c)) lost.put(c, t);
                            owns = now;
                        }
                    }
                } catch (IOException ignored) {
                    // the process ended
                }
            });
        }

        /** The server's URL as serve printed it, or null before. */
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

    /** One record of the events topic: camera (key), the node that sent it (header), when it was made, its place in the log, the record. */
    record Event(String camera, String node, long time, long offset, JsonNode record) {
        String type() { return record.path("type").asText() + (record.has("event") ? "/" + record.get("event").asText() : ""); }
    }

    /**
     * Reads the events topic from the beginning on its own thread: captions by camera, every record by camera,
     * record counts by type, and every record checked against the record schema (violations kept).
     */
    static final class EventLog implements AutoCloseable {
        final Map<String, List<Event>> captions = new ConcurrentHashMap<>(), all = new ConcurrentHashMap<>();
        final Map<String, Integer> types = new ConcurrentHashMap<>();
        final List<String> violations = new CopyOnWriteArrayList<>();
        private volatile boolean reading = true;
        private final Thread thread;

        EventLog(InProcessKafka kafka, String topic, int partitions) {
            thread = Thread.ofPlatform().daemon().name("events-reader").start(() -> read(kafka, topic, partitions));
        }

        private void read(InProcessKafka kafka, String topic, int partitions) {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()),
                    new StringDeserializer(), new StringDeserializer())) {
                SchemaCheck schema = SchemaCheck.records();
                List<TopicPartition> parts = new ArrayList<>();
                for (int i = 0; i < partitions; i++) parts.add(new TopicPartition(topic, i));
                c.assign(parts);
                c.seekToBeginning(parts);
                while (reading) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        for (String v : schema.check(r.value())) violations.add(v + " in " + r.value());
                        Header h = r.headers().lastHeader("vlmflux-node");
                        Event e = new Event(r.key(), h == null ? "?" : new String(h.value(), StandardCharsets.UTF_8), r.timestamp(), r.offset(),
                                JSON.readTree(r.value()));
                        types.merge(e.type(), 1, Integer::sum);
                        all.computeIfAbsent(r.key(), k -> new CopyOnWriteArrayList<>()).add(e);
                        if (e.type().equals("caption")) captions.computeIfAbsent(r.key(), k -> new CopyOnWriteArrayList<>()).add(e);
                    }
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }

        List<Event> captions(String camera) { return captions.getOrDefault(camera, List.of()); }

        boolean lastFrom(String camera, String node, long after) {
            List<Event> ev = captions(camera);
            return node != null && !ev.isEmpty() && ev.getLast().node().equals(node) && ev.getLast().time() > after;
        }

        /** The first caption of {@code camera} made after {@code after} by another node than {@code notFrom}, or null. */
        Event firstAfter(String camera, long after, String notFrom) {
            for (Event e : captions(camera)) if (e.time() > after && !e.node().equals(notFrom)) return e;
            return null;
        }

        @Override public void close() throws InterruptedException {
            reading = false;
            thread.join(5000);
        }
    }

    /** Ids of the form cam-N whose keys fall one into each partition (the default partitioner: murmur2 of the key). */
    static List<String> camerasOnePerPartition(int partitions) {
        Map<Integer, String> byPartition = new TreeMap<>();
        for (int i = 0; byPartition.size() < partitions; i++) {
            String id = "cam-" + i;
            byPartition.putIfAbsent(Utils.toPositive(Utils.murmur2(id.getBytes(StandardCharsets.UTF_8))) % partitions, id);
        }
        return List.copyOf(byPartition.values());
    }

    /** Polls {@code condition} (the state lives in other processes and the broker) until it holds or fails with {@code what}. */
    static void awaitTrue(Duration max, String what, BooleanSupplier condition) throws InterruptedException {
        io.vlmflux.demos.Await.until(max, Duration.ofMillis(100), what, condition);
    }

    static boolean ownedOnce(Collection<Node> nodes, List<String> cameras) {
        Map<String, Integer> count = new HashMap<>();
        for (Node n : nodes) for (String c : n.owns) count.merge(c, 1, Integer::sum);
        return count.keySet().equals(new HashSet<>(cameras)) && count.values().stream().allMatch(v -> v == 1);
    }

    static String ownerOf(Collection<Node> nodes, String camera) {
        for (Node n : nodes) if (n.owns.contains(camera)) return n.name;
        return null;
    }

    static Map<String, String> owners(Collection<Node> nodes, List<String> cameras) {
        Map<String, String> m = new HashMap<>();
        for (String c : cameras) m.put(c, ownerOf(nodes, c));
        return m;
    }

    /**
     * What the failover scenario varies: the fleet's topics and timing, how a node is started ({@code command}: node
     * name → its JVM's command line), what a camera is ({@code camera}: id → its record value), the longest gap allowed
     * in a camera's captions, how long a node may take to join, and the prefix of the printed measurements.
     */
    record Setup(InProcessKafka kafka, String cams, String events, int partitions, Duration session, long everyMs, Duration maxGap,
                 Duration joinWait, Function<String, List<String>> command, Function<String, byte[]> camera, String label) {}

    /**
     * Three nodes (separate JVMs) and one live camera per partition of the cameras topic, on a broker with the topics
     * made ({@link Setup}): every camera owned by exactly one node, captioned by it; SIGKILL of the node with the most
     * cameras moves them to the others and their captions resume within session timeout + 5 s (survivors keep theirs:
     * sticky); the killed node started again takes cameras back; in the events topic every camera's captions keep
     * coming (gaps over 3 × every counted and printed, none over {@code maxGap}) and never interleave between two
     * owners; every record is schema-valid. The nodes keep running for the caller; {@link #close()} stops them with
     * SIGTERM and checks they exit cleanly.
     */
    static final class Failover implements AutoCloseable {
        final Setup setup;
        final List<String> cameras;
        final KafkaProducer<String, byte[]> producer;
        final EventLog events;
        final Map<String, Node> nodes = new LinkedHashMap<>();
        final Map<String, Integer> gains = new ConcurrentHashMap<>();   // camera -> how often some node started owning it
        private final Path logs;
        Map<String, String> afterRejoin;

        Failover(Setup setup, Path logs) throws Exception {
            this.setup = setup;
            this.logs = Files.createDirectories(logs);
            this.cameras = camerasOnePerPartition(setup.partitions());
            this.producer = producer(setup.kafka());
            for (String c : cameras) producer.send(new ProducerRecord<>(setup.cams(), c, setup.camera().apply(c))).get();
            this.events = new EventLog(setup.kafka(), setup.events(), setup.partitions());
        }

        private Node node(String name, String logName) throws IOException {
            Node n = new Node(name, setup.command().apply(name), logs.resolve(logName), gains);
            nodes.put(name, n);
            return n;
        }

        private void print(String line) { System.out.println(setup.label() + " " + line); }

        /** Runs the scenario (steps 1-4 above); the nodes keep running. */
        void run() throws Exception {
            String label = setup.label();
            for (String n : List.of("n1", "n2", "n3")) node(n, n + ".log");

            // 1. every camera owned by exactly one node, and its captions arrive from that node
            // (the first node may own every camera until the others have joined and the group has rebalanced: wait for
            // the state where all three own some)
            awaitTrue(setup.joinWait(), "all cameras owned once, by all three nodes, with captions from their owner",
                    () -> ownedOnce(nodes.values(), cameras) && nodes.values().stream().noneMatch(n -> n.owns.isEmpty())
                            && cameras.stream().allMatch(c -> events.lastFrom(c, ownerOf(nodes.values(), c), 0)));
            Map<String, String> initial = owners(nodes.values(), cameras);
            print("initial owners " + new TreeMap<>(initial));
            for (Node n : nodes.values()) assertFalse(n.owns.isEmpty(), n.name + " owns no camera: " + new TreeMap<>(initial));

            // 2. SIGKILL the node with the most cameras: its cameras move, captions resume within session timeout + 5 s
            Node victim = nodes.values().stream().max(java.util.Comparator.comparingInt(n -> n.owns.size())).orElseThrow();
            Set<String> moved = Set.copyOf(victim.owns);
            long killedAt = System.currentTimeMillis();
            victim.process.destroyForcibly();
            assertTrue(victim.process.waitFor(30, TimeUnit.SECONDS));
            List<Node> alive = nodes.values().stream().filter(n -> n != victim).toList();
            long limit = setup.session().toMillis() + 5000;
            awaitTrue(Duration.ofMillis(limit + 20_000), "cameras " + moved + " resumed on the others", () -> ownedOnce(alive, cameras)
                    && moved.stream().allMatch(c -> events.firstAfter(c, killedAt, victim.name) != null));
            Map<String, Long> failover = new TreeMap<>();
            for (String c : moved) failover.put(c, events.firstAfter(c, killedAt, victim.name).time() - killedAt);
            print("failover after SIGKILL of " + victim.name + " (session timeout " + setup.session().toMillis() + " ms), ms to the first caption of the new owner: " + failover);
            for (var e : failover.entrySet())
                assertTrue(e.getValue() <= limit, "camera " + e.getKey() + " resumed " + e.getValue() + " ms after the kill; limit " + limit + " ms");
            Map<String, String> afterKill = owners(alive, cameras);
            for (String c : cameras) if (!moved.contains(c)) assertEquals(initial.get(c), afterKill.get(c), "camera " + c + " of a survivor moved (sticky)");

            // 3. the node rejoins: it takes cameras back, handed over by their owners without overlap
            long rejoinedAt = System.currentTimeMillis();
            Node back = node(victim.name, victim.name + "-rejoined.log");
            awaitTrue(setup.joinWait(), victim.name + " rejoined and captions its cameras", () -> ownedOnce(nodes.values(), cameras) && !back.owns.isEmpty()
                    && back.owns.stream().allMatch(c -> events.firstAfter(c, rejoinedAt, "-") != null && events.lastFrom(c, back.name, rejoinedAt)));
            afterRejoin = owners(nodes.values(), cameras);
            print("after rejoin of " + back.name + " (" + (System.currentTimeMillis() - rejoinedAt) + " ms incl. JVM start): " + new TreeMap<>(afterRejoin));

            // 4. a few more captions, then the events topic: continuity and exclusivity
            long settle = System.currentTimeMillis() + Math.max(3000, 3 * setup.everyMs());
            awaitTrue(Duration.ofSeconds(10 + 3 * setup.everyMs() / 1000), "a few more captions", () -> System.currentTimeMillis() > settle);
            long gapOver = 3 * setup.everyMs();
            int gapsAll = 0;
            for (String c : cameras) {
                List<Event> ev = List.copyOf(events.captions(c));
                List<String> runs = new ArrayList<>();
                List<Long> handoverGaps = new ArrayList<>();
                long maxGap = 0, gaps = 0;
                for (int i = 0; i < ev.size(); i++) {
                    if (runs.isEmpty() || !runs.getLast().equals(ev.get(i).node())) {
                        runs.add(ev.get(i).node());
                        if (i > 0) {
                            handoverGaps.add(ev.get(i).time() - ev.get(i - 1).time());
                            // the old owner stopped (and its last record was acknowledged) before the new one started
                            assertTrue(ev.get(i - 1).time() <= ev.get(i).time(), "camera " + c + ": " + ev.get(i - 1) + " after " + ev.get(i));
                        }
                    }
                    if (i > 0) {
                        long g = ev.get(i).time() - ev.get(i - 1).time();
                        maxGap = Math.max(maxGap, g);
                        if (g > gapOver) gaps++;
                    }
                }
                gapsAll += gaps;
                print(String.format("camera %s: %d captions, owners in log order %s (owner changes seen on the nodes: %d), pauses at hand-overs %s ms, "
                        + "gaps > %d ms: %d, longest gap %d ms", c, ev.size(), runs, gains.get(c), handoverGaps, gapOver, gaps, maxGap));
                // two owners at once would interleave their captions: more owner runs than the nodes reported owner changes
                assertTrue(runs.size() <= gains.get(c), "camera " + c + " changed hands in the events more often than on the nodes (two owners at once?): "
                        + runs + " vs " + gains.get(c) + " changes");
                assertTrue(maxGap <= setup.maxGap().toMillis(), "camera " + c + " had a gap of " + maxGap + " ms; at most " + setup.maxGap().toMillis());
                assertEquals(afterRejoin.get(c), runs.getLast(), "camera " + c + ": the last captions come from its owner");
            }
            print("gaps > " + gapOver + " ms over all cameras: " + gapsAll + "; records by type " + new TreeMap<>(events.types));
            assertTrue(events.violations.isEmpty(), "records not of " + io.vlmflux.sinks.Records.SCHEMA_FILE + ": " + events.violations);
        }

        /** Stops every node with SIGTERM (they leave the group) and checks each exited cleanly; stops the reader. */
        @Override public void close() throws Exception {
            producer.close();
            for (Node n : nodes.values()) n.process.destroy();
            for (Node n : nodes.values()) if (!n.process.waitFor(30, TimeUnit.SECONDS)) n.process.destroyForcibly();
            events.close();
            for (Node n : nodes.values())
                assertTrue(n.process.exitValue() == 143 || n.process.exitValue() == 0, n.name + " exited with " + n.process.exitValue() + " after SIGTERM");
        }
    }
}
