package io.vlmflux.llm.runtime;

import io.vlmflux.sources.Frame;
import reactor.core.publisher.MonoSink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The appends of all live sessions of one {@link VlmRuntime}, encoded together: {@link LiveSession#append} queues its
 * group here; a tick on the compute thread takes every queued group, preprocesses each (host; or, with
 * {@code vlmflux.live.devicePreprocess} on cuda, on the device as part of the encode), encodes them in ONE
 * pass of the runtime's vision tower ({@link VisionPath#encodeClips}: on CUDA every GEMM of the tower shared,
 * attention per group), then prefills each into its own session's cache in arrival order. A group alone costs what
 * it cost before (the tick runs at once); groups that arrive while the compute thread is busy — several cameras at one
 * fps — share the tower. A failure of one group's checks or preprocessing fails only that append; a failed encoder
 * pass fails the groups in it.
 */
final class LiveAppends extends ComputeTick {
    private static final Map<VlmRuntime, LiveAppends> BY_RUNTIME = Collections.synchronizedMap(new WeakHashMap<>());

    /** The append batcher of {@code rt} (one per runtime). */
    static LiveAppends of(VlmRuntime rt) { return BY_RUNTIME.computeIfAbsent(rt, LiveAppends::new); }

    private record Pending(LiveSession session, AtomicReference<List<Frame>> frames, MonoSink<LiveSession.Appended> sink) {}

    private record Ready(Pending pending, LiveSession.Prepared group) {}

    private final ConcurrentLinkedQueue<Pending> queue = new ConcurrentLinkedQueue<>();
    private volatile LiveSession.AppendStats stats = new LiveSession.AppendStats(0, 0, 0);

    private LiveAppends(VlmRuntime rt) { super(rt); }

    LiveSession.AppendStats stats() { return stats; }

    /** Queues {@code frames} (owned here until taken; null when the append was cancelled) for {@code session}. */
    void submit(LiveSession session, AtomicReference<List<Frame>> frames, MonoSink<LiveSession.Appended> sink) {
        queue.add(new Pending(session, frames, sink));
        schedule();
    }

    @Override void rejected(String reason) {
        for (Pending p; (p = queue.poll()) != null; ) {
            List<Frame> fs = p.frames().getAndSet(null);
            if (fs != null) fs.forEach(Frame::close);
            p.sink().error(new IllegalStateException(reason));
        }
    }

    @Override void tick(VlmRuntime rt) {
        // 1. checks and host preprocessing, per group (a failure is that append's alone)
        List<Ready> ready = new ArrayList<>();
        for (Pending p; (p = queue.poll()) != null; ) {
            List<Frame> fs = p.frames().getAndSet(null);
            if (fs == null) continue;   // cancelled before it was taken (its frames were closed then)
            try {
                ready.add(new Ready(p, p.session().prepareAppend(fs)));
            } catch (RuntimeException | Error e) {
                p.sink().error(e);
            }
        }
        if (ready.isEmpty()) return;
        // 2. one pass of the runtime's vision tower (every session of a runtime encodes with it): host-preprocessed
        //    groups through encodeClips, device-preprocessed ones (vlmflux.live.devicePreprocess) through
        //    encodeFrameGroups — one kind per runtime in practice, both handled
        long t0 = System.nanoTime();
        VisionPath<?> vp = rt.visionPath();
        List<ImageRows> rows = new ArrayList<>(Collections.nCopies(ready.size(), (ImageRows) null));
        try {
            List<Integer> host = new ArrayList<>(), device = new ArrayList<>();
            for (int i = 0; i < ready.size(); i++) (ready.get(i).group().onDevice() == null ? host : device).add(i);
            if (!host.isEmpty()) {
                List<ImageRows> r = vp.encodeClips(host.stream().map(i -> ready.get(i).group().pixels()).toList());
                for (int k = 0; k < host.size(); k++) rows.set(host.get(k), r.get(k));
            }
            if (!device.isEmpty()) {
                List<ImageRows> r = vp.encodeFrameGroups(device.stream().map(i -> ready.get(i).group().onDevice()).toList());
                for (int k = 0; k < device.size(); k++) rows.set(device.get(k), r.get(k));
            }
        } catch (RuntimeException | Error e) {
            for (ImageRows r : rows) if (r != null) vp.release(r);
            for (Ready r : ready) r.pending().sink().error(e);
            return;
        } finally {
            for (Ready r : ready) r.group().close();   // device groups' frames were copied by their encode (or it failed)
        }
        long encode = System.nanoTime() - t0;
        LiveSession.AppendStats s = stats;
        stats = new LiveSession.AppendStats(s.groups() + ready.size(), s.passes() + 1, Math.max(s.largest(), ready.size()));
        // 3. the prefills, in arrival order
        for (int i = 0; i < ready.size(); i++) {
            Ready r = ready.get(i);
            try {
                r.pending().sink().success(r.pending().session().finishAppend(r.group(), rows.get(i), encode));
            } catch (RuntimeException | Error e) {
                r.pending().sink().error(e);
            }
        }
    }
}
