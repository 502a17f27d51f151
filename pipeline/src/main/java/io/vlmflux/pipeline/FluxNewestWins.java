package io.vlmflux.pipeline;

import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxOperator;
import reactor.core.publisher.Operators;
import reactor.util.context.Context;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import java.util.concurrent.atomic.AtomicLongFieldUpdater;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Newest wins: requests everything from upstream and keeps at most one undelivered element per key (one key when
 * no key function is given); a newer element replaces the pending one of its key, which is handed to {@code onDrop}
 * (it releases and counts it) and then to the discard hook. Pending elements of different keys are delivered
 * round-robin, so a fast source cannot starve a slow one (one slot per camera). Like {@code onBackpressureLatest},
 * but every element it gives up goes through {@code onDrop}: replaced ones, the pending ones at cancel or error, and
 * late ones after termination.
 *
 * <p>Thread: emits on the upstream thread, or on the requesting thread when demand arrives after the element.
 * Prefetch: unbounded upstream. Backpressure: never buffers more than one element. Errors are delivered at once
 * (the pending element is dropped), completion after the pending element.
 */
final class FluxNewestWins<T> extends FluxOperator<T, T> {
    private final Consumer<? super T> onDrop;
    private final Function<? super T, ?> key;

    FluxNewestWins(Flux<? extends T> source, Consumer<? super T> onDrop) {
        this(source, onDrop, null);
    }

    /** @param key the slot of an element (e.g. its source id); null: one slot for all */
    FluxNewestWins(Flux<? extends T> source, Consumer<? super T> onDrop, Function<? super T, ?> key) {
        super(source);
        this.onDrop = Objects.requireNonNull(onDrop, "onDrop");
        this.key = key;
    }

    @Override
    public void subscribe(CoreSubscriber<? super T> actual) {
        source.subscribe(new NewestWinsSubscriber<>(actual, onDrop, key));
    }

    /**
     * The pending elements, one per key, in the order keys were first seen; {@link #poll()} serves them round-robin
     * starting after the key served last. Guarded by its own lock (upstream and drain threads both touch it).
     */
    static final class Slots {
        private final LinkedHashMap<Object, Object> pending = new LinkedHashMap<>();
        private final List<Object> order = new ArrayList<>();   // every key seen, in first-seen order
        private int next;                                       // index in order where the next poll starts

        synchronized Object put(Object key, Object v) {
            if (!pending.containsKey(key) && !order.contains(key)) order.add(key);
            return pending.put(key, v);
        }

        synchronized Object poll() {
            if (pending.isEmpty()) return null;
            for (int i = 0; i < order.size(); i++) {
                int at = (next + i) % order.size();
                Object v = pending.remove(order.get(at));
                if (v != null) {
                    next = (at + 1) % order.size();
                    return v;
                }
            }
            return null;
        }

        synchronized boolean isEmpty() { return pending.isEmpty(); }

        synchronized List<Object> clear() {
            List<Object> all = new ArrayList<>(pending.values());
            pending.clear();
            return all;
        }
    }

    static final class NewestWinsSubscriber<T> implements CoreSubscriber<T>, Subscription {
        final CoreSubscriber<? super T> actual;
        final Consumer<? super T> onDrop;
        final Function<? super T, ?> key;
        final Slots slots = new Slots();
        final Context ctx;
        Subscription s;

        volatile long requested;
        @SuppressWarnings("rawtypes")
        static final AtomicLongFieldUpdater<NewestWinsSubscriber> REQUESTED =
                AtomicLongFieldUpdater.newUpdater(NewestWinsSubscriber.class, "requested");
        volatile int wip;
        @SuppressWarnings("rawtypes")
        static final AtomicIntegerFieldUpdater<NewestWinsSubscriber> WIP =
                AtomicIntegerFieldUpdater.newUpdater(NewestWinsSubscriber.class, "wip");

        volatile boolean done;
        volatile boolean cancelled;
        Throwable error;

        NewestWinsSubscriber(CoreSubscriber<? super T> actual, Consumer<? super T> onDrop, Function<? super T, ?> key) {
            this.actual = actual;
            this.onDrop = onDrop;
            this.key = key;
            this.ctx = actual.currentContext();
        }

        @Override
        public Context currentContext() { return ctx; }

        @Override
        public void onSubscribe(Subscription s) {
            if (Operators.validate(this.s, s)) {
                this.s = s;
                actual.onSubscribe(this);
                s.request(Long.MAX_VALUE);
            }
        }

        @Override
        @SuppressWarnings("unchecked")
        public void onNext(T t) {
            if (done) {
                drop(t);
                return;
            }
            Object k = key == null ? Slots.class : key.apply(t);
            Object old = slots.put(k == null ? Slots.class : k, t);
            if (old != null) drop((T) old);
            drain();
            // After cancellation the drain loop may have exited for good; an element that arrives late is not
            // left in the slot (the slots' lock makes sure exactly one side drops it).
            if (cancelled) clear();
        }

        @Override
        public void onError(Throwable t) {
            if (done) {
                Operators.onErrorDropped(t, ctx);
                return;
            }
            error = t;
            done = true;
            drain();
        }

        @Override
        public void onComplete() {
            if (done) return;
            done = true;
            drain();
        }

        @Override
        public void request(long n) {
            if (Operators.validate(n)) {
                Operators.addCap(REQUESTED, this, n);
                drain();
            }
        }

        @Override
        public void cancel() {
            if (!cancelled) {
                cancelled = true;
                s.cancel();
                drain(); // drops the pending element unless a drain in progress does it
            }
        }

        void drop(T t) {
            try {
                onDrop.accept(t);
            } catch (Throwable e) {
                Operators.onErrorDropped(Operators.onOperatorError(e, ctx), ctx);
            }
            Operators.onDiscard(t, ctx);
        }

        @SuppressWarnings("unchecked")
        void clear() {
            for (Object v : slots.clear()) drop((T) v);
        }

        @SuppressWarnings("unchecked")
        void drain() {
            if (WIP.getAndIncrement(this) != 0) return;
            int missed = 1;
            for (;;) {
                long r = requested;
                long e = 0L;
                while (e != r) {
                    boolean d = done;
                    Object v = slots.poll();
                    boolean empty = v == null;
                    if (checkTerminated(d, empty, v)) return;
                    if (empty) break;
                    actual.onNext((T) v);
                    e++;
                }
                if (e == r && checkTerminated(done, slots.isEmpty(), null)) return;
                if (e != 0L && r != Long.MAX_VALUE) REQUESTED.addAndGet(this, -e);
                missed = WIP.addAndGet(this, -missed);
                if (missed == 0) break;
            }
        }

        /** On termination also drops {@code taken} (an element already removed from its slot) and the slots. */
        @SuppressWarnings("unchecked")
        boolean checkTerminated(boolean d, boolean empty, Object taken) {
            if (cancelled) {
                if (taken != null) drop((T) taken);
                clear();
                return true;
            }
            if (d) {
                Throwable ex = error;
                if (ex != null) {
                    if (taken != null) drop((T) taken);
                    clear();
                    actual.onError(ex);
                    return true;
                }
                if (empty) {
                    actual.onComplete();
                    return true;
                }
            }
            return false;
        }
    }
}
