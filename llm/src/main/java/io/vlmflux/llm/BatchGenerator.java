package io.vlmflux.llm;

import io.vlmflux.llm.cache.PrefixCache;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;
import reactor.core.scheduler.Scheduler;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Supplier;

/**
 * A generator for concurrent sequences that batches their decode steps: one loop on the compute scheduler ("tick")
 * admits new sequences (prefill + first token each), then gathers the pending token of every active sequence whose
 * subscriber wants more and runs them as one {@link Decoder#forwardSampleBatch} — on CUDA one pass over the weights
 * for the whole batch instead of one per sequence — and emits each sequence's event. Sequences whose next step needs
 * no device forward (host sampling, a full cache, the final event) step on their own in the same tick.
 *
 * <p>Same contract as {@link Generator#generate}: cold, one sequence (own KV cache) per subscription, demand-driven
 * (a sequence without outstanding demand sits out of the batch; a slow subscriber pauses only its own sequence),
 * cancel frees the cache at the next tick, errors arrive as {@code onError} (a failed batch fails its members). All
 * model work runs on the scheduler, which also serialises use of the decoder with everything else queued there.
 */
public final class BatchGenerator implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.llm");

    private final Decoder decoder;
    private final PrefixCache prefixCache;
    private final Scheduler scheduler;
    private final int maxBatch;
    private final ConcurrentLinkedQueue<Slot> incoming = new ConcurrentLinkedQueue<>();
    private final List<Slot> active = new ArrayList<>();   // compute thread only
    private boolean tickQueued;
    private volatile boolean closed;
    private long steps, batchedTokens;
    private int rotate;
    private final java.util.concurrent.atomic.AtomicInteger alive = new java.util.concurrent.atomic.AtomicInteger();   // where the next batch starts filling, so sequences beyond maxBatch are not starved

    /** @param maxBatch most sequences per batched step (>= 1) */
    public BatchGenerator(Decoder decoder, PrefixCache prefixCache, Scheduler scheduler, int maxBatch) {
        if (maxBatch < 1) throw new IllegalArgumentException("maxBatch must be >= 1, got " + maxBatch);
        if (scheduler == null) throw new IllegalArgumentException("a batch generator needs the compute scheduler");
        this.decoder = decoder;
        this.prefixCache = prefixCache;
        this.scheduler = scheduler;
        this.maxBatch = maxBatch;
    }

    private static final class Slot {
        final MultimodalPrompt prompt;
        final GenerateOptions options;
        final TokenText text;
        final FluxSink<TokenEvent> sink;
        volatile boolean cancelled;
        Sequence seq;
        boolean done;

        Slot(MultimodalPrompt prompt, GenerateOptions options, TokenText text, FluxSink<TokenEvent> sink) {
            this.prompt = prompt;
            this.options = options;
            this.text = text;
            this.sink = sink;
        }

        boolean wants() { return !done && !cancelled && sink.requestedFromDownstream() > 0; }
    }

    /** Generates from {@code prompt}; {@code text} supplies a fresh streaming detokenizer per subscription (nullable). */
    public Flux<TokenEvent> generate(MultimodalPrompt prompt, GenerateOptions options, Supplier<TokenText> text) {
        return Flux.create(sink -> {
            if (closed) { sink.error(new IllegalStateException("batch generator closed")); return; }
            Slot s = new Slot(prompt, options, text == null ? null : text.get(), sink);
            sink.onRequest(n -> wake());
            sink.onCancel(() -> { s.cancelled = true; wake(); });
            incoming.add(s);
            wake();
        });
    }

    /** Sequences alive now (each holds a KV cache until it ends, fails or is cancelled). */
    public int activeSequences() { return alive.get(); }

    /** Decode steps run so far and the tokens they produced (mean batch = tokens / steps). */
    public synchronized long[] batchStats() { return new long[] {steps, batchedTokens}; }

    private void wake() {
        synchronized (this) {
            if (tickQueued) return;
            tickQueued = true;
        }
        try {
            scheduler.schedule(this::tick);
        } catch (RuntimeException rejected) {   // scheduler disposed: fail what is waiting
            synchronized (this) { tickQueued = false; }
            Slot s;
            while ((s = incoming.poll()) != null) s.sink.error(new IllegalStateException("compute scheduler is gone: " + rejected.getMessage(), rejected));
        }
    }

    private void tick() {
        synchronized (this) { tickQueued = false; }
        Slot n;
        while ((n = incoming.poll()) != null) active.add(n);
        for (Iterator<Slot> it = active.iterator(); it.hasNext(); ) {
            Slot s = it.next();
            if (s.cancelled || closed) {
                if (s.seq != null) s.seq.close();
                if (closed && !s.cancelled) s.sink.error(new IllegalStateException("batch generator closed"));
                it.remove();
            }
        }
        // 1. new sequences: create (allocates the KV cache) and prefill; their first token comes from the prefill
        for (Slot s : active) {
            if (s.seq != null || !s.wants()) continue;
            try {
                s.seq = new Sequence(decoder, prefixCache, s.prompt, s.options, s.text, alive::decrementAndGet);
                alive.incrementAndGet();
            } catch (RuntimeException e) {
                fail(s, e);
                continue;
            }
            stepAndEmit(s);
        }
        // 2. one batched forward for every sequence with demand and a pending device-sampled token
        List<Slot> batch = new ArrayList<>();
        int size = active.size(), from = size == 0 ? 0 : Math.floorMod(rotate++, size);
        for (int k = 0; k < size && batch.size() < maxBatch; k++) {
            Slot s = active.get((from + k) % size);
            if (s.seq != null && s.wants() && s.seq.pendingDecodeToken() >= 0) batch.add(s);
        }
        if (!batch.isEmpty()) {
            KvCache[] caches = new KvCache[batch.size()];
            int[] tokens = new int[batch.size()];
            SamplingParams[] params = new SamplingParams[batch.size()];
            for (int i = 0; i < caches.length; i++) {
                Sequence q = batch.get(i).seq;
                caches[i] = q.cache();
                tokens[i] = q.pendingDecodeToken();
                params[i] = q.sampling();
            }
            try {
                int[] chosen = decoder.forwardSampleBatch(caches, tokens, params);
                for (int i = 0; i < chosen.length; i++) batch.get(i).seq.chosenByBatch(chosen[i]);
                synchronized (this) { steps++; batchedTokens += chosen.length; }
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "batched decode step of {0} sequences failed: {1}", batch.size(), e.toString());
                for (Slot s : batch) fail(s, e);
                batch.clear();
            }
            for (Slot s : batch) stepAndEmit(s);
        }
        // 3. the rest with demand (host sampling, cache full, the last event): their own step
        for (Slot s : active)
            if (s.seq != null && !batch.contains(s) && s.wants() && s.seq.pendingDecodeToken() < 0) stepAndEmit(s);
        active.removeIf(s -> s.done);
        for (Slot s : active)
            if (s.wants() || s.cancelled) { wake(); break; }
        if (!incoming.isEmpty()) wake();
    }

    private void stepAndEmit(Slot s) {
        if (s.done) return;
        TokenEvent e;
        try {
            e = s.seq.step();
        } catch (RuntimeException ex) {
            fail(s, ex);
            return;
        }
        if (e.isLast()) { s.seq.close(); s.done = true; }   // free the cache before the subscriber sees completion
        s.sink.next(e);
        if (e.isLast()) s.sink.complete();
    }

    private void fail(Slot s, RuntimeException e) {
        if (s.seq != null) s.seq.close();
        s.done = true;
        s.sink.error(e);
    }

    /** Fails sequences still running at the next tick; the decoder and prefix cache stay with the caller. */
    @Override public void close() {
        closed = true;
        wake();
    }
}
