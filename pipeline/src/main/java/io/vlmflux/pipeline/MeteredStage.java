package io.vlmflux.pipeline;

import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import reactor.core.publisher.Flux;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import java.util.function.LongSupplier;

/**
 * Wraps a stage with counters and a latency histogram. An element's latency runs from entering the stage to the
 * output that carries the same key (a {@link Frame} is keyed by its {@code info()}; by default any other element
 * by itself); an output whose key matches no input is matched to the oldest pending input, which is exact for
 * order-preserving one-to-one stages and gives time-to-first-output for one-to-many ones. Elements the stage
 * discards through the discard hook count as {@code dropped}.
 *
 * <p>Thread, prefetch and backpressure are those of the wrapped stage (the wrapper adds two {@code doOnNext} and a
 * discard hook). At most {@value #MAX_PENDING} entries are tracked; older ones are forgotten (no latency recorded).
 */
final class MeteredStage<A, B> implements Function<Flux<A>, Flux<B>> {
    static final int MAX_PENDING = 4096;

    private final StageMetrics metrics;
    private final Function<? super Flux<A>, ? extends Flux<B>> stage;
    private final Function<? super B, ?> outKey;
    private final LongSupplier nanoClock;

    MeteredStage(StageMetrics metrics, Function<? super Flux<A>, ? extends Flux<B>> stage, Function<? super B, ?> outKey, LongSupplier nanoClock) {
        if (metrics == null) throw new IllegalArgumentException("stage metrics must not be null");
        if (stage == null) throw new IllegalArgumentException("stage '" + metrics.name() + "' must not be null");
        this.metrics = metrics;
        this.stage = stage;
        this.outKey = outKey == null ? MeteredStage::keyOf : outKey;
        this.nanoClock = nanoClock == null ? System::nanoTime : nanoClock;
    }

    static Object keyOf(Object element) {
        return element instanceof Frame f ? f.info() : element;
    }

    @Override
    public Flux<B> apply(Flux<A> in) {
        return Flux.defer(() -> {
            Map<Object, Long> pending = new LinkedHashMap<>(16, 0.75f, false) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<Object, Long> eldest) { return size() > MAX_PENDING; }
            };
            return in.doOnNext(a -> {
                        metrics.recordIn();
                        long now = nanoClock.getAsLong();
                        synchronized (pending) { pending.put(keyOf(a), now); }
                    })
                    .transform(stage)
                    .doOnNext(b -> {
                        metrics.recordOut();
                        Object k = outKey.apply(b);
                        Long t0;
                        synchronized (pending) {
                            t0 = k == null ? null : pending.remove(k);
                            if (t0 == null && !pending.isEmpty()) { // no key match: the oldest pending input
                                var it = pending.values().iterator();
                                t0 = it.next();
                                it.remove();
                            }
                        }
                        if (t0 != null) metrics.recordLatencyNanos(nanoClock.getAsLong() - t0);
                    })
                    .doOnError(e -> metrics.recordError())
                    .doOnDiscard(Object.class, x -> {
                        Long t0;
                        synchronized (pending) { t0 = pending.remove(keyOf(x)); }
                        if (t0 != null) metrics.recordDropped();
                    });
        });
    }
}
