package io.vlmflux.pipeline.live;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.LiveDefaults;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The embedded demo model follows GStreamer's ball in a live session: 40 s of {@code test:ball} (lossless, 30 fps,
 * 320x240) sampled at 2 fps and appended in groups of two frames to a session with the model folder's live settings
 * ({@code vlmflux_live.json}: 4 s of video, re-prefilled when it slides, since the model learned from clips alone;
 * sliding in place, whose keys and values attended to groups since evicted, answers about half the windows right);
 * after every group from the second on, "Which way is the shape moving?" is asked over the window, and on most windows the answer
 * is the direction the ball took between the window's first and last frame. The truth is videotestsrc's own path for
 * its frame numbers (x = r + (0.5 + 0.5 sin(2 pi n / 200)) (w - 2r), y likewise with sqrt(2) n, r = 20); windows whose
 * motion is diagonal or between still and moving are left out, as in the model's training.
 */
class DemoModelMotionTest {
    static final Path SHAPES = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize().resolve("demos/models/shapes-vl");
    static final String Q = "Which way is the shape moving?";

    @Test void motionAnswersFollowTheBall() { check(Backend.CPU); }

    /** The test on {@code backend}: the same frames, session settings and bounds. */
    static void check(Backend backend) {
        List<Frame> frames = Sources.parse("test:ball?live=false&fps=30&num-buffers=1200", new SourceOptions(320, 240, PixelFormat.RGB)).frames()
                .transform(Stages.sample("15f")).collectList().block(Duration.ofSeconds(60));
        assertNotNull(frames);
        assertEquals(80, frames.size(), "frames 0, 15, ..., 1185");
        int judged = 0, right = 0;
        List<String> seen = new ArrayList<>();
        try (VlmRuntime model = VlmRuntime.load(SHAPES, RuntimeOptions.defaults().withBackend(backend));
             LiveSession s = LiveSession.open(model, LiveDefaults.of(SHAPES).applyTo(LiveSession.Options.defaults().withFps(2).withMaxAnswerTokens(4)))) {
            for (int g = 0; g < frames.size(); g += 2) {
                s.appendBlocking(List.of(frames.get(g), frames.get(g + 1)));
                LiveSession.Window w = s.window();
                if (w.groups() < 2) continue;   // 2 frames: shorter than any clip the model learned from
                String answer = s.ask(Q, 4).map(TokenEvent::textDelta).reduce("", String::concat).block();
                long first = Math.round(w.startPts() * 30 / 1e9), last = Math.round((w.endPts() / 1e9 - 0.5) * 30);
                String truth = direction(ballX(last) - ballX(first), ballY(last) - ballY(first));
                seen.add(String.format("frames %d..%d (%d groups): '%s' (truth %s)", first, last, w.groups(), answer, truth));
                if (truth == null) continue;
                judged++;
                if (truth.equals(answer.strip())) right++;
            }
        }
        System.out.println(backend + ":\n" + String.join("\n", seen));
        assertTrue(judged >= 20, "enough clear windows: " + seen);
        assertEquals(Duration.ofSeconds(4), LiveDefaults.of(SHAPES).window());
        assertTrue(right >= 0.7 * judged, right + " of " + judged + " windows right: " + String.join("\n", seen));
    }

    static double ballX(long n) { return (20 + (0.5 + 0.5 * Math.sin(2 * Math.PI * n / 200.0)) * (320 - 40)) / 320; }

    static double ballY(long n) { return (20 + (0.5 + 0.5 * Math.sin(2 * Math.PI * Math.sqrt(2) * n / 200.0)) * (240 - 40)) / 240; }

    /** The training script's label of a net displacement (fractions of the frame), null when ambiguous. */
    static String direction(double dx, double dy) {
        double ax = Math.abs(dx), ay = Math.abs(dy), still = 0.035;
        if (Math.max(ax, ay) < still) return "not moving";
        if (Math.max(ax, ay) < 2 * still) return null;
        if (ax >= 1.25 * ay) return dx > 0 ? "right" : "left";
        if (ay >= 1.25 * ax) return dy > 0 ? "down" : "up";
        return null;
    }
}
