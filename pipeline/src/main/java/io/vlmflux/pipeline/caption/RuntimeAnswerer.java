package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.runtime.Prompt;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.watch.Answerer;
import io.vlmflux.pipeline.watch.Observation;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameInfo;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

import java.util.ArrayList;
import java.util.List;

/**
 * Answers every alert about a frame with one model: the frame is preprocessed and encoded once
 * ({@link VlmRuntime#prepareShared}) and each question is prefilled and decoded on top of it, greedily, with its
 * constraint and the chosen tokens' log-probabilities (their sum is the answer's logprob). Prompts and constraints are
 * compiled once, here. Thread: the runtime's compute thread. Answers are generated one after the other; on cuda with
 * batched decode they run together and share decode steps. An answer that fails (or is cut at maxTokens where the
 * constraint does not accept it) is a failed {@link Observation}; the others stand.
 */
public final class RuntimeAnswerer implements Answerer<Frame> {
    private final VlmRuntime runtime;
    private final List<Alert> alerts;
    private final List<PromptTemplate> templates = new ArrayList<>();
    private final List<GenerateOptions> options = new ArrayList<>();

    public RuntimeAnswerer(VlmRuntime runtime, List<Alert> alerts) {
        if (runtime == null) throw new IllegalArgumentException("runtime must not be null");
        if (alerts == null || alerts.isEmpty()) throw new IllegalArgumentException("at least one alert is needed");
        if (runtime.isClosed()) throw new IllegalStateException(runtime + " is closed");
        if (!runtime.hasVision()) throw new IllegalArgumentException(runtime.dir() + " is a text-only model: it cannot watch frames");
        this.runtime = runtime;
        this.alerts = List.copyOf(alerts);
        for (Alert a : this.alerts) {
            PromptTemplate t = runtime.promptTemplate(null, a.question(), 1);
            templates.add(t);
            options.add(runtime.generateOptions(SamplingParams.greedyDecoding(), a.maxTokens(), List.of(), t.sharedPrefix())
                    .withControls(runtime.controls(a.constraint(), 1)));   // compiled once; 1: the chosen token's logprob
        }
    }

    public List<Alert> alerts() { return alerts; }

    @Override public List<FrameInfo> frames(Frame input) { return List.of(input.info()); }

    @Override public Mono<List<Observation>> answer(Frame frame) {
        return runtime.prepareShared(templates, frame).flatMap(prompts -> {
            Flux<Integer> order = Flux.range(0, prompts.size());
            Flux<Observation> each = runtime.batchDecode() ? order.flatMapSequential(i -> one(prompts.get(i), i)) : order.concatMap(i -> one(prompts.get(i), i));
            return each.collectList().doFinally(s -> prompts.forEach(Prompt::close));   // prompts never generated (cancel) let go of the rows
        });
    }

    private Mono<Observation> one(Prompt p, int i) {
        StringBuilder text = new StringBuilder();
        double[] logprob = {0};
        FinishReason[] finish = {null};
        return runtime.generate(p, options.get(i))
                .doOnNext(e -> {
                    text.append(e.textDelta());
                    if (e.logprobs() != null) logprob[0] += e.logprobs().chosen();
                    if (e.isLast()) finish[0] = e.finishReason();
                })
                .then(Mono.fromCallable(() -> {
                    Alert a = alerts.get(i);
                    if (finish[0] == FinishReason.LENGTH && a.constraint() != null && !a.constraint().matches(text.toString()))
                        return Observation.failed("answer to '" + a.question() + "' cut at " + a.maxTokens() + " tokens before it was complete: '" + text + "'");
                    return Observation.of(text.toString().strip(), logprob[0]);
                }))
                .onErrorResume(e -> Mono.just(Observation.failed("answer to '" + alerts.get(i).question() + "': "
                        + (e.getMessage() == null ? e.toString() : e.getMessage()))));
    }
}
