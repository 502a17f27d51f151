package io.vlmflux.pipeline;

import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.sources.Frame;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;
import reactor.test.util.RaceTestUtils;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.*;

class FanInTest {
    final TestFrames frames = new TestFrames();

    @AfterEach
    void noLeak() {
        // interval sources may tick once more after cancel; the fan-in closes that frame: wait for it, bounded
        assertEquals(0, frames.awaitAllClosed(Duration.ofSeconds(10)), "frames built but never closed");
    }

    private Flux<Frame> finite(String id, int n) {
        return Flux.range(0, n).map(i -> frames.gray(id, i, i, 0));
    }

    private Flux<Frame> every(String id, Duration period) {
        return Flux.interval(period).map(i -> frames.gray(id, i, i * period.toNanos(), 0));
    }

    private static String tag(Frame f) {
        String s = f.sourceId() + f.sequence();
        f.close();
        return s;
    }

    @Test
    void roundRobinUnderBackpressureAndLosslessForFiles() {
        PipelineMetrics m = new PipelineMetrics();
        List<SourceInput> in = List.of(new SourceInput("a", finite("a", 3), false), new SourceInput("b", finite("b", 2), false),
                new SourceInput("c", finite("c", 3), false));
        StepVerifier.create(Stages.fanIn(in, FanInOptions.DEFAULT, m).map(FanInTest::tag), 0)
                .expectSubscription()
                .thenRequest(4).expectNext("a0", "b0", "c0", "a1")
                .thenRequest(2).expectNext("b1", "c1")
                .thenRequest(10).expectNext("a2", "c2")
                .verifyComplete();
        assertEquals(3, m.snapshot().stage("fan-in/a").out());
        assertEquals(0, m.snapshot().stage("fan-in/a").dropped());
    }

    @Test
    void liveSourcesKeepTheNewestAndASilentSourceStarvesNobody() {
        PipelineMetrics m = new PipelineMetrics();
        Supplier<Flux<String>> fan = () -> Stages.fanIn(List.of(
                        SourceInput.live("a", every("a", Duration.ofMillis(10))),
                        SourceInput.live("b", every("b", Duration.ofMillis(40))),
                        SourceInput.live("dead", Flux.never()),
                        SourceInput.live("bad", every("bad", Duration.ofMillis(30)).take(2)
                                .concatWith(Flux.error(new IllegalStateException("rtsp://10.0.0.9/cam: 401 Unauthorized"))))),
                FanInOptions.DEFAULT, m).map(FanInTest::tag);
        StepVerifier.withVirtualTime(fan, 0)
                .expectSubscription()
                .thenAwait(Duration.ofMillis(100))        // a: #0..#9, b: #0..#1, bad: #0,#1 then error at 60 ms
                .thenRequest(3)
                .expectNext("a9", "b1", "bad1")            // buffered frames of a failed source still come out
                .thenAwait(Duration.ofMillis(100))        // t=200: a #19, b #4 (b ticks at 40, 80, ... 200)
                .thenRequest(3)
                .expectNext("a19", "b4")
                .thenAwait(Duration.ofMillis(10))
                .expectNext("a20")
                .thenCancel()
                .verify();
        var snap = m.snapshot();
        assertEquals(1, snap.stage("fan-in/bad").errors());
        assertEquals(0, snap.stage("fan-in/dead").in());
        assertEquals(21 - 3, snap.stage("fan-in/a").dropped() + 0, snap.format()); // 21 frames made, 3 delivered, rest dropped
        assertEquals(3, snap.stage("fan-in/a").out());
    }

