package io.vlmflux.pipeline;

import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Operators;
import reactor.util.context.Context;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import java.util.concurrent.atomic.AtomicLongFieldUpdater;
import java.util.concurrent.atomic.AtomicReferenceFieldUpdater;

/**
 * Fair fan-in of several frame sources: each source has its own bounded buffer, and the output takes one frame from
 * each non-empty buffer in turn (round-robin), so a fast source cannot crowd out a slow one and a silent or dead one
 * holds nobody up.
 *
 * <p>Thread: emits on whichever source thread or requesting thread wins the drain. Prefetch: live sources are asked
 * for everything and keep the newest {@code bufferPerSource} frames; non-live sources are asked for
 * {@code bufferPerSource} and one more per frame taken. Backpressure: the output never gets more than it requested.
 * Discard: frames pushed out of a full buffer, buffered at cancel or at a fail-fast error, or arriving after
 * termination are closed, counted as {@code dropped} of their source's stage ({@code fan-in/<id>}) and handed to the
 * discard hook. A failing source is logged, counted as an error of its stage, and removed (its buffered frames are
 * still delivered) unless {@link FanInOptions#failOnSourceError()}. Completes when every source has terminated and
 * every buffer is empty; fails when every source failed.
 */
final class FluxFanIn extends Flux<Frame> {
    private static final System.Logger LOG = System.getLogger("vlmflux.pipeline");

    private final List<SourceInput> inputs;
    private final FanInOptions options;
    private final PipelineMetrics metrics;

    FluxFanIn(List<SourceInput> inputs, FanInOptions options, PipelineMetrics metrics) {
        if (inputs == null || inputs.isEmpty()) throw new IllegalArgumentException("fan-in needs at least one source, got " + inputs);
        HashSet<String> ids = new HashSet<>();
        for (SourceInput in : inputs)
            if (!ids.add(in.id())) throw new IllegalArgumentException("duplicate source id '" + in.id() + "' in fan-in");
        if (options == null) throw new IllegalArgumentException("fan-in options must not be null");
        this.inputs = List.copyOf(inputs);
        this.options = options;
        this.metrics = metrics;
    }

    @Override
    public void subscribe(CoreSubscriber<? super Frame> actual) {
        Coordinator c = new Coordinator(actual, inputs, options, metrics);
        // Hold the drain until every source is subscribed, so that demand arriving in onSubscribe is not spent
        // entirely on the first (synchronous) source.
        Coordinator.WIP.set(c, 1);
        actual.onSubscribe(c);
        c.subscribeAll(inputs);
        c.drainMissed();
    }

    static final class Coordinator implements Subscription {
        final CoreSubscriber<? super Frame> actual;
        final Context ctx;
        final Inner[] inners;
        final boolean failFast;
        int next; // round-robin position, touched only inside drain

        volatile long requested;
        static final AtomicLongFieldUpdater<Coordinator> REQUESTED = AtomicLongFieldUpdater.newUpdater(Coordinator.class, "requested");
        volatile int wip;
        static final AtomicIntegerFieldUpdater<Coordinator> WIP = AtomicIntegerFieldUpdater.newUpdater(Coordinator.class, "wip");
        volatile Throwable fatal;
        static final AtomicReferenceFieldUpdater<Coordinator, Throwable> FATAL =
                AtomicReferenceFieldUpdater.newUpdater(Coordinator.class, Throwable.class, "fatal");
        volatile boolean cancelled;
        volatile boolean terminated; // written only inside drain; read by late onNext

        Coordinator(CoreSubscriber<? super Frame> actual, List<SourceInput> inputs, FanInOptions o, PipelineMetrics metrics) {
            this.actual = actual;
            this.ctx = actual.currentContext();
            this.failFast = o.failOnSourceError();
            this.inners = new Inner[inputs.size()];
            for (int i = 0; i < inners.length; i++) {
                SourceInput in = inputs.get(i);
                StageMetrics m = metrics == null ? null : metrics.stage("fan-in/" + in.id());
                inners[i] = new Inner(this, in.id(), in.live(), o.bufferPerSource(), m);
            }
        }

        void subscribeAll(List<SourceInput> inputs) {
            for (int i = 0; i < inners.length && !cancelled; i++) inputs.get(i).frames().subscribe(inners[i]);
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
            if (cancelled) return;
            cancelled = true;
            for (Inner in : inners) in.cancel();
            drain();
        }

        void innerError(Inner in, Throwable e) {
            if (in.metrics != null) in.metrics.recordError();
            if (failFast) {
                FATAL.compareAndSet(this, null, new IllegalStateException("source '" + in.id + "' failed: " + e.getMessage(), e));
            } else {
                LOG.log(System.Logger.Level.WARNING, "source ''{0}'' failed and was removed from the fan-in: {1}", in.id, String.valueOf(e));
            }
            drain();
        }

        void drain() {
            if (WIP.getAndIncrement(this) != 0) return;
            drainMissed();
        }

