package io.vlmflux.llm;

import io.vlmflux.llm.cache.PrefixCache;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * The reactive shell around {@link Sequence}: {@link #generate} returns a cold {@code Flux<TokenEvent>} that, per
 * subscriber, creates a sequence (own KV cache), prefills on the first request and runs one decode step per requested
 * event — demand-driven, so a slow subscriber pauses decoding. All model work runs on the generator's scheduler
 * (given, or a dedicated single thread owned and disposed by this generator), which also serialises use of the
 * decoder. Cancelling stops before the next step and frees the sequence's cache; errors arrive as {@code onError}.
 */
public final class Generator implements AutoCloseable {
    private final Decoder decoder;
    private final PrefixCache prefixCache;
    private final Scheduler scheduler;
    private final boolean ownsScheduler;
    private final AtomicInteger active = new AtomicInteger();

    /**
     * @param prefixCache shared prefix cache, or null for none
     * @param scheduler   where blocking compute runs; null creates a dedicated single thread
     */
    public Generator(Decoder decoder, PrefixCache prefixCache, Scheduler scheduler) {
        this.decoder = decoder;
        this.prefixCache = prefixCache;
        this.ownsScheduler = scheduler == null;
        this.scheduler = scheduler == null ? Schedulers.newSingle("vlmflux-llm-" + decoder.backend(), true) : scheduler;
    }

    public Decoder decoder() { return decoder; }

    /** Sequences alive now (each holds a KV cache). */
    public int activeSequences() { return active.get(); }

    /** Generates from {@code prompt}; {@code text} supplies a fresh streaming detokenizer per subscription (nullable). */
    public Flux<TokenEvent> generate(MultimodalPrompt prompt, GenerateOptions options, Supplier<TokenText> text) {
        return Flux.<TokenEvent, Sequence>generate(
                () -> {
                    Sequence s = new Sequence(decoder, prefixCache, prompt, options, text == null ? null : text.get(), active::decrementAndGet);
                    active.incrementAndGet();
                    return s;
                },
                (seq, sink) -> {
                    TokenEvent e = seq.step();
                    if (e.isLast()) seq.close();   // free the cache before the subscriber sees completion
                    sink.next(e);
                    if (e.isLast()) sink.complete();
                    return seq;
                },
                Sequence::close)
            .subscribeOn(scheduler);
    }

    /**
     * Runs the imperative loop on the calling thread (no Reactor): returns all events. For benchmarks and tools that
     * want no scheduler hop.
     */
    public java.util.List<TokenEvent> generateBlocking(MultimodalPrompt prompt, GenerateOptions options, TokenText text) {
        java.util.List<TokenEvent> out = new java.util.ArrayList<>();
        try (Sequence s = new Sequence(decoder, prefixCache, prompt, options, text, null)) {
            TokenEvent e;
            do { e = s.step(); out.add(e); } while (!e.isLast());
        }
        return out;
    }

    /** Disposes an owned scheduler; the decoder and prefix cache stay with the caller. */
    @Override public void close() {
        if (ownsScheduler) scheduler.dispose();
    }
}
