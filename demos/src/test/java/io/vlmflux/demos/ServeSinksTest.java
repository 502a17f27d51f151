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
 * last {@code stopped} status. With {@code --live} and {@code --alert}, the alerts checked over the live window, the
 * narrations and the answer to a question asked over HTTP reach both brokers too, as schema-valid records.
 */
class ServeSinksTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final java.net.http.HttpClient HTTP = java.net.http.HttpClient.newBuilder().version(java.net.http.HttpClient.Version.HTTP_1_1).build();

    /** What a served run sent: the Kafka records (schema-checked, key = source), the MQTT messages ("topic json"), and the stream. */
    record Sent(List<JsonNode> kafka, List<String> mqtt, LiveStream ball) {
        List<JsonNode> ofType(String type) { return kafka.stream().filter(j -> j.get("type").asText().equals(type)).toList(); }

        long mqtt(String topic) { return mqtt.stream().filter(m -> m.startsWith(topic + " {")).count(); }
    }

    interface During { void run(LiveStreams streams, ChatServer server) throws Exception; }

    /**
     * Serves {@code test:ball} with {@code flags} plus {@code --kafka} (in-process broker) and {@code --mqtt} (Mosquitto,
     * when installed), runs {@code during}, closes the streams (their last records and statuses go), then reads back
     * every record until the {@code stopped} status, checking each against the record schema.
     */
    static Sent serve(Path tmp, List<String> flags, During during) throws Exception {
        var mosquittoBin = Mosquitto.binary();
        if (mosquittoBin.isEmpty()) System.err.println("ServeSinksTest: mosquitto not installed (Debian package 'mosquitto'): only Kafka is checked");
        try (InProcessKafka kafka = new InProcessKafka(tmp.resolve("kafka")).start();
             Mosquitto mqtt = mosquittoBin.isPresent() ? new Mosquitto(mosquittoBin.get(), tmp.resolve("mqtt")).start() : null;
             VlmRuntime runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            kafka.createTopic("serve.records", 1);
            List<String> argv = new ArrayList<>(List.of("--source", "test:ball"));
            argv.addAll(flags);
            argv.addAll(List.of("--kafka", kafka.bootstrap() + "/serve.records"));
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
            try {
                ServeStreams.wire(streams, server, a, null, runtime);
                streams.start();
                during.run(streams, server);
            } finally {
                streams.close();   // ends the streams, then the output: its last status records, flushed
                server.close();
            }

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
            if (sub != null) {
                Await.until(Duration.ofSeconds(30), "the stopped status on MQTT",
                        () -> mqttMessages.stream().anyMatch(m -> m.startsWith("site/ball/status ") && m.contains("\"stopped\"")));
                sub.disconnect();
                sub.close();
                for (String m : mqttMessages) assertEquals(List.of(), schema.check(m.substring(m.indexOf(' ') + 1)), m);
            }
            return new Sent(records, sub == null ? null : List.copyOf(mqttMessages), streams.stream("ball"));
        }
    }

    @Test @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void theStreamsCaptionsGoToKafkaAndMqtt(@TempDir Path tmp) throws Exception {
        Sent sent = serve(tmp, List.of("--every", "500ms", "--caption-tokens", "8"), (streams, server) -> {
            LiveStream ball = streams.stream("ball");
            Await.until(Duration.ofSeconds(120), "3 captions", () -> ball.captions() >= 3);
        });
        long captions = sent.ball().captions();
        List<JsonNode> caps = sent.ofType("caption");
        assertEquals(captions, caps.size(), "every caption of the stream was sent: " + sent.kafka());
        for (JsonNode j : caps) {
            assertEquals("ball", j.get("source").asText());
            assertEquals("Describe the image.", j.get("prompt").asText());
            assertFalse(j.get("text").asText().isBlank(), j.toString());
        }
        // the demo model's captions of the ball (it may call the first, early frame a square: the JIT-warm run captions frame 15)
        assertTrue(caps.stream().anyMatch(j -> j.get("text").asText().contains("circle")), caps.toString());
        JsonNode stopped = sent.ofType("status").stream().filter(j -> j.get("state").asText().equals("stopped"))
                .findFirst().orElseThrow(() -> new AssertionError("no stopped status: " + sent.kafka()));
        assertEquals(captions, stopped.get("captions").asLong());
        if (sent.mqtt() != null) assertEquals(captions, sent.mqtt("site/ball/caption"), sent.mqtt().toString());
    }

    @Test @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void liveWindowAlertsNarrationsAndRepliesGoToKafkaAndMqtt(@TempDir Path tmp) throws Exception {
        JsonNode[] answer = new JsonNode[1];
        Sent sent = serve(tmp, List.of("--every", "3s", "--caption-tokens", "8", "--live", "all", "--live-fps", "2", "--live-window", "6s",
                "--live-narrate", "3s", "--live-tokens", "12", "--alert", CaptionAlertCommandTest.WHERE, "--alert-agree", "1",
                "--live-alert-every", "2s"), (streams, server) -> {
            LiveStream ball = streams.stream("ball");
            Await.until(Duration.ofSeconds(150), "an alert and a narration", () -> ball.alertEvents() >= 1
                    && ball.liveWindow().describe(SchemaCheck.JSON.createObjectNode()).get("narrations").asLong() >= 1);
            var res = HTTP.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(server.url() + "/v1/streams/ball/questions"))
                    .header("Content-Type", "application/json").timeout(Duration.ofSeconds(120))
                    .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"question\":\"What shape is it?\",\"max_tokens\":12}")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            assertEquals(200, res.statusCode(), res.body());
            answer[0] = SchemaCheck.JSON.readTree(res.body());
            JsonNode lw = SchemaCheck.JSON.readTree(HTTP.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(server.url() + "/v1/streams/ball")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString()).body()).get("live_window");
            assertEquals(2.0, lw.get("alert_every_s").asDouble(), "the alerts run over the window: " + lw);
        });
        LiveStream ball = sent.ball();
        JsonNode lw = ball.liveWindow().describe(SchemaCheck.JSON.createObjectNode());
        // alerts: one record per alert event of the stream, decided over the window (evidence: the newest group, the window's end in session time)
        List<JsonNode> alerts = sent.ofType("event").stream().filter(j -> j.get("event").asText().equals("alert")).toList();
        assertEquals(ball.alertEvents(), alerts.size(), "every alert event was sent: " + sent.kafka());
        for (JsonNode j : alerts) {
            assertEquals(CaptionAlertCommandTest.WHERE, j.get("watch").asText(), j.toString());
            assertTrue(ServeAlertsTest.REGION.matcher(j.get("answer").asText()).matches(), j.toString());
            JsonNode ev = j.get("evidence").get(0);
            assertTrue(ev.get("seq").asLong() < lw.get("groups_appended").asLong(), "evidence is a group of the window: " + j + " " + lw);
            assertEquals(0, ev.get("pts_ms").asLong() % 500, "evidence at the window's end in session time (2 fps): " + j);
        }
        // narrations: every one, with its window
        List<JsonNode> narrations = sent.ofType("narration");
        assertEquals(lw.get("narrations").asLong(), narrations.size(), "every narration was sent: " + narrations);
        for (JsonNode n : narrations) {
            assertEquals("Describe the video.", n.get("prompt").asText());   // the demo model's vlmflux_live.json
            assertTrue(n.get("window").get("groups").asInt() >= 1 && n.get("window").get("end_ms").asLong() - n.get("window").get("start_ms").asLong() <= 7000, n.toString());
        }
        // the answer to the question, over the window
        List<JsonNode> replies = sent.ofType("reply");
        assertEquals(1, replies.size(), sent.kafka().toString());
        JsonNode reply = replies.getFirst();
        assertEquals(answer[0].get("id").asText(), reply.get("id").asText());
        assertEquals("What shape is it?", reply.get("question").asText());
        assertEquals(answer[0].get("answer").asText(), reply.get("text").asText());
        assertEquals("window", reply.get("over").asText());
        // the window when the answer was done; the response, made just after, may show a group appended since
        assertTrue(reply.get("window").get("end_ms").asLong() <= Math.round(answer[0].get("window").get("window_end_s").asDouble() * 1000), reply + " vs " + answer[0]);
        assertEquals(ball.captions(), sent.ofType("caption").size(), "captions go on and are sent too");
        if (sent.mqtt() != null) {
            assertEquals(alerts.size(), sent.mqtt().stream().filter(m -> m.startsWith("site/ball/event {") && m.contains("\"event\":\"alert\"")).count(), sent.mqtt().toString());
            assertEquals(narrations.size(), sent.mqtt("site/ball/narration"), sent.mqtt().toString());
            assertEquals(1, sent.mqtt("site/ball/reply"), sent.mqtt().toString());
        }
        System.out.println("SERVE-SINKS live window: " + alerts.size() + " alert(s), " + narrations.size() + " narration(s), 1 reply, "
                + ball.captions() + " caption(s); " + lw);
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
