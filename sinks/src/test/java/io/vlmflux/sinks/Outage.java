package io.vlmflux.sinks;

import io.vlmflux.pipeline.caption.Caption;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A broker outage under a live pipeline: captions come every 2 ms from two sources through a drop-counting buffer
 * (like a live caption stage, newest frames win) into a {@link SinkStage}; the broker is stopped for
 * {@code vlmflux.sinks.outage.seconds} (default 5; the figure is 30: {@code -Dvlmflux.sinks.outage.seconds=30})
 * and started again. Measures what is acknowledged, dropped and held meanwhile.
 */
final class Outage {
    interface Step { void run() throws Exception; }

    /** ackedWhileDown: captions made after the broker had stopped and acknowledged before it was back (must be 0). */
    record Result(Set<Long> acked, long ackedBeforeStop, long ackedWhileDown, long upstreamDropped, long maxInFlightSeen,
                  long sinkDropped, long heapBeforeMiB, long heapDownMiB, double recoverySeconds, long outageMillis) {
        @Override public String toString() {
            return String.format("outage %d ms: acked %d (%d before the stop, %d while down), upstream dropped %d, max in flight %d, sink dropped %d, "
                            + "heap after GC %d MiB before -> %d MiB at the end of the outage, first ack %.2f s after the restart",
                    outageMillis, acked.size(), ackedBeforeStop, ackedWhileDown, upstreamDropped, maxInFlightSeen, sinkDropped, heapBeforeMiB, heapDownMiB, recoverySeconds);
        }
    }

    static Duration duration() {
        return Duration.ofSeconds(Long.getLong("vlmflux.sinks.outage.seconds", 5));
    }

    static Result run(RecordSink sink, Step stop, Step start, Duration outage) throws Exception {
        AtomicLong upstreamDropped = new AtomicLong();
        AtomicLong lastEmitted = new AtomicLong(-1);
        Set<Long> acked = ConcurrentHashMap.newKeySet();
        AtomicLong restartAt = new AtomicLong(Long.MAX_VALUE);
        AtomicLong firstAckAfterRestart = new AtomicLong();
        SinkStage stage = new SinkStage(List.of(sink), null, null, null, "Describe the image.", false, null);
        Flux<Caption> live = Flux.interval(Duration.ofMillis(2))
                .onBackpressureDrop(t -> upstreamDropped.incrementAndGet())
                .map(t -> TestCaptions.caption("cam" + (t % 2), t))
                .doOnNext(c -> lastEmitted.set(c.frame().sequence()));
        Disposable run = live.transform(stage).subscribe(c -> {
            acked.add(c.frame().sequence());
            long now = System.nanoTime();
            if (now >= restartAt.get()) firstAckAfterRestart.compareAndSet(0, now);
        });
        try {
            await("200 records acknowledged", () -> acked.size() >= 200, 60);
            long heapBefore = heapMiB();
            long stopAt = System.nanoTime();
            stop.run();
            long stopped = System.nanoTime();
            long seqAtStop = lastEmitted.get();   // captions after it reached the stage once the broker was gone
            System.out.printf("vlmflux outage: broker stopped in %d ms%n", (stopped - stopAt) / 1_000_000);
            await(() -> "the sink saturated (" + sink.maxInFlight() + " in flight): in flight " + sink.inFlight() + ", acked " + acked.size()
                    + ", sink " + sink.metrics().snapshot().format(),
                    // the stage holds maxInFlight records: open ones, and acknowledged ones waiting behind an open one
                    // (Kafka acknowledges partitions independently; the stage passes captions on in order)
                    () -> sink.metrics().in() - acked.size() >= sink.maxInFlight(), 60);
            long ackedBeforeStop = acked.size();
            long rest = outage.toNanos() - (System.nanoTime() - stopped);
            if (rest > 0) TimeUnit.NANOSECONDS.sleep(rest);   // the outage itself: its length is the test's parameter
            long ackedWhileDown = acked.stream().filter(seq -> seq > seqAtStop).count();
            long heapDown = heapMiB();
            long outageMillis = (System.nanoTime() - stopped) / 1_000_000;
            assertTrue(sink.maxInFlightSeen() <= sink.maxInFlight(), "in flight " + sink.maxInFlightSeen() + " > " + sink.maxInFlight());
            restartAt.set(System.nanoTime());
            long target = acked.size() + 2L * sink.maxInFlight() + 100;
            start.run();
            await(() -> "acknowledgements after the restart: acked " + acked.size() + " of " + target + ", in flight " + sink.inFlight()
                    + ", sink " + sink.metrics().snapshot().format(), () -> acked.size() >= target, 120);
            double recovery = (firstAckAfterRestart.get() - restartAt.get()) / 1e9;
            run.dispose();
            stage.close();
            return new Result(Set.copyOf(acked), ackedBeforeStop, ackedWhileDown, upstreamDropped.get(), sink.maxInFlightSeen(),
                    sink.metrics().dropped(), heapBefore, heapDown, Math.max(0, recovery), outageMillis);
        } finally {
            run.dispose();
        }
    }

    /** Every acknowledged caption was received (by seq). */
    static void assertNoneLost(Set<Long> acked, Set<Long> received) {
        Set<Long> missing = new java.util.TreeSet<>(acked);
        missing.removeAll(received);
        assertEquals(Set.of(), missing.size() > 20 ? Set.copyOf(List.copyOf(missing).subList(0, 20)) : missing,
                missing.size() + " acknowledged records never arrived (first 20 shown)");
    }

    static void await(String what, BooleanSupplier cond, int seconds) throws InterruptedException {
        await(() -> what, cond, seconds);
    }

    static void await(java.util.function.Supplier<String> what, BooleanSupplier cond, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) fail("timed out after " + seconds + " s waiting for " + what.get());
            Thread.sleep(10);
        }
    }

    private static long heapMiB() {
        System.gc();
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() >> 20;
    }
}
