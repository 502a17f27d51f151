package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.demos.serve.ChatServer;
import io.vlmflux.demos.serve.LiveStream;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.demos.serve.ServeOptions;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sinks.InProcessKafka;
import io.vlmflux.sinks.Mosquitto;
import io.vlmflux.sinks.SchemaCheck;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code vlmflux serve --kafka ... --mqtt ...}: the flags as the command parses them, the real server with GStreamer's
 * live {@code test:ball} captioned by the demo model (cpu); every caption of the stream reaches a real Kafka (in
 * process) and a real Mosquitto as the documented records, keyed by the stream id, and closing the streams sends the
 * last {@code stopped} status.
 */
class ServeSinksTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");

    @Test @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void theStreamsCaptionsGoToKafkaAndMqtt(@TempDir Path tmp) throws Exception {
        var mosquittoBin = Mosquitto.binary();
        if (mosquittoBin.isEmpty()) System.err.println("ServeSinksTest: mosquitto not installed (Debian package 'mosquitto'): only Kafka is checked");
        try (InProcessKafka kafka = new InProcessKafka(tmp.resolve("kafka")).start();
             Mosquitto mqtt = mosquittoBin.isPresent() ? new Mosquitto(mosquittoBin.get(), tmp.resolve("mqtt")).start() : null;
             VlmRuntime runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            kafka.createTopic("serve.records", 1);
            List<String> argv = new ArrayList<>(List.of("--source", "test:ball", "--every", "500ms", "--caption-tokens", "8",
                    "--kafka", kafka.bootstrap() + "/serve.records"));
            List<String> mqttMessages = new CopyOnWriteArrayList<>();
            MqttClient sub = null;
            if (mqtt != null) {
                argv.addAll(List.of("--mqtt", mqtt.url() + "/site"));
                sub = new MqttClient(mqtt.url(), "serve-test-sub", new MemoryPersistence());
                sub.connect();
                sub.subscribe("site/#", 1, (topic, m) -> mqttMessages.add(topic + " " + new String(m.getPayload(), StandardCharsets.UTF_8)));
            }
            Args a = Args.parse(argv, ServeStreams.VALUED, Set.of("no-streams"));
            LiveStreams streams = new LiveStreams(runtime, ServeStreams.options(a));
            ServeStreams.add(streams, a, null, runtime);
            ChatServer server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0), streams);
            long captions;
            try {
                ServeStreams.wire(streams, server, a, null, runtime);
                streams.start();
                LiveStream ball = streams.stream("ball");
                long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
                while (ball.captions() < 3) {
                    assertTrue(System.nanoTime() < end, "3 captions within 120 s: " + ball.captions());
                    Thread.sleep(20);
                }
            } finally {
                streams.close();   // ends the streams, then the output: its last status records, flushed
                server.close();
            }
            captions = streams.stream("ball").captions();

            SchemaCheck schema = SchemaCheck.records();
            List<JsonNode> records = new ArrayList<>();
            try (var c = new KafkaConsumer<>(Map.<String, Object>of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()),
                    new StringDeserializer(), new StringDeserializer())) {
                List<TopicPartition> parts = new ArrayList<>();
                for (PartitionInfo p : c.partitionsFor("serve.records")) parts.add(new TopicPartition("serve.records", p.partition()));
                c.assign(parts);
                c.seekToBeginning(parts);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (records.stream().noneMatch(j -> j.get("type").asText().equals("status") && j.get("state").asText().equals("stopped"))
                        && System.nanoTime() < deadline)
                    for (var rec : c.poll(Duration.ofMillis(200))) {
                        assertEquals(List.of(), schema.check(rec.value()), rec.value());
                        assertEquals("ball", rec.key());
                        records.add(SchemaCheck.JSON.readTree(rec.value()));
                    }
            }
            List<JsonNode> caps = records.stream().filter(j -> j.get("type").asText().equals("caption")).toList();
            assertEquals(captions, caps.size(), "every caption of the stream was sent: " + records);
            for (JsonNode j : caps) {
                assertEquals("ball", j.get("source").asText());
                assertEquals("Describe the image.", j.get("prompt").asText());
                assertTrue(j.get("text").asText().contains("circle"), j.toString());
            }
            JsonNode stopped = records.stream().filter(j -> j.get("type").asText().equals("status") && j.get("state").asText().equals("stopped"))
                    .findFirst().orElseThrow(() -> new AssertionError("no stopped status: " + records));
            assertEquals(captions, stopped.get("captions").asLong());

            if (sub != null) {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (mqttMessages.stream().noneMatch(m -> m.startsWith("site/ball/status ") && m.contains("\"stopped\"")) && System.nanoTime() < deadline)
                    Thread.sleep(10);
                sub.disconnect();
                sub.close();
                assertEquals(captions, mqttMessages.stream().filter(m -> m.startsWith("site/ball/caption {")).count(), mqttMessages.toString());
                for (String m : mqttMessages) assertEquals(List.of(), schema.check(m.substring(m.indexOf(' ') + 1)), m);
            }
        }
    }

    @Test void kafkaWithoutStreamsIsAUsageError() {
        Args a = Args.parse(List.of("--no-streams", "--kafka", "127.0.0.1:9/t"), ServeStreams.VALUED, Set.of("no-streams"));
        UsageException e = assertThrows(UsageException.class, () -> ServeStreams.sinks(null, a, null));
        assertTrue(e.getMessage().contains("--no-streams"), e.getMessage());
        Args bad = Args.parse(List.of("--kafka", "not a spec"), ServeStreams.VALUED, Set.of("no-streams"));
        UsageException e2 = assertThrows(UsageException.class, () -> ServeStreams.sinks(null, bad, null));
        assertTrue(e2.getMessage().startsWith("--kafka not a spec"), e2.getMessage());
    }
}
