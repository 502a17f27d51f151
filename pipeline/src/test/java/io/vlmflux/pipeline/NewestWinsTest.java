package io.vlmflux.pipeline;

import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;
import reactor.test.publisher.TestPublisher;
import reactor.test.util.RaceTestUtils;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

class NewestWinsTest {
    final TestFrames frames = new TestFrames();

    @AfterEach
    void noLeak() {
        assertEquals(0, frames.leaked(), "frames built but never closed");
    }

    @Test
    void keepsOnlyTheNewestWhileThereIsNoDemand() {
        StageMetrics m = new StageMetrics("latest");
        StepVerifier.create(Flux.range(0, 10).map(i -> frames.gray("a", i, i, 0)).transform(Stages.newestWins(m))
                        .doOnNext(Frame::close).map(Frame::sequence), 0)
                .expectSubscription()
                .expectNoEvent(Duration.ofMillis(5))
                .thenRequest(1)
                .expectNext(9L)
                .verifyComplete();
        assertEquals(9, m.dropped());
    }

    @Test
    void deliversDirectlyWhenThereIsDemandAndDropsPendingOnCancel() {
        TestPublisher<Frame> pub = TestPublisher.create();
        StageMetrics m = new StageMetrics("latest");
        StepVerifier.create(pub.flux().transform(Stages.newestWins(m)).doOnNext(Frame::close).map(Frame::sequence), 0)
                .expectSubscription()
                .then(() -> pub.assertMinRequested(Long.MAX_VALUE))
                .then(() -> pub.next(frames.gray("a", 0, 0, 0), frames.gray("a", 1, 1, 0)))
                .thenRequest(1)
                .expectNext(1L)
                .thenRequest(1)
                .then(() -> pub.next(frames.gray("a", 2, 2, 0)))
                .expectNext(2L)
                .then(() -> pub.next(frames.gray("a", 3, 3, 0)))
                .thenCancel()
                .verify();
        pub.assertCancelled();
        assertEquals(2, m.dropped()); // #0 replaced, #3 pending at cancel
    }

    @Test
    void errorDropsThePendingFrameAndIsDeliveredAtOnce() {
        TestPublisher<Frame> pub = TestPublisher.create();
        StepVerifier.create(pub.flux().transform(Stages.newestWins()).doOnNext(Frame::close), 0)
                .expectSubscription()
                .then(() -> pub.next(frames.gray("a", 0, 0, 0)))
                .then(() -> pub.error(new IllegalStateException("rtsp://cam/1: connection reset")))
                .verifyErrorMessage("rtsp://cam/1: connection reset");
    }

    @Test
    void completionWaitsForThePendingFrame() {
        TestPublisher<Frame> pub = TestPublisher.create();
        StepVerifier.create(pub.flux().transform(Stages.newestWins()).doOnNext(Frame::close).map(Frame::sequence), 0)
                .expectSubscription()
                .then(() -> pub.next(frames.gray("a", 7, 0, 0)).complete())
                .expectNoEvent(Duration.ofMillis(5))
                .thenRequest(1)
                .expectNext(7L)
                .verifyComplete();
    }

    /** A slow consumer on another thread: every frame is either delivered (and closed there) or dropped here. */
    @Test
    void slowConsumerAcrossThreadsLosesNothingUnaccounted() {
        StageMetrics m = new StageMetrics("latest");
        AtomicLong delivered = new AtomicLong();
        Flux.range(0, 20_000).map(i -> frames.gray("a", i, i, 0)).subscribeOn(Schedulers.parallel())
                .transform(Stages.newestWins(m))
                .publishOn(Schedulers.single(), 1)
                .doOnNext(f -> { delivered.incrementAndGet(); f.close(); if (f.sequence() % 1000 == 0) sleepQuietly(); })
                .doOnDiscard(Frame.class, Frame::close) // the publishOn queue at completion/cancel
                .blockLast(Duration.ofSeconds(20));
        assertEquals(20_000, delivered.get() + m.dropped(), "delivered " + delivered + " dropped " + m.dropped());
        assertTrue(m.dropped() > 0);
    }

