package io.vlmflux.pipeline;

import io.vlmflux.pipeline.config.PipelineConfig;
import io.vlmflux.pipeline.metrics.MetricsSnapshot;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

class VlmPipelineTest {
    final TestFrames frames = new TestFrames();

    @AfterEach
    void tearDown() throws InterruptedException {
        GpuSchedulers.disposeAll();
        // interval sources may tick once more after cancel; the fan-in closes that frame: wait for it, bounded
        assertEquals(0, frames.awaitAllClosed(Duration.ofSeconds(10)), "frames built but never closed");
    }

    private Flux<Frame> every(String id, Duration period) {
        return Flux.interval(period).map(i -> frames.gray(id, i, i * period.toNanos(), (int) (i % 256)));
    }

    /** A stand-in for the caption stage: blocking work on the GPU thread, closes each frame. */
    private static Flux<String> describe(Flux<Frame> in) {
        return in.map(f -> {
            try (f) {
                GpuSchedulers.assertOnGpuThread(0);
                sleep(2);
                return f.sourceId() + "#" + f.sequence();
            }
        });
    }

    @Test
    void twoLiveSourcesSampledAndFannedIntoAModelOnTheGpuThread() {
        VlmPipeline<String> p = VlmPipeline.builder()
                .source(SourceInput.live("a", every("a", Duration.ofMillis(3))))
                .source(SourceInput.live("b", every("b", Duration.ofMillis(7))), SamplingPolicy.everyFrames(2))
                .every("15ms")
                .gpu(GpuSchedulers.forDevice(0))
                .model(VlmPipelineTest::describe);
        List<String> out = p.flux().take(20).collectList().block(Duration.ofSeconds(10));
        assertEquals(20, out.size());
        Set<String> ids = out.stream().map(s -> s.substring(0, 1)).collect(Collectors.toSet());
        assertEquals(Set.of("a", "b"), ids);
        MetricsSnapshot m = p.metrics().snapshot();
        assertTrue(m.stage("sample/a").dropped() > 0, m.format());
        assertTrue(m.stage("sample/b").dropped() > 0, m.format());
        assertEquals(20, m.stage("model").out(), m.format());
        assertTrue(m.stage("model").latency().count() >= 20, m.format());
        assertTrue(m.stage("model").latency().p50Ms() >= 1.5, m.format()); // the 2 ms of "GPU work"
    }

    @Test
    void backpressuredSubscriberGetsFreshFramesAndCancelReleasesEverything() {
        VlmPipeline<Frame> p = VlmPipeline.builder()
                .source(SourceInput.live("cam", every("cam", Duration.ofMillis(1))))
                .frames();
        AtomicLong seq = new AtomicLong();
        AtomicLong droppedWhenTaken = new AtomicLong();
        StepVerifier.create(p.flux(), 0)
                .expectSubscription()
                // no demand yet: wait (bounded) until the source has replaced at least 5 pending frames
                .then(() -> awaitCondition(() -> p.metrics().stage("fan-in/cam").dropped() >= 5, Duration.ofSeconds(30)))
                .thenRequest(1)
                // read the counter when the frame arrives: the source thread keeps evicting (and counting) newer
                // frames concurrently, but every frame older than this one was counted before this one was queued
                .assertNext(f -> { droppedWhenTaken.set(p.metrics().stage("fan-in/cam").dropped()); seq.set(f.sequence()); f.close(); })
                .thenCancel()
                .verify(Duration.ofSeconds(30));
        assertTrue(seq.get() >= 5, "got frame #" + seq + " after 5 newer frames replaced older ones");
        // no demand before: frames 0..seq-1 were all replaced, and counted before frame #seq could be taken
        assertTrue(droppedWhenTaken.get() >= seq.get(), "dropped=" + droppedWhenTaken + " counted before frame #" + seq + " arrived");
    }

    @Test
    void modelErrorsPropagateAndReleaseFrames() {
        VlmPipeline<String> p = VlmPipeline.builder()
                .source(new SourceInput("file", Flux.range(0, 50).map(i -> frames.gray("file", i, i, 0)), false))
                .gpu(GpuSchedulers.forDevice(0))
                .model(in -> in.map(f -> {
                    try (f) {
                        if (f.sequence() == 3) throw new IllegalStateException("CUDA error 700 in decode step");
                        return "ok";
                    }
                }));
        StepVerifier.create(p.flux())
                .expectNext("ok", "ok", "ok")
                .verifyErrorMessage("CUDA error 700 in decode step");
        assertEquals(1, p.metrics().stage("model").errors());
    }

