package io.vlmflux.pipeline.live;

import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

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
