package io.vlmflux.demos.bench;

import org.junit.jupiter.api.Test;
import reactor.test.StepVerifier;
import reactor.test.scheduler.VirtualTimeScheduler;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class MemorySamplerTest {
    @Test
    void samplesEveryIntervalInVirtualTime() {
        List<MemorySampler.Sample> got = new ArrayList<>();
        StepVerifier.withVirtualTime(() -> MemorySampler.every(Duration.ofSeconds(60), VirtualTimeScheduler.get()).take(6))
                .recordWith(() -> got)
                .expectNextCount(1)                        // at 0
                .expectNoEvent(Duration.ofSeconds(59))
                .thenAwait(Duration.ofSeconds(1))
                .expectNextCount(1)                        // at 60 s
                .thenAwait(Duration.ofSeconds(240))
                .expectNextCount(4)
                .verifyComplete();
        assertEquals(List.of(0.0, 60.0, 120.0, 180.0, 240.0, 300.0), got.stream().map(MemorySampler.Sample::atSeconds).toList());
    }

    @Test
    void readsHeapDirectBuffersAndRss() {
        MemorySampler.Sample before = MemorySampler.sample(0);
        ByteBuffer held = ByteBuffer.allocateDirect(8 << 20);
        MemorySampler.Sample after = MemorySampler.sample(1);
        assertTrue(after.direct() - before.direct() >= 8 << 20, "direct buffers grew by the 8 MiB allocated: " + before + " -> " + after);
        assertTrue(after.heapUsed() > 0, after.toString());
        if (java.nio.file.Files.exists(java.nio.file.Path.of("/proc/self/status"))) assertTrue(after.rss() > after.direct(), after.toString());
        assertTrue(after.line().startsWith("| 1 | "), after.line());
        System.gc();
        assertTrue(MemorySampler.sample(2).heapAfterGc() > 0, "heap after the GC");
        assertEquals(8 << 20, held.capacity());
        assertThrows(IllegalArgumentException.class, () -> MemorySampler.every(Duration.ZERO));
    }

    @Test
    void trackedBytesAreReadAtEachSampleAndShownInMegabytes() {
        long[] cache = {3L << 20};
        MemorySampler.Sample a = MemorySampler.sample(0, () -> cache[0]);
        cache[0] = 96L << 20;
        MemorySampler.Sample b = MemorySampler.sample(60, () -> cache[0]);
        assertEquals(3L << 20, a.tracked());
        assertEquals(96L << 20, b.tracked());
        assertTrue(b.line().endsWith("| 96.0 |"), b.line());
        assertEquals(-1, MemorySampler.sample(1).tracked());
        assertTrue(MemorySampler.sample(1).line().endsWith("| - |"));
        assertEquals(MemorySampler.HEADER.split("\\n")[0].split("\\|").length, b.line().split("\\|").length, "a column per header field");
    }
}
