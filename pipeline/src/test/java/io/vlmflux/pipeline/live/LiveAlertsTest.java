package io.vlmflux.pipeline.live;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.pipeline.watch.Observation;
import io.vlmflux.pipeline.watch.WatchPolicy;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Alerts over a live session's window on the embedded demo model (shapes-vl) and GStreamer's bouncing ball, not live.
 * shapes-vl only knows "Describe the image.", and its captions name the ball's position: a regex constraint cuts the
 * answer to that phrase (as in WatchStageTest). What this shows: constraint and logprob reach the window's answers, the
 * checks run on the video-time grid, question and answer leave the cache, the events follow the policy. It does not
 * show that the model understands the video (it was trained on single images).
 */
class LiveAlertsTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    static final Path SHAPES = ROOT.resolve("demos/models/shapes-vl");
    static final String POSITION = "a white circle (at|in) the (top left|top right|bottom left|bottom right|top|bottom|left|right|center)";
    static final List<String> SHAPE = List.of("a white circle", "a red square", "vertical color bars");
    static VlmRuntime model;

    @BeforeAll static void load() { model = VlmRuntime.load(SHAPES, RuntimeOptions.defaults().withBackend(Backend.CPU)); }

    @AfterAll static void close() { if (model != null) model.close(); }

    static Flux<Frame> ball(int frames) {
        return Sources.parse("test:ball?live=false&fps=2&num-buffers=" + frames, new SourceOptions(112, 112, PixelFormat.RGB)).frames();
    }

    @Test void theWindowAnswererPassesConstraintAndLogprobThroughAndLeavesTheCacheAsItWas() {
        Alert where = new Alert("where", "Describe the image.", new ConstraintSpec.Regex(POSITION), WatchPolicy.DEFAULT, 24);
        Alert what = new Alert("what", "Describe the image.", new ConstraintSpec.Choice(SHAPE), WatchPolicy.DEFAULT, 8);
        LiveWindowAnswerer answerer = new LiveWindowAnswerer(model, List.of(where, what));
        try (LiveSession session = LiveSession.open(model, LiveSession.Options.defaults().withFps(2))) {
            for (List<Frame> g : ball(4).buffer(session.framesPerGroup()).collectList().block(Duration.ofSeconds(60))) session.appendBlocking(g);
            LiveSession.Window before = session.window();
            assertEquals(2, before.groups());
            List<Observation> obs = answerer.answer(new LiveWindowAnswerer.Check(session, before, "ball")).block(Duration.ofSeconds(120));
            System.out.println("window answers: " + obs);
            assertNotNull(obs);
            assertEquals(2, obs.size());
            assertFalse(obs.get(0).failed(), obs.toString());
            assertTrue(obs.get(0).answer().matches(POSITION), obs.get(0).answer());
            assertTrue(SHAPE.contains(obs.get(1).answer()), obs.get(1).answer());
            for (Observation o : obs) assertTrue(Double.isFinite(o.logprob()) && o.logprob() <= 0, "a summed log-probability: " + o);
            // the same question asked on the session directly with the compiled controls: the same text and the same summed logprob
            var events = session.ask("Describe the image.", 24, model.controls(where.constraint(), 1)).collectList().block(Duration.ofSeconds(60));
            assertEquals(obs.get(0).answer(), events.stream().map(e -> e.textDelta()).reduce("", String::concat).strip());
            assertTrue(events.stream().allMatch(e -> e.logprobs() != null), "every token carries its logprob");
            assertEquals(obs.get(0).logprob(), events.stream().mapToDouble(e -> e.logprobs().chosen()).sum(), 1e-6);
            // a one-option choice forces the text even where the model would say something else: the constraint decides
            Alert sure = new Alert("sure", "Describe the image.", new ConstraintSpec.Choice(List.of("a red square")), WatchPolicy.DEFAULT, 8);
            Observation forced = new LiveWindowAnswerer(model, List.of(sure)).answer(new LiveWindowAnswerer.Check(session, before, "ball"))
                    .block(Duration.ofSeconds(60)).getFirst();
            assertEquals("a red square", forced.answer());
            assertTrue(Double.isFinite(forced.logprob()) && forced.logprob() <= 0, forced.toString());
            assertEquals(before.cacheLength(), session.window().cacheLength(), "question and answer left the cache");
            assertEquals(before.groups(), session.window().groups());
            assertEquals(List.of(new io.vlmflux.sources.FrameInfo("ball", 1, before.endPts(), 0, 0, null, "window")),
                    answerer.frames(new LiveWindowAnswerer.Check(session, before, "ball")));
        }
    }

    @Test void alertsRunOnTheVideoTimeGridAndPrintEventsWithTheConstrainedAnswers() {
        Alert where = new Alert("where", "Describe the image.", new ConstraintSpec.Regex(POSITION), WatchPolicy.DEFAULT.withAgree(1), 24);
        LiveSession.Options so = LiveSession.Options.defaults().withFps(2).withWindow(Duration.ofSeconds(2)).withMaxAnswerTokens(8);
        LiveVideo live = LiveVideo.on(model, new LiveVideo.Options(so, null, "What changed?", 0)).withAlerts(List.of(where), Duration.ofSeconds(2));
        List<LiveVideo.Output> out = live.watch(ball(24), Flux.never()).collectList().block(Duration.ofSeconds(300));   // 12 groups of 1 s
        assertNotNull(out);
        out.forEach(o -> System.out.println(o.event() != null ? o.event() : o.answer()));
        assertTrue(out.stream().allMatch(o -> o.event() != null), "no questions, no narration: only events");
        List<Event> events = out.stream().map(LiveVideo.Output::event).toList();
        assertFalse(events.isEmpty());
        assertEquals(Event.Kind.CHANGED, events.getFirst().kind());
        assertNull(events.getFirst().previous());
        long lastPts = -1;
        for (Event e : events) {
            assertEquals(Event.Kind.CHANGED, e.kind(), e.toString());
            assertTrue(e.answer().matches(POSITION), e.answer());
            assertTrue(e.confidence() > 0 && e.confidence() <= 1, e.toString());
            Event.Evidence v = e.evidence().getFirst();
            // checks after groups 0, 2, 4, ... (each group 1 s): the window ends on the 2 s grid after the first
            assertEquals(0, v.sequence() % 2, "checked after an even group: " + e);
            assertTrue(v.ptsMillis() > lastPts, "evidence in video order: " + events);
            lastPts = v.ptsMillis();
        }
        for (int i = 1; i < events.size(); i++) {
            assertNotEquals(events.get(i - 1).answer(), events.get(i).answer(), "a change each time: " + events);
            assertEquals(events.get(i - 1).answer(), events.get(i).previous());
        }
    }
}
