package io.vlmflux.pipeline.metrics;

import java.util.List;
import java.util.stream.Collectors;

/** All stages of a pipeline at one moment, in registration order. */
public record MetricsSnapshot(long takenAtMillis, List<StageSnapshot> stages) {
    public MetricsSnapshot {
        stages = List.copyOf(stages);
    }

    /** The stage called {@code name}, or null. */
    public StageSnapshot stage(String name) {
        for (StageSnapshot s : stages) if (s.name().equals(name)) return s;
        return null;
    }

    /** One line per stage. */
    public String format() {
        return stages.stream().map(StageSnapshot::format).collect(Collectors.joining("\n"));
    }
}
