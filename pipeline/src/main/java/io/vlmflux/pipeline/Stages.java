package io.vlmflux.pipeline;

import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.caption.CaptionStage;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;

import java.util.List;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.LongSupplier;

/**
 * Factory of pipeline stages. A stage is a {@code Function<Flux<A>, Flux<B>>} applied with {@code .transform(...)};
 * each method documents the stage's thread, prefetch, backpressure and discard behaviour.
 */
public final class Stages {
    private static final System.Logger LOG = System.getLogger("vlmflux.pipeline");

    private Stages() {}

    /**
     * Keeps the frames {@code policy} selects (state per subscription and per source id) and closes the others.
     * Thread: the caller's (no hop). Prefetch: none; each dropped frame is replaced by a request for one more.
     * Discard: dropped frames are closed, counted, and handed to the discard hook.
     */
    public static Function<Flux<Frame>, Flux<Frame>> sample(SamplingPolicy policy) {
        return new FrameSampler(policy, null);
    }

    /** {@link #sample(SamplingPolicy)} that counts in/out/dropped into {@code metrics}. */
    public static Function<Flux<Frame>, Flux<Frame>> sample(SamplingPolicy policy, StageMetrics metrics) {
        return new FrameSampler(policy, metrics);
    }

    /** {@link #sample(SamplingPolicy)} of a spec string such as {@code 1s}, {@code 30f}, {@code scene:0.1}. */
    public static Function<Flux<Frame>, Flux<Frame>> sample(String spec) {
        return new FrameSampler(SamplingPolicy.parse(spec), null);
    }

    /**
     * Newest frame wins while downstream is busy: requests everything upstream and holds at most one frame; a newer
     * frame replaces it and the older one is closed, counted as dropped (when {@code metrics} is not null) and
     * handed to the discard hook. Thread: upstream's, or the requester's. Prefetch: unbounded. On cancel or error
     * the held frame is closed.
     */
    public static Function<Flux<Frame>, Flux<Frame>> newestWins(StageMetrics metrics) {
        return newestWins((Frame f) -> {
            f.close();
            if (metrics != null) metrics.recordDropped();
        });
    }

    /** {@link #newestWins(StageMetrics)} without counting. */
    public static Function<Flux<Frame>, Flux<Frame>> newestWins() {
        return newestWins((StageMetrics) null);
    }

    /** Newest wins for any element type; {@code onDrop} releases what is given up (replaced, pending at cancel/error). */
    public static <T> Function<Flux<T>, Flux<T>> newestWins(Consumer<? super T> onDrop) {
        if (onDrop == null) throw new IllegalArgumentException("onDrop must not be null");
        return flux -> new FluxNewestWins<>(flux, onDrop);
    }

    /**
     * Newest wins per key: at most one pending element per key (e.g. per source id), replaced by a newer one of the
     * same key; pending elements of different keys are delivered round-robin, so one busy consumer serves several
     * sources fairly. {@code onDrop} releases what is given up.
     */
    public static <T> Function<Flux<T>, Flux<T>> newestWinsPerKey(Function<? super T, ?> key, Consumer<? super T> onDrop) {
        if (onDrop == null) throw new IllegalArgumentException("onDrop must not be null");
        if (key == null) throw new IllegalArgumentException("key must not be null");
        return flux -> new FluxNewestWins<>(flux, onDrop, key);
    }

    /**
     * Moves the stream onto a GPU scheduler: {@code publishOn(gpu, 1)}, so blocking work downstream runs only on
     * its thread and at most one element waits in the hand-over queue. Discard: the queued element is handed to
     * the discard hook on cancel (pair with {@link #releaseDiscarded()} or {@code doOnDiscard}).
     */
    public static <T> Function<Flux<T>, Flux<T>> onGpu(Scheduler gpu) {
        if (gpu == null) throw new IllegalArgumentException("GPU scheduler must not be null");
        return flux -> flux.publishOn(gpu, 1);
    }

    /**
     * Closes every {@link AutoCloseable} that an upstream operator discards (queued at cancel, filtered, dropped
     * on overflow). Put it at the end of a chain that carries frames or other resources.
     */
    public static <T> Function<Flux<T>, Flux<T>> releaseDiscarded() {
        return flux -> flux.doOnDiscard(AutoCloseable.class, Stages::closeQuietly);
    }

