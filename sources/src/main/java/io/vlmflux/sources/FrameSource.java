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

    /** Frames produced, emitted and dropped, and reconnects, over all subscriptions (a fresh object when untracked). */
    default SourceStats stats() { return new SourceStats(); }
}
