package io.vlmflux.llm.runtime;

import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Answers of several live sessions on one runtime decode in shared batched steps ({@link LiveBatch}): four sessions
 * (different windows, different questions) answering at once give exactly the greedy tokens each gives alone, and the
 * runtime's decode counters show steps that held all four answers.
 */
class LiveSessionBatchTest {
    static final String[] QUESTIONS = {"What moves?", "Where is the ball?", "What changed?", "Describe the video."};

    static List<Integer> tokens(Flux<TokenEvent> answer) {
        return answer.map(TokenEvent::tokenId).collectList().block(Duration.ofMinutes(2));
    }

    @Test void fourConcurrentAnswersEqualTheirSoloAnswersAndShareDecodeSteps() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, LiveSessionTest.CPU)) {
            checkConcurrent(rt, dir);
        }
    }

    /** Four sessions of {@code rt} on the fixture in {@code dir}: together == alone, and steps held all four answers. */
    static void checkConcurrent(VlmRuntime rt, Path dir) {
        {
            List<LiveSession> sessions = new ArrayList<>();
            List<List<Frame>> gs = LiveSessionTest.groups(dir);
            for (int k = 0; k < 4; k++) {
                LiveSession s = LiveSession.open(rt, LiveSession.Options.defaults().withFps(LiveSessionTest.FPS).withWindow(Duration.ofSeconds(1 + k)));
                sessions.add(s);
            }
            // session k gets groups 0..k (copies: append owns its frames)
            for (int k = 0; k < 4; k++)
                for (int g = 0; g <= k; g++) sessions.get(k).appendBlocking(copy(gs.get(g)));
            gs.forEach(g -> g.forEach(Frame::close));
            int max = 10;
            int[] lengths = sessions.stream().mapToInt(s -> s.window().cacheLength()).toArray();
            List<List<Integer>> alone = new ArrayList<>();
            for (int k = 0; k < 4; k++) alone.add(tokens(sessions.get(k).ask(QUESTIONS[k], max)));
            LiveSession.DecodeStats before = LiveSession.decodeStats(rt);
            assertEquals(0, before.multiSteps(), "answers one after the other never share a step");

            // all four at once: subscribed from the compute thread, so every prefill runs before the first decode tick
            AtomicReference<List<List<Integer>>> together = new AtomicReference<>();
            Mono.fromCallable(() -> Flux.range(0, 4)
                            .flatMapSequential(k -> sessions.get(k).ask(QUESTIONS[k], max).map(TokenEvent::tokenId).collectList(), 4))
                    .subscribeOn(rt.scheduler())
                    .flatMap(f -> f.collectList())
                    .doOnNext(together::set)
                    .block(Duration.ofMinutes(2));
            assertEquals(alone, together.get(), "batched greedy answers equal the solo ones");
            LiveSession.DecodeStats after = LiveSession.decodeStats(rt);
            assertEquals(4, after.maxBatch(), "a decode step held all four answers");
            assertTrue(after.multiSteps() > 0);
            long decodedTogether = after.tokens() - before.tokens();
            assertEquals(before.tokens(), decodedTogether, "the same tokens were decoded as alone");
            assertTrue(after.steps() - before.steps() < decodedTogether, "fewer decode calls than tokens: " + (after.steps() - before.steps()) + " vs " + decodedTogether);
            for (int k = 0; k < 4; k++) assertEquals(lengths[k], sessions.get(k).window().cacheLength(), "answer " + k + " left the cache");
            sessions.forEach(LiveSession::close);
        }
    }

    /** A cancelled member leaves the batch; the others go on; its cache is as before the question. */
    @Test void cancellingOneBatchedAnswerLeavesTheOthers() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, LiveSessionTest.CPU)) {
            LiveSession a = LiveSession.open(rt, LiveSession.Options.defaults().withFps(LiveSessionTest.FPS));
            LiveSession b = LiveSession.open(rt, LiveSession.Options.defaults().withFps(LiveSessionTest.FPS));
            List<List<Frame>> gs = LiveSessionTest.groups(dir);
            a.appendBlocking(copy(gs.get(0)));
            b.appendBlocking(copy(gs.get(1)));
            gs.forEach(g -> g.forEach(Frame::close));
            int la = a.window().cacheLength();
            List<Integer> bAlone = tokens(b.ask(QUESTIONS[1], 8));
            StepVerifier.create(Flux.merge(a.ask(QUESTIONS[0], 8).take(2).map(e -> "a"), b.ask(QUESTIONS[1], 8).map(e -> "b")))
                    .expectNextCount(2 + bAlone.size())
                    .verifyComplete();
            assertEquals(la, a.window().cacheLength(), "the cancelled answer left a's cache");
            assertEquals(bAlone, tokens(b.ask(QUESTIONS[1], 8)), "b is as before");
            a.close();
            b.close();
        }
    }

    static List<Frame> copy(List<Frame> g) {
        List<Frame> out = new ArrayList<>();
        for (Frame f : g) out.add(LiveSessionTest.withPts(f, f.ptsNanos()));
        return out;
    }
}
