package io.vlmflux.sources;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counters of one {@link FrameSource}, cumulative over all its subscriptions and safe to read from any thread.
 * {@code produced} counts frames that came out of the pipeline, {@code emitted} those handed downstream,
 * {@code dropped} those released unseen because a live source had a newer frame while downstream had no demand,
 * {@code reconnects} the times a network source was torn down and opened again, {@code skipped} the files (images)
 * that could not be decoded and were passed over, and {@code warnings} the problems a stream went on after (GStreamer
 * warnings, a file that ended before its announced duration).
 */
public final class SourceStats {
    private final AtomicLong produced = new AtomicLong();
    private final AtomicLong emitted = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong reconnects = new AtomicLong();
    private final AtomicLong skipped = new AtomicLong();
    private final AtomicLong warnings = new AtomicLong();

    public long produced() { return produced.get(); }
    public long emitted() { return emitted.get(); }
    public long dropped() { return dropped.get(); }
    public long reconnects() { return reconnects.get(); }
    public long skipped() { return skipped.get(); }
    public long warnings() { return warnings.get(); }

    void onProduced() { produced.incrementAndGet(); }
    void onEmitted() { emitted.incrementAndGet(); }
    void onDropped() { dropped.incrementAndGet(); }
    void onReconnect() { reconnects.incrementAndGet(); }
    void onSkipped() { skipped.incrementAndGet(); }
    void onWarning() { warnings.incrementAndGet(); }

    @Override
    public String toString() {
        return "SourceStats[produced=" + produced() + ", emitted=" + emitted() + ", dropped=" + dropped() + ", reconnects=" + reconnects()
                + ", skipped=" + skipped() + ", warnings=" + warnings() + "]";
    }
}
