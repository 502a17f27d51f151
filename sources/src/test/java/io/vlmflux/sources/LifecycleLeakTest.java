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

    private static long rssKb() throws IOException {
        for (String l : Files.readAllLines(Path.of("/proc/self/status")))
            if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("[^0-9]", ""));
        return -1;
    }

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

    @Test
    void twoHundredOpenCancelCyclesLeaveNothingBehind() throws Exception {
        cycles(20); // warm up: GStreamer's plugin registry, JIT, thread pools
        System.gc();
        int pipelines = GstNative.livePipelines();
        long threads = nativeThreads();
        long javaThreads = Thread.getAllStackTraces().size();
        long rss = rssKb();
        cycles(200);
        // cancellation joins the pump thread, which has set the pipeline to NULL and dropped it
        assertEquals(pipelines, GstNative.livePipelines(), "pipelines still alive");
        long t = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (nativeThreads() > threads + 2 && System.nanoTime() < t) Thread.sleep(20);
        assertTrue(nativeThreads() <= threads + 2, "native threads " + threads + " -> " + nativeThreads());
        assertTrue(Thread.getAllStackTraces().size() <= javaThreads + 2, "java threads " + javaThreads + " -> " + Thread.getAllStackTraces().size());
        System.gc();
        long grown = rssKb() - rss;
        assertTrue(grown < 40_000, "RSS grew by " + grown + " kB over 200 cycles");
    }
}
