package io.vlmflux.sources;

import reactor.core.publisher.Flux;

/**
 * A source under another id: it owns nothing but the id, relabels each frame (the frame's pixels pass on unchanged,
 * {@link Frame#withSourceId}) and each event of the source it wraps.
 */
final class NamedSource implements FrameSource {
    private final FrameSource source;
    private final String id;

    NamedSource(FrameSource source, String id) {
        if (source == null) throw new IllegalArgumentException("source must not be null");
        if (id == null || id.isBlank()) throw new IllegalArgumentException("source id must not be blank, got '" + id + "'");
        this.source = source;
        this.id = id;
    }

    @Override public String id() { return id; }
    @Override public boolean isLive() { return source.isLive(); }
    @Override public SourceStats stats() { return source.stats(); }
    @Override public Flux<Frame> frames() { return source.frames().map(f -> f.withSourceId(id)).doOnDiscard(Frame.class, Frame::close); }
    @Override public Flux<SourceEvent> events() { return source.events().map(e -> e.withSourceId(id)); }
    @Override public FrameSource named(String other) { return new NamedSource(source, other); }
    @Override public String toString() { return id + " (" + source + ")"; }
}
