package io.vlmflux.cuda.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;

/**
 * Splits an index range over a ForkJoin pool sized to all cores (system property {@code vlmflux.cpu.threads}
 * overrides). Bodies receive half-open ranges {@code [lo, hi)} of primitive ints: no boxing, no streams. Small ranges
 * run inline on the caller. Calls from inside the pool run nested work in the same pool (work stealing).
 */
public final class Parallel {
    /** A loop body over {@code [lo, hi)}. */
    @FunctionalInterface
    public interface Range { void run(int lo, int hi); }

    private static final int THREADS = Integer.getInteger("vlmflux.cpu.threads", Runtime.getRuntime().availableProcessors());
    private static final ForkJoinPool POOL = THREADS <= 1 ? null : new ForkJoinPool(THREADS,
            p -> {
                var t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
                t.setName("vlmflux-cpu-" + t.getPoolIndex());
                t.setDaemon(true);
                return t;
            }, null, false);

    private Parallel() {}

    public static int threads() { return THREADS; }

    /**
     * Runs {@code body} over {@code [0, n)} in chunks of at least {@code grain} indices, in parallel when worthwhile.
     */
    public static void forRange(int n, int grain, Range body) {
        if (n <= 0) return;
        if (POOL == null || n <= grain) { body.run(0, n); return; }
        int chunks = Math.min(THREADS * 4, (n + grain - 1) / grain);
        if (chunks <= 1) { body.run(0, n); return; }
        Task t = new Task(body, 0, n, Math.max(grain, (n + chunks - 1) / chunks));
        if (ForkJoinTask.getPool() == POOL) t.invoke();  // nested: already a worker of our pool
        else POOL.invoke(t);
    }

    private static final class Task extends RecursiveAction {
        private final Range body;
        private final int lo, hi, chunk;

        Task(Range body, int lo, int hi, int chunk) { this.body = body; this.lo = lo; this.hi = hi; this.chunk = chunk; }

        @Override protected void compute() {
            if (hi - lo <= chunk) { body.run(lo, hi); return; }
            int mid = lo + (hi - lo) / 2;
            invokeAll(new Task(body, lo, mid, chunk), new Task(body, mid, hi, chunk));
        }
    }
}
