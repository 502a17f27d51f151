package io.vlmflux.pipeline.config;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The Kafka output ({@code output.kafka}): JSON records (docs/schemas/record-v2.schema.json), key = source id,
 * through an idempotent producer ({@code acks=all}). See docs/sinks.md.
 *
 * @param brokers           bootstrap servers, {@code host:port[,host:port...]}; required
 * @param topic             topic of all records; default {@code vlmflux.records}
 * @param maxInFlight       records sent but not yet acknowledged, at most (the sink stops requesting beyond it); default 64
 * @param deliveryTimeoutMs a record not acknowledged within it is dropped and counted ({@code delivery.timeout.ms}); default 120000
 * @param requestTimeoutMs  one produce request's timeout ({@code request.timeout.ms}); default 30000, at most deliveryTimeoutMs
 * @param maxBlockMs        how long a send may wait for metadata (broker unknown at start) before the record is dropped; default 10000
 * @param properties        further producer properties (e.g. {@code compression.type}, security); may not change the
 *                          serializers, {@code acks} or idempotence
 */
public record KafkaOutputConfig(String brokers, String topic, Integer maxInFlight, Integer deliveryTimeoutMs, Integer requestTimeoutMs,
                                Integer maxBlockMs, Map<String, String> properties) {
    public static final String DEFAULT_TOPIC = "vlmflux.records";
    private static final Pattern BROKER = Pattern.compile("[^\\s,/]+:\\d{1,5}");
    private static final Pattern TOPIC = Pattern.compile("[a-zA-Z0-9._-]{1,249}");
    private static final Set<String> FIXED = Set.of("key.serializer", "value.serializer", "acks", "enable.idempotence", "bootstrap.servers");

    public KafkaOutputConfig {
        if (brokers == null || brokers.isBlank()) throw new IllegalArgumentException("field 'brokers' is required (host:port[,host:port])");
        for (String b : brokers.split(",", -1))
            if (!BROKER.matcher(b.strip()).matches())
                throw new IllegalArgumentException("field 'brokers': '" + b + "' is not host:port (in '" + brokers + "')");
        if (topic == null) topic = DEFAULT_TOPIC;
        if (!TOPIC.matcher(topic).matches() || topic.equals(".") || topic.equals(".."))
            throw new IllegalArgumentException("field 'topic': '" + topic + "' is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)");
        if (maxInFlight == null) maxInFlight = 64;
        if (maxInFlight < 1 || maxInFlight > 100_000) throw new IllegalArgumentException("field 'maxInFlight' must be in [1, 100000], got " + maxInFlight);
        if (deliveryTimeoutMs == null) deliveryTimeoutMs = 120_000;
        if (requestTimeoutMs == null) requestTimeoutMs = Math.min(30_000, deliveryTimeoutMs);
        if (requestTimeoutMs < 1) throw new IllegalArgumentException("field 'requestTimeoutMs' must be positive, got " + requestTimeoutMs);
        if (deliveryTimeoutMs < requestTimeoutMs)
            throw new IllegalArgumentException("field 'deliveryTimeoutMs' (" + deliveryTimeoutMs + ") must be at least requestTimeoutMs (" + requestTimeoutMs + ")");
        if (maxBlockMs == null) maxBlockMs = 10_000;
        if (maxBlockMs < 0) throw new IllegalArgumentException("field 'maxBlockMs' must not be negative, got " + maxBlockMs);
        properties = properties == null ? Map.of() : Map.copyOf(new LinkedHashMap<>(properties));
        for (String k : properties.keySet())
            if (FIXED.contains(k)) throw new IllegalArgumentException("field 'properties': '" + k + "' is set by vlmflux and cannot be overridden");
    }

    /** {@code BROKERS[/topic]} of {@code --kafka}, e.g. {@code localhost:9092} or {@code k1:9092,k2:9092/cams.captions}. */
    public static KafkaOutputConfig parseSpec(String spec) {
        if (spec == null || spec.isBlank()) throw new IllegalArgumentException("expected BROKERS[/topic], e.g. localhost:9092/vlmflux.records");
        String s = spec.startsWith("kafka://") ? spec.substring("kafka://".length()) : spec;
        int slash = s.indexOf('/');
        String brokers = slash < 0 ? s : s.substring(0, slash);
        String topic = slash < 0 || slash == s.length() - 1 ? null : s.substring(slash + 1);
        return new KafkaOutputConfig(brokers, topic, null, null, null, null, null);
    }
}
