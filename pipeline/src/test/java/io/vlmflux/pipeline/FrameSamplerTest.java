package io.vlmflux.pipeline;

import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

class FrameSamplerTest {
    final TestFrames frames = new TestFrames();

    @AfterEach
    void noLeak() {
        assertEquals(0, frames.leaked(), "frames built but never closed");
    }

    private Flux<Frame> grays(String src, int n, long ptsStepNanos) {
        return Flux.range(0, n).map(i -> frames.gray(src, i, ptsStepNanos < 0 ? -1 : i * ptsStepNanos, 0));
    }

    private static List<Long> seqsOf(Flux<Frame> f) {
        List<Long> out = new ArrayList<>();
        f.doOnNext(fr -> { out.add(fr.sequence()); fr.close(); }).blockLast();
        return out;
    }

    @Test
    void everyNFramesKeepsFirstAndEveryNth() {
        StageMetrics m = new StageMetrics("sample");
        assertEquals(List.of(0L, 3L, 6L, 9L), seqsOf(grays("a", 11, 1).transform(Stages.sample(SamplingPolicy.everyFrames(3), m))));
        assertEquals(11, m.in());
        assertEquals(4, m.out());
        assertEquals(7, m.dropped());
    }

    @Test
    void intervalUsesPtsWithJitterTolerance() {
        // 30 fps timestamps as GStreamer writes them for 29.97 would drift; 33_333_333 ns * 30 < 1 s must still count.
        assertEquals(List.of(0L, 30L, 60L, 90L), seqsOf(grays("a", 100, 33_333_333).transform(Stages.sample("1s"))));
        assertEquals(List.of(0L, 15L, 30L), seqsOf(grays("a", 31, 33_333_333).transform(Stages.sample("2fps"))));
    }

    @Test
    void intervalStateIsPerSource() {
        Flux<Frame> mixed = Flux.range(0, 40).map(i -> frames.gray(i % 2 == 0 ? "a" : "b", i / 2, (i / 2) * 100_000_000L, 0));
        List<String> kept = new ArrayList<>();
        mixed.transform(Stages.sample("1s")).doOnNext(f -> { kept.add(f.sourceId() + f.sequence()); f.close(); }).blockLast();
        assertEquals(List.of("a0", "b0", "a10", "b10"), kept);
    }

    @Test
    void intervalFallsBackToArrivalTimeInVirtualTime() {
        // No pts: one frame every 100 ms of (virtual) arrival time, sampled at 500 ms.
        StepVerifier.withVirtualTime(() -> Flux.interval(Duration.ofMillis(100)).take(20)
                        .map(i -> frames.gray("cam", i, -1, 0))
                        .transform(Stages.sample("500ms"))
                        .map(f -> { long s = f.sequence(); f.close(); return s; }))
                .expectSubscription()
                .thenAwait(Duration.ofSeconds(3))
                .expectNext(0L, 5L, 10L, 15L)
                .verifyComplete();
    }

    @ParameterizedTest
    @EnumSource(PixelFormat.class)
    void sceneChangeWorksForEveryFormat(PixelFormat fmt) {
        // Odd sizes and padded strides: the thumbnail must read planes through offsets and strides.
        List<Frame> in = List.of(
                frames.solid(fmt, 63, 47, 5, "c", 0, 0, 40, -1),
                frames.solid(fmt, 63, 47, 5, "c", 1, 1, 41, -1),    // noise-level change: dropped
                frames.solid(fmt, 63, 47, 5, "c", 2, 2, 40, 240),   // bright square over a quarter: kept
                frames.solid(fmt, 63, 47, 5, "c", 3, 3, 40, 240),   // same: dropped
                frames.solid(fmt, 63, 47, 5, "c", 4, 4, 40, -1),    // square gone: kept
                frames.solid(fmt, 32, 24, 0, "c", 5, 5, 40, -1));   // new resolution: kept
        StageMetrics m = new StageMetrics("scene");
        assertEquals(List.of(0L, 2L, 4L, 5L), seqsOf(Flux.fromIterable(in).transform(Stages.sample(SamplingPolicy.sceneChange(0.1), m))));
        assertEquals(2, m.dropped());
    }

    @Test
    void sceneScoreIsMeanAbsoluteLumaDifference() {
        try (Frame a = frames.solid(PixelFormat.RGB, 64, 64, 0, "x", 0, 0, 0, -1);
             Frame b = frames.solid(PixelFormat.RGB, 64, 64, 0, "x", 1, 0, 0, 255)) {
            double d = FrameSampler.Thumbnail.of(a).difference(FrameSampler.Thumbnail.of(b));
            assertEquals(0.25, d, 1e-9); // a quarter of the image went from 0 to 255
        }
    }

    @Test
    void combinedPolicyNeedsEveryPart() {
        // Alternating bright/dark frames (a scene change every frame) at 10 fps, but at most one per second.
        Flux<Frame> f = Flux.range(0, 25).map(i -> frames.solid(PixelFormat.GRAY8, 16, 16, 0, "a", i, i * 100_000_000L, i % 2 == 0 ? 0 : 255, -1));
        assertEquals(List.of(0L, 11L, 22L), seqsOf(f.transform(Stages.sample("scene:0.5+1s"))));
    }

    @Test
    void backpressureRequestsReplacementForDroppedFrames() {
        AtomicInteger requested = new AtomicInteger();
        Flux<Frame> src = grays("a", 100, 1).doOnRequest(n -> requested.addAndGet((int) Math.min(n, 1000)));
        StepVerifier.create(src.transform(Stages.sample("10f")).doOnNext(Frame::close).map(Frame::sequence), 0)
                .expectSubscription()
                .expectNoEvent(Duration.ofMillis(10))
                .thenRequest(1).expectNext(0L)
                .thenRequest(2).expectNext(10L, 20L)
                .thenCancel()
                .verify();
        assertTrue(requested.get() <= 25, "requested " + requested.get());
    }

    @Test
    void errorsPropagateAndCancelReleases() {
        StepVerifier.create(grays("a", 5, 1).concatWith(Flux.error(new IllegalStateException("camera unplugged")))
                        .transform(Stages.sample("2f")).doOnNext(Frame::close).map(Frame::sequence))
                .expectNext(0L, 2L, 4L)
                .verifyErrorMessage("camera unplugged");
        StepVerifier.create(grays("a", 1000, 1).transform(Stages.sample("3f")).doOnNext(Frame::close).take(5).map(Frame::sequence))
                .expectNext(0L, 3L, 6L, 9L, 12L)
                .verifyComplete();
    }

    @Test
    void droppedFramesReachTheDiscardHookClosed() {
        List<Boolean> seen = new ArrayList<>();
        grays("a", 6, 1).transform(Stages.sample("3f"))
                .doOnDiscard(Frame.class, f -> seen.add(f.isReleased()))
                .doOnNext(Frame::close).blockLast();
        assertEquals(List.of(true, true, true, true), seen);
    }
}
