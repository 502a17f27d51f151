package io.vlmflux.pipeline.metrics;

import java.util.Locale;

/** One stage's counters at one moment; serializes to JSON as is (Jackson handles records). */
public record StageSnapshot(String name, long in, long out, long dropped, long errors, LatencySnapshot latency) {
    /** One line for logs and the CLI: {@code name in=.. out=.. dropped=.. errors=.. p50=..ms p90=..ms p99=..ms}. */
    public String format() {
        return String.format(Locale.ROOT, "%-20s in=%d out=%d dropped=%d errors=%d p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms",
                name, in, out, dropped, errors, latency.p50Ms(), latency.p90Ms(), latency.p99Ms(), latency.maxMs());
    }
}