    private static void sleepQuietly() {
        try { Thread.sleep(1); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
    }

    /** Raw upstream that lets the test call onNext/onError itself, racing the subscriber's request/cancel. */
    static final class ManualSource extends Flux<Frame> {
        final AtomicReference<CoreSubscriber<? super Frame>> sub = new AtomicReference<>();
        volatile boolean cancelled;

        @Override
        public void subscribe(CoreSubscriber<? super Frame> actual) {
            sub.set(actual);
            actual.onSubscribe(new Subscription() {
                public void request(long n) {}
                public void cancel() { cancelled = true; }
            });
        }
    }

    /** Closes what it receives; requests on demand of the test. */
    static final class ClosingSubscriber extends BaseSubscriber<Frame> {
        final AtomicLong received = new AtomicLong();
        @Override protected void hookOnSubscribe(Subscription s) {}
        @Override protected void hookOnNext(Frame f) { received.incrementAndGet(); f.close(); }
    }

    @Test
    void racingOnNextRequestAndCancelNeverLeaks() {
        for (int round = 0; round < 2_000; round++) {
            StageMetrics m = new StageMetrics("latest");
            ManualSource src = new ManualSource();
            ClosingSubscriber down = new ClosingSubscriber();
            src.transform(Stages.newestWins(m)).subscribe(down);
            CoreSubscriber<? super Frame> up = src.sub.get();
            int r = round;
            up.onNext(frames.gray("a", 0, 0, 0));
            RaceTestUtils.race(
                    () -> {
                        up.onNext(frames.gray("a", 1, 1, 0));
                        up.onNext(frames.gray("a", 2, 2, 0));
                        if (r % 3 == 0) up.onError(new IllegalStateException("boom"));
                        else if (r % 3 == 1) up.onComplete();
                        else up.onNext(frames.gray("a", 3, 3, 0));
                    },
                    () -> down.request(1),
                    down::cancel);
            long created = r % 3 == 2 ? 4 : 3;
            assertEquals(created, down.received.get() + m.dropped(), "round " + round + ": each frame is delivered or dropped exactly once");
            assertEquals(0, frames.leaked(), "round " + round);
        }
    }

    /**
     * One slot per source, served in turn: a camera that pushes 10 frames for every frame of another must not take
     * the slot from it (with a single slot the fast source won 10 of 11 deliveries here).
     */
    @Test
    void perSourceSlotsAreServedRoundRobinSoAFastSourceCannotStarveASlowOne() {
        TestPublisher<Frame> pub = TestPublisher.create();
        AtomicLong dropped = new AtomicLong();
        java.util.List<String> served = new java.util.ArrayList<>();
        StepVerifier.create(pub.flux().transform(Stages.newestWinsPerKey(Frame::sourceId, (Frame f) -> { f.close(); dropped.incrementAndGet(); }))
                        .doOnNext(f -> { served.add(f.sourceId() + f.sequence()); f.close(); }), 0)
                .expectSubscription()
                .then(() -> {
                    for (int round = 0; round < 3; round++) {
                        for (int i = 0; i < 10; i++) pub.next(frames.gray("fast", round * 10 + i, 0, 0));
                        pub.next(frames.gray("slow", round, 0, 0));
                    }
                })
                .thenRequest(1).expectNextCount(1)
                .thenRequest(1).expectNextCount(1)
                .then(() -> { pub.next(frames.gray("fast", 100, 0, 0)); pub.next(frames.gray("slow", 100, 0, 0)); })
                .thenRequest(2).expectNextCount(2)
                .thenCancel()
                .verify();
        // newest of each source, alternating: fast29, slow2, then fast100, slow100
        assertEquals(java.util.List.of("fast29", "slow2", "fast100", "slow100"), served);
        assertEquals(29 + 2, dropped.get());
    }

    @Test
    void perSourceSlotsKeepTheNewestOfEachAndDropTheRestAtCancel() {
        TestPublisher<Frame> pub = TestPublisher.create();
        AtomicLong dropped = new AtomicLong();
        StepVerifier.create(pub.flux().transform(Stages.newestWinsPerKey(Frame::sourceId, (Frame f) -> { f.close(); dropped.incrementAndGet(); }))
                        .doOnNext(Frame::close).map(f -> f.sourceId() + f.sequence()), 0)
                .expectSubscription()
                .then(() -> pub.next(frames.gray("a", 0, 0, 0), frames.gray("b", 0, 0, 0), frames.gray("a", 1, 0, 0), frames.gray("c", 0, 0, 0)))
                .thenRequest(1)
                .expectNext("a1")
                .thenCancel()
                .verify();
        assertEquals(3, dropped.get());   // a0 replaced, b0 and c0 pending at cancel
    }
}
