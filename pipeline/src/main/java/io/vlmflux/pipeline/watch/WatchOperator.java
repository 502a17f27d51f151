package io.vlmflux.pipeline.watch;

import io.vlmflux.sources.FrameInfo;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Inputs → answers to every watched question → {@link Event}s when a watch's confirmed answer changes.
 *
 * <p>State per watch and per source (the source of the input's first frame): the answer last emitted, the confirmed
 * answer, and the candidate streak (answers in a row that differ from the confirmed one and agree with each other).
 * An answer equal to the confirmed one ends the streak (a flicker is forgotten); a different one starts a new streak.
 * A streak of {@link WatchPolicy#agree()} answers that has held for {@link WatchPolicy#debounce()} becomes the confirmed
 * answer (if the debounce is not over at the K-th answer, a timer confirms it when it is, unless the streak broke).
 * A confirmed answer different from the one last emitted is emitted as {@code changed}, at most once per
 * {@link WatchPolicy#minInterval()} (a later one waits for the interval and is dropped if the answer went back).
 * {@link WatchPolicy#maxInterval()} after the last event comes {@code repeated} (answers arrived) or {@code stalled}
 * (none did). A failed answer is an {@code error} event and leaves the streak as it was.
 *
 * <p>Thread: answers are handled where the answerer emits them, timers on the clock scheduler (default
 * {@link Schedulers#parallel()}, taken at subscription, so virtual time works); state is guarded by one lock and
 * events are emitted under it, in order. Prefetch: one input at a time ({@code concatMap(..., 0)}): the next input is
 * requested when the answers to the previous one are in; events (few: changes) are buffered for a slow subscriber.
 * Completion: a change held back by minInterval is emitted, timers are cancelled, then complete. A source error ends
 * the events with that error after the input in flight. Cancel: cancels the answer in flight and the timers.
 */
final class WatchOperator<T> implements Function<Flux<T>, Flux<Event>> {
    private final List<Watch> watches;
    private final Answerer<T> answerer;
    private final Scheduler clock;

    WatchOperator(List<Watch> watches, Answerer<T> answerer, Scheduler clock) {
        if (watches == null || watches.isEmpty()) throw new IllegalArgumentException("a watch needs at least one question");
        if (answerer == null) throw new IllegalArgumentException("answerer must not be null");
        java.util.Set<String> names = new java.util.HashSet<>();
        for (Watch w : watches) {
            if (w == null) throw new IllegalArgumentException("watch must not be null");
            if (!names.add(w.name())) throw new IllegalArgumentException("duplicate watch name '" + w.name() + "'");
        }
        this.watches = List.copyOf(watches);
        this.answerer = answerer;
        this.clock = clock;
    }

    @Override public Flux<Event> apply(Flux<T> inputs) {
        return Flux.defer(() -> {
            Scheduler s = clock != null ? clock : Schedulers.parallel();
            return Flux.create(sink -> {
                Machine m = new Machine(s, sink);
                Disposable d = inputs.concatMap(x -> {
                            List<FrameInfo> frames = answerer.frames(x);
                            return answerer.answer(x)
                                    .onErrorResume(e -> Mono.just(failAll(e)))
                                    .defaultIfEmpty(failAll(new IllegalStateException("the answerer gave no answers")))
                                    .doOnNext(obs -> m.onAnswers(frames, obs));
                        }, 0)
                        .subscribe(null, m::onError, m::onComplete, reactor.util.context.Context.of(sink.contextView()));   // discard hooks reach upstream
                sink.onDispose(() -> {
                    d.dispose();
                    m.cancelTimers();
                });
            }, FluxSink.OverflowStrategy.BUFFER);
        });
    }

    private List<Observation> failAll(Throwable e) {
        String msg = e.getMessage() == null ? e.toString() : e.getMessage();
        List<Observation> out = new ArrayList<>();
        for (int i = 0; i < watches.size(); i++) out.add(Observation.failed(msg));
        return out;
    }

    /** All tracks of one subscription; one lock. */
    private final class Machine {
        private final Scheduler clock;
        private final FluxSink<Event> sink;
        private final Map<String, List<Track>> tracks = new HashMap<>();
        private boolean done;

        Machine(Scheduler clock, FluxSink<Event> sink) {
            this.clock = clock;
            this.sink = sink;
        }

        long now() { return clock.now(TimeUnit.NANOSECONDS); }

        synchronized void onAnswers(List<FrameInfo> frames, List<Observation> obs) {
            if (done) return;
            if (obs.size() != watches.size())
                obs = failAll(new IllegalStateException("the answerer gave " + obs.size() + " answers for " + watches.size() + " watches"));
            String source = frames.isEmpty() ? "" : frames.getFirst().sourceId();
            List<Track> ts = tracks.computeIfAbsent(source, k -> {
                List<Track> a = new ArrayList<>();
                for (Watch w : watches) a.add(new Track(w, k));
                return a;
            });
            long t = now();
            for (int i = 0; i < ts.size(); i++) ts.get(i).onObservation(frames, obs.get(i), t);
        }

        synchronized void onComplete() {
            if (done) return;
            for (List<Track> ts : tracks.values()) for (Track tr : ts) tr.flushHeld();
            done = true;
            cancelTimersLocked();
            sink.complete();
        }

        synchronized void onError(Throwable e) {
            if (done) return;
            done = true;
            cancelTimersLocked();
            sink.error(e);
        }

        synchronized void cancelTimers() {
            done = true;
            cancelTimersLocked();
        }

        private void cancelTimersLocked() {
            for (List<Track> ts : tracks.values()) for (Track tr : ts) tr.cancel();
        }

        private void schedule(Runnable task, long delayNanos, Disposable[] slot) {
            if (slot[0] != null) slot[0].dispose();
            slot[0] = clock.schedule(() -> {
                synchronized (Machine.this) {
                    if (!done) task.run();
                }
            }, Math.max(0, delayNanos), TimeUnit.NANOSECONDS);
        }

        /** One watch on one source. All methods run under the machine's lock. */
        private final class Track {
            final Watch watch;
            final WatchPolicy policy;
            final String source;
            String emitted, confirmed, candidate;
            List<Event.Evidence> streak = new ArrayList<>(), confirmedBy = List.of();
            long streakStart, lastEventAt, lastChangeAt = Long.MIN_VALUE, streakGeneration;
            Event.Evidence support;          // the latest input whose answer is the one emitted
            int answersSinceEvent, streakAnswers;   // streakAnswers: answers (not frames) in the streak
            final Disposable[] debounceTimer = new Disposable[1], holdTimer = new Disposable[1], maxTimer = new Disposable[1];

            Track(Watch watch, String source) {
                this.watch = watch;
                this.policy = watch.policy();
                this.source = source;
                this.lastEventAt = now();
                armMax();
            }

            void onObservation(List<FrameInfo> frames, Observation o, long t) {
                if (o.failed()) {
                    emit(Event.Kind.ERROR, null, null, evidence(frames, o), t, o.error());
                    return;
                }
                answersSinceEvent++;
                List<Event.Evidence> ev = evidence(frames, o);
                if (!ev.isEmpty() && o.answer().equals(emitted)) support = ev.getLast();
                if (o.answer().equals(confirmed)) {
                    resetStreak(null, t);
                    return;
                }
                if (!o.answer().equals(candidate)) resetStreak(o.answer(), t);
                streak.addAll(ev.isEmpty() ? List.of(new Event.Evidence(-1, -1, o.answer(), finite(o.logprob()))) : ev);
                streakAnswers++;
                tryConfirm(t);
            }

            private void resetStreak(String answer, long t) {
                candidate = answer;
                streak = new ArrayList<>();
                streakAnswers = 0;
                streakStart = t;
                streakGeneration++;
                if (debounceTimer[0] != null) { debounceTimer[0].dispose(); debounceTimer[0] = null; }
            }

            private void tryConfirm(long t) {
                if (candidate == null || streakAnswers < policy.agree()) return;
                long wait = streakStart + policy.debounce().toNanos() - t;
                if (wait > 0) {
                    // due when the streak's debounce is over: one timer per streak (a new streak cancels it)
                    if (debounceTimer[0] == null) {
                        long gen = streakGeneration;
                        schedule(() -> { debounceTimer[0] = null; if (gen == streakGeneration) confirm(now()); }, wait, debounceTimer);
                    }
                    return;
                }
                confirm(t);
            }

            private void confirm(long t) {
                confirmed = candidate;
                confirmedBy = List.copyOf(streak);
                resetStreak(null, t);
                maybeEmitChange(t);
            }

            private void maybeEmitChange(long t) {
                if (confirmed == null || confirmed.equals(emitted)) {
                    if (holdTimer[0] != null) { holdTimer[0].dispose(); holdTimer[0] = null; }
                    return;
                }
                long wait = lastChangeAt == Long.MIN_VALUE ? 0 : lastChangeAt + policy.minInterval().toNanos() - t;
                if (wait > 0) {
                    if (holdTimer[0] == null) schedule(() -> { holdTimer[0] = null; maybeEmitChange(now()); }, wait, holdTimer);
                    return;
                }
                String previous = emitted;
                emitted = confirmed;
                lastChangeAt = t;
                support = confirmedBy.isEmpty() ? null : confirmedBy.getLast();
                emit(Event.Kind.CHANGED, confirmed, previous, confirmedBy, t, null);
            }

            void flushHeld() {
                if (holdTimer[0] != null) {
                    holdTimer[0].dispose();
                    holdTimer[0] = null;
                    lastChangeAt = Long.MIN_VALUE;
                    maybeEmitChange(now());
                }
            }

            private void emit(Event.Kind kind, String answer, String previous, List<Event.Evidence> ev, long t, String error) {
                Double lp = null;
                if (!ev.isEmpty()) {
                    double sum = 0;
                    int n = 0;
                    for (Event.Evidence e : ev) if (e.logprob() != null) { sum += e.logprob(); n++; }
                    if (n > 0) lp = sum / n;
                }
                sink.next(new Event(watch.name(), source, kind, answer, previous, lp, lp == null ? null : Math.exp(lp), ev,
                        clock.now(TimeUnit.MILLISECONDS), error));
                lastEventAt = t;
                answersSinceEvent = 0;
                armMax();
            }

            private void armMax() {
                if (policy.maxInterval() == null) return;
                long wait = lastEventAt + policy.maxInterval().toNanos() - now();
                schedule(() -> {
                    long t = now();
                    if (answersSinceEvent == 0) emit(Event.Kind.STALLED, emitted, null, List.of(), t, null);
                    else if (emitted != null) emit(Event.Kind.REPEATED, emitted, null, support == null ? List.of() : List.of(support), t, null);
                    else { lastEventAt = t; answersSinceEvent = 0; armMax(); }
                }, wait, maxTimer);
            }

            void cancel() {
                for (Disposable[] d : List.of(debounceTimer, holdTimer, maxTimer))
                    if (d[0] != null) { d[0].dispose(); d[0] = null; }
            }

            private List<Event.Evidence> evidence(List<FrameInfo> frames, Observation o) {
                List<Event.Evidence> out = new ArrayList<>(frames.size());
                for (FrameInfo f : frames) out.add(new Event.Evidence(f.sequence(), f.ptsMillis(), o.answer(), finite(o.logprob())));
                return out;
            }
        }
    }

    private static Double finite(double v) { return Double.isFinite(v) ? v : null; }
}