    @Test
    void losslessFileSourceThroughSamplingDeliversExactlyTheSampledFrames() {
        VlmPipeline<Long> p = VlmPipeline.builder()
                .source(new SourceInput("file", Flux.range(0, 100).map(i -> frames.gray("file", i, i * 40_000_000L, 0)), false))
                .every("1s") // 25 fps timestamps
                .model(in -> in.map(f -> { f.close(); return f.sequence(); }));
        StepVerifier.create(p.flux(), 0)
                .thenRequest(2).expectNext(0L, 25L)
                .thenRequest(10).expectNext(50L, 75L)
                .verifyComplete();
    }

    @Test
    void meteredCountsDropsThroughTheDiscardHookAndMeasuresLatency() {
        AtomicLong clock = new AtomicLong();
        StageMetrics m = new StageMetrics("m");
        Flux.range(0, 10).map(i -> frames.gray("a", i, i, 0))
                .transform(Stages.metered(m, (Flux<Frame> in) -> in.filter(f -> f.sequence() % 2 == 0)
                        .doOnNext(f -> clock.addAndGet(5_000_000)), clock::get))
                .doOnDiscard(Frame.class, Frame::close)
                .doOnNext(Frame::close)
                .blockLast();
        assertEquals(10, m.in());
        assertEquals(5, m.out());
        assertEquals(5, m.dropped());
        assertEquals(5, m.latency().count());
        assertEquals(5.0, m.snapshot().latency().p99Ms(), 5 * 0.035);
    }

    /** Real GStreamer test sources (videotestsrc) through sampling and fan-in, as the CLI will run them. */
    @Test
    void realGStreamerSourcesThroughSamplingAndFanIn() {
        PipelineMetrics metrics = new PipelineMetrics();
        String config = """
                {"sources": [{"uri": "test:ball?fps=30", "id": "ball", "width": 160, "height": 120},
                             {"uri": "test:snow?fps=30", "id": "snow", "width": 160, "height": 120, "format": "NV12", "every": "scene:0.05"}],
                 "sampling": {"every": "100ms"}, "model": {"dir": "demos/models/shapes-vl"}}""";
        PipelineConfig c = PipelineConfig.parse(config, "inline");
        VlmPipeline<String> p = VlmPipeline.builder()
                .config(c, s -> Sources.parse(s.uri(), new SourceOptions(s.width(), s.height(), s.pixelFormat())))
                .metrics(metrics)
                .gpu(GpuSchedulers.forDevice(0))
                .model(in -> in.map(f -> {
                    try (f) {
                        GpuSchedulers.assertOnGpuThread(0);
                        String id = f.sourceId().startsWith("test:ball") ? "ball" : f.sourceId().startsWith("test:snow") ? "snow" : f.sourceId();
                        return id + " " + f.width() + "x" + f.height() + " " + f.format();
                    }
                }));
        List<String> out = p.flux().take(8).collectList().block(Duration.ofSeconds(20));
        assertNotNull(out);
        assertTrue(out.contains("ball 160x120 RGB"), out.toString());
        assertTrue(out.contains("snow 160x120 NV12"), out.toString());
        MetricsSnapshot m = metrics.snapshot();
        assertTrue(m.stage("sample/ball").dropped() > 0, m.format()); // 30 fps sampled at 10 fps
        assertEquals(0, m.stage("sample/snow").dropped(), m.format()); // noise: every frame is a new scene
    }

    @Test
    void builderChecksItsArguments() {
        assertThrows(IllegalStateException.class, () -> VlmPipeline.builder().frames());
        var e = assertThrows(IllegalArgumentException.class, () -> VlmPipeline.builder()
                .source(SourceInput.live("x", Flux.never())).source(SourceInput.live("x", Flux.never())).frames());
        assertTrue(e.getMessage().contains("duplicate source id 'x'"));
        assertThrows(IllegalArgumentException.class, () -> VlmPipeline.builder().every("fast"));
    }

    private static void sleep(long ms) {
        try { Thread.sleep(ms); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
    }

    /** Polls {@code condition} until it holds; fails after {@code timeout}. */
    private static void awaitCondition(java.util.function.BooleanSupplier condition, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("condition not reached within " + timeout);
            Thread.onSpinWait();
            java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
        }
    }
}
