package io.vlmflux.pipeline.watch;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.sources.FrameInfo;
import io.vlmflux.sources.PixelFormat;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The event semantics of the watch operator, pinned with a scripted answerer (the one place a fake model is right: it
 * says exactly which answer each frame gets) and virtual time: one input a second, answers that flip, flicker, stall
 * and fail.
 */
class WatchOperatorTest {
    static final Duration T = Duration.ofSeconds(20);   // wall-clock guard: a broken expectation fails instead of hanging
    /** An input: the frame it stands for and the scripted answers (one per watch; null: the answerer fails). */
    public record Tick(FrameInfo info, List<String> answers) {}

    static FrameInfo frame(String source, long seq) {
        return new FrameInfo(source, seq, seq * 1_000_000_000L, 8, 8, PixelFormat.GRAY8);
    }

    /** Answers the script; "!" fails that question, "!!" fails the whole input, "…" never answers (a stalled model). */
    public static final class Scripted implements Answerer<Tick> {
        final AtomicInteger calls = new AtomicInteger();
        final AtomicBoolean cancelled = new AtomicBoolean();

        @Override public List<FrameInfo> frames(Tick t) { return List.of(t.info()); }

        @Override public Mono<List<Observation>> answer(Tick t) {
            calls.incrementAndGet();
            if (t.answers().contains("…")) return Mono.<List<Observation>>never().doOnCancel(() -> cancelled.set(true));
            if (t.answers().contains("!!")) return Mono.error(new IllegalStateException("model crashed on " + t.info().sequence()));
            List<Observation> out = new ArrayList<>();
            for (String a : t.answers()) out.add(a.equals("!") ? Observation.failed("no answer for " + t.info().sequence()) : Observation.of(a, -0.25));
            return Mono.just(out);
        }
    }

    /** One input a second (seq 0 at t=0 s), answers from {@code script} (one answer each, single watch). */
    public static Flux<Tick> ticks(String source, String... script) {
        return Flux.interval(Duration.ZERO, Duration.ofSeconds(1)).onBackpressureBuffer().take(script.length)
                .map(i -> new Tick(frame(source, i), List.of(script[i.intValue()])));
    }

    public static Function<Flux<Tick>, Flux<Event>> watch(WatchPolicy p, Scripted s) {
        return Watches.operator(List.of(new Watch("q", p)), s);
    }

    static List<Long> seqs(Event e) { return e.evidence().stream().map(Event.Evidence::sequence).toList(); }

    @Test void aChangeNeedsKAgreeingAnswersAndAFlickerIsIgnored() {
        Scripted s = new Scripted();
        WatchPolicy k2 = WatchPolicy.DEFAULT.withAgree(2);
        StepVerifier.withVirtualTime(() -> ticks("cam", "no", "no", "yes", "no", "yes", "yes", "yes", "no", "no").transform(watch(k2, s)))
                .thenAwait(Duration.ofSeconds(20))
                .assertNext(e -> {
                    assertEquals(Event.Kind.CHANGED, e.kind());
                    assertEquals("no", e.answer());
                    assertNull(e.previous(), "the first confirmed answer has no previous one");
                    assertEquals(List.of(0L, 1L), seqs(e));
                    assertEquals(1000, e.atMillis(), "decided at the second answer (t=1 s)");
                    assertEquals("cam", e.source());
                    assertEquals(-0.25, e.logprob(), 1e-9);
                    assertEquals(Math.exp(-0.25), e.confidence(), 1e-9);
                })
                .assertNext(e -> {   // "yes" at seq 2 alone flickered; seq 4, 5 agree
                    assertEquals("yes", e.answer());
                    assertEquals("no", e.previous());
                    assertEquals(List.of(4L, 5L), seqs(e));
                    assertEquals(5000, e.atMillis());
                })
                .assertNext(e -> {
                    assertEquals("no", e.answer());
                    assertEquals(List.of(7L, 8L), seqs(e));
                })
                .thenAwait(Duration.ofSeconds(10))
                .expectComplete().verify(T);
        assertEquals(9, s.calls.get());
    }

