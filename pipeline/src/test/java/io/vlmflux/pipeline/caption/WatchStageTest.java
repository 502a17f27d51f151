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
 * Alerts on the embedded demo model over GStreamer's bouncing ball. shapes-vl only knows "Describe the image.", and its
 * captions name the ball's position ("a white circle at the top left ..."): a regex constraint cuts the answer to that
 * position, so the watch raises an event whenever the model's idea of the ball's region changes. The ground truth is
 * the ball's centroid measured on each frame's pixels before the frame goes to the model.
 */
class WatchStageTest {
    static final int W = 320, H = 240;   // shared with WatchGpuTest
    static final String POSITION = "a white circle (at|in) the (top left|top right|bottom left|bottom right|top|bottom|left|right|center)";
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
        Alert where = new Alert("where", "Describe the image.", new ConstraintSpec.Regex(POSITION), WatchPolicy.DEFAULT.withAgree(2), 24);
        Alert what = new Alert("what", "Describe the image.", new ConstraintSpec.Choice(List.of("a white circle", "a red square", "vertical color bars")),
                WatchPolicy.DEFAULT.withAgree(1), 8);
        EncoderCacheStats before = model.encoderCacheStats();
        List<Event> events = Sources.parse("test:ball?live=false&num-buffers=180", new SourceOptions(W, H, PixelFormat.RGB)).frames()
                .transform(tap::apply)
                .transform(Stages.sample("6f"))
                .doOnNext(f -> truth.put(f.sequence(), ballX(f)))
                .transform(Stages.watch(model, List.of(where, what), CaptionOptions.Backpressure.LOSSLESS))
                .collectList().block(Duration.ofSeconds(240));
        EncoderCacheStats after = model.encoderCacheStats();
        assertNotNull(events);
        events.forEach(e -> System.out.println(e + " x=" + e.evidence().stream().map(v -> String.format("%.2f", truth.get(v.sequence()))).toList()
                + " p=" + e.confidence()));

        assertEquals(30, truth.size(), "frames 0, 6, ..., 174");
        long encodes = (after.hits() + after.misses()) - (before.hits() + before.misses());
        assertEquals(truth.size(), encodes, "one vision encoding per frame for both alerts");
        assertEquals(0, tap.open(), "every frame closed");

        List<Event> what1 = events.stream().filter(e -> e.watch().equals("what")).toList();
        assertEquals(Event.Kind.CHANGED, what1.getFirst().kind());
        assertEquals("a white circle", what1.getFirst().answer());
        assertEquals(1, what1.size(), "the shape never changes: " + what1);

        List<Event> where1 = events.stream().filter(e -> e.watch().equals("where")).toList();
        assertTrue(where1.stream().allMatch(e -> e.kind() == Event.Kind.CHANGED), where1.toString());
        assertTrue(where1.size() >= 3, "the ball moves: several changes of region, got " + where1);
        for (Event e : where1) {
            assertTrue(e.answer().matches(POSITION), e.answer());
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
