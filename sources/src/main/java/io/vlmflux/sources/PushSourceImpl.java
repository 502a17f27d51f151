package io.vlmflux.sources;

import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;

import java.util.Objects;

/**
 * {@link PushSource}: a one-slot mailbox between the host's thread and the subscriber. All state is guarded by
 * {@code lock}; frames are emitted on the pushing thread or on the requesting thread, whichever meets demand first.
 */
final class PushSourceImpl implements PushSource {
    private final String id;
    private final SourceStats stats = new SourceStats();
    private final Object lock = new Object();
    private FluxSink<Frame> sink;
    private Frame latest;
    private boolean completed;
    private Throwable error;
    private boolean terminated;

    PushSourceImpl(String id) { this.id = Objects.requireNonNull(id, "id"); }

    @Override public String id() { return id; }
    @Override public boolean isLive() { return true; }
    @Override public SourceStats stats() { return stats; }

    @Override
    public void push(Frame frame) {
        Objects.requireNonNull(frame, "frame");
        synchronized (lock) {
            if (completed || error != null) {
                frame.close();
                throw new IllegalStateException("push source '" + id + "' is already " + (error != null ? "failed" : "complete") + "; cannot push " + frame);
            }
            stats.onProduced();
            if (latest != null) { latest.close(); stats.onDropped(); }
            latest = frame;
            drainLocked();
        }
    }

    @Override
    public void complete() {
        synchronized (lock) {
            completed = true;
            drainLocked();
        }
    }

    @Override
    public void error(Throwable t) {
        Objects.requireNonNull(t, "error");
        synchronized (lock) {
            if (completed || error != null) return;
            error = t;
            if (latest != null) { latest.close(); latest = null; }
            drainLocked();
        }
    }

    /** Hot-ish: frames pushed before anyone subscribes wait (newest only); one subscriber at a time. */
    @Override
    public Flux<Frame> frames() {
        return Flux.<Frame>create(s -> {
            synchronized (lock) {
                if (sink != null) {
                    s.error(new SourceException(id, "push source already has a subscriber"));
                    return;
                }
                if (terminated) {
                    s.error(new SourceException(id, "push source has already ended"));
                    return;
                }
                sink = s;
            }
            s.onRequest(n -> { synchronized (lock) { drainLocked(); } });
            s.onDispose(() -> {
                synchronized (lock) {
                    if (sink == s) sink = null;
                }
            });
            synchronized (lock) { drainLocked(); }
        }, FluxSink.OverflowStrategy.BUFFER).doOnDiscard(Frame.class, Frame::close);
    }

    private void drainLocked() {
        FluxSink<Frame> s = sink;
        if (s == null || terminated) return;
        if (error != null) {
            terminated = true;
            s.error(new SourceException(id, Sources.describe(error), error));
            return;
        }
        if (latest != null && s.requestedFromDownstream() > 0) {
            Frame f = latest;
            latest = null;
            s.next(f);
            stats.onEmitted();
        }
        if (completed && latest == null) {
            terminated = true;
            s.complete();
        }
    }
}