    @Test void withKOfOneEveryFlipIsAnEvent() {
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "b", "b", "a").transform(watch(WatchPolicy.DEFAULT.withAgree(1), new Scripted())))
                .thenAwait(Duration.ofSeconds(10))
                .expectNextMatches(e -> e.answer().equals("a") && e.atMillis() == 0)
                .expectNextMatches(e -> e.answer().equals("b") && e.previous().equals("a") && seqs(e).equals(List.of(1L)))
                .expectNextMatches(e -> e.answer().equals("a") && e.previous().equals("b"))
                .thenAwait(Duration.ofSeconds(5))
                .expectComplete().verify(T);
    }

    @Test void debounceConfirmsOnlyWhatHeldLongEnough() {
        // K=1, debounce 2.5 s: "a" from t=0 is confirmed by the timer at 2.5 s; "b" at 4 s flickers back at 5 s;
        // "b" from 6 s on holds until 8.5 s
        WatchPolicy p = WatchPolicy.DEFAULT.withAgree(1).withDebounce(Duration.ofMillis(2500));
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "a", "a", "a", "b", "a", "b", "b", "b", "b").transform(watch(p, new Scripted())))
                .thenAwait(Duration.ofMillis(2498))
                .expectNoEvent(Duration.ofMillis(1))
                .thenAwait(Duration.ofMillis(1))
                .assertNext(e -> {
                    assertEquals("a", e.answer());
                    assertEquals(2500, e.atMillis(), "the debounce timer, not the next answer, confirms it");
                    assertEquals(List.of(0L, 1L, 2L), seqs(e), "the answers it rests on");
                })
                .thenAwait(Duration.ofSeconds(6))
                .assertNext(e -> {
                    assertEquals("b", e.answer());
                    assertEquals(8500, e.atMillis());
                    assertEquals(List.of(6L, 7L, 8L), seqs(e));
                })
                .thenAwait(Duration.ofSeconds(5))
                .expectComplete().verify(T);
    }

    @Test void debounceTimerIsCancelledWhenTheStreakBreaks() {
        WatchPolicy p = WatchPolicy.DEFAULT.withAgree(1).withDebounce(Duration.ofMillis(1500));
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "b", "a", "b").transform(watch(p, new Scripted())))
                .thenAwait(Duration.ofSeconds(10))
                .expectComplete().verify(T);   // no answer held 1.5 s: nothing
    }

    @Test void minIntervalHoldsAChangeAndDropsOneThatWentBack() {
        // K=1, min 5 s: "a" at 0 (event); "b" at 1 held until 5 s, by then the answer is "c" (emitted at 5 s, previous a);
        // "a" at 6 s held until 10 s but "c" is back at 7 s: nothing at 10 s
        WatchPolicy p = WatchPolicy.DEFAULT.withAgree(1).withMinInterval(Duration.ofSeconds(5));
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "b", "b", "c", "c", "c", "a", "c", "c", "c", "c", "c").transform(watch(p, new Scripted())))
                .thenAwait(Duration.ZERO)
                .assertNext(e -> assertEquals("a", e.answer()))
                .thenAwait(Duration.ofMillis(4998))
                .expectNoEvent(Duration.ofMillis(1))
                .thenAwait(Duration.ofMillis(1))
                .assertNext(e -> {
                    assertEquals("c", e.answer());
                    assertEquals("a", e.previous(), "b was confirmed and replaced while held: never emitted");
                    assertEquals(5000, e.atMillis());
                    assertEquals(List.of(3L), seqs(e));
                })
                .thenAwait(Duration.ofSeconds(20))
                .expectComplete().verify(T);
    }

    @Test void aHeldChangeIsEmittedWhenTheInputsEnd() {
        WatchPolicy p = WatchPolicy.DEFAULT.withAgree(1).withMinInterval(Duration.ofMinutes(1));
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "b").transform(watch(p, new Scripted())))
                .thenAwait(Duration.ZERO)
                .expectNextMatches(e -> e.answer().equals("a"))
                .thenAwait(Duration.ofSeconds(2))
                .assertNext(e -> {
                    assertEquals("b", e.answer());
                    assertEquals(1000, e.atMillis(), "at completion, not a minute later");
                })
                .expectComplete().verify(T);
    }

    @Test void maxIntervalRepeatsWhileAnswersComeAndReportsAStall() {
        // K=1, max 5 s: "a" at 0 (changed), "a" at 1..3 s, then the model never answers (seq 4)
        WatchPolicy p = WatchPolicy.DEFAULT.withAgree(1).withMaxInterval(Duration.ofSeconds(5));
        Scripted s = new Scripted();
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "a", "a", "a", "…", "b").transform(watch(p, s)))
                .thenAwait(Duration.ZERO)
                .expectNextMatches(e -> e.kind() == Event.Kind.CHANGED && e.atMillis() == 0)
                .thenAwait(Duration.ofSeconds(5))
                .assertNext(e -> {
                    assertEquals(Event.Kind.REPEATED, e.kind());
                    assertEquals("a", e.answer());
                    assertEquals(5000, e.atMillis());
                    assertEquals(List.of(3L), seqs(e), "rests on the latest answer that agrees");
                })
                .thenAwait(Duration.ofSeconds(5))
                .assertNext(e -> {
                    assertEquals(Event.Kind.STALLED, e.kind());
                    assertEquals("a", e.answer(), "the last answer emitted");
                    assertEquals(List.of(), e.evidence());
                    assertNull(e.confidence());
                    assertEquals(10_000, e.atMillis());
                })
                .thenAwait(Duration.ofSeconds(5))
                .expectNextMatches(e -> e.kind() == Event.Kind.STALLED && e.atMillis() == 15_000)
                .thenCancel()
                .verify(T);
        assertEquals(5, s.calls.get(), "one input at a time: seq 5 is not asked while seq 4 hangs");
        assertTrue(s.cancelled.get(), "cancel reaches the answer in flight");
    }

    @Test void maxIntervalStaysQuietWhenAChangeCameInTime() {
        WatchPolicy p = WatchPolicy.DEFAULT.withAgree(1).withMaxInterval(Duration.ofSeconds(3));
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "a", "b", "b", "a").transform(watch(p, new Scripted())))
                .thenAwait(Duration.ofSeconds(10))
                .expectNextMatches(e -> e.answer().equals("a") && e.atMillis() == 0)
                .expectNextMatches(e -> e.answer().equals("b") && e.atMillis() == 2000)
                .expectNextMatches(e -> e.answer().equals("a") && e.atMillis() == 4000)
                .thenAwait(Duration.ofSeconds(1))
                .expectComplete().verify(T);
    }

    @Test void failedAnswersAreErrorEventsAndDoNotBreakAStreak() {
        WatchPolicy k2 = WatchPolicy.DEFAULT.withAgree(2);
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "!", "a", "!!", "b", "b").transform(watch(k2, new Scripted())))
                .thenAwait(Duration.ofSeconds(10))
                .assertNext(e -> {
                    assertEquals(Event.Kind.ERROR, e.kind());
                    assertEquals("no answer for 1", e.error());
                    assertEquals(List.of(1L), seqs(e));
                    assertNull(e.answer());
                })
                .assertNext(e -> {
                    assertEquals(Event.Kind.CHANGED, e.kind());
                    assertEquals("a", e.answer());
                    assertEquals(List.of(0L, 2L), seqs(e), "the failure between them neither counts nor breaks the streak");
                })
                .assertNext(e -> {
                    assertEquals(Event.Kind.ERROR, e.kind());
                    assertEquals("model crashed on 3", e.error(), "an answerer error fails the input, the watch goes on");
                })
                .assertNext(e -> assertEquals("b", e.answer()))
                .thenAwait(Duration.ofSeconds(3))
                .expectComplete().verify(T);
    }

    @Test void sourcesAndWatchesHaveTheirOwnState() {
        Scripted s = new Scripted();
        List<Watch> two = List.of(new Watch("person", WatchPolicy.DEFAULT.withAgree(2)), new Watch("car", WatchPolicy.DEFAULT.withAgree(1)));
        StepVerifier.withVirtualTime(() -> Flux.interval(Duration.ZERO, Duration.ofSeconds(1)).take(4)
                        .map(i -> new Tick(frame(i % 2 == 0 ? "left" : "right", i), List.of(i < 2 ? "yes" : "no", i == 3 ? "many" : "none")))
                        .transform(Watches.operator(two, s)))
                .thenAwait(Duration.ofSeconds(10))
                // t0 left: person yes(1/2), car none -> car/left; t1 right: car/right; t2 left: person no (left streak yes broken)
                .assertNext(e -> assertEquals(List.of("car", "left", "none"), List.of(e.watch(), e.source(), e.answer())))
                .assertNext(e -> assertEquals(List.of("car", "right", "none"), List.of(e.watch(), e.source(), e.answer())))
                .assertNext(e -> assertEquals(List.of("car", "right", "many"), List.of(e.watch(), e.source(), e.answer())))
                .thenAwait(Duration.ofSeconds(2))
                .expectComplete().verify(T);
        assertEquals(4, s.calls.get(), "one answerer call per input for both watches");
    }

    @Test void aSourceErrorEndsTheEventsAfterTheAnswerInFlight() {
        Flux<Tick> failing = ticks("cam", "a").concatWith(Mono.error(new IllegalStateException("camera unplugged")));
        StepVerifier.withVirtualTime(() -> failing.transform(watch(WatchPolicy.DEFAULT.withAgree(1), new Scripted())))
                .thenAwait(Duration.ofSeconds(5))
                .expectNextMatches(e -> e.answer().equals("a"))
                .expectErrorMessage("camera unplugged").verify(T);
    }

    @Test void eventsAreRequestedByTheSubscriberAndBufferedMeanwhile() {
        StepVerifier.withVirtualTime(() -> ticks("cam", "a", "b", "c").transform(watch(WatchPolicy.DEFAULT.withAgree(1), new Scripted())), 0)
                .thenAwait(Duration.ofSeconds(3))
                .expectNoEvent(Duration.ofMillis(1))
                .thenRequest(2)
                .expectNextMatches(e -> e.answer().equals("a"))
                .expectNextMatches(e -> e.answer().equals("b"))
                .thenRequest(1)
                .expectNextMatches(e -> e.answer().equals("c"))
                .expectComplete().verify(T);
    }

    @Test void eventsSerialiseAsPlainJson() throws Exception {
        Event e = new Event("q", "cam", Event.Kind.CHANGED, "yes", null, -0.5, Math.exp(-0.5),
                List.of(new Event.Evidence(3, 3000, "yes", -0.5)), 1234, null);
        JsonNode j = new ObjectMapper().readTree(new ObjectMapper().writeValueAsString(e));
        assertEquals("changed", j.get("kind").asText());
        assertEquals(3, j.get("evidence").get(0).get("sequence").asLong());
        assertEquals(e, new ObjectMapper().readValue(new ObjectMapper().writeValueAsString(e), Event.class), "reads back too");
    }

    @Test void badPoliciesAndWatchListsNameTheField() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> WatchPolicy.DEFAULT.withAgree(0)).getMessage().contains("agree"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> WatchPolicy.DEFAULT.withDebounce(Duration.ofSeconds(-1))).getMessage().contains("debounce"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> WatchPolicy.DEFAULT.withMinInterval(Duration.ofSeconds(5)).withMaxInterval(Duration.ofSeconds(2))).getMessage().contains("maxInterval"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Watches.operator(List.of(new Watch("a", null), new Watch("a", null)), new Scripted()))
                .getMessage().contains("duplicate watch name 'a'"));
        assertThrows(IllegalArgumentException.class, () -> Watches.operator(List.of(), new Scripted()));
    }
}
