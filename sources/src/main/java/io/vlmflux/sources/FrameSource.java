package io.vlmflux.sources;

import reactor.core.publisher.Flux;

/**
 * A source of frames. {@link #frames()} is cold: each subscription opens the underlying device, stream or file,
 * and cancelling or terminating it tears everything down. Live sources keep only the newest frame while the
 * subscriber has no demand (dropped frames are released and counted); files are lossless and demand-driven.
 */
public interface FrameSource {
    /** Stable id, used in {@link Frame#sourceId()} and in metrics. */
    String id();

    /** True for cameras, network streams and live test patterns (newest frame wins); false for files. */
    boolean isLive();

    /** Opens the source on subscribe; emits frames the subscriber must close. */
    Flux<Frame> frames();

    /** Frames produced, emitted and dropped, reconnects, skipped files and warnings, over all subscriptions (a fresh object when untracked). */
    default SourceStats stats() { return new SourceStats(); }

    /**
     * Hot: what happens to the source while {@link #frames()} is subscribed (connection lost and regained, retries,
     * skipped files, warnings, final failure), over all subscriptions. Subscribe before {@link #frames()} to see
     * everything; a slow subscriber misses events rather than slowing the source. Never completes.
     */
    default Flux<SourceEvent> events() { return Flux.never(); }

    /**
     * This source under another id: its frames ({@link Frame#sourceId()}), events and messages carry {@code id}.
     * For several sources opened from the same spec (same camera, same URL), give each its own id.
     */
    default FrameSource named(String id) { return new NamedSource(this, id); }
}
