package io.vlmflux.sinks;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.config.MqttOutputConfig;
import io.vlmflux.sources.SourceEvent;
import org.eclipse.paho.client.mqttv3.MqttAsyncClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The MQTT sink against a real Mosquitto (Debian package {@code mosquitto}) started as a child process on a free
 * loopback port; skipped, saying why, where it is not installed ({@code ./vlmflux test} installs it as root).
 */
class MqttSinkTest {
    @TempDir Path dir;
    Mosquitto broker;
    MqttAsyncClient subscriber;
    final List<String[]> received = new CopyOnWriteArrayList<>();   // {topic, payload}

    @BeforeEach void start() throws Exception {
        var bin = Mosquitto.binary();
        if (bin.isEmpty()) System.err.println("MqttSinkTest skipped: mosquitto is not installed (Debian package 'mosquitto'; ./vlmflux test installs it as root)");
        Assumptions.assumeTrue(bin.isPresent(), "mosquitto is not installed (Debian package 'mosquitto')");
        broker = new Mosquitto(bin.get(), dir).start();
        // a persistent QoS 1 session: the broker keeps what it acknowledged for it across its own restart
        subscriber = new MqttAsyncClient(broker.url(), "vlmflux-test-sub", new MemoryPersistence());
        subscriber.setCallback(new org.eclipse.paho.client.mqttv3.MqttCallback() {
            @Override public void connectionLost(Throwable cause) {}
            @Override public void messageArrived(String topic, org.eclipse.paho.client.mqttv3.MqttMessage m) {
                received.add(new String[]{topic, new String(m.getPayload(), StandardCharsets.UTF_8)});
            }
            @Override public void deliveryComplete(org.eclipse.paho.client.mqttv3.IMqttDeliveryToken t) {}
        });
        MqttConnectOptions o = new MqttConnectOptions();
        o.setCleanSession(false);
        o.setAutomaticReconnect(true);
        o.setMaxReconnectDelay(500);
        o.setMaxInflight(1000);
        subscriber.connect(o).waitForCompletion(10_000);
        subscriber.subscribe("test/#", 1).waitForCompletion(10_000);
    }

    @AfterEach void stop() throws Exception {
        if (subscriber != null) {
            try {
                if (subscriber.isConnected()) subscriber.disconnect().waitForCompletion(5_000);
            } finally {
                subscriber.close(true);
            }
        }
        if (broker != null) broker.close();
    }

    @Test
    void recordsArriveOnATopicPerSourceWithTheDocumentedSchema() throws Exception {
        var sink = new MqttSink(new MqttOutputConfig(broker.url(), "test/site", 1, 8, null, null, null, null, null), null);
        SinkStage stage = new SinkStage(List.of(sink), null, null, null, null, true, null);
        stage.event(new SourceEvent(SourceEvent.Type.SOURCE_FAILED, "gate/1", Instant.parse("2026-01-01T00:00:00Z"), 0, "gone"));
        List<Caption> passed = Flux.range(0, 20).map(i -> TestCaptions.caption(i % 2 == 0 ? "front" : "gate/1", i))
                .transform(stage).collectList().block(Duration.ofSeconds(60));
        stage.close();
        assertEquals(20, passed.size());
        assertEquals(20 + 1 + 2, sink.metrics().out());
        Outage.await("23 messages", () -> received.size() >= 23, 30);
        SchemaCheck schema = SchemaCheck.records();
        Map<String, Integer> topics = new HashMap<>();
        for (String[] m : received) {
            assertEquals(List.of(), schema.check(m[1]), m[1]);
            JsonNode j = SchemaCheck.JSON.readTree(m[1]);
            String level = j.get("source").asText().replace('/', '_');
            assertEquals("test/site/" + level + "/" + j.get("type").asText(), m[0], "topic PREFIX/SOURCE/TYPE");
            topics.merge(m[0], 1, Integer::sum);
            if (j.get("source").asText().equals("gate/1") && j.get("type").asText().equals("status"))
                assertEquals("stopped", j.get("state").asText());
        }
        assertEquals(Map.of("test/site/front/answer", 10, "test/site/gate_1/answer", 10, "test/site/gate_1/event", 1,
                "test/site/front/status", 1, "test/site/gate_1/status", 1), topics);
    }

    @Test
    void aBrokerOutageLosesNoAcknowledgedRecordAndTheSinkReconnects() throws Exception {
        var sink = new MqttSink(new MqttOutputConfig(broker.url(), "test", 1, 32, 120_000, 100, 1_000, null, 2), null);
        Outage.Result r = Outage.run(sink, broker::stop, broker::start, Outage.duration());
        System.out.println("vlmflux mqtt " + r + ", connects " + sink.connects());
        assertEquals(0, r.sinkDropped(), "an outage shorter than deliveryTimeoutMs drops nothing in the sink");
        assertEquals(0, r.ackedWhileDown(), "nothing is acknowledged while the broker is down");
        assertTrue(r.upstreamDropped() > 0, "the live source dropped (counted) instead of queueing");
        assertTrue(r.maxInFlightSeen() <= 32);
        assertTrue(sink.connects() >= 2, "reconnected");
        Set<Long> got = ConcurrentHashMap.newKeySet();
        Outage.await("every acknowledged record at the subscriber", () -> {
            for (String[] m : received) got.add(seq(m[1]));
            return got.containsAll(r.acked());
        }, 60);
        Outage.assertNoneLost(r.acked(), got);
    }

    private static long seq(String json) {
        try {
            JsonNode j = SchemaCheck.JSON.readTree(json);
            return j.has("seq") ? j.get("seq").asLong() : -1;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
