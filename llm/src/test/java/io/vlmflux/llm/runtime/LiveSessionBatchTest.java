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

    /**
     * Appends of four sessions queued at once (from the compute thread) are encoded in one tower pass and leave each
     * session exactly as appending them one by one does: same cache length and the same greedy answer.
     */
    @Test void concurrentAppendsShareOneEncoderPassAndEqualSoloAppends() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, LiveSessionTest.CPU)) {
            checkBatchedAppends(rt, dir, true);
        }
    }

    /**
     * Four sessions' appends queued at once take one encoder pass; cache lengths equal one-by-one appends; with
     * {@code exactAnswers} (cpu: batched and solo tower rows are computed alike) the greedy answers are equal too.
     */
    static void checkBatchedAppends(VlmRuntime rt, Path dir, boolean exactAnswers) {
        {
            List<List<Frame>> gs = LiveSessionTest.groups(dir);
            List<LiveSession> solo = new ArrayList<>(), together = new ArrayList<>();
            for (int k = 0; k < 4; k++) {
                solo.add(LiveSession.open(rt, LiveSession.Options.defaults().withFps(LiveSessionTest.FPS)));
                together.add(LiveSession.open(rt, LiveSession.Options.defaults().withFps(LiveSessionTest.FPS)));
            }
            for (int k = 0; k < 4; k++) solo.get(k).appendBlocking(copy(gs.get(k % gs.size())));
            LiveSession.AppendStats before = LiveSession.appendStats(rt);
            assertEquals(4, before.passes(), "appends one after the other take a pass each");
            List<LiveSession.Appended> done = Mono.fromCallable(() -> Flux.range(0, 4)
                            .flatMapSequential(k -> together.get(k).append(copy(gs.get(k % gs.size()))), 4))
                    .subscribeOn(rt.scheduler())
                    .flatMap(Flux::collectList)
                    .block(Duration.ofMinutes(2));
            gs.forEach(g -> g.forEach(Frame::close));
            LiveSession.AppendStats after = LiveSession.appendStats(rt);
            assertEquals(8, after.groups());
            assertEquals(5, after.passes(), "the four queued groups took one encoder pass");
            assertEquals(4, after.largest());
            for (int k = 0; k < 4; k++) {
                assertEquals(solo.get(k).window().cacheLength(), done.get(k).cacheLength(), "session " + k + " cache");
                List<Integer> x = tokens(solo.get(k).ask(QUESTIONS[k], 8)), y = tokens(together.get(k).ask(QUESTIONS[k], 8));
                if (exactAnswers) assertEquals(x, y, "session " + k + " answer");
                else assertFalse(y.isEmpty(), "session " + k + " answered");
            }
            solo.forEach(LiveSession::close);
            together.forEach(LiveSession::close);
        }
    }

    /** A bad group fails its own append only; the group queued beside it is appended. */
    @Test void aFailingGroupFailsOnlyItsOwnAppend() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, LiveSessionTest.CPU)) {
            List<List<Frame>> gs = LiveSessionTest.groups(dir);
            LiveSession a = LiveSession.open(rt, LiveSession.Options.defaults().withFps(LiveSessionTest.FPS));
            LiveSession b = LiveSession.open(rt, LiveSession.Options.defaults().withFps(LiveSessionTest.FPS));
            List<Frame> tooMany = new ArrayList<>(copy(gs.get(0)));
            tooMany.addAll(copy(gs.get(1)));   // more frames than a temporal group takes
            List<Object> out = Mono.fromCallable(() -> Flux.mergeSequential(
                            a.append(tooMany).map(x -> (Object) x).onErrorResume(e -> Mono.just(e)),
                            b.append(copy(gs.get(1))).map(x -> (Object) x).onErrorResume(e -> Mono.just(e))))
                    .subscribeOn(rt.scheduler())
                    .flatMap(Flux::collectList)
                    .block(Duration.ofMinutes(2));
            gs.forEach(g -> g.forEach(Frame::close));
            assertInstanceOf(IllegalArgumentException.class, out.get(0));
            assertTrue(((Exception) out.get(0)).getMessage().contains("a temporal group takes 1 to 2 frames"), ((Exception) out.get(0)).getMessage());
            assertInstanceOf(LiveSession.Appended.class, out.get(1));
            assertTrue(tooMany.stream().allMatch(Frame::isReleased), "the refused group's frames are closed");
            assertEquals(0, a.window().groups());
            assertEquals(1, b.window().groups());
            assertEquals(1, LiveSession.appendStats(rt).largest(), "the refused group never reached the encoder");
            a.close();
            b.close();
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
