package io.vlmflux.pipeline;

import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One single-thread {@link Scheduler} per GPU device and stream, so that blocking native work (CUDA calls, kernel
 * launches, synchronisation) is serialised on the thread that owns the device context. Use it as
 * {@code flux.publishOn(GpuSchedulers.forDevice(0), 1)} (or {@link Stages#onGpu}); code that must only run there
 * calls {@link #assertOnGpuThread(int)}.
 *
 * <p>Schedulers are created on first use and shared; threads are named {@code vlmflux-gpu<device>-s<stream>} and
 * are daemons, so a forgotten scheduler does not keep the JVM alive. {@link #dispose(int, int)} and
 * {@link #disposeAll()} stop them; asking again afterwards creates a fresh one.
 */
public final class GpuSchedulers {
    private static final Map<Key, Scheduler> SCHEDULERS = new ConcurrentHashMap<>();

    private record Key(int device, int stream) {}

    /** The thread of a GPU scheduler, so that the check helpers can tell which device it serves. */
    static final class GpuThread extends Thread {
        final int device, stream;

        GpuThread(Runnable r, int device, int stream) {
            super(r, "vlmflux-gpu" + device + "-s" + stream);
            this.device = device;
            this.stream = stream;
            setDaemon(true);
        }
    }

    private GpuSchedulers() {}

    /** The scheduler of stream 0 of {@code device}. */
    public static Scheduler forDevice(int device) {
        return forStream(device, 0);
    }

    /** The scheduler of {@code stream} on {@code device}; one thread per (device, stream) pair. */
    public static Scheduler forStream(int device, int stream) {
        if (device < 0) throw new IllegalArgumentException("GPU device index must be >= 0, got " + device);
        if (stream < 0) throw new IllegalArgumentException("GPU stream index must be >= 0, got " + stream);
        Key key = new Key(device, stream);
        return SCHEDULERS.compute(key, (k, s) -> s != null && !s.isDisposed() ? s
                : Schedulers.newSingle(r -> new GpuThread(r, device, stream)));
    }

    /** Stops the scheduler of {@code (device, stream)} if it exists; queued work is dropped. */
    public static void dispose(int device, int stream) {
        Scheduler s = SCHEDULERS.remove(new Key(device, stream));
        if (s != null) s.dispose();
    }

    /** Stops every GPU scheduler. */
    public static void disposeAll() {
        for (Key k : SCHEDULERS.keySet()) dispose(k.device(), k.stream());
    }

    /** True on the thread of any GPU scheduler. */
    public static boolean isGpuThread() {
        return Thread.currentThread() instanceof GpuThread;
    }

    /** Device index of the current GPU thread, or -1 elsewhere. */
    public static int currentDevice() {
        return Thread.currentThread() instanceof GpuThread g ? g.device : -1;
    }

    /** Throws {@link IllegalStateException} naming the current thread unless it is a thread of {@code device}. */
    public static void assertOnGpuThread(int device) {
        if (currentDevice() != device)
            throw new IllegalStateException("GPU work for device " + device + " must run on its scheduler (publishOn(GpuSchedulers.forDevice("
                    + device + "), 1)), but runs on thread '" + Thread.currentThread().getName() + "'");
    }

    /** Throws {@link IllegalStateException} naming the current thread unless it is a GPU scheduler thread. */
    public static void assertOnGpuThread() {
        if (!isGpuThread())
            throw new IllegalStateException("GPU work must run on a GPU scheduler (publishOn(GpuSchedulers.forDevice(n), 1)), but runs on thread '"
                    + Thread.currentThread().getName() + "'");
    }
}
