package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.micrometer.core.instrument.Counter;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.sources.Frame;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The alerts of one {@link LiveStream} ({@code serve --alert}, a config's {@code alerts}): every sampled frame the
 * caption stage receives is copied (same format, bytes and sequence) into {@link Stages#watch} with the stream's
 * alerts, and each {@link Event} is published as an {@code alert} event on the stream's hub and counted
 * ({@code vlmflux_alerts_total{source,watch,kind}}).
 *
 * <p>One vision encoding per frame serves captions and alerts: the copy has the original's exact pixels, so whichever
 * of the two reaches the runtime second finds the encoding in the runtime's encoder cache (keyed and confirmed by
 * content). The cost of the second use is the copy (one memcpy of a sampled frame) and the preprocessing, not the
 * encoder. Captions and alerts share the runtime's compute thread: on cpu they take turns, so each alert question
 * adds its prefill and decode to the time between captions.
 *
 * <p>On a stream with a live-video session ({@code serve --live}) the alerts are asked over the session's window
 * instead ({@link LiveWindowAnswerer#alerts}): no frame is copied for them, the session checks them between appends
 * every alert period of video time, and the events are published the same way (their evidence is the window: the
 * newest group's index and the window's end).
 *
 * <p>Backpressure: the watch stage keeps the newest waiting copy per source (older ones are closed); copies left in
 * the hand-over queue on close are closed.
 */
final class StreamAlerts implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.serve");

    private final LiveStream stream;
    private volatile List<Alert> alerts = List.of();
    private final AtomicLong published = new AtomicLong();
    private volatile Sinks.Many<Frame> frames;
    private volatile Disposable subscription;

    StreamAlerts(LiveStream stream) { this.stream = stream; }

    void set(List<Alert> list) { alerts = list == null ? List.of() : List.copyOf(list); }

    List<Alert> alerts() { return alerts; }

    long published() { return published.get(); }

    /**
     * Starts the alerts (no-op without): over {@code window}'s recent video when the stream has a live-video session
     * (before it starts; the session checks them between appends), else on every sampled frame (the watch stage).
     */
    void start(CaptionOptions.Backpressure backpressure, LiveWindowAnswerer window) {
        if (alerts.isEmpty()) return;
        Flux<Event> events;
        if (window != null) {
            events = window.alerts(alerts);
        } else {
            Sinks.Many<Frame> in = Sinks.many().unicast().onBackpressureBuffer();
            frames = in;
            events = in.asFlux()
                    .doOnDiscard(Frame.class, Frame::close)
                    .transform(Stages.watch(stream.runtime(), alerts, backpressure));
        }
        subscription = events.subscribe(this::publish, e -> {
            String m = e.getMessage() == null ? e.toString() : e.getMessage();
            LOG.log(System.Logger.Level.WARNING, "alerts of stream " + stream.id() + " failed: " + m);
            stream.hub().publish("alert", stream.hub().fields().put("kind", "error").put("error", m).put("message", "alerts stopped: " + m));
        });
    }

    /** A sampled frame on its way to the caption stage: a copy goes to the alerts. */
    void offer(Frame f) {
        Sinks.Many<Frame> in = frames;
        if (in == null || f.isReleased()) return;
        Frame copy = f.copy();
        if (in.tryEmitNext(copy).isFailure()) copy.close();
    }

    private void publish(Event e) {
        published.incrementAndGet();
        ServeMetrics m = stream.serveMetrics();
        if (m != null)
            Counter.builder("vlmflux.alerts").description("alert events of live streams, by source, alert and kind")
                    .tag("source", stream.id()).tag("watch", e.watch()).tag("kind", e.kind().wire()).register(m.registry()).increment();
        stream.hub().publish("alert", fields(stream.hub().fields(), e));
    }

    /** An event's fields as published ({@code message} is a line for people, e.g. the page). */
    static ObjectNode fields(ObjectNode f, Event e) {
        f.put("watch", e.watch()).put("kind", e.kind().wire()).put("answer", e.answer()).put("previous", e.previous());
        if (e.logprob() != null) f.put("logprob", e.logprob());
        if (e.confidence() != null) f.put("confidence", e.confidence());
        ArrayNode ev = f.putArray("evidence");
        for (Event.Evidence x : e.evidence()) {
            ObjectNode o = ev.addObject().put("frame", x.sequence()).put("pts_ms", x.ptsMillis()).put("answer", x.answer());
            if (x.logprob() != null) o.put("logprob", x.logprob());
        }
        f.put("at_ms", e.atMillis());
        if (e.error() != null) f.put("error", e.error());
        f.put("message", message(e));
        return f;
    }

    static String message(Event e) {
        return switch (e.kind()) {
            case CHANGED -> e.watch() + ": " + e.answer() + (e.previous() != null ? " (was " + e.previous() + ")" : "");
            case REPEATED -> e.watch() + ": still " + e.answer();
            case STALLED -> e.watch() + ": no answers (stalled)";
            case ERROR -> e.watch() + ": error " + e.error();
        };
    }

    @Override public void close() {
        Disposable d = subscription;
        if (d != null) d.dispose();
        Sinks.Many<Frame> in = frames;
        if (in != null) in.tryEmitComplete();
    }
}
