package io.vlmflux.demos.fleet;

import io.vlmflux.sinks.InProcessKafka;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

import static io.vlmflux.demos.fleet.FleetHarness.awaitTrue;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fleet on a real broker with three nodes in separate JVMs ({@code vlmflux fleet}, stats captioner) and six
 * live test-pattern cameras, one per partition of the compacted cameras topic: the failover scenario of
 * {@link FleetHarness.Failover} (every camera owned by exactly one node; a node killed with SIGKILL gives its cameras
 * to the others and their captions resume within the session timeout + 5 s; a node that rejoins takes cameras back,
 * handed over without overlap; the events topic keeps every camera's captions, the gaps counted and printed), then
 * camera records changed, added and deleted take effect without restarts.
 */
class FleetTest {
    static final int PARTITIONS = 6;   // one camera per partition (camerasOnePerPartition): 6 cameras
    static final Duration SESSION = Duration.ofSeconds(6);
    static final long EVERY_MS = 500;
    static final String GROUP = "fleet-test", CAMS = "cams", EVENTS = "events";

    @TempDir static Path dir;
    static InProcessKafka kafka;

    @BeforeAll static void broker() throws Exception { kafka = FleetHarness.startBroker(dir, CAMS, EVENTS, PARTITIONS); }

    @AfterAll static void stopBroker() { if (kafka != null) kafka.close(); }

    @Test void threeNodesShareSixCamerasAndFailOver() throws Exception {
        FleetHarness.Setup setup = new FleetHarness.Setup(kafka, CAMS, EVENTS, PARTITIONS, SESSION, EVERY_MS,
                SESSION.plusSeconds(5).plusMillis(2 * EVERY_MS), Duration.ofSeconds(120),
                name -> FleetHarness.java(List.of("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"),
                        concat(List.of("fleet"), FleetHarness.fleetFlags(kafka, GROUP, name, CAMS, EVENTS, SESSION), List.of("--port", "0"))),
                id -> camera(id, 64, 48), "FLEET");
        try (FleetHarness.Failover f = new FleetHarness.Failover(setup, Path.of("target", "fleet-test"))) {
            f.run();

            // 5. camera records take effect on their owners without restarts: change one, add one, delete one
            var events = f.events;
            String changed = f.cameras.get(0), deleted = f.cameras.get(1), added = "cam-added";
            long t5 = System.currentTimeMillis();
            f.producer.send(new ProducerRecord<>(CAMS, changed, camera(changed, 32, 24))).get();
            f.producer.send(new ProducerRecord<>(CAMS, added, camera(added, 64, 48))).get();
            f.producer.send(new ProducerRecord<>(CAMS, deleted, null)).get();
            List<String> now = new ArrayList<>(f.cameras);
            now.remove(deleted);
            now.add(added);
            awaitTrue(Duration.ofSeconds(30), "the changed, added and deleted cameras in effect", () -> FleetHarness.ownedOnce(f.nodes.values(), now)
                    && events.captions(changed).stream().anyMatch(e -> e.time() > t5 && e.record().get("text").asText().contains("a 32x24 frame"))
                    && events.captions(added).stream().anyMatch(e -> e.time() > t5));
            long dropped = System.currentTimeMillis();   // the owner printed its cameras without 'deleted' after it stopped it
            awaitTrue(Duration.ofSeconds(30), "captions of other cameras 2 s after the deletion", () ->
                    events.captions(added).stream().anyMatch(e -> e.time() > dropped + 2000));
            assertTrue(events.captions(deleted).stream().noneMatch(e -> e.time() > dropped), "captions of the deleted camera after its owner stopped it");
            var last = events.captions(changed).getLast();
            assertTrue(last.record().get("text").asText().contains("a 32x24 frame"), "the changed camera's captions use its new source: " + last.record());
            System.out.println("FLEET record changes in effect after " + (dropped - t5) + " ms (changed, added, deleted; owners "
                    + new TreeMap<>(FleetHarness.owners(f.nodes.values(), now)) + ")");
        }
    }

    static byte[] camera(String id, int w, int h) {
        return new CameraDef(id, "test:ball?live=true&width=" + w + "&height=" + h + "&fps=5", EVERY_MS + "ms", null, null).toJson();
    }

    @SafeVarargs static List<String> concat(List<String>... parts) {
        List<String> all = new ArrayList<>();
        for (List<String> p : parts) all.addAll(p);
        return all;
    }
}