    /**
     * Wraps {@code stage} with the metrics stage {@code name} of {@code metrics}: in/out counts, dropped (through the
     * discard hook) and latency from an input to the output with the same key (frames by {@code info()}).
     */
    public static <A, B> Function<Flux<A>, Flux<B>> metered(String name, PipelineMetrics metrics, Function<Flux<A>, Flux<B>> stage) {
        return new MeteredStage<>(stageMetrics(name, metrics), stage, null, null);
    }

    /**
     * {@link #metered(String, PipelineMetrics, Function)} where {@code outKey} maps an output to the key of the input
     * it came from (for a caption: its frame's {@code FrameInfo}).
     */
    public static <A, B> Function<Flux<A>, Flux<B>> metered(String name, PipelineMetrics metrics, Function<Flux<A>, Flux<B>> stage,
                                                            Function<? super B, ?> outKey) {
        return new MeteredStage<>(stageMetrics(name, metrics), stage, outKey, null);
    }

    static <A, B> Function<Flux<A>, Flux<B>> metered(StageMetrics m, Function<Flux<A>, Flux<B>> stage, LongSupplier nanoClock) {
        return new MeteredStage<>(m, stage, null, nanoClock);
    }

    /**
     * Fair round-robin fan-in of several sources with bounded per-source buffers (see {@link FanInOptions});
     * per-source metrics go to {@code fan-in/<id>} of {@code metrics} (may be null).
     */
    public static Flux<Frame> fanIn(List<SourceInput> inputs, FanInOptions options, PipelineMetrics metrics) {
        return new FluxFanIn(inputs, options, metrics);
    }

    /** {@link #fanIn(List, FanInOptions, PipelineMetrics)} with one frame per source, errors logged, no metrics. */
    public static Flux<Frame> fanIn(List<SourceInput> inputs) {
        return new FluxFanIn(inputs, FanInOptions.DEFAULT, null);
    }

    /**
     * The caption stage: frame → preprocess → encode → prompt on the cached prefix → generate → {@link Caption}. Runs on
     * the runtime's compute thread (see {@link CaptionStage} for backpressure).
     */
    public static Function<Flux<Frame>, Flux<Caption>> caption(VlmRuntime runtime, CaptionOptions options) {
        return CaptionStage.captions(runtime, options);
    }

    /**
     * Asks {@code question} about every frame, its answer constrained to {@code constraint} (null: free text), and
     * emits an {@link io.vlmflux.pipeline.watch.Event} when the answer changes as {@code policy} defines it (see
     * {@link io.vlmflux.pipeline.watch.Watches}). Newest frame wins per source while the model answers.
     */
    public static Function<Flux<Frame>, Flux<io.vlmflux.pipeline.watch.Event>> watch(VlmRuntime runtime, String question,
            io.vlmflux.llm.constrain.ConstraintSpec constraint, io.vlmflux.pipeline.watch.WatchPolicy policy) {
        return watch(runtime, List.of(new io.vlmflux.pipeline.caption.Alert(question, constraint, policy)), CaptionOptions.Backpressure.NEWEST_WINS);
    }

    /**
     * Several alerts about the same frames: each frame is encoded once and every question is answered on that
     * encoding ({@link io.vlmflux.pipeline.caption.WatchStage}); {@code LOSSLESS} answers every frame.
     */
    public static Function<Flux<Frame>, Flux<io.vlmflux.pipeline.watch.Event>> watch(VlmRuntime runtime, List<io.vlmflux.pipeline.caption.Alert> alerts,
            CaptionOptions.Backpressure backpressure) {
        return io.vlmflux.pipeline.caption.WatchStage.events(runtime, alerts, backpressure);
    }

    /** The watch operator over any input and answerer (a live-video window, a scripted model in tests). */
    public static <T> Function<Flux<T>, Flux<io.vlmflux.pipeline.watch.Event>> watch(List<io.vlmflux.pipeline.watch.Watch> watches,
            io.vlmflux.pipeline.watch.Answerer<T> answerer) {
        return io.vlmflux.pipeline.watch.Watches.operator(watches, answerer);
    }

    private static StageMetrics stageMetrics(String name, PipelineMetrics metrics) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("stage name must not be blank, got '" + name + "'");
        if (metrics == null) throw new IllegalArgumentException("metrics of stage '" + name + "' must not be null");
        return metrics.stage(name);
    }

    static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            LOG.log(System.Logger.Level.WARNING, "closing discarded " + c + " failed", e);
        }
    }
}
