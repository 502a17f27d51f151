package io.vlmflux.pipeline;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import reactor.core.publisher.Flux;

/**
 * One input of a fan-in: an id (for logs and metrics), its frames, and whether it is live. A live input is read as
 * fast as it produces, keeping only the newest frames; a non-live one (a file) is read on demand and loses nothing.
 *
 * <p>The frames carry the input's id: a frame whose {@link Frame#sourceId()} differs (a source opened from a spec
 * that several inputs share, renamed by the config) is relabelled ({@link Frame#withSourceId}), so that captions and
 * metrics never confuse two inputs of the same URI.
 */
public record SourceInput(String id, Flux<Frame> frames, boolean live) {
    public SourceInput {
        if (id == null || id.isBlank()) throw new IllegalArgumentException("source id must not be blank, got '" + id + "'");
        if (frames == null) throw new IllegalArgumentException("frames of source '" + id + "' must not be null");
        String label = id;
        frames = frames.map(f -> f.withSourceId(label));
    }

    public static SourceInput of(FrameSource source) {
        return new SourceInput(source.id(), source.frames(), source.isLive());
    }

    public static SourceInput live(String id, Flux<Frame> frames) {
        return new SourceInput(id, frames, true);
    }
}
