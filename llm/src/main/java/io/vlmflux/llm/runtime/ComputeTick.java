package io.vlmflux.llm.runtime;

import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A coalescing tick on a runtime's compute thread: {@link #schedule()} from any thread queues at most one
 * {@link #tick(VlmRuntime)} at a time, so work that arrives while the compute thread is busy is taken together by the
 * next tick (the batching of {@link LiveBatch} and {@link LiveAppends}). Holds the runtime weakly: a batcher kept in a
 * per-runtime map must not keep its key alive. When the runtime is gone or closed, {@link #rejected} fails what waits.
 */
abstract class ComputeTick {
    private final java.lang.ref.WeakReference<VlmRuntime> runtime;
    private final AtomicBoolean queued = new AtomicBoolean();

    ComputeTick(VlmRuntime rt) { this.runtime = new java.lang.ref.WeakReference<>(rt); }

    /** The runtime, or null once it was collected. */
    final VlmRuntime runtime() { return runtime.get(); }

    /** Queues a tick unless one is queued already. */
    final void schedule() {
        if (!queued.compareAndSet(false, true)) return;
        VlmRuntime rt = runtime.get();
        try {
            if (rt == null) throw new RejectedExecutionException("the runtime is gone");
            rt.scheduler().schedule(this::run);
        } catch (RejectedExecutionException e) {   // the runtime is closed: its caches are gone
            queued.set(false);
            rejected((rt == null ? "the runtime" : rt) + " is closed");
        }
    }

    private void run() {
        queued.set(false);   // work arriving from now on queues the next tick
        VlmRuntime rt = runtime.get();
        if (rt != null) tick(rt);
    }

    /** The work of one tick, on the compute thread. */
    abstract void tick(VlmRuntime rt);

    /** The runtime refused the tick: fail everything waiting with {@code reason}. */
    abstract void rejected(String reason);
}
