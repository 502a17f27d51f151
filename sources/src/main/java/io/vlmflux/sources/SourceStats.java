package io.vlmflux.sources;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counters of one {@link FrameSource}, cumulative over all its subscriptions and safe to read from any thread.
 * {@code produced} counts frames that came out of the pipeline, {@code emitted} those handed downstream,
 * {@code dropped} those released unseen because a live source had a newer frame while downstream had no demand,
 * and {@code reconnects} the times a network source was torn down and opened again.
 */
public final class SourceStats {
    private final AtomicLong produced = new AtomicLong();
    private final AtomicLong emitted = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong reconnects = new AtomicLong();

    public long produced() { return produced.get(); }
    public long emitted() { return emitted.get(); }
    public long dropped() { return dropped.get(); }
    public long reconnects() { return reconnects.get(); }

    void onProduced() { produced.incrementAndGet(); }
    void onEmitted() { emitted.incrementAndGet(); }
    void onDropped() { dropped.incrementAndGet(); }
    void onReconnect() { reconnects.incrementAndGet(); }

    @Override
    public String toString() {
        return "SourceStats[produced=" + produced() + ", emitted=" + emitted() + ", dropped=" + dropped() + ", reconnects=" + reconnects() + "]";
    }
}
