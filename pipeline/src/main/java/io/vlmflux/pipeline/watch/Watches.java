package io.vlmflux.pipeline.watch;

import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;

import java.util.List;
import java.util.function.Function;

/** Factory of watch operators (see {@link WatchOperator} for the event semantics, thread and backpressure). */
public final class Watches {
    private Watches() {}

    /** Answers each input with {@code answerer} and emits events per watch and source; timers on {@code Schedulers.parallel()}. */
    public static <T> Function<Flux<T>, Flux<Event>> operator(List<Watch> watches, Answerer<T> answerer) {
        return new WatchOperator<>(watches, answerer, null);
    }

    /** {@link #operator(List, Answerer)} with debounce and interval timers (and event times) on {@code clock}. */
    public static <T> Function<Flux<T>, Flux<Event>> operator(List<Watch> watches, Answerer<T> answerer, Scheduler clock) {
        if (clock == null) throw new IllegalArgumentException("clock scheduler must not be null");
        return new WatchOperator<>(watches, answerer, clock);
    }
}
