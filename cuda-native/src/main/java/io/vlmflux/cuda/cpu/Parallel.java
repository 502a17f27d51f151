package io.vlmflux.cuda.cpu;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Splits an index range over a persistent pool of {@code threads() - 1} daemon workers plus the calling thread (system
 * property {@code vlmflux.cpu.threads} overrides the core count). Bodies receive half-open ranges {@code [lo, hi)} of
 * primitive ints: no boxing, no streams, no task objects per chunk. A call posts one small job; threads claim chunks
 * from an atomic counter (dynamic balance on a shared machine) and the caller runs chunks too, then waits.
 *
 * <p>Workers spin briefly after a job (a decode step issues hundreds of jobs a few microseconds apart) and then park,
 * so an idle pool costs no CPU. Invariants: one job at a time; a call from a worker (nested) or while another thread's
 * job runs executes inline on its caller, so no call ever waits for the pool. A body's exception is rethrown on the
 * caller after all claimed chunks finished.
 */
public final class Parallel {
    /** A loop body over {@code [lo, hi)}. */
    @FunctionalInterface
    public interface Range { void run(int lo, int hi); }

    private static final int THREADS = io.vlmflux.cuda.Tuning.process().cpuThreads();
    private static final long SPIN_NS = io.vlmflux.cuda.Tuning.process().cpuSpinMicros() * 1000L;
    private static final AtomicBoolean BUSY = new AtomicBoolean();
    private static final Worker[] WORKERS = new Worker[THREADS - 1];
    private static volatile Job current;
    private static long jobs;           // guarded by BUSY

    static {
        for (int i = 0; i < WORKERS.length; i++) {
            WORKERS[i] = new Worker(i + 1);
            WORKERS[i].start();
        }
    }

    private Parallel() {}

    public static int threads() { return THREADS; }

    /**
     * Runs {@code body} over {@code [0, n)} in chunks of at least {@code grain} indices, in parallel when worthwhile.
     */
    public static void forRange(int n, int grain, Range body) {
        if (n <= 0) return;
        grain = Math.max(1, grain);
        int chunks = THREADS <= 1 || n <= grain ? 1 : Math.min(THREADS * 4, (n + grain - 1) / grain);
        if (chunks <= 1 || Thread.currentThread() instanceof Worker || !BUSY.compareAndSet(false, true)) {
            body.run(0, n);
            return;
        }
        try {
            Job job = new Job(++jobs, body, n, chunks, Thread.currentThread());
            current = job;
            for (Worker w : WORKERS) if (w.parked) LockSupport.unpark(w);
            job.work();
            job.await();
            current = null;
            Throwable e = job.error;
            if (e instanceof RuntimeException re) throw re;
            if (e instanceof Error er) throw er;
            if (e != null) throw new IllegalStateException(e);
        } finally {
            BUSY.set(false);
        }
    }

    private static final class Job {
        final long seq;
        final Range body;
        final int n, chunks, chunk;
        final Thread caller;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger remaining;
        volatile boolean callerParked;
        volatile Throwable error;

        Job(long seq, Range body, int n, int chunks, Thread caller) {
            this.seq = seq;
            this.body = body;
            this.n = n;
            this.chunk = (n + chunks - 1) / chunks;
            this.chunks = (n + chunk - 1) / chunk;
            this.caller = caller;
            this.remaining = new AtomicInteger(this.chunks);
        }

        /** Claims and runs chunks until none are left. */
        void work() {
            int c;
            while ((c = next.getAndIncrement()) < chunks) {
                int lo = c * chunk, hi = Math.min(n, lo + chunk);
                try {
                    if (error == null) body.run(lo, hi);
                } catch (Throwable t) {
                    error = t;
                } finally {
                    if (remaining.decrementAndGet() == 0 && callerParked) LockSupport.unpark(caller);
                }
            }
        }

        void await() {
            long t0 = System.nanoTime();
            while (remaining.get() > 0) {
                if (System.nanoTime() - t0 < SPIN_NS) { Thread.onSpinWait(); continue; }
                callerParked = true;
                if (remaining.get() > 0) LockSupport.parkNanos(this, 1_000_000L);
            }
        }
    }

    private static final class Worker extends Thread {
        volatile boolean parked;

        Worker(int index) {
            super("vlmflux-cpu-" + index);
            setDaemon(true);
        }

        private static Job fresh(long last) {
            Job j = current;
            return j != null && j.seq != last ? j : null;
        }

        @Override public void run() {
            long last = 0;      // seq of the last job seen; no reference kept, so a finished job's arrays can be freed
            while (true) {
                Job j = current;
                if (j != null && j.seq != last) {
                    last = j.seq;
                    j.work();
                    continue;
                }
                j = null;
                long t0 = System.nanoTime();
                while (fresh(last) == null) {
                    if (System.nanoTime() - t0 < SPIN_NS) { Thread.onSpinWait(); continue; }
                    parked = true;
                    if (fresh(last) == null) LockSupport.park(this);
                    parked = false;
                    t0 = System.nanoTime();
                }
            }
        }
    }
}
