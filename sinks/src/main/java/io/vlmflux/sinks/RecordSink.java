package io.vlmflux.sinks;

import io.vlmflux.pipeline.metrics.StageMetrics;
import reactor.core.publisher.Mono;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A network output of JSON records (Kafka, MQTT). {@link #publish} sends one record and completes once it is
 * settled: {@code true} when the broker acknowledged it, {@code false} when the sink gave up on it (counted as
 * dropped in {@link #metrics()}); it never fails. {@link SinkStage} bounds how many publishes are open at once, so
 * acknowledgements drive backpressure. Metrics: in = records offered, out = acknowledged, dropped = given up,
 * errors = failed attempts (a retried attempt counts too), latency = offer to acknowledgement.
 */
public abstract class RecordSink implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(RecordSink.class.getName());

    private final String name;
    private final StageMetrics metrics;
    private final int maxInFlight;
    private final AtomicLong inFlight = new AtomicLong();
    private final AtomicLong maxInFlightSeen = new AtomicLong();

    protected RecordSink(String name, StageMetrics metrics, int maxInFlight) {
        this.name = name;
        this.metrics = metrics != null ? metrics : new StageMetrics("sink/" + name);
        this.maxInFlight = maxInFlight;
    }

    /** {@code kafka} or {@code mqtt}. */
    public final String name() { return name; }

    public final StageMetrics metrics() { return metrics; }

    /** The most publishes this sink wants open at once. */
    public final int maxInFlight() { return maxInFlight; }

    /** Records offered and not yet settled. */
    public final long inFlight() { return inFlight.get(); }

    /** The largest {@link #inFlight()} seen. */
    public final long maxInFlightSeen() { return maxInFlightSeen.get(); }

    /** Sends {@code r}: true once acknowledged, false once given up (dropped, counted, logged). Never errors. */
    public final Mono<Boolean> publish(SinkRecord r) {
        return Mono.defer(() -> {
            long t0 = System.nanoTime();
            metrics.recordIn();
            long now = inFlight.incrementAndGet();
            maxInFlightSeen.accumulateAndGet(now, Math::max);
            return send(r)
                    // settled before the signal goes on (so a next publish it triggers never counts twice)
                    .doOnTerminate(inFlight::decrementAndGet)
                    .doOnCancel(inFlight::decrementAndGet)
                    .thenReturn(true)
                    .doOnNext(ok -> {
                        metrics.recordOut();
                        metrics.recordLatencyNanos(System.nanoTime() - t0);
                    })
                    .onErrorResume(e -> {
                        metrics.recordDropped();
                        long d = metrics.dropped();
                        if (d == 1 || d % 100 == 0)
                            LOG.log(System.Logger.Level.WARNING, "vlmflux: " + name + " sink dropped a " + r.type() + " record of " + r.source()
                                    + " (" + d + " dropped so far): " + e);
                        return Mono.just(false);
                    });
        });
    }

    /** One record to the broker; completes when acknowledged, fails when it cannot be (after the sink's own retries). */
    protected abstract Mono<Void> send(SinkRecord r);

    /** Sends what was handed to the client (waiting at most {@code timeout}) and releases connections and threads. */
    public abstract void close(Duration timeout);

    @Override public void close() { close(Duration.ofSeconds(5)); }

    /** Counts a failed attempt that will be retried. */
    protected final void attemptFailed() { metrics.recordError(); }
}
