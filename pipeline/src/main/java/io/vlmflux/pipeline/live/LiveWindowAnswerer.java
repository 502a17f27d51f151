package io.vlmflux.pipeline.live;

import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.watch.Answerer;
import io.vlmflux.pipeline.watch.Observation;
import io.vlmflux.sources.FrameInfo;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

import java.util.ArrayList;
import java.util.List;

/**
 * Answers every alert over a live session's current window (the watch operator's {@link Answerer} for live video):
 * each question is asked on the session ({@link LiveSession#ask(String, int, TokenControls)}) greedily or with the
 * session's sampling, its answer constrained to the alert's constraint, with the chosen tokens' log-probabilities
 * (their sum is the observation's logprob); question and answer leave the cache after each answer. Constraints are
 * compiled once, here. Answers run one after the other (one answer at a time per session); the caller must not
 * append to or ask the session while {@link #answer} runs. An answer cut at the alert's max tokens where the
 * constraint does not accept it is a failed {@link Observation}; the others stand.
 */
public final class LiveWindowAnswerer implements Answerer<LiveWindowAnswerer.Check> {
    /** One check: the session, its window at that moment, and the source the window shows. */
    public record Check(LiveSession session, LiveSession.Window window, String sourceId) {}

    private final List<Alert> alerts;
    private final List<TokenControls> controls = new ArrayList<>();

    public LiveWindowAnswerer(VlmRuntime runtime, List<Alert> alerts) {
        if (runtime == null) throw new IllegalArgumentException("runtime must not be null");
        if (alerts == null || alerts.isEmpty()) throw new IllegalArgumentException("at least one alert is needed");
        this.alerts = List.copyOf(alerts);
        for (Alert a : this.alerts) controls.add(runtime.controls(a.constraint(), 1));   // 1: the chosen token's logprob
    }

    public List<Alert> alerts() { return alerts; }

    /** The window as one piece of evidence: sequence = the newest group's index, pts = the window's end, label "window". */
    @Override public List<FrameInfo> frames(Check c) {
        return List.of(new FrameInfo(c.sourceId(), c.session().counts()[0] - 1, c.window().endPts(), 0, 0, null, "window"));
    }

    @Override public Mono<List<Observation>> answer(Check c) {
        return Flux.range(0, alerts.size()).concatMap(i -> one(c.session(), i)).collectList();
    }

    private Mono<Observation> one(LiveSession session, int i) {
        Alert a = alerts.get(i);
        return Mono.defer(() -> {
            StringBuilder text = new StringBuilder();
            double[] logprob = {0};
            FinishReason[] finish = {null};
            return session.ask(a.question(), a.maxTokens(), controls.get(i))
                    .doOnNext(e -> {
                        text.append(e.textDelta());
                        if (e.logprobs() != null) logprob[0] += e.logprobs().chosen();
                        if (e.isLast()) finish[0] = e.finishReason();
                    })
                    .then(Mono.fromCallable(() -> {
                        if (finish[0] == FinishReason.LENGTH && a.constraint() != null && !a.constraint().matches(text.toString()))
                            return Observation.failed("answer to '" + a.question() + "' cut at " + a.maxTokens() + " tokens before it was complete: '" + text + "'");
                        return Observation.of(text.toString().strip(), logprob[0]);
                    }));
        }).onErrorResume(e -> Mono.just(Observation.failed("answer to '" + a.question() + "': " + (e.getMessage() == null ? e.toString() : e.getMessage()))));
    }
}
