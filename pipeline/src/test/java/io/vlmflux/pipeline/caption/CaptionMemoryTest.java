package io.vlmflux.pipeline.caption;

import io.vlmflux.pipeline.Stages;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.Test;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static io.vlmflux.pipeline.caption.CaptionTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * 2,000 frames from a non-live source through the caption stage as fast as it goes (tiny model, 2 tokens per
 * caption, every frame captioned): heap after GC and native memory (RSS, NIO buffer pools) stay flat, and every frame
 * is closed. A leaked frame, KV cache or prefix entry per caption would show as steady growth.
 */
class CaptionMemoryTest {
    static final int FRAMES = 2000;

    record Checkpoint(long captions, long heapBytes, long rssBytes, long nioBytes) {
        @Override public String toString() {
            return String.format("after %5d captions: heap %6.1f MB, rss %6.1f MB, nio %5.1f MB", captions, heapBytes / 1e6, rssBytes / 1e6, nioBytes / 1e6);
        }
    }

    @Test void twoThousandFramesKeepHeapAndNativeMemoryFlat() {
        List<Checkpoint> cps = new ArrayList<>();
        AtomicLong n = new AtomicLong();
        Tap tap = new Tap();
        long t0 = System.nanoTime();
        try (CaptionModel model = CaptionModel.load(TINY_VL, "cpu")) {
            long count = Sources.parse("test:ball?live=false&width=64&height=48&num-buffers=" + FRAMES).frames()
                    .doOnNext(f -> tap.seen.add(f))
                    .transform(Stages.sample("all"))
                    .transform(CaptionStage.captions(model, CaptionOptions.defaults().withMaxTokens(2).withBackpressure(CaptionOptions.Backpressure.LOSSLESS)))
                    .doOnNext(c -> {
                        long i = n.incrementAndGet();
                        if (i == 500 || i == 1000 || i == FRAMES) cps.add(measure(i));
                        if (i % 100 == 0) tap.seen.removeIf(f -> f.isReleased());   // keep the tap itself from growing
                    })
                    .count().block(Duration.ofSeconds(150));
            assertEquals(FRAMES, count);
            assertEquals(1, model.prefixCache().size());
            assertEquals(0, model.generator().activeSequences());
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        cps.forEach(System.out::println);
        System.out.printf("%d captions in %.1f s (%.1f ms each)%n", FRAMES, secs, secs * 1000 / FRAMES);
        assertEquals(0, tap.open(), "frames left open");
        Checkpoint warm = cps.get(0), mid = cps.get(1), end = cps.get(2);
        assertTrue(end.heapBytes - warm.heapBytes < 16_000_000, "heap after GC grew: " + cps);
        assertTrue(end.nioBytes - warm.nioBytes < 4_000_000, "NIO buffers grew: " + cps);
        // RSS grows while the JIT and the GC warm up (first ~1,000 captions here), then must stay flat: a per-caption
        // leak of a KV cache (~33 KB for this model) would add ~33 MB over the last 1,000.
        assertTrue(end.rssBytes - mid.rssBytes < 24_000_000, "resident memory grew over the last 1,000 captions: " + cps);
    }

    static Checkpoint measure(long captions) {
        for (int i = 0; i < 3; i++) System.gc();
        long heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
        long nio = 0;
        for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) nio += b.getMemoryUsed();
        return new Checkpoint(captions, heap, rss(), nio);
    }

    static long rss() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status")))
                if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        } catch (Exception e) {
            // not Linux: report 0, the heap and NIO checks still apply
        }
        return 0;
    }
}
