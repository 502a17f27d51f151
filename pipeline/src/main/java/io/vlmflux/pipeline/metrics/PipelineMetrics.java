package io.vlmflux.pipeline.metrics;

import java.util.ArrayList;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * The stage metrics of one pipeline, by name. {@link #stage(String)} creates a stage on first use and returns the
 * same instance afterwards, so two subscriptions of one pipeline add to the same counters.
 */
public final class PipelineMetrics {
    private final ConcurrentMap<String, StageMetrics> stages = new ConcurrentHashMap<>();
    private final ArrayList<String> order = new ArrayList<>();

    public StageMetrics stage(String name) {
        StageMetrics m = stages.get(name);
        if (m != null) return m;
        synchronized (order) {
            return stages.computeIfAbsent(name, n -> {
                order.add(n);
                return new StageMetrics(n);
            });
        }
    }

    public MetricsSnapshot snapshot() {
        ArrayList<StageSnapshot> out = new ArrayList<>();
        synchronized (order) {
            for (String n : order) out.add(stages.get(n).snapshot());
        }
        return new MetricsSnapshot(System.currentTimeMillis(), out);
    }
}
