package io.vlmflux.sinks;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.config.KafkaOutputConfig;
import io.vlmflux.sources.SourceEvent;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;

import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.*;

/** The Kafka sink against a real KRaft broker in this JVM (kafka_2.13 test dependency, no Docker). */
class KafkaSinkTest {
    @TempDir static Path dir;
    static InProcessKafka kafka;

    @BeforeAll static void startBroker() throws Exception {
        kafka = new InProcessKafka(dir).start();
    }

    @AfterAll static void stopBroker() {
        if (kafka != null) kafka.close();
    }

    @Test
    void recordsArriveKeyedBySourceInOrderWithTheDocumentedSchema() throws Exception {
        kafka.createTopic("schema-test", 3);
        var config = new KafkaOutputConfig(kafka.bootstrap(), "schema-test", 8, null, null, null, null);
        SinkStage stage = new SinkStage(List.of(new KafkaSink(config, null)), null, null, null, "Describe the image.", false, null);
        stage.event(new SourceEvent(SourceEvent.Type.SOURCE_DOWN, "cam-b", Instant.parse("2026-01-01T00:00:00Z"), 0, "stalled"));
        stage.event(new SourceEvent(SourceEvent.Type.SOURCE_UP, "cam-b", Instant.parse("2026-01-01T00:00:01Z"), 0, ""));
        List<Caption> passed = Flux.range(0, 40).map(i -> TestCaptions.caption(i % 2 == 0 ? "cam-a" : "cam-b", i))
                .transform(stage).collectList().block(Duration.ofSeconds(60));
        stage.close();
        assertEquals(40, passed.size(), "every caption passes the stage once acknowledged");
        for (int i = 0; i < 40; i++) assertEquals(i, passed.get(i).frame().sequence(), "order kept");
        assertEquals(40 + 2 + 2, stage.sinks().getFirst().metrics().out(), "40 captions, 2 events, 2 final status records acknowledged");
        assertEquals(0, stage.sinks().getFirst().metrics().dropped());

        List<ConsumerRecord<String, String>> got = consume("schema-test", l -> l.size() >= 44);
        SchemaCheck schema = SchemaCheck.records();
        Map<String, List<Long>> seqs = new HashMap<>();
        Map<String, Integer> types = new HashMap<>();
        for (var r : got) {
            assertEquals(List.of(), schema.check(r.value()), r.value());
            JsonNode j = SchemaCheck.JSON.readTree(r.value());
            assertEquals(r.key(), j.get("source").asText(), "key = source id");
            types.merge(j.get("type").asText(), 1, Integer::sum);
            if (j.get("type").asText().equals("caption")) seqs.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(j.get("seq").asLong());
            if (j.get("type").asText().equals("status")) {
                assertEquals("stopped", j.get("state").asText());
                assertEquals(20, j.get("captions").asLong());
            }
        }
        assertEquals(Map.of("caption", 40, "event", 2, "status", 2), types);
        // one source's records are on one partition, in order
        for (var e : seqs.entrySet()) {
            List<Long> s = e.getValue();
            for (int i = 1; i < s.size(); i++) assertTrue(s.get(i) > s.get(i - 1), e.getKey() + " out of order: " + s);
        }
        assertEquals(1, got.stream().filter(r -> r.key().equals("cam-a")).map(ConsumerRecord::partition).distinct().count());
    }

    @Test
    void aBrokerOutageLosesNoAcknowledgedRecordAndHoldsOnlyMaxInFlight() throws Exception {
        kafka.createTopic("outage-test", 3);
        var config = new KafkaOutputConfig(kafka.bootstrap(), "outage-test", 32, 120_000, 5_000, 5_000, null);
        KafkaSink sink = new KafkaSink(config, null);
        Duration outage = Outage.duration();
        Outage.Result r = Outage.run(sink, kafka::stop, kafka::start, outage);
        System.out.println("vlmflux kafka " + r);
        assertEquals(0, r.sinkDropped(), "an outage shorter than deliveryTimeoutMs drops nothing in the sink");
        assertEquals(0, r.ackedWhileDown(), "nothing is acknowledged while the broker is down");
        assertTrue(r.upstreamDropped() > 0, "the live source dropped (counted) instead of queueing");
        assertTrue(r.maxInFlightSeen() <= 32);

        Set<Long> received = new HashSet<>();
        for (var rec : consume("outage-test", l -> {
            Set<Long> s = new HashSet<>();
            for (var x : l) s.add(seq(x.value()));
            return s.containsAll(r.acked());
        })) received.add(seq(rec.value()));
        Outage.assertNoneLost(r.acked(), received);
    }

    private static long seq(String json) {
        try {
            JsonNode j = SchemaCheck.JSON.readTree(json);
            return j.has("seq") ? j.get("seq").asLong() : -1;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** All records of the topic from the start, polling until {@code enough} or 60 s. */
    private static List<ConsumerRecord<String, String>> consume(String topic, Predicate<List<ConsumerRecord<String, String>>> enough) {
        Map<String, Object> p = Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap(),
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed", ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (var c = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30))) parts.add(new TopicPartition(topic, pi.partition()));
            c.assign(parts);
            c.seekToBeginning(parts);
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!enough.test(out) && System.nanoTime() < deadline)
                for (var r : c.poll(Duration.ofMillis(200))) out.add(r);
        }
        return out;
    }
}