    @Test
    void realThreadsAtDifferentRatesShareTheOutput() {
        Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();
        Stages.fanIn(List.of(
                        SourceInput.live("fast", every("fast", Duration.ofMillis(2))),
                        SourceInput.live("mid", every("mid", Duration.ofMillis(7))),
                        SourceInput.live("slow", every("slow", Duration.ofMillis(20))),
                        SourceInput.live("dead", Flux.never())))
                .publishOn(Schedulers.single(), 1)
                .doOnNext(f -> {
                    counts.computeIfAbsent(f.sourceId(), k -> new AtomicInteger()).incrementAndGet();
                    f.close();
                    try { Thread.sleep(5); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
                })
                .doOnDiscard(Frame.class, Frame::close)
                .take(60)
                .blockLast(Duration.ofSeconds(10));
        // ~300 ms of consumption: slow makes ~15 frames, the other two share the rest round-robin.
        for (String id : List.of("fast", "mid", "slow"))
            assertTrue(counts.getOrDefault(id, new AtomicInteger()).get() >= 6, id + " starved: " + counts);
        assertNull(counts.get("dead"));
    }

    @Test
    void failFastFailsWithTheSourceIdAndCancelsTheOthers() {
        AtomicBoolean otherCancelled = new AtomicBoolean();
        FanInOptions failFast = new FanInOptions(2, true);
        StepVerifier.create(Stages.fanIn(List.of(
                                SourceInput.live("ok", every("ok", Duration.ofMillis(1)).doOnCancel(() -> otherCancelled.set(true))),
                                SourceInput.live("cam2", Flux.<Frame>error(new IllegalStateException("v4l2:///dev/video2: device busy")).delaySubscription(Duration.ofMillis(20)))),
                        failFast, null).map(FanInTest::tag), 0)
                .expectSubscription()
                .expectErrorSatisfies(e -> {
                    assertTrue(e.getMessage().contains("source 'cam2' failed"), e.getMessage());
                    assertTrue(e.getMessage().contains("device busy"), e.getMessage());
                })
                .verify(Duration.ofSeconds(5));
        assertTrue(otherCancelled.get());
    }

    @Test
    void failsOnlyWhenEverySourceFailed() {
        StepVerifier.create(Stages.fanIn(List.of(
                        SourceInput.live("x", finite("x", 1).concatWith(Flux.error(new IllegalStateException("x broke")))),
                        SourceInput.live("y", Flux.error(new IllegalStateException("y broke"))))).map(FanInTest::tag))
                .expectNext("x0")
                .expectErrorMessage("all 2 sources of the fan-in failed: 'x': x broke; 'y': y broke")
                .verify();
        StepVerifier.create(Stages.fanIn(List.of(
                        new SourceInput("x", finite("x", 2), false),
                        SourceInput.live("y", Flux.error(new IllegalStateException("y broke"))))).map(FanInTest::tag))
                .expectNext("x0", "x1")
                .verifyComplete();
    }

    @Test
    void cancelClosesBufferedFrames() {
        PipelineMetrics m = new PipelineMetrics();
        StepVerifier.create(Stages.fanIn(List.of(SourceInput.live("a", finite("a", 10)), new SourceInput("b", finite("b", 10), false)),
                        new FanInOptions(4, false), m).map(FanInTest::tag), 0)
                .expectSubscription()
                .thenRequest(1).expectNext("a6")
                .thenCancel()
                .verify();
        assertEquals(10, m.stage("fan-in/a").in());
        assertEquals(9, m.stage("fan-in/a").dropped()); // 6 pushed out by newer ones, 3 buffered at cancel
        assertEquals(4, m.stage("fan-in/b").in());      // non-live: asked for 4 only
        assertEquals(4, m.stage("fan-in/b").dropped());
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> Stages.fanIn(List.of()));
        var e = assertThrows(IllegalArgumentException.class, () -> Stages.fanIn(List.of(SourceInput.live("a", Flux.never()), SourceInput.live("a", Flux.never()))));
        assertTrue(e.getMessage().contains("duplicate source id 'a'"));
        e = assertThrows(IllegalArgumentException.class, () -> new FanInOptions(0, false));
        assertTrue(e.getMessage().contains("got 0"));
        assertThrows(IllegalArgumentException.class, () -> SourceInput.live(" ", Flux.never()));
    }

    /** Raw upstream driven by the test, racing cancellation. */
    static final class ManualSource extends Flux<Frame> {
        volatile CoreSubscriber<? super Frame> sub;

        @Override
        public void subscribe(CoreSubscriber<? super Frame> actual) {
            sub = actual;
            actual.onSubscribe(new org.reactivestreams.Subscription() {
                public void request(long n) {}
                public void cancel() {}
            });
        }
    }

    @Test
    void racingSourcesAndCancelNeverLeak() {
        for (int round = 0; round < 1_000; round++) {
            ManualSource a = new ManualSource(), b = new ManualSource();
            PipelineMetrics m = new PipelineMetrics();
            // A BaseSubscriber sees (and closes) frames even after its own cancel, as reactor's AssertSubscriber does:
            // onNext after cancel is legal, and a LambdaSubscriber would drop such a frame without discarding it.
            AtomicInteger got = new AtomicInteger();
            var d = new reactor.core.publisher.BaseSubscriber<Frame>() {
                @Override protected void hookOnSubscribe(org.reactivestreams.Subscription s) { s.request(1); }
                @Override protected void hookOnNext(Frame f) { got.incrementAndGet(); f.close(); request(1); }
                @Override protected void hookOnError(Throwable t) {}
            };
            Stages.fanIn(List.of(SourceInput.live("a", a), SourceInput.live("b", b)), new FanInOptions(2, round % 2 == 0), m).subscribe(d);
            int r = round;
            RaceTestUtils.race(
                    () -> { for (int i = 0; i < 5; i++) a.sub.onNext(frames.gray("a", i, i, 0)); },
                    () -> { for (int i = 0; i < 5; i++) b.sub.onNext(frames.gray("b", i, i, 0)); if (r % 4 == 0) b.sub.onError(new IllegalStateException("b")); },
                    d::dispose);
            long accounted = got.get() + m.stage("fan-in/a").dropped() + m.stage("fan-in/b").dropped();
            assertEquals(10, accounted, "round " + round + ": every frame delivered or dropped exactly once");
            assertEquals(0, frames.leaked(), "round " + round);
        }
    }
}
