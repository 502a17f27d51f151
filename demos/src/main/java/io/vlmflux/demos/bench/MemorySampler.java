package io.vlmflux.demos.bench;

import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Memory of this JVM as a series (issue 13's "flat memory"): heap used now, heap used after the last GC (the sum of
 * the heap pools' {@link MemoryPoolMXBean#getCollectionUsage() collection usage}; no GC is forced), direct and mapped
 * NIO buffers ({@link BufferPoolMXBean}) and the process RSS ({@code VmRSS} of {@code /proc/self/status}; -1 where
 * there is none); optionally the bytes a caller tracks (the runtime's caches in {@code bench serve}), to tell a bounded
 * cache filling up from a leak.
 */
public final class MemorySampler {
    private MemorySampler() {}

    /** One reading; {@code atSeconds} from the start of the series, sizes in bytes (-1: not available or not tracked). */
    public record Sample(double atSeconds, long heapUsed, long heapAfterGc, long direct, long mapped, long rss, long tracked) {
        public String line() {
            return String.format("| %.0f | %d | %d | %.1f | %.1f | %d | %s |", atSeconds, heapUsed >> 20, heapAfterGc < 0 ? -1 : heapAfterGc >> 20,
                    direct / 1048576.0, mapped / 1048576.0, rss < 0 ? -1 : rss >> 20, tracked < 0 ? "-" : String.format("%.1f", tracked / 1048576.0));
        }
    }

    public static final String HEADER = "| s | heap used MB | heap after GC MB | direct MB | mapped MB | RSS MB | tracked MB |\n|---|---|---|---|---|---|---|";

    /** A reading now, stamped {@code atSeconds}, without tracked bytes. */
    public static Sample sample(double atSeconds) { return sample(atSeconds, null); }

    /** A reading now, stamped {@code atSeconds}, with {@code tracked} bytes (null: none). */
    public static Sample sample(double atSeconds, java.util.function.LongSupplier tracked) {
        long used = 0, afterGc = 0;
        boolean any = false;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() != MemoryType.HEAP) continue;
            used += p.getUsage().getUsed();
            var c = p.getCollectionUsage();
            if (c != null) {
                afterGc += c.getUsed();
                any = true;
            }
        }
        long direct = 0, mapped = 0;
        for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if (b.getName().equals("direct")) direct += b.getMemoryUsed();
            else if (b.getName().startsWith("mapped")) mapped += b.getMemoryUsed();
        }
        return new Sample(atSeconds, used, any ? afterGc : -1, direct, mapped, rssBytes(), tracked == null ? -1 : tracked.getAsLong());
    }

    /** Readings at 0, every, 2·every, … on {@code scheduler} (virtual time in tests); endless, cancel to stop. */
    public static Flux<Sample> every(java.time.Duration every, Scheduler scheduler) { return every(every, scheduler, null); }

    /** {@link #every(java.time.Duration, Scheduler)} with {@code tracked} bytes in every reading (null: none). */
    public static Flux<Sample> every(java.time.Duration every, Scheduler scheduler, java.util.function.LongSupplier tracked) {
        if (every.isNegative() || every.isZero()) throw new IllegalArgumentException("sampling interval must be positive, got " + every);
        double s = every.toMillis() / 1000.0;
        return Flux.interval(java.time.Duration.ZERO, every, scheduler).map(i -> sample(i * s, tracked));
    }

    public static Flux<Sample> every(java.time.Duration every) {
        return every(every, Schedulers.parallel());
    }

    /** VmRSS of /proc/self/status in bytes, -1 where there is none. */
    public static long rssBytes() {
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/self/status"));
            for (String l : lines)
                if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("\\D", "")) << 10;
        } catch (Exception e) {
            // not Linux
        }
        return -1;
    }
}