        /** The drain loop, entered by whoever moved {@code wip} from 0 to 1. */
        void drainMissed() {
            int missed = 1;
            for (;;) {
                if (!terminated) drainLoop();
                missed = WIP.addAndGet(this, -missed);
                if (missed == 0) break;
            }
        }

        private void drainLoop() {
            long r = requested;
            long e = 0;
            for (;;) {
                if (cancelled) {
                    terminated = true;
                    clearAll();
                    return;
                }
                Throwable f = fatal;
                if (f != null) {
                    terminated = true;
                    for (Inner in : inners) in.cancel();
                    clearAll();
                    actual.onError(f);
                    return;
                }
                boolean allDone = true;
                for (Inner in : inners) {
                    boolean d = in.done;
                    if (!d || !in.isEmpty()) { allDone = false; break; }
                }
                if (allDone) {
                    terminated = true;
                    finish();
                    return;
                }
                if (e == r) break;
                Frame frame = null;
                Inner from = null;
                int n = inners.length;
                for (int k = 0; k < n && frame == null; k++) {
                    Inner in = inners[(next + k) % n];
                    frame = in.poll();
                    if (frame != null) {
                        from = in;
                        next = (next + k + 1) % n;
                    }
                }
                if (frame == null) break;
                if (from.metrics != null) from.metrics.recordOut();
                actual.onNext(frame);
                from.taken();
                e++;
            }
            if (e != 0 && r != Long.MAX_VALUE) REQUESTED.addAndGet(this, -e);
        }

        private void finish() {
            List<Throwable> errors = new ArrayList<>();
            for (Inner in : inners) if (in.error != null) errors.add(in.error);
            if (!errors.isEmpty() && errors.size() == inners.length) {
                StringBuilder sb = new StringBuilder("all " + inners.length + " sources of the fan-in failed:");
                for (Inner in : inners) sb.append(" '").append(in.id).append("': ").append(in.error.getMessage()).append(';');
                IllegalStateException ex = new IllegalStateException(sb.substring(0, sb.length() - 1), errors.getFirst());
                for (int i = 1; i < errors.size(); i++) ex.addSuppressed(errors.get(i));
                actual.onError(ex);
            } else {
                actual.onComplete();
            }
        }

        private void clearAll() {
            for (Inner in : inners) in.clear();
        }
    }

    static final class Inner implements CoreSubscriber<Frame> {
        final Coordinator parent;
        final String id;
        final boolean live;
        final int capacity;
        final StageMetrics metrics;
        final ArrayDeque<Frame> queue; // guarded by itself
        volatile Subscription s;
        static final AtomicReferenceFieldUpdater<Inner, Subscription> S =
                AtomicReferenceFieldUpdater.newUpdater(Inner.class, Subscription.class, "s");
        volatile boolean done;
        volatile Throwable error;

        Inner(Coordinator parent, String id, boolean live, int capacity, StageMetrics metrics) {
            this.parent = parent;
            this.id = id;
            this.live = live;
            this.capacity = capacity;
            this.metrics = metrics;
            this.queue = new ArrayDeque<>(capacity + 1);
        }

        @Override
        public Context currentContext() { return parent.ctx; }

        @Override
        public void onSubscribe(Subscription sub) {
            if (Operators.setOnce(S, this, sub)) sub.request(live ? Long.MAX_VALUE : capacity);
        }

        @Override
        public void onNext(Frame f) {
            if (metrics != null) metrics.recordIn();
            if (done) {
                drop(f);
                return;
            }
            Frame evicted = null;
            synchronized (queue) {
                if (queue.size() >= capacity) { // live; or a non-live source that ignored demand
                    evicted = queue.poll();
                    // counted before the newer frame becomes visible: whoever takes it sees the eviction counted
                    if (metrics != null) metrics.recordDropped();
                }
                queue.offer(f);
            }
            if (evicted != null) release(evicted);
            parent.drain();
            if (parent.cancelled || parent.terminated) clear(); // the drain loop may be gone for good
        }

        @Override
        public void onError(Throwable t) {
            if (done) {
                Operators.onErrorDropped(t, parent.ctx);
                return;
            }
            error = t;
            done = true;
            parent.innerError(this, t);
        }

        @Override
        public void onComplete() {
            if (done) return;
            done = true;
            parent.drain();
        }

        Frame poll() {
            synchronized (queue) { return queue.poll(); }
        }

        boolean isEmpty() {
            synchronized (queue) { return queue.isEmpty(); }
        }

        void taken() {
            if (!live && !done) {
                Subscription sub = s;
                if (sub != null && sub != Operators.cancelledSubscription()) sub.request(1);
            }
        }

        void cancel() {
            Operators.terminate(S, this);
        }

        void clear() {
            for (;;) {
                Frame f = poll();
                if (f == null) return;
                drop(f);
            }
        }

        void drop(Frame f) {
            if (metrics != null) metrics.recordDropped();
            release(f);
        }

        /** Closes a frame already counted as dropped and hands it to the discard hook. */
        void release(Frame f) {
            f.close();
            Operators.onDiscard(f, parent.ctx);
        }
    }
}
