package io.vlmflux.pipeline;

import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxOperator;
import reactor.core.publisher.Operators;
import reactor.util.context.Context;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import java.util.concurrent.atomic.AtomicLongFieldUpdater;
import java.util.concurrent.atomic.AtomicReferenceFieldUpdater;
import java.util.function.Consumer;

/**
 * Newest wins: requests everything from upstream and keeps at most one undelivered element; a newer element
 * replaces the pending one, which is handed to {@code onDrop} (it releases and counts it) and then to the discard
 * hook. Like {@code onBackpressureLatest}, but every element it gives up goes through {@code onDrop}: replaced ones,
 * the pending one at cancel or error, and late ones after termination.
 *
 * <p>Thread: emits on the upstream thread, or on the requesting thread when demand arrives after the element.
 * Prefetch: unbounded upstream. Backpressure: never buffers more than one element. Errors are delivered at once
 * (the pending element is dropped), completion after the pending element.
 */
final class FluxNewestWins<T> extends FluxOperator<T, T> {
    private final Consumer<? super T> onDrop;

    FluxNewestWins(Flux<? extends T> source, Consumer<? super T> onDrop) {
        super(source);
        this.onDrop = Objects.requireNonNull(onDrop, "onDrop");
    }

    @Override
    public void subscribe(CoreSubscriber<? super T> actual) {
        source.subscribe(new NewestWinsSubscriber<>(actual, onDrop));
    }

    static final class NewestWinsSubscriber<T> implements CoreSubscriber<T>, Subscription {
        final CoreSubscriber<? super T> actual;
        final Consumer<? super T> onDrop;
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
        volatile Object value;
        @SuppressWarnings("rawtypes")
        static final AtomicReferenceFieldUpdater<NewestWinsSubscriber, Object> VALUE =
                AtomicReferenceFieldUpdater.newUpdater(NewestWinsSubscriber.class, Object.class, "value");

        volatile boolean done;
        volatile boolean cancelled;
        Throwable error;

        NewestWinsSubscriber(CoreSubscriber<? super T> actual, Consumer<? super T> onDrop) {
            this.actual = actual;
            this.onDrop = onDrop;
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
            Object old = VALUE.getAndSet(this, t);
            if (old != null) drop((T) old);
            drain();
            // After cancellation the drain loop may have exited for good; an element that arrives late is not
            // left in the slot (getAndSet makes sure exactly one side drops it).
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
            Object v = VALUE.getAndSet(this, null);
            if (v != null) drop((T) v);
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
                    Object v = VALUE.getAndSet(this, null);
                    boolean empty = v == null;
                    if (checkTerminated(d, empty, v)) return;
                    if (empty) break;
                    actual.onNext((T) v);
                    e++;
                }
                if (e == r && checkTerminated(done, value == null, null)) return;
                if (e != 0L && r != Long.MAX_VALUE) REQUESTED.addAndGet(this, -e);
                missed = WIP.addAndGet(this, -missed);
                if (missed == 0) break;
            }
        }

        /** On termination also drops {@code taken} (an element already removed from the slot) and the slot. */
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
