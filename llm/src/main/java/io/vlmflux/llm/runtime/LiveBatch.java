package io.vlmflux.llm.runtime;

import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import reactor.core.publisher.FluxSink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * The answers of all live sessions of one {@link VlmRuntime}, stepped together: a tick on the compute thread gathers
 * every answer whose subscriber wants an event and whose next step is a device-sampled decode, runs them as ONE
 * {@link io.vlmflux.llm.Decoder#forwardSampleBatch} (on CUDA one pass over the weights for the batch, as caption
 * batching does), then emits each answer's event. Answers under token controls (host sampling) step alone in the same
 * tick. An answer without demand sits out (a slow subscriber pauses only its own answer); cancel finishes (rolls back)
 * it at the next tick. Each session keeps its own KV cache; appends share the vision tower in {@link LiveAppends}.
 */
final class LiveBatch extends ComputeTick {
    private static final Map<VlmRuntime, LiveBatch> BY_RUNTIME = Collections.synchronizedMap(new WeakHashMap<>());

    /** The batcher of {@code rt} (one per runtime). */
    static LiveBatch of(VlmRuntime rt) { return BY_RUNTIME.computeIfAbsent(rt, LiveBatch::new); }

    private static final class Member {
        final LiveSession.Answer answer;
        final FluxSink<TokenEvent> sink;
        volatile boolean cancelled;

        Member(LiveSession.Answer answer, FluxSink<TokenEvent> sink) {
            this.answer = answer;
            this.sink = sink;
        }
    }

    private final List<Member> members = new ArrayList<>();   // compute thread
    private volatile LiveSession.DecodeStats stats = new LiveSession.DecodeStats(0, 0, 0, 0);

    private LiveBatch(VlmRuntime rt) { super(rt); }

    LiveSession.DecodeStats stats() { return stats; }

    /** Adds a begun answer (compute thread): its events go to {@code sink} on demand. */
    void join(LiveSession.Answer answer, FluxSink<TokenEvent> sink) {
        Member m = new Member(answer, sink);
        members.add(m);
        sink.onRequest(n -> schedule());
        sink.onDispose(() -> {   // cancel, or after completion / error (finish is idempotent)
            m.cancelled = true;
            VlmRuntime rt = runtime();
            if (rt != null && rt.onComputeThread()) {   // e.g. take(n) downstream: roll back before the subscriber goes on
                members.remove(m);
                m.answer.finish(false);
            } else schedule();
        });
        schedule();
    }

    @Override void rejected(String reason) {
        for (Member m : List.copyOf(members)) if (!m.answer.isFinished()) m.sink.error(new IllegalStateException(reason));
    }

    @Override void tick(VlmRuntime rt) {
        // 1. cancelled answers leave (their question and answer leave the cache)
        for (var it = members.iterator(); it.hasNext(); ) {
            Member m = it.next();
            if (m.cancelled) {
                m.answer.finish(false);
                it.remove();
            }
        }
        List<Member> ready = new ArrayList<>();
        for (Member m : members) if (!m.answer.isFinished() && m.sink.requestedFromDownstream() > 0) ready.add(m);
        if (ready.isEmpty()) return;
        // 2. one batched decode for every ready answer whose step is a device-sampled decode
        List<Member> batch = new ArrayList<>();
        for (Member m : ready) if (m.answer.deviceStepDue()) batch.add(m);
        if (!batch.isEmpty()) {
            int n = batch.size();
            KvCache[] caches = new KvCache[n];
            int[] tokens = new int[n];
            SamplingParams[] params = new SamplingParams[n];
            for (int i = 0; i < n; i++) {
                LiveSession.Answer a = batch.get(i).answer;
                caches[i] = a.cache();
                tokens[i] = a.pendingToken();
                params[i] = a.sampling();
            }
            try {
                int[] chosen = rt.decoder().forwardSampleBatch(caches, tokens, params);
                for (int i = 0; i < n; i++) batch.get(i).answer.stepped(chosen[i]);
                LiveSession.DecodeStats s = stats;
                stats = new LiveSession.DecodeStats(s.steps() + 1, s.multiSteps() + (n > 1 ? 1 : 0), s.tokens() + n, Math.max(s.maxBatch(), n));
            } catch (RuntimeException | Error e) {   // a failed batch fails its members
                for (Member m : batch) fail(m, e);
                ready.removeAll(batch);
            }
        }
        // 3. every ready answer emits its event (host-sampled ones decode here, alone)
        for (Member m : ready) {
            if (m.cancelled || m.answer.isFinished()) continue;   // cancelled by an earlier emission of this tick
            TokenEvent e;
            try {
                e = m.answer.step();
                if (e.isLast()) m.answer.finish(true);   // roll back (or keep) before the subscriber sees completion
            } catch (RuntimeException | Error x) {
                fail(m, x);
                continue;
            }
            if (e.isLast()) members.remove(m);
            m.sink.next(e);
            if (e.isLast()) m.sink.complete();
        }
        for (Member m : members) if (m.cancelled || m.sink.requestedFromDownstream() > 0) { schedule(); break; }
    }

    private void fail(Member m, Throwable e) {
        members.remove(m);
        try {
            m.answer.finish(false);
        } catch (RuntimeException ignored) {
            // the cache is being torn down; the error below is what matters
        }
        m.sink.error(e);
    }
}
