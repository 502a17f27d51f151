package io.vlmflux.pipeline.metrics;

import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;

/**
 * Counters and a latency histogram of one stage. {@code in} counts elements that entered, {@code out} those that
 * left, {@code dropped} those the stage released instead of passing on (sampled out, replaced by a newer frame,
 * buffered at cancellation), {@code errors} the errors it saw (a fan-in counts each failed source). Thread-safe;
 * updates are cheap enough for every frame.
 */
public final class StageMetrics {
    private final String name;
    private final LongAdder in = new LongAdder();
    private final LongAdder out = new LongAdder();
    private final LongAdder dropped = new LongAdder();
    private final LongAdder errors = new LongAdder();
    private final LatencyHistogram latency = new LatencyHistogram();

    public StageMetrics(String name) {
        this.name = Objects.requireNonNull(name, "name");
    }

    public String name() { return name; }
    public void recordIn() { in.increment(); }
    public void recordOut() { out.increment(); }
    public void recordDropped() { dropped.increment(); }
    public void recordError() { errors.increment(); }
    public void recordLatencyNanos(long nanos) { latency.record(nanos); }

    public long in() { return in.sum(); }
    public long out() { return out.sum(); }
    public long dropped() { return dropped.sum(); }
    public long errors() { return errors.sum(); }
    public LatencyHistogram latency() { return latency; }

    public StageSnapshot snapshot() {
        return new StageSnapshot(name, in(), out(), dropped(), errors(), latency.snapshot());
    }
}
