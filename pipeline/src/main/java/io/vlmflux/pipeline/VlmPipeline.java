package io.vlmflux.pipeline;

import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.caption.CaptionStage;
import io.vlmflux.pipeline.config.PipelineConfig;
import io.vlmflux.pipeline.config.SourceConfig;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * Sources → per-source sampling → fair fan-in (newest wins per live source) → GPU scheduler → model stage.
 *
 * <pre>{@code
 * VlmPipeline<String> p = VlmPipeline.builder()
 *         .source(Sources.parse("test:ball"))
 *         .source(Sources.parse("v4l2:///dev/video0"))
 *         .sampling(SamplingPolicy.parse("1s"))
 *         .gpu(GpuSchedulers.forDevice(0))
 *         .model(frames -> frames.map(f -> { try (f) { return describe(f); } }));
 * p.flux().subscribe(System.out::println);
 * }</pre>
 *
 * <p>{@link #flux()} is cold: each subscription opens the sources and cancelling it closes them. The model stage
 * receives frames on the GPU thread (when one is set) one at a time ({@code publishOn(gpu, 1)}) and owns them: it
 * must close each frame it takes. Frames dropped anywhere on the frame side (sampled out, replaced by newer ones,
 * queued at cancel) are closed and counted in {@link #metrics()}: {@code sample/<id>}, {@code fan-in/<id>} and
 * {@code model} (in/out/dropped, latency from a frame entering the model stage to the output keyed to it).
 */
public final class VlmPipeline<T> {
    private final List<SourceInput> inputs;
    private final FanInOptions fanIn;
    private final Scheduler gpu;
    private final PipelineMetrics metrics;
    private final Function<Flux<Frame>, Flux<T>> model;
    private final Function<? super T, ?> outputKey;

    private VlmPipeline(Builder b, Function<Flux<Frame>, Flux<T>> model, Function<? super T, ?> outputKey) {
        if (b.sources.isEmpty()) throw new IllegalStateException("a pipeline needs at least one source (builder.source(...))");
        List<SourceInput> in = new ArrayList<>();
        for (Builder.Entry e : b.sources) {
            SamplingPolicy p = e.policy != null ? e.policy : b.policy;
            in.add(new SourceInput(e.input.id(), e.input.frames().transform(Stages.sample(p, b.metrics.stage("sample/" + e.input.id()))), e.input.live()));
        }
        this.inputs = List.copyOf(in);
        this.fanIn = b.fanIn;
        this.gpu = b.gpu;
        this.metrics = b.metrics;
        this.model = model;
        this.outputKey = outputKey;
        new FluxFanIn(inputs, fanIn, null); // checks ids now rather than at subscribe
    }

    public static Builder builder() { return new Builder(); }

    /** The whole pipeline; cold, one set of open sources per subscription. */
    public Flux<T> flux() {
        Flux<Frame> frames = Stages.fanIn(inputs, fanIn, metrics);
        if (gpu != null) frames = frames.transform(Stages.onGpu(gpu));
        Function<Flux<Frame>, Flux<T>> stage = outputKey == null ? Stages.metered("model", metrics, model)
                : Stages.metered("model", metrics, model, outputKey);
        return frames.transform(stage).doOnDiscard(Frame.class, Frame::close);
    }

    /** The frame side only (sampling and fan-in, no GPU hop): the subscriber must close every frame. */
    public Flux<Frame> frames() {
        return Stages.fanIn(inputs, fanIn, metrics).doOnDiscard(Frame.class, Frame::close);
    }

    public PipelineMetrics metrics() { return metrics; }

    /** Assembles the frame side; {@link #model} finishes the pipeline. */
    public static final class Builder {
        private record Entry(SourceInput input, SamplingPolicy policy) {}

        private final List<Entry> sources = new ArrayList<>();
        private SamplingPolicy policy = SamplingPolicy.all();
        private FanInOptions fanIn = FanInOptions.DEFAULT;
        private Scheduler gpu;
        private PipelineMetrics metrics = new PipelineMetrics();

        private Builder() {}

        public Builder source(FrameSource source) { return source(SourceInput.of(source), null); }

        public Builder source(SourceInput input) { return source(input, null); }

        /** A source with its own sampling policy (null: the pipeline's). */
        public Builder source(SourceInput input, SamplingPolicy policy) {
            if (input == null) throw new IllegalArgumentException("source must not be null");
            sources.add(new Entry(input, policy));
            return this;
        }

        /** Sampling for sources without their own; default {@link SamplingPolicy#all()}. */
        public Builder sampling(SamplingPolicy policy) {
            if (policy == null) throw new IllegalArgumentException("sampling policy must not be null");
            this.policy = policy;
            return this;
        }

        /** {@link #sampling(SamplingPolicy)} from a spec such as {@code 1s}, {@code 30f}, {@code scene:0.1}. */
        public Builder every(String spec) { return sampling(SamplingPolicy.parse(spec)); }

        public Builder fanIn(FanInOptions options) {
            if (options == null) throw new IllegalArgumentException("fan-in options must not be null");
            this.fanIn = options;
            return this;
        }

        /** The scheduler the model stage runs on (e.g. {@link GpuSchedulers#forDevice(int)}); none: the source threads. */
        public Builder gpu(Scheduler gpu) {
            this.gpu = gpu;
            return this;
        }

        public Builder metrics(PipelineMetrics metrics) {
            if (metrics == null) throw new IllegalArgumentException("metrics must not be null");
            this.metrics = metrics;
            return this;
        }

        /**
         * Sources, sampling and fan-in options of a config; {@code open} turns a source config into a source
         * (e.g. {@code s -> Sources.parse(s.uri(), options)}); a source config's {@code id} renames the source.
         */
        public Builder config(PipelineConfig config, Function<SourceConfig, FrameSource> open) {
            sampling(config.sampling().policy());
            fanIn(config.sampling().fanInOptions());
            for (SourceConfig sc : config.sources()) {
                FrameSource fs = open.apply(sc);
                String id = sc.id() != null ? sc.id() : fs.id();
                source(new SourceInput(id, fs.frames(), fs.isLive()), sc.every() == null ? null : SamplingPolicy.parse(sc.every()));
            }
            return this;
        }

        /** Finishes the pipeline with the model stage; it receives frames and must close each one it takes. */
        public <T> VlmPipeline<T> model(Function<Flux<Frame>, Flux<T>> stage) {
            if (stage == null) throw new IllegalArgumentException("model stage must not be null");
            return new VlmPipeline<>(this, stage, null);
        }

        /** {@link #model(Function)} where {@code outputKey} maps an output back to its frame ({@code Frame.info()}). */
        public <T> VlmPipeline<T> model(Function<Flux<Frame>, Flux<T>> stage, Function<? super T, ?> outputKey) {
            if (stage == null) throw new IllegalArgumentException("model stage must not be null");
            return new VlmPipeline<>(this, stage, outputKey);
        }

        /**
         * Finishes the pipeline with the caption stage ({@link Stages#caption}); metrics are keyed by each caption's
         * frame, and frames the caption stage drops (newest wins) count as {@code dropped} of {@code model}.
         * {@link CaptionOptions.Backpressure#AUTO} becomes lossless when every source is a file (nothing is
         * lost) and newest-wins (one slot per source, served in turn) when any is live.
         */
        public VlmPipeline<Caption> captions(VlmRuntime runtime, CaptionOptions options) {
            return model(CaptionStage.captions(runtime, resolve(options), metrics.stage("model")), Caption::frame);
        }

        /** {@code options} with AUTO backpressure resolved from the sources added so far (see {@link #captions}). */
        public CaptionOptions resolve(CaptionOptions options) {
            if (options == null) throw new IllegalArgumentException("caption options must not be null");
            if (options.backpressure() != CaptionOptions.Backpressure.AUTO) return options;
            boolean live = sources.isEmpty() || sources.stream().anyMatch(e -> e.input().live());
            return options.withBackpressure(live ? CaptionOptions.Backpressure.NEWEST_WINS : CaptionOptions.Backpressure.LOSSLESS);
        }

        /** A pipeline without a model stage: {@link VlmPipeline#flux()} emits the sampled frames. */
        public VlmPipeline<Frame> frames() {
            return new VlmPipeline<>(this, f -> f, null);
        }
    }
}
