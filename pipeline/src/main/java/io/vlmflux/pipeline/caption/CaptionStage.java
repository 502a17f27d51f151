package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;

/**
 * The caption stage: frames in, one {@link Caption} (or live {@link CaptionStream}) per captioned frame out. For each
 * frame: preprocess, encode, expand the prompt's image slot, generate — the system prompt and chat header before the
 * image are prefilled once per model and reused from its prefix cache.
 *
 * <p>Thread: all model work (preprocess, encode, prefill, decode) runs on the runtime's single compute thread
 * ({@link VlmRuntime#scheduler()}), never on the source's or the subscriber's thread; captions are emitted there.
 * Prefetch: none past the one pending frame; a caption is started only on downstream demand, so a slow subscriber
 * slows the chain instead of growing queues. Backpressure ({@link CaptionOptions#backpressure()}): {@code NEWEST_WINS}
 * requests frames continuously and keeps only the newest one of each source while a caption is being made (replaced
 * frames are closed and counted in {@link Caption#dropped()}), serving the sources' pending frames in turn, so one
 * model shared by several cameras captions each of them fairly; {@code LOSSLESS} requests the next frame only after a
 * caption; {@code AUTO} is resolved by {@link io.vlmflux.pipeline.VlmPipeline.Builder#captions} from the sources
 * (lossless when all are files) and means newest-wins when the stage is used on its own.
 * Discard: every frame is closed exactly once — after preprocessing, when dropped, or on cancel/error.
 * Cancel: stops generation before the next decode step and frees the sequence's KV cache. Error: a source error
 * arrives after the caption in flight is finished (nothing already started is lost); a caption's own error ends
 * the stream at once.
 */
public final class CaptionStage {
    private CaptionStage() {}

    /** Captions each frame with {@code model} and {@code options}. */
    public static Function<Flux<Frame>, Flux<Caption>> captions(VlmRuntime runtime, CaptionOptions options) {
        return captions(runtime, options, null);
    }

    /** {@link #captions(VlmRuntime, CaptionOptions)} that also counts dropped frames into {@code metrics} (nullable). */
    public static Function<Flux<Frame>, Flux<Caption>> captions(VlmRuntime runtime, CaptionOptions options, StageMetrics metrics) {
        Prepared p = prepare(runtime, options);
        return frames -> Flux.defer(() -> {
            DemandGate gate = new DemandGate();
            return core(frames, p, metrics, gate).concatMap(CaptionStream::caption, 0).doOnRequest(gate::request);
        });
    }

    /** One {@link CaptionStream} per frame, for consumers that show tokens as they are generated. */
    public static Function<Flux<Frame>, Flux<CaptionStream>> streams(VlmRuntime runtime, CaptionOptions options) {
        return streams(runtime, options, null);
    }

    /**
     * {@link #streams(VlmRuntime, CaptionOptions)} counting drops into {@code metrics} (nullable). The next frame
     * is captioned only after the previous stream ended: subscribe to each stream's tokens or caption, or cancel it.
     */
    public static Function<Flux<Frame>, Flux<CaptionStream>> streams(VlmRuntime runtime, CaptionOptions options, StageMetrics metrics) {
        Prepared p = prepare(runtime, options);
        return frames -> Flux.defer(() -> {
            DemandGate gate = new DemandGate();
            return core(frames, p, metrics, gate).doOnRequest(gate::request);
        });
    }

    private record Prepared(VlmRuntime runtime, CaptionOptions options, PromptTemplate template, GenerateOptions generate) {}

    private static Prepared prepare(VlmRuntime runtime, CaptionOptions options) {
        if (runtime == null) throw new IllegalArgumentException("runtime must not be null");
        if (options == null) throw new IllegalArgumentException("caption options must not be null");
        if (runtime.isClosed()) throw new IllegalStateException(runtime + " is closed");
        if (!runtime.hasVision()) throw new IllegalArgumentException(runtime.dir() + " is a text-only model: it cannot caption frames");
        PromptTemplate template = runtime.promptTemplate(options.systemPrompt(), options.prompt(), 1);
        var generate = runtime.generateOptions(options.sampling(), options.maxTokens(), List.of(), template.sharedPrefix());
        if (options.constraint() != null) generate = generate.withControls(runtime.controls(options.constraint(), 0));   // compiled once per stage
        return new Prepared(runtime, options, template, generate);
    }

    /**
     * Frames → streams, one at a time. {@code concatMap} asks upstream for the next element as soon as an inner
     * completes; each inner therefore also waits for the final subscriber's demand ({@code gate}), so the frame is
     * taken from newest-wins only when a caption is actually wanted — the newest one at that moment.
     */
    private static Flux<CaptionStream> core(Flux<Frame> frames, Prepared p, StageMetrics metrics, DemandGate gate) {
        AtomicLong dropped = new AtomicLong();
        Flux<Pending> pending = frames.map(f -> new Pending(f, System.nanoTime()));
        if (p.options().backpressure() != CaptionOptions.Backpressure.LOSSLESS)   // AUTO without knowledge of the sources: live
            pending = pending.transform(Stages.newestWinsPerKey((Pending x) -> x.frame().sourceId(), (Pending x) -> {
                x.close();
                dropped.incrementAndGet();
                if (metrics != null) metrics.recordDropped();
            }));
        // an upstream error (a source that failed) waits for the caption in flight: the frames end there, the caption
        // in flight is finished and delivered, then the error follows
        AtomicReference<Throwable> sourceError = new AtomicReference<>();
        pending = pending.onErrorResume(e -> {
            sourceError.set(e);
            return Flux.empty();
        });
        return pending
                .concatMap(x -> {
                    CaptionStream s = new CaptionStream(x.frame(), x.arrivedNanos(), p.runtime(), p.template(), p.generate(), dropped::get);
                    return Flux.concat(Mono.just(s).doOnNext(y -> gate.emitted()), s.done().then(Mono.<CaptionStream>empty()),
                                    gate.awaitDemand().then(Mono.<CaptionStream>empty()))
                            .doOnCancel(s::cancel);
                }, 0)
                .concatWith(Mono.defer(() -> sourceError.get() == null ? Mono.empty() : Mono.error(sourceError.get())))
                .doOnDiscard(CaptionStream.class, CaptionStream::cancel)
                .doOnDiscard(Pending.class, Pending::close)
                .doOnDiscard(Frame.class, Frame::close);
    }

    /** Demand of the final subscriber versus streams emitted; {@link #awaitDemand()} completes when more is wanted. */
    static final class DemandGate {
        private long requested, emitted;
        private reactor.core.publisher.MonoSink<Void> waiter;

        void request(long n) {
            reactor.core.publisher.MonoSink<Void> w = null;
            synchronized (this) {
                requested = reactor.core.publisher.Operators.addCap(requested, n);
                if (waiter != null && requested > emitted) { w = waiter; waiter = null; }
            }
            if (w != null) w.success();
        }

        synchronized void emitted() { emitted++; }

        Mono<Void> awaitDemand() {
            return Mono.create(sink -> {
                boolean now;
                synchronized (this) {
                    now = requested > emitted;
                    if (!now) waiter = sink;
                }
                if (now) sink.success();
                sink.onCancel(() -> { synchronized (this) { if (waiter == sink) waiter = null; } });
            });
        }
    }

    /** A frame and when it entered the stage (the start of its ttft/total timings). */
    record Pending(Frame frame, long arrivedNanos) implements AutoCloseable {
        @Override public void close() { frame.close(); }
    }
}
