package io.vlmflux.sources;

import org.junit.jupiter.api.Test;
import reactor.test.StepVerifier;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Open/cancel cycles must not leak pipelines, threads (Java or native) or native memory. */
class LifecycleLeakTest {

    private static long nativeThreads() throws IOException {
        try (var s = Files.list(Path.of("/proc/self/task"))) { return s.count(); }
    }

    /**
     * glibc's {@code mallinfo2()}: {@code uordblks} (bytes handed out by malloc and not freed, all arenas) plus
     * {@code hblkhd} (bytes in mmapped chunks); null where the C library has no such function.
     */
    private static final java.lang.invoke.MethodHandle MALLINFO2;
    private static final java.lang.foreign.StructLayout MALLINFO2_LAYOUT = java.lang.foreign.MemoryLayout.structLayout(
            java.util.stream.Stream.generate(() -> java.lang.foreign.ValueLayout.JAVA_LONG).limit(10).toArray(java.lang.foreign.MemoryLayout[]::new));
    static {
        java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
        MALLINFO2 = linker.defaultLookup().find("mallinfo2")
                .map(a -> linker.downcallHandle(a, java.lang.foreign.FunctionDescriptor.of(MALLINFO2_LAYOUT)))
                .orElse(null);
    }

    /**
     * Native memory in use (kB): what malloc has handed out and not taken back, GStreamer's and GLib's allocations
     * included. Unlike RSS it does not move with free pages kept or returned by the allocator, arenas of new
     * threads, the Java heap's commits or the code cache, which made RSS deltas swing by ±50 MB per round on a
     * loaded machine; a leak (an object never freed) shows up here exactly. Falls back to RSS minus the committed
     * heap where {@code mallinfo2} is missing.
     */
    private static long nativeInUseKb() throws IOException {
        System.gc();
        if (MALLINFO2 == null) return rssOutsideHeapKb();
        // Frames copied into FramePool segments are Arena.ofAuto(): after the GC found them unreachable the JDK's
        // cleaner thread frees them, after System.gc() returns. Read until that freeing is over (two readings 20 ms
        // apart within 256 kB; bounded), so a round is not charged with memory that was merely not freed yet.
        long deadline = System.nanoTime() + Duration.ofSeconds(2).toNanos();
        long prev = mallocInUseKb();
        for (;;) {
            java.util.concurrent.locks.LockSupport.parkNanos(20_000_000);
            long now = mallocInUseKb();
            if (Math.abs(now - prev) < 256 || System.nanoTime() > deadline) return Math.min(now, prev);
            prev = now;
        }
    }

    private static long mallocInUseKb() {
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            var info = (java.lang.foreign.MemorySegment) MALLINFO2.invokeExact((java.lang.foreign.SegmentAllocator) arena);
            long uordblks = info.getAtIndex(java.lang.foreign.ValueLayout.JAVA_LONG, 7);
            long hblkhd = info.getAtIndex(java.lang.foreign.ValueLayout.JAVA_LONG, 4);
            return (uordblks + hblkhd) / 1024;
        } catch (Throwable t) {
            throw new AssertionError("mallinfo2 failed", t);
        }
    }

    /** Resident memory outside the committed Java heap (kB); kept for comparison in the output only. */
    private static long rssOutsideHeapKb() throws IOException {
        for (String l : Files.readAllLines(Path.of("/proc/self/status")))
            if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("[^0-9]", "")) - Runtime.getRuntime().totalMemory() / 1024;
        return -1;
    }

    private static final List<Long> RSS = new java.util.ArrayList<>();

    private static void cycles(int n) {
        List<String> specs = List.of("test:ball?width=64&height=48&fps=60", "test:smpte?live=false&width=64&height=48");
        for (int i = 0; i < n; i++) {
            FrameSource src = Sources.parse(specs.get(i % 2));
            StepVerifier.create(src.frames(), 1)
                    .assertNext(Frame::close)
                    .thenCancel()
                    .verify(Duration.ofSeconds(10));
        }
    }

    /** Runs {@code n} cycles and returns the least {@link #nativeInUseKb()} read after each fifth of them. */
    private static long roundLevel(int n) throws IOException {
        long least = Long.MAX_VALUE;
        for (int i = 0; i < 5; i++) {
            cycles(n / 5);
            least = Math.min(least, nativeInUseKb());
        }
        RSS.add(rssOutsideHeapKb());
        return least;
    }

    private static void awaitPipelinesAtMost(int n, Duration timeout) throws InterruptedException {
        long t = System.nanoTime() + timeout.toNanos();
        while (GstNative.livePipelines() > n && System.nanoTime() < t) Thread.sleep(10);
    }

    @Test
    void sixHundredOpenCancelCyclesLeaveNothingBehind() throws Exception {
        cycles(20); // warm up: GStreamer's plugin registry, JIT, thread pools
        System.gc();
        // The last warm-up cycle may still be tearing down (cancel inside onNext lets the pump finish after it):
        // take the baseline once every pipeline of the warm-up is gone (bounded wait on the condition).
        awaitPipelinesAtMost(0, Duration.ofSeconds(5));
        int pipelines = GstNative.livePipelines();
        long threads = nativeThreads();
        long javaThreads = Thread.getAllStackTraces().size();
        // One-time growth (heap sizing, JIT, glibc arenas of new threads, GStreamer caches) happens mostly in the first
        // round; a leak grows every round, so the median round must stay flat (a leaked pipeline costs well over
        // 100 kB, so 100 leaked pipelines would add > 10 MB to every round). Each round's level is the least native
        // memory in use seen at five points of it: allocations that come and go (a JIT compilation, GC work, a pump
        // thread still tearing down) raise single readings only, a leak raises every reading after it. (RSS, used
        // before, moved by up to ±50 MB per round on a loaded machine: free pages kept or returned, new arenas.)
        long[] growth = new long[5];
        long prev = roundLevel(100);
        for (int r = 0; r < growth.length; r++) {
            long now = roundLevel(100);
            growth[r] = now - prev;
            prev = now;
        }
        System.out.println("native memory in use, growth per 100 cycles (kB): " + java.util.Arrays.toString(growth)
                + "; RSS outside the heap, for comparison: " + java.util.stream.IntStream.range(1, RSS.size()).mapToObj(i -> String.valueOf(RSS.get(i) - RSS.get(i - 1))).toList());
        long[] sorted = growth.clone();
        java.util.Arrays.sort(sorted);
        assertTrue(sorted[growth.length / 2] < 8_000, "native memory in use grows per 100 cycles (kB): " + java.util.Arrays.toString(growth));
        // Cancelling from another thread joins the pump; cancelling inside onNext (on the pump itself) lets the pump
        // tear down right after, so the last cycle may still be finishing: wait for it, bounded.
        long t = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while ((GstNative.livePipelines() > pipelines || nativeThreads() > threads + 2) && System.nanoTime() < t) Thread.sleep(10);
        assertEquals(pipelines, GstNative.livePipelines(), "pipelines still alive");
        assertTrue(nativeThreads() <= threads + 2, "native threads " + threads + " -> " + nativeThreads());
        assertTrue(Thread.getAllStackTraces().size() <= javaThreads + 2, "java threads " + javaThreads + " -> " + Thread.getAllStackTraces().size());
    }
}
