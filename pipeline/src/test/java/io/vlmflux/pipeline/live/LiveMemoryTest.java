package io.vlmflux.pipeline.live;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.*;

/**
 * One hour of video (a non-live GStreamer test source: 7,200 frames at 2 fps of presentation time, decoded as fast as
 * the model takes them) through a 30 s live window: KV bytes and cache length stay flat once the window is full, the
 * heap does not grow with the stream, every frame is released, and the session's cache is freed at the end.
 */
class LiveMemoryTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize()
            .resolve("llm/src/test/resources/fixtures/tiny-qwen2vl-video");

    @Test void anHourOfVideoRunsInFlatMemory() {
        try (VlmRuntime rt = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            LiveVideo live = LiveVideo.on(rt, LiveVideo.Options.defaults()
                    .withSession(LiveSession.Options.defaults().withFps(2).withWindow(Duration.ofSeconds(30)).withMaxAnswerTokens(2))
                    .withNarration(Duration.ofMillis(200), "What changed?").withMaxQueuedGroups(0));
            List<Frame> seen = new CopyOnWriteArrayList<>();
            AtomicLong groups = new AtomicLong(), kvAt100 = new AtomicLong(), maxKv = new AtomicLong(), maxLen = new AtomicLong(), lenAt100 = new AtomicLong();
            AtomicLong heapAt500 = new AtomicLong(), lastEnd = new AtomicLong();
            Flux<Frame> frames = Sources.parse("test:ball?live=false&width=56&height=56&fps=2&num-buffers=7200").frames().doOnNext(seen::add);
            long narrations = live.run(frames, Flux.never(), a -> {
                long g = groups.incrementAndGet();
                if (g == 100) { kvAt100.set(a.kvBytes()); lenAt100.set(a.cacheLength()); }
                if (g > 100) { maxKv.accumulateAndGet(a.kvBytes(), Math::max); maxLen.accumulateAndGet(a.cacheLength(), Math::max); }
                if (g == 500) heapAt500.set(usedHeap());
                lastEnd.set(a.endPts());
            }).count().block(Duration.ofMinutes(5));
            long heapEnd = usedHeap();
            assertEquals(3600, groups.get());
            assertEquals(3_600_000_000_000L, lastEnd.get(), "an hour of presentation time");
            assertTrue(narrations > 0, "narrations ran along the way");
            assertEquals(kvAt100.get(), maxKv.get(), "KV bytes flat after the window filled");
            assertEquals(lenAt100.get(), maxLen.get(), "cache length flat after the window filled");
            assertTrue(heapEnd - heapAt500.get() < 24L << 20, "heap grew by " + ((heapEnd - heapAt500.get()) >> 20) + " MiB over the stream");
            assertTrue(seen.stream().allMatch(Frame::isReleased), "every frame released");
            assertEquals(0, rt.activeSequences());
        }
    }

    static long usedHeap() {
        Runtime r = Runtime.getRuntime();
        for (int i = 0; i < 3; i++) System.gc();
        return r.totalMemory() - r.freeMemory();
    }
}
