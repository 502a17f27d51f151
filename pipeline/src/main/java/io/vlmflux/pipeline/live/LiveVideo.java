package io.vlmflux.pipeline.live;

import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.sources.Frame;
import reactor.core.publisher.BufferOverflowStrategy;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A live video source watched by a model: frames in, narrations and answers out — the video-aware successor of the
 * single-frame caption stage. Per subscription it opens one {@link LiveSession} (its own KV cache on the runtime) and:
 * <ul>
 *   <li>samples the frames at {@link Options#session()} fps by presentation time (a source whose pts go backwards,
 *       e.g. after a reconnect, is rebased so session time keeps increasing), groups them by
 *       {@code temporal_patch_size} and appends each group (incremental prefill; the window evicts the oldest);</li>
 *   <li>answers each question of the {@code questions} flux over the window at that moment (a question that comes
 *       before the first group waits for it: an answer over no video would be a guess);</li>
 *   <li>every {@link Options#narrateEvery()} asks the standing {@link Options#narratePrompt()} ("What changed?") and
 *       emits the answer as a narration with the time span it covers.</li>
 * </ul>
 * Everything on the session is serialized; when it is free, a waiting question goes first, then a narration tick, then
 * the oldest queued group. Groups that arrive while the session is busy wait in a queue of
 * {@link Options#maxQueuedGroups()} groups, then the oldest queued group is dropped (newest wins; the frames are
 * closed and counted in {@link LiveAnswer#droppedGroups()}); questions wait unbounded; a narration tick that finds the
 * session busy is skipped. The stream completes when the frames complete (questions and narration stop then); a
 * source error ends it with that error; cancel stops the answer in flight (its tokens leave the cache) and frees the
 * session's cache. Every frame is closed exactly once.
 */
public final class LiveVideo {
    /**
     * @param session         the session's settings (fps, window, system prompt, answer length, dialogue memory)
     * @param narrateEvery    narration period; null: no narration
     * @param narratePrompt   the standing question of each narration
     * @param maxQueuedGroups groups kept while the session is busy, then newest wins; 0: lossless (backpressure reaches
     *                        the source: for files and non-live sources)
     */
    public record Options(LiveSession.Options session, Duration narrateEvery, String narratePrompt, int maxQueuedGroups) {
        public Options {
            if (session == null) throw new IllegalArgumentException("live options need session options");
            if (narrateEvery != null && (narrateEvery.isNegative() || narrateEvery.isZero()))
                throw new IllegalArgumentException("narration period must be positive, got " + narrateEvery);
            if (narrateEvery != null && (narratePrompt == null || narratePrompt.isBlank()))
                throw new IllegalArgumentException("narration needs a prompt");
            if (maxQueuedGroups < 0) throw new IllegalArgumentException("max queued groups must be >= 0, got " + maxQueuedGroups);
        }

        public static Options defaults() { return new Options(LiveSession.Options.defaults(), null, io.vlmflux.pipeline.config.LiveConfig.DEFAULT_PROMPT, 4); }
        public Options withSession(LiveSession.Options s) { return new Options(s, narrateEvery, narratePrompt, maxQueuedGroups); }
        public Options withNarration(Duration every, String prompt) { return new Options(session, every, prompt, maxQueuedGroups); }
        public Options withMaxQueuedGroups(int n) { return new Options(session, narrateEvery, narratePrompt, n); }
    }

    /** One answer or narration. Times in ms; pts in nanoseconds of session time. */
    public record LiveAnswer(Kind kind, String question, String text, FinishReason finishReason, int tokens, long windowStartPts,
                             long windowEndPts, int windowGroups, double ttftMs, double totalMs, long droppedGroups, double logprob) {
        public enum Kind { ANSWER, NARRATION }
    }

    /** What {@link #watch} emits: an answer or narration, or an alert's event (exactly one is set). */
    public record Output(LiveAnswer answer, Event event) {
        public Output {
            if ((answer == null) == (event == null)) throw new IllegalArgumentException("an output is an answer or an event");
        }
    }

    private final VlmRuntime runtime;
    private final Options options;
    private final TokenControls controls;   // questions and narration
    private final List<Alert> alerts;
    private final Duration alertEvery;

    private LiveVideo(VlmRuntime runtime, Options options, TokenControls controls, List<Alert> alerts, Duration alertEvery) {
        this.runtime = runtime;
        this.options = options;
        this.controls = controls;
        this.alerts = alerts;
        this.alertEvery = alertEvery;
    }

    /**
     * This watcher with token controls ({@link VlmRuntime#controls}) on the answers to questions AND the narration: a
     * constraint shapes both, {@code logprobs > 0} fills {@link LiveAnswer#logprob()}. Null: none.
     */
    public LiveVideo withControls(TokenControls c) {
        return new LiveVideo(runtime, options, c == null ? TokenControls.none() : c, alerts, alertEvery);
    }

    /**
     * This watcher with alerts for {@link #watch}: after an appended group whose end is at least {@code every} of video
     * time after the last check (the first group too), every alert's question is asked over the window
     * ({@link WindowAlerts}, {@link LiveWindowAnswerer}) and the watch operator turns the answers into {@link Event}s by each alert's policy.
     * Video time, not wall-clock time: a file or non-live source is checked at the same points however fast it runs.
     */
    public LiveVideo withAlerts(List<Alert> list, Duration every) {
        if (list == null || list.isEmpty()) throw new IllegalArgumentException("at least one alert is needed");
        if (every == null || every.isZero() || every.isNegative()) throw new IllegalArgumentException("alert period must be positive, got " + every);
        new WindowAlerts(runtime, list, every);   // compiles the constraints now: a bad one fails here
        return new LiveVideo(runtime, options, controls, List.copyOf(list), every);
    }

    /** A live watcher of one source on {@code runtime}. */
    public static LiveVideo on(VlmRuntime runtime, Options options) {
        if (runtime == null || options == null) throw new IllegalArgumentException("live video needs a runtime and options");
        if (!runtime.hasVision()) throw new IllegalArgumentException(runtime.dir() + " is a text-only model: it cannot watch video");
        return new LiveVideo(runtime, options, TokenControls.none(), List.of(), null);
    }

    public Options options() { return options; }

    /** Work for the session, in arrival order. */
    private sealed interface Work permits Append, Ask, Tick {}
    private record Append(List<Frame> frames) implements Work { void close() { frames.forEach(Frame::close); } }
    private record Ask(String question) implements Work {}
    private record Tick(long n) implements Work {}

    /** Watches {@code frames}, answering {@code questions} (may be empty or never complete) and narrating. */
    public Flux<LiveAnswer> run(Flux<Frame> frames, Flux<String> questions) { return run(frames, questions, null); }

    /** {@link #run(Flux, Flux)} reporting each appended group to {@code onAppend} (nullable; called on the compute thread). */
    public Flux<LiveAnswer> run(Flux<Frame> frames, Flux<String> questions, java.util.function.Consumer<LiveSession.Appended> onAppend) {
        return run(frames, questions, onAppend, null);
    }

    /**
     * {@link #run(Flux, Flux)} plus the events of the alerts of {@link #withAlerts} (none: just the answers). The checks
     * run on the session between appends, serialized with questions and narration. Completion: after the frames, the
     * watch operator emits a change it held back, then the stream completes.
     */
    public Flux<Output> watch(Flux<Frame> frames, Flux<String> questions) {
        if (alerts.isEmpty()) return run(frames, questions).map(a -> new Output(a, null));
        return Flux.defer(() -> {
            WindowAlerts checks = new WindowAlerts(runtime, alerts, alertEvery);
            Flux<Output> events = checks.events().map(e -> new Output(null, e));
            Flux<Output> answers = run(frames, questions, null, checks).map(a -> new Output(a, null)).doFinally(s -> checks.complete());
            return Flux.merge(answers, events);
        });
    }


    private Flux<LiveAnswer> run(Flux<Frame> frames, Flux<String> questions, java.util.function.Consumer<LiveSession.Appended> onAppend,
                                 WindowAlerts checks) {
        return Flux.defer(() -> {
            LiveSession session = LiveSession.open(runtime, options.session());
            AtomicLong dropped = new AtomicLong();
            Sinks.Empty<Void> framesDone = Sinks.empty();
            Sinks.Empty<Void> firstGroup = Sinks.empty();   // questions wait for video: an answer over no frames is a guess
            java.util.function.Consumer<LiveSession.Appended> appended = x -> {
                firstGroup.tryEmitEmpty();
                if (onAppend != null) onAppend.accept(x);
            };
            HeldFrames held = new HeldFrames();
            long interval = Math.round(1e9 / options.session().fps());
            Flux<Work> groups = frames
                    .handle(new Sampler(interval))
                    .map(held::hold)
                    .buffer(session.framesPerGroup())
                    .<Work>map(Append::new)
                    .doOnComplete(framesDone::tryEmitEmpty);
            if (options.maxQueuedGroups() > 0)
                groups = groups.onBackpressureBuffer(options.maxQueuedGroups(), w -> {
                    ((Append) w).close();
                    dropped.incrementAndGet();
                }, BufferOverflowStrategy.DROP_OLDEST);
            Flux<Work> asks = questions.filter(q -> !q.isBlank()).<Work>map(Ask::new).onBackpressureBuffer()
                    .delayUntil(q -> firstGroup.asMono()).takeUntilOther(framesDone.asMono());
            Flux<Work> ticks = options.narrateEvery() == null ? Flux.empty()
                    : Flux.interval(options.narrateEvery(), options.narrateEvery()).<Work>map(Tick::new).onBackpressureDrop()
                    .takeUntilOther(framesDone.asMono());
            // questions first, then narration ticks, then groups: a plain merge resumes at the source it served last,
            // so a session that always has a group waiting would starve the questions
            return Flux.mergePriority(1, java.util.Comparator.comparingInt(LiveVideo::priority), asks, ticks, groups)
                    .concatMap(w -> execute(session, w, held, dropped, appended, checks), 0)
                    .doFinally(s -> {
                        held.end();
                        session.close();
                    })
                    .doOnDiscard(Append.class, Append::close)
                    .doOnDiscard(Frame.class, Frame::close);
        });
    }

    private static int priority(Work w) {
        return switch (w) {
            case Ask q -> 0;
            case Tick t -> 1;
            case Append a -> 2;
        };
    }

    private Flux<LiveAnswer> execute(LiveSession session, Work w, HeldFrames held, AtomicLong dropped, java.util.function.Consumer<LiveSession.Appended> onAppend,
                                     WindowAlerts checks) {
        return switch (w) {
            case Append a -> {
                if (!held.handOff(a.frames())) yield Flux.empty();   // the run ended meanwhile: the frames were closed
                String sourceId = a.frames().isEmpty() ? "live" : a.frames().getFirst().sourceId();
                yield session.append(a.frames()).doOnNext(x -> { if (onAppend != null) onAppend.accept(x); })
                        .then(checks == null ? Mono.<Void>empty() : checks.afterAppend(session, sourceId)).thenMany(Flux.empty());
            }
            case Ask q -> answer(session, LiveAnswer.Kind.ANSWER, q.question(), dropped).flux();
            case Tick t -> session.window().groups() == 0 ? Flux.empty()
                    : answer(session, LiveAnswer.Kind.NARRATION, options.narratePrompt(), dropped).flux();
        };
    }

    private Mono<LiveAnswer> answer(LiveSession session, LiveAnswer.Kind kind, String question, AtomicLong dropped) {
        return Mono.defer(() -> {
            LiveSession.Window win = session.window();
            long t0 = System.nanoTime();
            long[] first = {-1};
            StringBuilder text = new StringBuilder();
            FinishReason[] fin = {null};
            int[] n = {0};
            double[] logprob = {controls.logprobs() > 0 ? 0 : Double.NaN};
            return session.ask(question, options.session().maxAnswerTokens(), controls)
                    .doOnNext((TokenEvent e) -> {
                        if (first[0] < 0) first[0] = System.nanoTime();
                        if (e.logprobs() != null) logprob[0] += e.logprobs().chosen();
                        text.append(e.textDelta());
                        if (e.finishReason() != FinishReason.STOP) n[0]++;
                        if (e.isLast()) fin[0] = e.finishReason();
                    })
                    .then(Mono.fromSupplier(() -> new LiveAnswer(kind, question, text.toString().strip(), fin[0], n[0], win.startPts(), win.endPts(),
                            win.groups(), (first[0] - t0) / 1e6, (System.nanoTime() - t0) / 1e6, dropped.get(), logprob[0])));
        });
    }

    /**
     * Keeps frames at the session fps by presentation time (others are closed) and rebases pts so that session time
     * never goes backwards (a restarted or reconnected source starts again at 0). Frames without pts get the arrival
     * order at the session fps.
     */
    private static final class Sampler implements java.util.function.BiConsumer<Frame, reactor.core.publisher.SynchronousSink<Frame>> {
        private final long interval;
        private long next = Long.MIN_VALUE, offset, lastOut = Long.MIN_VALUE, lastIn = Long.MIN_VALUE, count;

        Sampler(long interval) { this.interval = interval; }

        @Override public void accept(Frame f, reactor.core.publisher.SynchronousSink<Frame> sink) {
            long pts = f.ptsNanos() < 0 ? count * interval : f.ptsNanos();
            count++;
            if (lastIn != Long.MIN_VALUE && pts < lastIn) {   // the source went back in time: continue after the last kept frame
                offset = lastOut + interval - pts;
                next = Long.MIN_VALUE;
            }
            lastIn = pts;
            long t = pts + offset;
            if (next != Long.MIN_VALUE && t < next) { f.close(); return; }
            next = (next == Long.MIN_VALUE || t - next > interval) ? t + interval : next + interval;
            lastOut = t;
            if (t == f.ptsNanos()) { sink.next(f); return; }
            Frame g = Frame.builder().format(f.format()).size(f.width(), f.height()).strides(strides(f)).planeOffsets(offsets(f)).data(f.data())
                    .pts(t).sequence(f.sequence()).sourceId(f.sourceId()).colorimetry(f.colorimetry()).label(f.label()).releaser(f::close).build();
            sink.next(g);
        }

        private static int[] strides(Frame f) {
            int[] s = new int[f.planeCount()];
            for (int i = 0; i < s.length; i++) s[i] = f.stride(i);
            return s;
        }

        private static long[] offsets(Frame f) {
            long[] s = new long[f.planeCount()];
            for (int i = 0; i < s.length; i++) s[i] = f.planeOffset(i);
            return s;
        }
    }
}
