package io.vlmflux.sinks;

import io.vlmflux.pipeline.config.KafkaOutputConfig;
import io.vlmflux.pipeline.config.MqttOutputConfig;
import io.vlmflux.pipeline.config.PipelineConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** output.kafka / output.mqtt in the pipeline JSON, and the --kafka / --mqtt specs. */
class SinkConfigTest {
    private static String error(String output) {
        return assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(
                "{\"sources\":[{\"uri\":\"test:ball\"}],\"model\":{\"dir\":\"m\"},\"output\":" + output + "}", "configs/bad.json")).getMessage();
    }

    @Test
    void bothSinksParseWithDefaults() {
        PipelineConfig c = PipelineConfig.parse("{\"sources\":[{\"uri\":\"test:ball\"}],\"model\":{\"dir\":\"m\"},\"output\":{\"format\":\"json\","
                + "\"kafka\":{\"brokers\":\"k1:9092,k2:9092\"},\"mqtt\":{\"url\":\"tcp://broker:1883\",\"qos\":0},\"statusEveryMs\":5000}}", "inline");
        KafkaOutputConfig k = c.output().kafka();
        assertEquals("k1:9092,k2:9092", k.brokers());
        assertEquals(KafkaOutputConfig.DEFAULT_TOPIC, k.topic());
        assertEquals(64, k.maxInFlight());
        assertEquals(120_000, k.deliveryTimeoutMs());
        assertEquals(30_000, k.requestTimeoutMs());
        MqttOutputConfig m = c.output().mqtt();
        assertEquals(0, m.qos());
        assertEquals("vlmflux", m.topicPrefix());
        assertEquals(500, m.reconnectMinMs());
        assertEquals(30_000, m.reconnectMaxMs());
        assertEquals(5000, c.output().statusEveryMs());
        assertTrue(c.output().hasSinks());
        assertFalse(PipelineConfig.parse("{\"sources\":[{\"uri\":\"test:ball\"}],\"model\":{\"dir\":\"m\"}}", "x").output().hasSinks());
    }

    @Test
    void errorsNameTheFieldAndTheValue() {
        String m = error("{\"kafka\":{\"brokers\":\"k1\"}}");
        assertTrue(m.startsWith("configs/bad.json: $.output.kafka") && m.contains("'k1' is not host:port"), m);
        m = error("{\"kafka\":{\"brokers\":\"k1:9092\",\"topic\":\"a b\"}}");
        assertTrue(m.contains("field 'topic': 'a b' is not a Kafka topic name"), m);
        m = error("{\"kafka\":{\"brokers\":\"k1:9092\",\"properties\":{\"acks\":\"0\"}}}");
        assertTrue(m.contains("'acks' is set by vlmflux"), m);
        m = error("{\"kafka\":{\"brokers\":\"k1:9092\",\"deliveryTimeoutMs\":1000,\"requestTimeoutMs\":2000}}");
        assertTrue(m.contains("'deliveryTimeoutMs' (1000) must be at least requestTimeoutMs (2000)"), m);
        m = error("{\"mqtt\":{\"url\":\"tcp://h:1883\",\"qos\":2}}");
        assertTrue(m.startsWith("configs/bad.json: $.output.mqtt") && m.contains("field 'qos' must be 0 or 1, got 2"), m);
        m = error("{\"mqtt\":{\"url\":\"http://h:1883\"}}");
        assertTrue(m.contains("must start with tcp:// or ssl://"), m);
        m = error("{\"mqtt\":{\"url\":\"tcp://h:1883\",\"topicPrefix\":\"a/#\"}}");
        assertTrue(m.contains("field 'topicPrefix'"), m);
        m = error("{\"mqtt\":{\"url\":\"tcp://h:1883\",\"reconnectMinMs\":500,\"reconnectMaxMs\":100}}");
        assertTrue(m.contains("'reconnectMinMs' (500) and 'reconnectMaxMs' (100)"), m);
        m = error("{\"mqtt\":{\"url\":\"tcp://h:1883\",\"retain\":true}}");
        assertTrue(m.contains("unknown field 'retain'"), m);
        m = error("{\"statusEveryMs\":-1}");
        assertTrue(m.contains("'statusEveryMs' must not be negative"), m);
    }

    @Test
    void cliSpecs() {
        KafkaOutputConfig k = KafkaOutputConfig.parseSpec("k1:9092,k2:9093/cams.captions");
        assertEquals("k1:9092,k2:9093", k.brokers());
        assertEquals("cams.captions", k.topic());
        assertEquals(KafkaOutputConfig.DEFAULT_TOPIC, KafkaOutputConfig.parseSpec("kafka://localhost:9092").topic());
        assertEquals(KafkaOutputConfig.DEFAULT_TOPIC, KafkaOutputConfig.parseSpec("localhost:9092/").topic());
        assertThrows(IllegalArgumentException.class, () -> KafkaOutputConfig.parseSpec("localhost"));

        MqttOutputConfig m = MqttOutputConfig.parseSpec("tcp://broker:1883/site/cams?qos=0");
        assertEquals("tcp://broker:1883", m.url());
        assertEquals("site/cams", m.topicPrefix());
        assertEquals(0, m.qos());
        MqttOutputConfig d = MqttOutputConfig.parseSpec("ssl://broker:8883");
        assertEquals("vlmflux", d.topicPrefix());
        assertEquals(1, d.qos());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> MqttOutputConfig.parseSpec("tcp://b:1883?retain=1")).getMessage().contains("unknown option 'retain=1'"));
        assertThrows(IllegalArgumentException.class, () -> MqttOutputConfig.parseSpec("tcp://b:1883?qos=x"));
    }

    @Test
    void mqttTopicLevelsOfSourceIds() {
        assertEquals("rtsp:__cam_1_live", MqttSink.level("rtsp://cam+1#live"));
        assertEquals("_", MqttSink.level(""));
    }
}
