package io.vlmflux.pipeline.live;

import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

class HeldFramesTest {
    final AtomicInteger releases = new AtomicInteger();

    Frame frame(int i) {
        Frame g = Images.fromRgb(new byte[4 * 4 * 3], 4, 4);
        return Frame.builder().format(g.format()).size(4, 4).data(g.data()).pts(i).sequence(i).sourceId("t").releaser(releases::incrementAndGet).build();
    }

    @Test void endClosesWhatWasNeitherHandedOffNorClosedAndOnlyThat() {
        HeldFrames h = new HeldFrames();
        List<Frame> all = new ArrayList<>();
        for (int i = 0; i < 6; i++) all.add(h.hold(frame(i)));
        all.get(0).close();                                  // an operator dropped it
        assertTrue(h.handOff(List.of(all.get(1), all.get(2))));   // the session owns these now
        assertEquals(3, h.open());
        h.end();
        assertEquals(4, releases.get(), "frame 0 by its dropper, 3..5 by end(); each once");
        assertFalse(all.get(1).isReleased() || all.get(2).isReleased(), "handed-off frames are the session's to close");
        h.end();
        assertEquals(4, releases.get(), "end() is idempotent");
    }

    @Test void afterEndAHeldFrameIsClosedAtOnceAndAHandOffIsRefused() {
        HeldFrames h = new HeldFrames();
        Frame kept = h.hold(frame(0));
        h.end();
        assertTrue(kept.isReleased());
        Frame late = h.hold(frame(1));
        assertTrue(late.isReleased());
        assertFalse(h.handOff(List.of(late)), "the group must not reach the session after the run ended");
    }

    /**
     * The race HeldFrames exists for: frames emitted into {@code Flux.mergePriority} while the subscriber cancels from
     * another thread. reactor-core 3.7's ordered merge then sometimes neither delivers nor discards an item (its drain
     * loop clears its queues without the discard hook when it sees the cancel; {@code Flux.merge} loses none in the same
     * harness). Whatever it loses, the ledger's end() closes: every frame ends released. The count of frames the ledger
     * had to close is printed (how many depends on the interleaving; a standalone harness lost an item in 23% of
     * 20,000 races with reactor-core 3.7.9).
     */
    @Test void whatTheOrderedMergeLosesOnACancelRaceTheLedgerCloses() throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(2);
        int rescued = 0;
        try {
            for (int run = 0; run < 2000; run++) {
                final int spin = run % 40;
                HeldFrames held = new HeldFrames();
                List<Frame> made = new ArrayList<>();
                reactor.core.publisher.Sinks.Many<Frame> src = reactor.core.publisher.Sinks.many().unicast().onBackpressureBuffer();
                AtomicReference<org.reactivestreams.Subscription> sub = new AtomicReference<>();
                reactor.core.publisher.Flux.mergePriority(1, java.util.Comparator.comparingLong(Frame::ptsNanos), src.asFlux(), reactor.core.publisher.Flux.<Frame>never())
                        .doOnDiscard(Frame.class, Frame::close)
                        .subscribe(new reactor.core.publisher.BaseSubscriber<Frame>() {
                            @Override protected void hookOnSubscribe(org.reactivestreams.Subscription s) { sub.set(s); request(1); }
                            @Override protected void hookOnNext(Frame f) {
                                if (held.handOff(List.of(f))) f.close();   // the consumer owns it now
                                request(1);
                            }
                        });
                CountDownLatch go = new CountDownLatch(1);
                Future<?> emit = ex.submit(() -> {
                    go.await();
                    for (int i = 0; i < 20; i++) {
                        Frame f = frame(i);
                        synchronized (made) { made.add(f); }
                        if (src.tryEmitNext(held.hold(f)).isFailure()) f.close();
                    }
                    return null;
                });
                Future<?> cancel = ex.submit(() -> {
                    go.await();
                    for (int s = 0; s < spin; s++) Thread.onSpinWait();
                    sub.get().cancel();
                    return null;
                });
                go.countDown();
                emit.get();
                cancel.get();
                rescued += held.open();
                held.end();
                synchronized (made) {
                    for (Frame f : made) assertTrue(f.isReleased(), "run " + run + ": " + f + " left open");
                }
            }
        } finally {
            ex.shutdownNow();
        }
        System.err.println("HeldFramesTest: the ledger closed " + rescued + " frame(s) that the ordered merge neither delivered nor discarded");
    }

    @Test void closedFramesLeaveTheLedgerSoALongRunStaysSmall() {
        HeldFrames h = new HeldFrames();
        for (int i = 0; i < 100_000; i++) h.hold(frame(i)).close();
        assertEquals(0, h.open());
        assertTrue(h.size() <= 128, "closed frames are pruned, " + h.size() + " kept");
        Frame last = h.hold(frame(-1));
        h.end();
        assertTrue(last.isReleased());
        assertEquals(100_001, releases.get());
    }
}
