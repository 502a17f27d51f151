package io.vlmflux.sinks;

import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * One JSON record for Kafka/MQTT (docs/schemas/record-v2.schema.json), serialized once and sent to every sink.
 *
 * @param type   {@code caption}, {@code answer}, {@code event} or {@code status} (also the record's {@code type} field)
 * @param source the source id: Kafka key, MQTT topic level
 * @param json   the record, one JSON object
 */
public record SinkRecord(String type, String source, String json) {
    public SinkRecord {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(source, "source");
        Objects.requireNonNull(json, "json");
    }

    public byte[] payload() { return json.getBytes(StandardCharsets.UTF_8); }

    @Override public String toString() { return type + "[" + source + "] " + json; }
}
