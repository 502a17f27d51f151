package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
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
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux caption --kafka ... --mqtt ...}: the demo model's captions reach a real Kafka and a real Mosquitto. */
class CaptionSinksTest {
    @Test void captionsGoToKafkaAndMqttAtOnceAsDocumentedRecords(@TempDir Path tmp) throws Exception {
        var mosquittoBin = Mosquitto.binary();
        if (mosquittoBin.isEmpty()) System.err.println("CaptionSinksTest: mosquitto not installed (Debian package 'mosquitto'): only Kafka is checked");
        try (InProcessKafka kafka = new InProcessKafka(tmp.resolve("kafka")).start();
             Mosquitto mqtt = mosquittoBin.isPresent() ? new Mosquitto(mosquittoBin.get(), tmp.resolve("mqtt")).start() : null) {
            kafka.createTopic("cli.records", 2);
            List<String> args = new ArrayList<>(List.of("caption", "--json", "--count", "3", "--source", "test:smpte", "--kafka", kafka.bootstrap() + "/cli.records"));
            List<String> mqttMessages = new CopyOnWriteArrayList<>();
            MqttClient sub = null;
            if (mqtt != null) {
                args.addAll(List.of("--mqtt", mqtt.url() + "/site/cams"));
                sub = new MqttClient(mqtt.url(), "cli-test-sub", new MemoryPersistence());
                sub.connect();
                sub.subscribe("site/cams/#", 1, (topic, m) -> mqttMessages.add(topic + " " + new String(m.getPayload(), StandardCharsets.UTF_8)));
            }
            CaptionCommandTest.Result r = CaptionCommandTest.run(args.toArray(String[]::new));
            assertEquals(0, r.code(), r.err());
            assertEquals(3, r.out().size(), r.out().toString());
            // 3 captions + the final status (+ a periodic status should the run take over 10 s), all acknowledged
            var stageLine = java.util.regex.Pattern.compile("stage sink/kafka\\s+in=(\\d+) out=(\\d+) dropped=0 ").matcher(r.err());
            assertTrue(stageLine.find(), r.err());
            assertEquals(stageLine.group(1), stageLine.group(2), r.err());
            int sent = Integer.parseInt(stageLine.group(1));
            assertTrue(sent >= 4, r.err());

            SchemaCheck schema = SchemaCheck.records();
            List<JsonNode> records = new ArrayList<>();
            try (var c = new KafkaConsumer<>(Map.<String, Object>of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()),
                    new StringDeserializer(), new StringDeserializer())) {
                List<TopicPartition> parts = new ArrayList<>();
                for (PartitionInfo p : c.partitionsFor("cli.records")) parts.add(new TopicPartition("cli.records", p.partition()));
                c.assign(parts);
                c.seekToBeginning(parts);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (records.size() < sent && System.nanoTime() < deadline)
                    for (var rec : c.poll(Duration.ofMillis(200))) {
                        assertEquals(List.of(), schema.check(rec.value()), rec.value());
                        assertEquals("test:smpte", rec.key());
                        records.add(SchemaCheck.JSON.readTree(rec.value()));
                    }
            }
            assertEquals(sent, records.size(), records.toString());
            List<JsonNode> captions = records.stream().filter(j -> j.get("type").asText().equals("caption")).toList();
            assertEquals(3, captions.size(), records.toString());
            for (JsonNode j : captions) {
                assertEquals("vertical color bars", j.get("text").asText().strip());
                assertEquals("Describe the image.", j.get("prompt").asText());
            }
            JsonNode status = records.stream().filter(j -> j.get("type").asText().equals("status") && j.get("state").asText().equals("stopped"))
                    .findFirst().orElseThrow();
            assertEquals("stopped", status.get("state").asText());
            assertEquals(3, status.get("captions").asLong());
            assertTrue(status.get("frames_in").asLong() >= 3, status.toString());

            if (sub != null) {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (mqttMessages.size() < sent && System.nanoTime() < deadline) Thread.sleep(10);
                sub.disconnect();
                sub.close();
                assertEquals(sent, mqttMessages.size(), mqttMessages.toString());
                assertEquals(3, mqttMessages.stream().filter(m -> m.startsWith("site/cams/test:smpte/caption {")).count(), mqttMessages.toString());
                for (String m : mqttMessages) assertEquals(List.of(), schema.check(m.substring(m.indexOf(' ') + 1)), m);
            }
        }
    }

    @Test void alertEventsGoToKafkaAndMqttAsEventRecords(@TempDir Path tmp) throws Exception {
        var mosquittoBin = Mosquitto.binary();
        if (mosquittoBin.isEmpty()) System.err.println("CaptionSinksTest: mosquitto not installed (Debian package 'mosquitto'): only Kafka is checked");
        try (InProcessKafka kafka = new InProcessKafka(tmp.resolve("kafka")).start();
             Mosquitto mqtt = mosquittoBin.isPresent() ? new Mosquitto(mosquittoBin.get(), tmp.resolve("mqtt")).start() : null) {
            kafka.createTopic("alerts", 1);
            List<String> args = new ArrayList<>(List.of("caption", "--json", "--source", "test:ball?live=false&num-buffers=60", "--every", "6f",
                    "--backend", "cpu", "--alert", CaptionAlertCommandTest.WHERE, "--alert-agree", "1", "--kafka", kafka.bootstrap() + "/alerts"));
            List<String> mqttMessages = new CopyOnWriteArrayList<>();
            MqttClient sub = null;
            if (mqtt != null) {
                args.addAll(List.of("--mqtt", mqtt.url() + "/site/cams"));
                sub = new MqttClient(mqtt.url(), "cli-alert-sub", new MemoryPersistence());
                sub.connect();
                sub.subscribe("site/cams/#", 1, (topic, m) -> mqttMessages.add(topic + " " + new String(m.getPayload(), StandardCharsets.UTF_8)));
            }
            CaptionCommandTest.Result r = CaptionCommandTest.run(args.toArray(String[]::new));
            assertEquals(0, r.code(), r.err());
            List<JsonNode> printed = new ArrayList<>();
            for (String line : r.out()) printed.add(SchemaCheck.JSON.readTree(line));
            assertTrue(printed.size() >= 2, "the ball moves: " + r.out());
            var stageLine = java.util.regex.Pattern.compile("stage sink/kafka\\s+in=(\\d+) out=(\\d+) dropped=0 ").matcher(r.err());
            assertTrue(stageLine.find(), r.err());
            assertEquals(stageLine.group(1), stageLine.group(2), r.err());
            int sent = Integer.parseInt(stageLine.group(1));
            assertTrue(sent >= printed.size() + 1, "every alert and the final status: " + r.err());

            SchemaCheck schema = SchemaCheck.records();
            List<JsonNode> records = new ArrayList<>();
            try (var c = new KafkaConsumer<>(Map.<String, Object>of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap()),
                    new StringDeserializer(), new StringDeserializer())) {
                List<TopicPartition> parts = List.of(new TopicPartition("alerts", 0));
                c.assign(parts);
                c.seekToBeginning(parts);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (records.size() < sent && System.nanoTime() < deadline)
                    for (var rec : c.poll(Duration.ofMillis(200))) {
                        assertEquals(List.of(), schema.check(rec.value()), rec.value());
                        records.add(SchemaCheck.JSON.readTree(rec.value()));
                    }
            }
            assertEquals(sent, records.size(), records.toString());
            List<JsonNode> alerts = records.stream().filter(j -> j.get("type").asText().equals("event") && j.get("event").asText().equals("alert")).toList();
            assertEquals(printed.size(), alerts.size(), "one record per printed event: " + records);
            for (int i = 0; i < alerts.size(); i++) {
                JsonNode rec = alerts.get(i), out = printed.get(i);
                assertEquals(io.vlmflux.sinks.Records.SCHEMA, rec.get("schema").asText());
                assertEquals("test:ball?live=false&num-buffers=60", rec.get("source").asText());
                assertEquals(out.get("watch").asText(), rec.get("watch").asText());
                assertEquals("changed", rec.get("kind").asText());
                assertEquals(out.get("answer").asText(), rec.get("answer").asText(), "in the printed order");
                assertEquals(out.get("confidence").asDouble(), rec.get("confidence").asDouble(), 1e-9);
                assertEquals(out.get("evidence").get(0).get("sequence").asLong(), rec.get("evidence").get(0).get("seq").asLong());
                assertEquals(0, rec.get("attempt").asInt());
                assertTrue(rec.get("message").asText().startsWith(CaptionAlertCommandTest.WHERE + ": " + out.get("answer").asText()), rec.toString());
            }
            assertTrue(records.stream().anyMatch(j -> j.get("type").asText().equals("status") && j.get("state").asText().equals("stopped")), records.toString());

            if (sub != null) {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (mqttMessages.size() < sent && System.nanoTime() < deadline) Thread.sleep(10);
                sub.disconnect();
                sub.close();
                assertEquals(sent, mqttMessages.size(), mqttMessages.toString());
                assertEquals(alerts.size(), mqttMessages.stream().filter(m -> m.contains("/event {") && m.contains("\"event\":\"alert\"")).count(), mqttMessages.toString());
                for (String m : mqttMessages) assertEquals(List.of(), schema.check(m.substring(m.indexOf(' ') + 1)), m);
            }
        }
    }

    @Test void configOutputKafkaAndBadFlagsAreCheckedUpFront(@TempDir Path tmp) throws Exception {
        CaptionCommandTest.Result r = CaptionCommandTest.run("caption", "--count", "1", "--kafka", "localhost/x");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--kafka localhost/x") && r.err().contains("not host:port"), r.err());
        r = CaptionCommandTest.run("caption", "--count", "1", "--mqtt", "http://h:1/x");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--mqtt") && r.err().contains("tcp://"), r.err());
        Path cfg = tmp.resolve("c.json");
        Files.writeString(cfg, "{\"sources\":[{\"uri\":\"test:snow\"}],\"model\":{\"dir\":\"demos/models/shapes-vl\"},"
                + "\"output\":{\"kafka\":{\"brokers\":\"k1:9092\",\"maxInFlight\":0}}}");
        r = CaptionCommandTest.run("caption", "--config", cfg.toString());
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("$.output.kafka") && r.err().contains("field 'maxInFlight' must be in [1, 100000], got 0"), r.err());
    }
}
