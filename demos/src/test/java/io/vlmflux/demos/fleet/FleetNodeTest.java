package io.vlmflux.demos.fleet;

import io.vlmflux.sinks.InProcessKafka;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** One node on a real broker: the state of its partitions from the compacted topic, record changes, refused records, leaving. */
class FleetNodeTest {
    @TempDir Path dir;

    /** Records what the node asks of its cameras, in order. */
    static final class Log implements CameraRunner {
        final List<String> calls = new CopyOnWriteArrayList<>();
        @Override public void start(CameraDef c) { calls.add("start " + c.id() + " " + c.source()); }
        @Override public void stop(String id) { calls.add("stop " + id); }
    }

    @Test void followsTheCamerasTopic() throws Exception {
        try (InProcessKafka kafka = new InProcessKafka(dir.resolve("kafka")).start();
             Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()));
             KafkaProducer<String, byte[]> p = new KafkaProducer<>(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()),
                     new StringSerializer(), new ByteArraySerializer())) {
            admin.createTopics(List.of(new NewTopic("cams", 2, (short) 1).configs(Map.of("cleanup.policy", "compact")))).all().get(60, TimeUnit.SECONDS);
            // history before the node starts: only the latest record of a key counts, a tombstone deletes
            p.send(new ProducerRecord<>("cams", "a", json("a", "test:ball"))).get();
            p.send(new ProducerRecord<>("cams", "a", json("a", "test:smpte"))).get();
            p.send(new ProducerRecord<>("cams", "gone", json("gone", "test:ball"))).get();
            p.send(new ProducerRecord<>("cams", "gone", null)).get();
            p.send(new ProducerRecord<>("cams", "bad", "{\"id\":\"bad\"}".getBytes(StandardCharsets.UTF_8))).get();
            Log log = new Log();
            FleetNode node = new FleetNode(new FleetNode.Options(kafka.bootstrap(), "cams", "g", "solo", Duration.ofSeconds(6)), log, null);
            try {
                await(() -> node.owned().containsKey("a") && node.describe().get("refused").has("bad"));
                assertEquals(List.of("start a test:smpte"), log.calls, "the latest record of each key, once");
                assertTrue(node.describe().get("refused").get("bad").asText().contains("field 'source' is required"), node.describe().toString());
                await(() -> node.describe().get("group_state").path("members").size() == 1);
                assertEquals("solo", node.describe().get("group_state").get("members").get(0).get("node").asText());
                assertEquals(2, node.describe().get("partitions").size());

                p.send(new ProducerRecord<>("cams", "a", json("a", "test:snow"))).get();          // changed: restarted
                p.send(new ProducerRecord<>("cams", "bad", json("bad", "test:ball"))).get();      // fixed: started
                await(() -> log.calls.size() >= 4);
                assertEquals(List.of("start a test:smpte", "stop a", "start a test:snow", "start bad test:ball"), log.calls);
                assertTrue(node.describe().get("refused").isEmpty());
                p.send(new ProducerRecord<>("cams", "a", null)).get();                            // deleted: stopped
                await(() -> !node.owned().containsKey("a"));
                assertEquals("stop a", log.calls.getLast());
            } finally {
                node.close();
            }
            assertEquals("stop bad", log.calls.getLast(), "leaving the group stops the cameras");
            assertTrue(node.owned().isEmpty());
        }
    }

    static byte[] json(String id, String source) { return new CameraDef(id, source, "1s", null, null).toJson(); }

    private static void await(BooleanSupplier c) throws InterruptedException {
        io.vlmflux.demos.Await.until(Duration.ofSeconds(60), Duration.ofMillis(50), "the node's state", c);
    }
}
