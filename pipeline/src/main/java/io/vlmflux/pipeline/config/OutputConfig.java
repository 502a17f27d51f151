package io.vlmflux.pipeline.config;

import java.util.Locale;

/**
 * Where captions go.
 *
 * @param format {@code text} (one line per caption) or {@code json} (one JSON object per line); default text
 * @param path   file the lines are appended to (created with its parent folders, flushed per caption); null: stdout
 * @param tokens true: also write tokens as they are decoded (JSON: one {@code {source, seq, index, token, text}}
 *               line per token before its caption; text: the caption's line grows token by token); default false
 * @param kafka  also send JSON records (captions, events, per-source status) to Kafka; null: no (docs/sinks.md)
 * @param mqtt   also publish the JSON records over MQTT; null: no (docs/sinks.md)
 * @param statusEveryMs interval of the per-source status records sent to Kafka/MQTT; 0: none; default 10000
 */
public record OutputConfig(String format, String path, Boolean tokens, KafkaOutputConfig kafka, MqttOutputConfig mqtt, Integer statusEveryMs) {
    public static final OutputConfig DEFAULT = new OutputConfig(null, null, null);

    /** Stdout or a file only, no Kafka/MQTT. */
    public OutputConfig(String format, String path, Boolean tokens) { this(format, path, tokens, null, null, null); }

    public OutputConfig {
        if (format == null) format = "text";
        format = format.toLowerCase(Locale.ROOT);
        if (!format.equals("text") && !format.equals("json"))
            throw new IllegalArgumentException("field 'format' must be text or json, got '" + format + "'");
        if (path != null && path.isBlank()) throw new IllegalArgumentException("field 'path' must not be blank when given");
        if (tokens == null) tokens = false;
        if (statusEveryMs == null) statusEveryMs = 10_000;
        if (statusEveryMs < 0) throw new IllegalArgumentException("field 'statusEveryMs' must not be negative, got " + statusEveryMs);
    }

    /** This output with the given Kafka and MQTT outputs (flags over the config's); null keeps the config's. */
    public OutputConfig withSinks(KafkaOutputConfig kafka, MqttOutputConfig mqtt) {
        return new OutputConfig(format, path, tokens, kafka != null ? kafka : this.kafka, mqtt != null ? mqtt : this.mqtt, statusEveryMs);
    }

    /** Whether records go to Kafka or MQTT. */
    public boolean hasSinks() { return kafka != null || mqtt != null; }
}
