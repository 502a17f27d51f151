package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameInfo;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;

/**
 * The caption of one frame while it is being made: {@link #tokens()} streams its tokens live, {@link #caption()}
 * gives the finished {@link Caption}. Generation starts when {@link #tokens()} or {@link #caption()} is subscribed
 * (once: tokens have one subscriber) and the stage that emitted this stream waits for it to end before it captions
 * the next frame — so subscribe to one of them, or call {@link #cancel()}, for every stream.
 *
 * <p>Owns its frame until generation starts, then hands it to {@link VlmRuntime#prepare}, which closes it once
 * preprocessing has copied the pixels; {@link #cancel()} before that closes it at once. Cancelling {@link #tokens()} stops generation before the next step and frees the
 * sequence's KV cache.
 */
public final class CaptionStream {
    private final FrameInfo frame;
    private final AtomicReference<Frame> pixels;
    private final long arrivedNanos;
    private final VlmRuntime runtime;
    private final PromptTemplate template;
    private final GenerateOptions generateOptions;
    private final LongSupplier dropped;
    private final AtomicBoolean started = new AtomicBoolean();
    private final Sinks.One<Caption> result = Sinks.one();
    private final Sinks.Empty<Void> done = Sinks.empty();

    CaptionStream(Frame frame, long arrivedNanos, VlmRuntime runtime, PromptTemplate template, GenerateOptions generateOptions,
                  LongSupplier dropped) {
        this.frame = frame.info();
        this.pixels = new AtomicReference<>(frame);
        this.arrivedNanos = arrivedNanos;
        this.runtime = runtime;
        this.template = template;
        this.generateOptions = generateOptions;
        this.dropped = dropped;
    }

    /** The frame being captioned. */
    public FrameInfo frame() { return frame; }

    /**
     * The generated tokens as they come (on the compute thread; demand-driven: a slow subscriber pauses decoding).
     * The last event carries the finish reason. One subscriber only; a second gets an {@link IllegalStateException}.
     */
    public Flux<TokenEvent> tokens() {
        return Flux.defer(() -> {
            if (!started.compareAndSet(false, true))
                return Flux.error(new IllegalStateException("the tokens of " + describe() + " were already subscribed or cancelled (one subscriber per caption)"));
            return run();
        });
    }

    /** The finished caption; subscribes to {@link #tokens()} unless someone already did (then waits for them). */
    public Mono<Caption> caption() {
        return Mono.defer(() -> started.get() ? result.asMono() : tokens().then(result.asMono()));
    }

    /** Gives the frame up without captioning it (no-op once generation started). */
    public void cancel() {
        if (started.compareAndSet(false, true)) {
            release();
            result.tryEmitEmpty();
            done.tryEmitEmpty();
        }
    }

    /** Completes when this stream's work is over (generated, failed, cancelled). */
    Mono<Void> done() { return done.asMono(); }

    private Flux<TokenEvent> run() {
        Frame f = pixels.getAndSet(null);
        if (f == null) return Flux.error(new IllegalStateException(describe() + " was released before preprocessing"));
        long[] nanos = new long[3]; // preprocess, encode, prefill
        StringBuilder text = new StringBuilder();
        int[][] ids = {new int[16]};
        int[] count = {0};
        long[] first = {-1};
        GenerateOptions go = generateOptions.withPrefillListener(ns -> nanos[2] = ns);
        return runtime.prepare(template, List.of(f))   // owns the frame from here: closed once its pixels are copied
                .flatMapMany(p -> {
                    nanos[0] = p.preprocessNanos();
                    nanos[1] = p.encodeNanos();
                    return runtime.generate(p, go);
                })
                .doOnNext(e -> {
                    long now = System.nanoTime();
                    if (first[0] < 0) first[0] = now;
                    text.append(e.textDelta());
                    boolean stopToken = e.finishReason() == FinishReason.STOP && runtime.stopTokens().contains(e.tokenId());
                    if (e.tokenId() >= 0 && !stopToken) {
                        if (count[0] == ids[0].length) ids[0] = Arrays.copyOf(ids[0], count[0] * 2);
                        ids[0][count[0]++] = e.tokenId();
                    }
                    if (e.isLast()) {
                        CaptionTimings t = new CaptionTimings(ms(nanos[0]), ms(nanos[1]), ms(nanos[2]), ms(first[0] - arrivedNanos), ms(now - arrivedNanos));
                        result.tryEmitValue(new Caption(frame, text.toString(), Arrays.copyOf(ids[0], count[0]), e.finishReason(), dropped.getAsLong(), t));
                    }
                })
                .onErrorMap(e -> !(e instanceof CaptionException), e -> new CaptionException(describe() + ": " + message(e), e))
                .doOnError(result::tryEmitError)
                .doFinally(sig -> {
                    result.tryEmitEmpty();
                    done.tryEmitEmpty();
                });
    }

    private void release() {
        Frame f = pixels.getAndSet(null);
        if (f != null) f.close();
    }

    private String describe() { return "caption of frame " + frame.sourceId() + "#" + frame.sequence(); }

    private static String message(Throwable e) { return e.getMessage() == null ? e.toString() : e.getMessage(); }

    private static double ms(long nanos) { return Math.max(0, nanos) / 1e6; }

    @Override public String toString() { return "CaptionStream[" + frame.sourceId() + "#" + frame.sequence() + "]"; }

    /** A caption failed; the message names the frame and the cause. */
    public static final class CaptionException extends RuntimeException {
        public CaptionException(String message, Throwable cause) { super(message, cause); }
    }
}
