package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.live.HeldFrames;
import io.vlmflux.pipeline.live.WindowAlerts;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.sources.Frame;
import reactor.core.Disposable;
import reactor.core.publisher.BufferOverflowStrategy;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.util.concurrent.Queues;

import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A live-video session ({@link LiveSession}, docs/live.md) next to a stream's captions ({@code vlmflux serve --live}):
 * the stream's frames are sampled at the session's fps (by presentation time), copied, and appended in temporal groups
 * to the session's KV cache, which keeps the most recent window of video; questions ({@code POST
 * /v1/streams/{id}/questions}) are answered over that window, their tokens streamed (as {@code answer} events) while
 * they are decoded; with a narration period, the narration prompt is asked over the window every period and published
 * as a {@code narration} event; with alerts ({@link #alerts}) their questions are asked over the window after an
 * appended group every alert period of video time (the session's next work waits for the answers).
 *
 * <p>One session per stream, its work serialized as in {@code LiveVideo}: questions first, then narration, then
 * groups. Groups that arrive while the session is busy wait (at most {@code maxQueuedGroups}, then the oldest is
 * dropped and counted). Every copied frame is closed exactly once (appended, dropped, or at close). Frames get session
 * time {@code k / fps} (k = the sampled frame's number), so a source that restarts its clock never sends the session
 * back in time.
 */
public final class LiveWindowAnswerer implements QuestionAnswerer, AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.serve");

    /**
     * @param session         fps, window, answer length, system prompt, eviction (docs/live.md)
     * @param narrateEvery    narration period, null: none
     * @param narratePrompt   the narration's standing question
     * @param maxQueuedGroups groups kept while the session is busy (&gt;= 1), then the oldest is dropped
     * @param alertEvery      how often (video time) the stream's alerts are checked over the window; null: the narration
     *                        period, or {@link #DEFAULT_ALERT_EVERY} without narration
     */
    public record Options(LiveSession.Options session, Duration narrateEvery, String narratePrompt, int maxQueuedGroups, Duration alertEvery) {
        public static final Duration DEFAULT_ALERT_EVERY = Duration.ofSeconds(2);

        public Options {
            if (alertEvery != null && (alertEvery.isNegative() || alertEvery.isZero()))
                throw new IllegalArgumentException("alert period must be positive, got " + alertEvery);
            if (session == null) throw new IllegalArgumentException("live options need session options");
            if (narrateEvery != null && (narrateEvery.isNegative() || narrateEvery.isZero()))
                throw new IllegalArgumentException("narration period must be positive, got " + narrateEvery);
            if (narrateEvery != null && (narratePrompt == null || narratePrompt.isBlank())) throw new IllegalArgumentException("narration needs a prompt");
            if (maxQueuedGroups < 1) throw new IllegalArgumentException("max queued groups must be >= 1, got " + maxQueuedGroups);
        }

        /** 2 fps, a 30 s window, 64-token answers, no narration, 4 queued groups, alerts every narration period or 2 s. */
        public static Options defaults() { return new Options(LiveSession.Options.defaults(), null, io.vlmflux.pipeline.config.LiveConfig.DEFAULT_PROMPT, 4, null); }
        public Options withSession(LiveSession.Options s) { return new Options(s, narrateEvery, narratePrompt, maxQueuedGroups, alertEvery); }
        public Options withNarration(Duration every, String prompt) { return new Options(session, every, prompt, maxQueuedGroups, alertEvery); }
        public Options withAlertEvery(Duration every) { return new Options(session, narrateEvery, narratePrompt, maxQueuedGroups, every); }

        /** The alert period in effect: {@link #alertEvery()}, else the narration period, else 2 s. */
        public Duration alertPeriod() { return alertEvery != null ? alertEvery : narrateEvery != null ? narrateEvery : DEFAULT_ALERT_EVERY; }
    }

    private sealed interface Work permits Append, Ask, Tick {}
    private record Append(List<Frame> frames) implements Work { void close() { frames.forEach(Frame::close); } }
    private record Ask(String question, int maxTokens, Sinks.Many<TokenEvent> out, Sinks.Empty<Void> cancel) implements Work {}
    private record Tick(long n) implements Work {}

    private final LiveStream stream;
    private final VlmRuntime runtime;
    private final Options options;
    private final long interval;
    private final Sinks.Many<Frame> frames = Sinks.many().unicast().onBackpressureBuffer(Queues.<Frame>get(16).get());
    private final Sinks.Many<Work> asks = Sinks.many().unicast().onBackpressureBuffer();
    private final HeldFrames held = new HeldFrames();   // copies between offer() and the session: closed at the end whatever a cancel race lost
    private final AtomicLong framesIn = new AtomicLong(), framesDropped = new AtomicLong(), groupsDropped = new AtomicLong(),
            appended = new AtomicLong(), answered = new AtomicLong(), narrations = new AtomicLong();
    private long next = Long.MIN_VALUE, lastIn = Long.MIN_VALUE, count;   // the sampler (the source's thread)
    private volatile LiveSession session;
    private volatile LiveSession.Window window;
    private volatile Disposable run;
    private volatile WindowAlerts alerts;   // the stream's alerts over the window, null: none
    private volatile boolean closed;
    private volatile String error;

    public LiveWindowAnswerer(LiveStream stream, VlmRuntime runtime, Options options) {
        if (!runtime.hasVision()) throw new IllegalArgumentException(runtime.dir() + " is a text-only model: it cannot watch video");
        this.stream = stream;
        this.runtime = runtime;
        this.options = options;
        this.interval = Math.round(1e9 / options.session().fps());
    }

    public Options options() { return options; }

    /**
     * Checks {@code list} over the window every {@link Options#alertPeriod()} of video time, between appends (the
     * stream's alerts in live-window mode, instead of on each sampled frame); before {@link #start()}. Returns the
     * alerts' events, to be subscribed before {@link #start()}; the constraints are compiled now (a bad one fails here).
     */
    synchronized Flux<Event> alerts(List<Alert> list) {
        if (run != null || closed) throw new IllegalStateException("the live session's alerts are set before start()");
        WindowAlerts w = new WindowAlerts(runtime, list, options.alertPeriod());
        alerts = w;
        return w.events();
    }

    /** Opens the session and starts appending (the stream's frames then reach {@link #offer}). */
    public synchronized void start() {
        if (run != null || closed) throw new IllegalStateException("the live session of " + stream.id() + " was already started");
        LiveSession s = LiveSession.open(runtime, options.session());
        session = s;
        window = s.window();
        Flux<Work> groups = frames.asFlux().buffer(s.framesPerGroup()).<Work>map(Append::new)
                .onBackpressureBuffer(options.maxQueuedGroups(), w -> {
                    ((Append) w).close();
                    groupsDropped.incrementAndGet();
                }, BufferOverflowStrategy.DROP_OLDEST);
        Flux<Work> ticks = options.narrateEvery() == null ? Flux.empty()
                : Flux.interval(options.narrateEvery(), options.narrateEvery()).<Work>map(Tick::new).onBackpressureDrop();
        run = Flux.mergePriority(1, Comparator.comparingInt(LiveWindowAnswerer::priority), asks.asFlux(), ticks, groups)
                .concatMap(w -> execute(s, w), 0)
                .doFinally(sig -> {
                    held.end();
                    s.close();
                })
                .doOnDiscard(Append.class, Append::close)
                .doOnDiscard(Frame.class, Frame::close)
                .doOnDiscard(Ask.class, a -> a.out().tryEmitError(new IllegalStateException("the live session of " + stream.id() + " closed")))
                .subscribe(x -> { }, e -> {
                    error = e.getMessage() == null ? e.toString() : e.getMessage();
                    LOG.log(System.Logger.Level.WARNING, "live session of stream " + stream.id() + " failed: " + error);
                    stream.hub().publish("live_failed", stream.hub().fields().put("message", error));
                });
    }

    private static int priority(Work w) {
        return switch (w) {
            case Ask a -> 0;
            case Tick t -> 1;
            case Append a -> 2;
        };
    }

    /**
     * A frame of the stream passing by (borrowed: copied when it is kept). Keeps one every {@code 1/fps} of
     * presentation time (arrival time for frames without pts); never blocks.
     */
    void offer(Frame f) {
        if (closed || run == null || f.isReleased()) return;
        long t = f.ptsNanos() >= 0 ? f.ptsNanos() : System.nanoTime();
        if (lastIn != Long.MIN_VALUE && t < lastIn) next = Long.MIN_VALUE;   // the source's clock restarted
        lastIn = t;
        if (next != Long.MIN_VALUE && t < next) return;
        next = next == Long.MIN_VALUE || t - next > interval ? t + interval : next + interval;
        Frame copy = held.hold(f.copy(count++ * interval));
        framesIn.incrementAndGet();
        synchronized (frames) {
            if (closed || frames.tryEmitNext(copy).isFailure()) {
                copy.close();
                framesDropped.incrementAndGet();
            }
        }
    }

    private Flux<Object> execute(LiveSession s, Work w) {
        return switch (w) {
            case Append a -> !held.handOff(a.frames()) ? Flux.empty() : s.append(a.frames())
                    .doOnNext(x -> {
                        appended.incrementAndGet();
                        window = s.window();
                    })
                    .onErrorResume(e -> {
                        LOG.log(System.Logger.Level.WARNING, "live session of stream " + stream.id() + ": a group was not appended: " + e.getMessage());
                        return Mono.empty();
                    })
                    .flatMap(x -> alerts == null ? Mono.<Void>empty() : alerts.afterAppend(s, stream.id()))   // the window's alerts, when due
                    .thenMany(Flux.empty());
            case Ask a -> ask(s, a);
            case Tick t -> s.window().groups() == 0 ? Flux.empty() : narrate(s);
        };
    }

    private Flux<Object> ask(LiveSession s, Ask a) {
        if (s.window().groups() == 0) {
            a.out().tryEmitError(new IllegalStateException("stream '" + stream.id() + "' has no video in its live window yet; ask again in a moment"));
            return Flux.empty();
        }
        return s.ask(a.question(), a.maxTokens())
                .doOnNext(e -> a.out().tryEmitNext(e))
                .doOnComplete(() -> {
                    answered.incrementAndGet();
                    a.out().tryEmitComplete();
                })
                .doOnError(e -> a.out().tryEmitError(e))
                .takeUntilOther(a.cancel().asMono())
                .onErrorResume(e -> Flux.empty())
                .thenMany(Flux.empty());
    }

    private Flux<Object> narrate(LiveSession s) {
        LiveSession.Window win = s.window();
        long t0 = System.nanoTime();
        long[] first = {-1};
        StringBuilder text = new StringBuilder();
        FinishReason[] fin = {FinishReason.LENGTH};
        return s.ask(options.narratePrompt(), options.session().maxAnswerTokens())
                .doOnNext(e -> {
                    if (first[0] < 0) first[0] = System.nanoTime();
                    text.append(e.textDelta());
                    if (e.isLast()) fin[0] = e.finishReason();
                })
                .then(Mono.fromRunnable(() -> {
                    narrations.incrementAndGet();
                    ObjectNode f = stream.hub().fields().put("prompt", options.narratePrompt()).put("text", text.toString().strip())
                            .put("finish_reason", fin[0] == FinishReason.LENGTH ? "length" : "stop");
                    span(f, win);
                    f.put("ttft_ms", LiveStream.round((first[0] - t0) / 1e6)).put("total_ms", LiveStream.round((System.nanoTime() - t0) / 1e6));
                    stream.hub().publish("narration", f);
                }))
                .onErrorResume(e -> {
                    LOG.log(System.Logger.Level.WARNING, "narration of stream " + stream.id() + " failed: " + e.getMessage());
                    return Mono.empty();
                }).thenMany(Flux.empty());
    }

    private static void span(ObjectNode f, LiveSession.Window w) {
        f.put("window_groups", w.groups());
        if (w.groups() > 0) f.put("window_start_s", w.startPts() / 1e9).put("window_end_s", w.endPts() / 1e9);
        else f.putNull("window_start_s").putNull("window_end_s");
    }

    @Override public Flux<TokenEvent> answer(LiveStream s, String question, int maxTokens) {
        return Flux.defer(() -> {
            if (closed || run == null) return Flux.error(new IllegalStateException("the live session of stream '" + stream.id() + "' is not running"));
            if (window.groups() == 0)
                return Flux.error(new IllegalStateException("stream '" + stream.id() + "' has no video in its live window yet; ask again in a moment"));
            Ask a = new Ask(question, Math.min(maxTokens, options.session().maxAnswerTokens()), Sinks.many().unicast().onBackpressureBuffer(), Sinks.empty());
            synchronized (asks) {
                if (asks.tryEmitNext(a).isFailure()) return Flux.error(new IllegalStateException("the live session of stream '" + stream.id() + "' is closing"));
            }
            return a.out().asFlux().doOnCancel(() -> a.cancel().tryEmitEmpty());
        });
    }

    /** Puts the current window's span ({@code window_groups}, {@code window_start_s}, {@code window_end_s}) into {@code o}. */
    public ObjectNode span(ObjectNode o) {
        LiveSession.Window w = window;
        if (w == null) o.put("window_groups", 0).putNull("window_start_s").putNull("window_end_s");
        else span(o, w);
        return o;
    }

    /** The window and counters, for {@code GET /v1/streams/{id}} ({@code live_window}) and the answers. */
    public ObjectNode describe(ObjectNode o) {
        LiveSession.Window w = window;
        o.put("fps", options.session().fps()).put("window_s", options.session().window().toMillis() / 1000.0)
                .put("narrate_s", options.narrateEvery() == null ? null : options.narrateEvery().toMillis() / 1000.0)
                .put("alert_every_s", alerts == null ? null : options.alertPeriod().toMillis() / 1000.0);
        if (w != null) {
            span(o, w);
            o.put("cache_tokens", w.cacheLength()).put("kv_bytes", w.kvBytes());
        }
        o.put("frames_in", framesIn.get()).put("frames_dropped", framesDropped.get()).put("groups_appended", appended.get())
                .put("groups_dropped", groupsDropped.get()).put("answers", answered.get()).put("narrations", narrations.get()).put("error", error);
        return o;
    }

    /** Stops the session: the answer in flight is cancelled, queued frames are closed, the KV cache is freed. */
    @Override public void close() {
        synchronized (frames) {
            if (closed) return;
            closed = true;
            frames.tryEmitComplete();
        }
        synchronized (asks) {
            asks.tryEmitComplete();
        }
        Disposable d = run;
        if (d != null) d.dispose();   // queued frames and groups are discarded (closed), the session closes
        WindowAlerts w = alerts;
        if (w != null) w.complete();
    }

    @Override public String toString() { return "LiveWindowAnswerer[" + stream.id() + "]"; }
}
