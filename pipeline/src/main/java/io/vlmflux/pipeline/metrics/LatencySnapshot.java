package io.vlmflux.pipeline.metrics;

/** Latency percentiles in milliseconds; {@code count} samples. All zero when nothing was recorded. */
public record LatencySnapshot(long count, double p50Ms, double p90Ms, double p99Ms, double maxMs, double meanMs) {
    public static final LatencySnapshot EMPTY = new LatencySnapshot(0, 0, 0, 0, 0, 0);
}
