package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.runtime.EncoderCacheStats;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.pipeline.watch.WatchPolicy;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static io.vlmflux.pipeline.caption.CaptionTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Alerts on the embedded demo model over GStreamer's bouncing ball: "Where is the shape?" answered with one of the
 * nine regions of its 3x3 grid (a choice constraint), so the watch raises an event whenever the model's idea of the
 * ball's region changes, and "Is there a white circle?" (yes/no), which holds "yes" for the whole run. The ground truth
 * is the ball's centroid measured on each frame's pixels before the frame goes to the model.
 */
class WatchStageTest {
    static final int W = 320, H = 240;   // shared with WatchGpuTest
    static final List<String> REGIONS = List.of("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right");
    static final Alert WHERE = new Alert("where", "Where is the shape?", new ConstraintSpec.Choice(REGIONS), WatchPolicy.DEFAULT.withAgree(2), 8);
    static final Alert CIRCLE = new Alert("circle", "Is there a white circle?", new ConstraintSpec.Choice(List.of("yes", "no")),
            WatchPolicy.DEFAULT.withAgree(1), 4);
    static VlmRuntime model;

    @BeforeAll static void load() { model = VlmRuntime.load(SHAPES, RuntimeOptions.defaults().withBackend(Backend.CPU)); }

    @AfterAll static void close() { model.close(); }

    /** x of the centroid of bright pixels (the ball), as a fraction of the width. */
    static double ballX(Frame f) {
        long sum = 0, n = 0;
        var d = f.data();
        for (int y = 0; y < f.height(); y++)
            for (int x = 0; x < f.width(); x++) {
                int r = d.get(ValueLayout.JAVA_BYTE, (long) y * f.stride(0) + 3L * x) & 0xff;
                if (r > 128) { sum += x; n++; }
            }
        return n == 0 ? Double.NaN : (double) sum / n / f.width();
    }

    @Test void theBallEnteringTheLeftRaisesAnEventAndTwoAlertsShareOneEncodingPerFrame() {
        Map<Long, Double> truth = new ConcurrentHashMap<>();
        Tap tap = new Tap();
        EncoderCacheStats before = model.encoderCacheStats();
        List<Event> events = Sources.parse("test:ball?live=false&num-buffers=180", new SourceOptions(W, H, PixelFormat.RGB)).frames()
                .transform(tap::apply)
                .transform(Stages.sample("6f"))
                .doOnNext(f -> truth.put(f.sequence(), ballX(f)))
                .transform(Stages.watch(model, List.of(WHERE, CIRCLE), CaptionOptions.Backpressure.LOSSLESS))
                .collectList().block(Duration.ofSeconds(240));
        EncoderCacheStats after = model.encoderCacheStats();
        assertNotNull(events);
        events.forEach(e -> System.out.println(e + " x=" + e.evidence().stream().map(v -> String.format("%.2f", truth.get(v.sequence()))).toList()
                + " p=" + e.confidence()));

        assertEquals(30, truth.size(), "frames 0, 6, ..., 174");
        long encodes = (after.hits() + after.misses()) - (before.hits() + before.misses());
        assertEquals(truth.size(), encodes, "one vision encoding per frame for both alerts");
        assertEquals(0, tap.open(), "every frame closed");

        List<Event> circle = events.stream().filter(e -> e.watch().equals("circle")).toList();
        assertEquals(Event.Kind.CHANGED, circle.getFirst().kind());
        assertEquals("yes", circle.getFirst().answer());
        assertEquals(1, circle.size(), "the white circle is always there: the alert holds 'yes' " + circle);

        List<Event> where1 = events.stream().filter(e -> e.watch().equals("where")).toList();
        assertTrue(where1.stream().allMatch(e -> e.kind() == Event.Kind.CHANGED), where1.toString());
        assertTrue(where1.size() >= 3, "the ball moves: several changes of region, got " + where1);
        for (Event e : where1) {
            assertTrue(REGIONS.contains(e.answer()), e.answer());
            assertEquals(2, e.evidence().size(), "two agreeing answers confirm a change");
            assertTrue(e.confidence() > 0 && e.confidence() <= 1, e.toString());
            assertTrue(e.evidence().stream().allMatch(v -> v.answer().equals(e.answer())));
        }
        // the region asked about: the ball in the left part of the picture
        List<Event> left = where1.stream().filter(e -> e.answer().endsWith("left")).toList();
        assertFalse(left.isEmpty(), "the ball enters the left region: an event names it, got " + where1);
        for (Event e : left)
            for (Event.Evidence v : e.evidence())
                assertTrue(truth.get(v.sequence()) < 0.5, "the model said '" + e.answer() + "' for frame " + v.sequence() + " whose ball is at x="
                        + truth.get(v.sequence()));
    }
}
