package io.vlmflux.sinks;

import io.vlmflux.pipeline.config.KafkaOutputConfig;
import io.vlmflux.pipeline.metrics.StageMetrics;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/**
 * Records to one Kafka topic, key = source id (one source's records stay in order on one partition). The producer
 * is idempotent with {@code acks=all}: it retries until {@code deliveryTimeoutMs}, and a record it acknowledged is
 * on all in-sync replicas. Sends happen on one thread of this sink (a send may wait up to {@code maxBlockMs} for
 * metadata while no broker is reachable, and tries again until the delivery timeout); acknowledgements come back on
 * it too, never on the producer's I/O thread.
 * The producer's buffer is sized for {@code maxInFlight} records, so an outage holds at most that many.
 */
public final class KafkaSink extends RecordSink {
    private final Producer<String, byte[]> producer;
    private final String topic;
    private final Scheduler thread;
    private final long deliveryTimeoutNanos;
    private final Map<String, byte[]> headers;
    private volatile boolean closed;

    public KafkaSink(KafkaOutputConfig c, StageMetrics metrics) { this(c, metrics, Map.of()); }

    /** As {@link #KafkaSink(KafkaOutputConfig, StageMetrics)}, with {@code headers} on every record (e.g. the fleet node that sent it). */
    public KafkaSink(KafkaOutputConfig c, StageMetrics metrics, Map<String, String> headers) {
        super("kafka", metrics, c.maxInFlight());
        Map<String, byte[]> h = new java.util.LinkedHashMap<>();
        headers.forEach((k, v) -> h.put(k, v.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        this.headers = Map.copyOf(h);
        this.topic = c.topic();
        this.deliveryTimeoutNanos = c.deliveryTimeoutMs() * 1_000_000L;
        Map<String, Object> p = new HashMap<>(c.properties());
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, c.brokers());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.putIfAbsent(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);   // the most idempotence keeps in order
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, c.deliveryTimeoutMs());
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, c.requestTimeoutMs());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, c.maxBlockMs());
        p.putIfAbsent(ProducerConfig.LINGER_MS_CONFIG, 5);
        // a restarted broker is found again within a second
        p.putIfAbsent(ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, 50);
        p.putIfAbsent(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 1000);
        p.putIfAbsent(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 1000);
        // bounded memory: maxInFlight records of a few KiB plus batching slack
        p.putIfAbsent(ProducerConfig.BUFFER_MEMORY_CONFIG, (long) Math.max(1 << 20, Math.min(64L << 20, c.maxInFlight() * 16L * 1024)));
        p.putIfAbsent(ProducerConfig.CLIENT_ID_CONFIG, "vlmflux-" + Long.toHexString(System.nanoTime() & 0xffffff));
        this.producer = new KafkaProducer<>(p, new StringSerializer(), new ByteArraySerializer());
        this.thread = Schedulers.newSingle("vlmflux-kafka-sink", true);
    }

    public String topic() { return topic; }

    @Override protected Mono<Void> send(SinkRecord r) {
        return Mono.<Void>create(s -> {
                    java.util.concurrent.atomic.AtomicBoolean cancelled = new java.util.concurrent.atomic.AtomicBoolean();
                    s.onCancel(() -> cancelled.set(true));
                    long deadline = System.nanoTime() + deliveryTimeoutNanos;
                    ProducerRecord<String, byte[]> pr = new ProducerRecord<>(topic, r.source(), r.payload());
                    headers.forEach((k, v) -> pr.headers().add(k, v));
                    while (true) {
                        try {
                            producer.send(pr, (md, ex) -> {
                                if (ex == null) s.success();
                                else s.error(ex);
                            });
                            return;
                        } catch (org.apache.kafka.common.errors.TimeoutException e) {
                            // no metadata within maxBlockMs (no broker reachable, or the topic's leader moving during a
                            // broker restart): the record never reached the producer, so trying again on this thread
                            // keeps the order; given up at the delivery timeout like any other record
                            attemptFailed();
                            if (closed || cancelled.get() || System.nanoTime() > deadline) {
                                s.error(e);
                                return;
                            }
                        } catch (RuntimeException e) {   // record too large, producer closed, ...
                            s.error(e);
                            return;
                        }
                    }
                })
                .subscribeOn(thread)
                .publishOn(thread);
    }

    @Override public void close(Duration timeout) {
        closed = true;
        try {
            producer.close(timeout);   // sends what it holds, at most that long
        } finally {
            thread.dispose();
        }
    }
}
