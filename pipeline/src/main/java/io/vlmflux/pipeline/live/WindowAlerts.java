package io.vlmflux.pipeline.live;

import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.watch.Answerer;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.pipeline.watch.Observation;
import io.vlmflux.pipeline.watch.Watches;
import io.vlmflux.sources.FrameInfo;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

import java.time.Duration;
import java.util.List;

/**
 * The alerts of one live session, checked over its window (used by {@link LiveVideo#watch} and by serve's live
 * streams). Whoever serializes the session's work calls {@link #afterAppend} after each appended group: when at least
 * {@code every} of video time passed since the last check (the first group is checked), every alert's question is
 * asked over the window ({@link LiveWindowAnswerer}) and the returned Mono completes once the answers are in, so the
 * session's next work (an append, a question) waits for them and nothing else touches the session meanwhile.
 * {@link #events()} turns the answers into {@link Event}s by each alert's policy (the watch operator).
 *
 * <p>Video time, not wall-clock time: a file is checked at the same points however fast it runs. One instance per
 * session; {@link #events()} is subscribed once, before the first append (a check made with no subscriber is skipped).
 * A check whose answers are abandoned (the events' subscriber cancelled) releases the session's work at once.
 */
public final class WindowAlerts {
    private record Pending(LiveWindowAnswerer.Check check, Sinks.Empty<Void> done) {}

    private final LiveWindowAnswerer answerer;
    private final long everyNanos;
    private final Sinks.Many<Pending> checks = Sinks.many().unicast().onBackpressureBuffer();
    private long lastCheck = Long.MIN_VALUE;   // the session's work thread

    /** Compiles the alerts' constraints now: a bad one fails here. */
    public WindowAlerts(VlmRuntime runtime, List<Alert> alerts, Duration every) {
        if (every == null || every.isZero() || every.isNegative()) throw new IllegalArgumentException("alert period must be positive, got " + every);
        this.answerer = new LiveWindowAnswerer(runtime, alerts);
        this.everyNanos = every.toNanos();
    }

    public List<Alert> alerts() { return answerer.alerts(); }

    /** The alerts' events (subscribe once); completes after {@link #complete()} and the check in flight. */
    public Flux<Event> events() {
        Answerer<Pending> gated = new Answerer<>() {   // the window's answers, then the session goes on
            @Override public List<FrameInfo> frames(Pending p) { return answerer.frames(p.check()); }

            @Override public Mono<List<Observation>> answer(Pending p) {
                return answerer.answer(p.check()).doFinally(s -> p.done().tryEmitEmpty());
            }
        };
        return checks.asFlux()
                .transform(Watches.operator(alerts().stream().map(Alert::watch).toList(), gated))
                .doOnDiscard(Pending.class, p -> p.done().tryEmitEmpty());
    }

    /**
     * Called on the session's work after a group was appended: checks the window when due, completing when the
     * answers are in (at once when no check is due).
     */
    public Mono<Void> afterAppend(LiveSession session, String sourceId) {
        return Mono.defer(() -> {
            LiveSession.Window win = session.window();
            if (lastCheck != Long.MIN_VALUE && win.endPts() - lastCheck < everyNanos) return Mono.empty();
            lastCheck = win.endPts();
            Pending p = new Pending(new LiveWindowAnswerer.Check(session, win, sourceId == null ? "live" : sourceId), Sinks.empty());
            return checks.tryEmitNext(p).isFailure() ? Mono.empty() : p.done().asMono();
        });
    }

    /** No more checks: the events complete after the one in flight. */
    public void complete() { checks.tryEmitComplete(); }
}
