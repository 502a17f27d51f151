package io.vlmflux.pipeline.live;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.test.StepVerifier;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/** LiveVideo on the cpu backend with the real tiny Qwen2-VL video checkpoint: ordering, drops, errors, reconnects, narration in virtual time. */
class LiveVideoTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    static final Path MODEL = ROOT.resolve("llm/src/test/resources/fixtures/tiny-qwen2vl-video");
    static VlmRuntime rt;

    @BeforeAll static void load() { rt = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU)); }
    @AfterAll static void close() { if (rt != null) rt.close(); }

    /** Frames 56x56 with pts {@code i * 500 ms} (2 fps), each a different colour; released frames are recorded. */
    static final class Clip {
        final List<Frame> made = new CopyOnWriteArrayList<>();
        final AtomicInteger released = new AtomicInteger();
        final CompletableFuture<Void> allReleased = new CompletableFuture<>();
        final int n;

        Clip(int n) { this.n = n; }

        Frame frame(int i, long pts) {
            byte[] rgb = new byte[56 * 56 * 3];
            for (int p = 0; p < rgb.length; p += 3) { rgb[p] = (byte) (i * 37); rgb[p + 1] = (byte) (p * 7 + i); rgb[p + 2] = (byte) (200 - i * 11); }
            Frame g = Images.fromRgb(rgb, 56, 56);
            Frame f = Frame.builder().format(g.format()).size(56, 56).data(g.data()).pts(pts).sourceId("clip").sequence(i)
                    .releaser(() -> { if (released.incrementAndGet() == n) allReleased.complete(null); }).build();
            made.add(f);
            return f;
        }

        Flux<Frame> flux() { return Flux.range(0, n).map(i -> frame(i, i * 500_000_000L)); }

        boolean allClosed() { return made.stream().allMatch(Frame::isReleased); }
    }

    static LiveVideo live(Duration window, int queued) {
        LiveSession.Options s = LiveSession.Options.defaults().withFps(2).withWindow(window).withMaxAnswerTokens(4);
        return LiveVideo.on(rt, LiveVideo.Options.defaults().withSession(s).withMaxQueuedGroups(queued));
    }

    @Test void aQuestionAfterTheGroupsIsAnsweredOverTheWindowAndTheStreamEndsWithTheSource() {
        Clip clip = new Clip(12);   // 6 groups of 1 s; window 3 s keeps 3
        Sinks.Many<Frame> frames = Sinks.many().unicast().onBackpressureBuffer();
        Flux<String> questions = Mono.fromFuture(clip.allReleased).thenMany(Flux.just("What is it?"));
        StepVerifier.create(live(Duration.ofSeconds(3), 16).run(frames.asFlux(), questions))
                .then(() -> clip.flux().subscribe(frames::tryEmitNext))
                .assertNext(a -> {
                    assertEquals(LiveVideo.LiveAnswer.Kind.ANSWER, a.kind());
                    assertEquals("What is it?", a.question());
                    assertEquals(3, a.windowGroups());
                    assertEquals(3_000_000_000L, a.windowStartPts());
                    assertEquals(6_000_000_000L, a.windowEndPts());
                    assertTrue(a.tokens() >= 1 && a.tokens() <= 4, "tokens " + a.tokens());
                    assertTrue(a.ttftMs() >= 0 && a.totalMs() >= a.ttftMs());
                    assertEquals(0, a.droppedGroups());
                })
                .then(frames::tryEmitComplete)
                .expectComplete()
                .verify(Duration.ofSeconds(60));
        assertTrue(clip.allClosed());
    }

    /** A question that comes before any video waits for the first group instead of being answered over nothing. */
    @Test void aQuestionBeforeAnyVideoWaitsForTheFirstGroup() {
        Clip clip = new Clip(4);
        Sinks.Many<Frame> frames = Sinks.many().unicast().onBackpressureBuffer();
        StepVerifier.create(live(Duration.ofSeconds(60), 16).run(frames.asFlux(), Flux.just("Early?")))
                .then(() -> clip.flux().subscribe(frames::tryEmitNext))
                .assertNext(a -> {
                    assertEquals("Early?", a.question());
                    assertTrue(a.windowGroups() >= 1, "answered over " + a.windowGroups() + " groups");
                    assertEquals(0, a.windowStartPts());
                })
                .then(frames::tryEmitComplete)
                .expectComplete()
                .verify(Duration.ofSeconds(60));
        assertTrue(clip.allClosed());
    }

    @Test void groupsArrivingWhileTheSessionIsBusyAreDroppedOldestFirstAndCounted() throws Exception {
        Clip clip = new Clip(40);   // 20 groups
        CountDownLatch hold = new CountDownLatch(1), holding = new CountDownLatch(1);
        // occupy the compute thread so that every group arrives while the session is busy
        rt.scheduler().schedule(() -> { holding.countDown(); try { hold.await(30, TimeUnit.SECONDS); } catch (InterruptedException ignored) { } });
        assertTrue(holding.await(10, TimeUnit.SECONDS));
        Sinks.Many<String> questions = Sinks.many().unicast().onBackpressureBuffer();
        CompletableFuture<LiveVideo.LiveAnswer> got = new CompletableFuture<>();
        Flux<Frame> frames = clip.flux().concatWith(Mono.fromFuture(clip.allReleased).then(Mono.fromRunnable(() -> questions.tryEmitNext("Now?")))
                .thenMany(Flux.never()));
        var sub = live(Duration.ofSeconds(60), 2).run(frames, questions.asFlux()).subscribe(got::complete, got::completeExceptionally);
        hold.countDown();
        LiveVideo.LiveAnswer a = got.get(60, TimeUnit.SECONDS);
        sub.dispose();
        // 1 group in the session's hands + 1 in the merge + 2 queued survive; the rest were dropped, oldest first
        assertTrue(a.droppedGroups() >= 15, "dropped " + a.droppedGroups());
        assertEquals(20 - a.droppedGroups(), a.windowGroups());
        assertEquals(20_000_000_000L, a.windowEndPts(), "the newest group survives");
        awaitClosed(clip);
    }

    @Test void aQuestionGoesBeforeQueuedGroups() throws Exception {
        Clip clip = new Clip(20);   // 10 groups, all arriving while the compute thread is held
        CountDownLatch hold = new CountDownLatch(1), holding = new CountDownLatch(1);
        rt.scheduler().schedule(() -> { holding.countDown(); try { hold.await(30, TimeUnit.SECONDS); } catch (InterruptedException ignored) { } });
        assertTrue(holding.await(10, TimeUnit.SECONDS));
        CompletableFuture<LiveVideo.LiveAnswer> got = new CompletableFuture<>();
        var sub = live(Duration.ofSeconds(60), 4).run(clip.flux().concatWith(Flux.never()), Flux.just("Which colour?"))
                .subscribe(got::complete, got::completeExceptionally);
        hold.countDown();
        LiveVideo.LiveAnswer a = got.get(60, TimeUnit.SECONDS);
        sub.dispose();
        // at most the append already subscribed when the compute thread was freed runs first; then the question, not
        // the 4 + 1 groups queued behind it (a plain merge served those first)
        assertTrue(a.windowGroups() <= 1, "the question waited for " + a.windowGroups() + " groups");
        awaitClosed(clip);
    }

    @Test void aCancelAtAnyMomentClosesEveryFrame() throws Exception {
        // the cancel races the appends, the queue and the ordered merge's drain on the compute thread; whatever it
        // interrupts, every frame ends closed (reactor's mergePriority loses queued items on that race: HeldFrames)
        for (int run = 0; run < 12; run++) {
            Clip clip = new Clip(16);
            int cancelAfter = 1 + run % 4;
            CountDownLatch appended = new CountDownLatch(cancelAfter);
            var sub = live(Duration.ofSeconds(60), 2).run(clip.flux().concatWith(Flux.never()), Flux.never(), x -> appended.countDown())
                    .subscribe();
            assertTrue(appended.await(30, TimeUnit.SECONDS));
            sub.dispose();
            awaitClosed(clip);
        }
    }

    @Test void aSlowSubscriberPausesTheSessionAndTheQueueDropsOldestGroups() {
        Clip clip = new Clip(20);   // 10 groups, emitted at subscription while nobody has asked for an answer yet
        StepVerifier.create(live(Duration.ofSeconds(60), 2).run(clip.flux().concatWith(Flux.never()), Flux.just("Now?")), 0)
                .expectSubscription()
                .then(() -> assertTrue(clip.released.get() >= 12, "without demand no work runs: the queue of 2 (+1 held by the merge) kept the newest, "
                        + clip.released.get() + " frames released"))
                .thenRequest(1)
                .assertNext(a -> {
                    assertEquals("Now?", a.question());
                    assertTrue(a.droppedGroups() >= 6, "dropped " + a.droppedGroups());
                })
                .thenCancel()
                .verify(Duration.ofSeconds(60));
        awaitClosed(clip);
    }

    @Test void aSourceErrorEndsTheStreamAndFreesEverything() {
        Clip clip = new Clip(4);
        Flux<Frame> frames = clip.flux().concatWith(Flux.error(new IOException("camera lost")));
        StepVerifier.create(live(Duration.ofSeconds(30), 4).run(frames, Flux.never()))
                .expectErrorMessage("camera lost")
                .verify(Duration.ofSeconds(60));
        awaitClosed(clip);
    }

    @Test void aReconnectedSourceContinuesInSessionTime() {
        Clip clip = new Clip(8);   // two connections of 4 frames, pts restarting at 0
        AtomicInteger connection = new AtomicInteger();
        Flux<Frame> frames = Flux.defer(() -> {
            int c = connection.getAndIncrement();
            Flux<Frame> conn = Flux.range(0, 4).map(i -> clip.frame(c * 4 + i, i * 500_000_000L));
            return c == 0 ? conn.concatWith(Flux.error(new IOException("reconnect"))) : conn.concatWith(Flux.never());
        }).retry(1);
        Flux<String> questions = Mono.fromFuture(clip.allReleased).thenMany(Flux.just("And now?"));
        StepVerifier.create(live(Duration.ofSeconds(60), 8).run(frames, questions))
                .assertNext(a -> {
                    assertEquals(4, a.windowGroups(), "both connections' groups are in the window");
                    assertEquals(0, a.windowStartPts());
                    assertEquals(4_000_000_000L, a.windowEndPts(), "the second connection continues after the first in session time");
                })
                .thenCancel()
                .verify(Duration.ofSeconds(60));
        awaitClosed(clip);
    }

    @Test void narrationEveryFiveSecondsInVirtualTime() {
        Clip clip = new Clip(6);   // 3 groups
        StepVerifier.withVirtualTime(() -> LiveVideo.on(rt, LiveVideo.Options.defaults()
                                .withSession(LiveSession.Options.defaults().withFps(2).withMaxAnswerTokens(3))
                                .withNarration(Duration.ofSeconds(5), "What changed?"))
                        .run(clip.flux().concatWith(Mono.fromFuture(clip.allReleased).then(Mono.empty())).concatWith(Flux.never()), Flux.never()))
                .expectSubscription()
                .then(() -> clip.allReleased.join())
                .expectNoEvent(Duration.ofSeconds(4))
                .thenAwait(Duration.ofSeconds(1))
                .assertNext(a -> {
                    assertEquals(LiveVideo.LiveAnswer.Kind.NARRATION, a.kind());
                    assertEquals("What changed?", a.question());
                    assertEquals(3, a.windowGroups());
                    assertEquals(0, a.windowStartPts());
                    assertEquals(3_000_000_000L, a.windowEndPts());
                })
                .thenAwait(Duration.ofSeconds(5))
                .assertNext(a -> assertEquals(LiveVideo.LiveAnswer.Kind.NARRATION, a.kind()))
                .thenCancel()
                .verify(Duration.ofSeconds(60));
        assertTrue(clip.allClosed());
    }

    static void awaitClosed(Clip clip) {
        try {
            clip.allReleased.get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            fail("frames left open: " + clip.made.stream().filter(f -> !f.isReleased()).count());
        }
        assertTrue(clip.allClosed());
    }
}
