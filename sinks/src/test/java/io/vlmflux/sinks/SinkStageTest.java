package io.vlmflux.sinks;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.sources.SourceEvent;
import org.junit.jupiter.api.Test;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.test.StepVerifier;
import reactor.test.scheduler.VirtualTimeScheduler;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The stage's flow control on its own: a sink whose acknowledgements the test gives (the brokers themselves are
 * in KafkaSinkTest and MqttSinkTest), in virtual time where timing matters.
 */
class SinkStageTest {
    /** Records what it is sent; acknowledges at once or when the test says. */
    static final class ManualSink extends RecordSink {
        final List<SinkRecord> got = new CopyOnWriteArrayList<>();
        final Queue<Sinks.Empty<Void>> open = new ConcurrentLinkedQueue<>();
        final boolean autoAck;

        ManualSink(int maxInFlight, boolean autoAck) {
            super("manual", null, maxInFlight);
            this.autoAck = autoAck;
        }

        @Override protected Mono<Void> send(SinkRecord r) {
            got.add(r);
            if (autoAck) return Mono.empty();
            Sinks.Empty<Void> s = Sinks.empty();
            open.add(s);
            return s.asMono();
        }

        int ackAll() {
            int n = 0;
            for (Sinks.Empty<Void> s; (s = open.poll()) != null; n++) s.tryEmitEmpty();
            return n;
        }

        List<String> types() { return got.stream().map(SinkRecord::type).toList(); }

        @Override public void close(Duration timeout) {}
    }

    @Test
    void unacknowledgedRecordsStopTheRequestsUpstream() {
        ManualSink sink = new ManualSink(4, false);
        SinkStage stage = new SinkStage(List.of(sink), null, null, null, null, false, null);
        AtomicLong emitted = new AtomicLong();
        List<Caption> passed = new CopyOnWriteArrayList<>();
        Disposable d = Flux.range(0, 1000).map(i -> TestCaptions.caption("cam", i)).doOnNext(c -> emitted.incrementAndGet())
                .transform(stage).subscribe(passed::add);
        assertEquals(4, sink.got.size(), "only maxInFlight records are sent before acknowledgements");
        assertEquals(4, sink.maxInFlightSeen());
        assertTrue(emitted.get() <= 32 + 4, "upstream emitted " + emitted.get() + " with nothing acknowledged");
        assertEquals(0, passed.size());
        while (sink.ackAll() > 0) { }
        assertEquals(1000, passed.size());
        for (int i = 0; i < 1000; i++) assertEquals(i, passed.get(i).frame().sequence());
        assertEquals(1001, sink.got.size(), "1000 captions and the final status");
        assertTrue(sink.maxInFlightSeen() <= 4);
        d.dispose();
    }

    @Test
    void alertEventsAreRecordsWithTheSameFlowControl() throws Exception {
        ManualSink sink = new ManualSink(2, false);
        SinkStage stage = new SinkStage(List.of(sink), null, null, null, null, false, null);
        List<io.vlmflux.pipeline.watch.Event> passed = new CopyOnWriteArrayList<>();
        var kinds = io.vlmflux.pipeline.watch.Event.Kind.values();
        Disposable d = Flux.range(0, 20).map(i -> new io.vlmflux.pipeline.watch.Event("door? yes|no", "cam", kinds[i % kinds.length],
                        i % 4 == 3 ? null : (i % 2 == 0 ? "yes" : "no"), i == 0 ? null : "no", i % 4 == 3 ? null : -0.1, i % 4 == 3 ? null : Math.exp(-0.1),
                        List.of(new io.vlmflux.pipeline.watch.Event.Evidence(i, i * 40L, i % 4 == 3 ? null : "yes", -0.1)), 1_764_921_600_000L + i,
                        i % 4 == 3 ? "boom" : null))
                .transform(stage.alerts()).subscribe(passed::add);
        assertEquals(2, sink.got.size(), "only maxInFlight records before acknowledgements");
        assertEquals(0, passed.size());
        while (sink.ackAll() > 0) { }
        assertEquals(20, passed.size());
        for (int i = 0; i < 20; i++) assertEquals(1_764_921_600_000L + i, passed.get(i).atMillis(), "in order");
        assertEquals(21, sink.got.size(), "20 alerts and the final status");
        SchemaCheck schema = SchemaCheck.records();
        for (SinkRecord r : sink.got) assertEquals(List.of(), schema.check(r.json()), r.json());
        var first = SchemaCheck.JSON.readTree(sink.got.get(0).json());
        assertEquals("event", first.get("type").asText());
        assertEquals("alert", first.get("event").asText());
        assertEquals("door? yes|no", first.get("watch").asText());
        assertEquals("changed", first.get("kind").asText());
        assertEquals("door? yes|no: yes", first.get("message").asText());
        assertEquals("2025-12-05T08:00:00Z", first.get("event_time").asText());
        assertFalse(first.has("previous"), "null fields are left out");
        var error = SchemaCheck.JSON.readTree(sink.got.get(3).json());
        assertEquals("error", error.get("kind").asText());
        assertEquals("boom", error.get("error").asText());
        assertFalse(error.get("evidence").get(0).has("answer"));
        assertEquals("status", sink.got.get(20).type());
        d.dispose();
    }

    @Test
    void statusRecordsComeEveryIntervalAndOnceAtTheEnd() throws Exception {
        VirtualTimeScheduler vts = VirtualTimeScheduler.create();
        ManualSink sink = new ManualSink(8, true);
        SinkStage stage = new SinkStage(List.of(sink), Duration.ofSeconds(5), vts, null, "p", false, null).sources(List.of("cam"));
        StepVerifier.withVirtualTime(() -> Flux.interval(Duration.ofSeconds(3), vts).take(4).map(i -> TestCaptions.caption("cam", i)).transform(stage), () -> vts, Long.MAX_VALUE)
                .thenAwait(Duration.ofSeconds(12))
                .expectNextCount(4)
                .verifyComplete();
        // t=3 caption, 5 status, 6, 9 captions, 10 status, 12 caption, then the final status
        assertEquals(List.of("caption", "status", "caption", "caption", "status", "caption", "status"), sink.types());
        JsonNode second = SchemaCheck.JSON.readTree(sink.got.get(4).json());
        assertEquals("up", second.get("state").asText());
        assertEquals(3, second.get("captions").asLong());
        assertEquals(2, second.get("last_seq").asLong());
        JsonNode last = SchemaCheck.JSON.readTree(sink.got.get(6).json());
        assertEquals("stopped", last.get("state").asText());
        assertEquals(4, last.get("captions").asLong());
        SchemaCheck schema = SchemaCheck.records();
        for (SinkRecord r : sink.got) assertEquals(List.of(), schema.check(r.json()), r.json());
    }

    @Test
    void eventsGoAlongsideAndSetTheStateInStatusRecords() throws Exception {
        ManualSink sink = new ManualSink(8, true);
        SinkStage stage = new SinkStage(List.of(sink), null, null, null, null, false, null);
        stage.event(new SourceEvent(SourceEvent.Type.SOURCE_DOWN, "gate", Instant.parse("2026-01-01T00:00:00Z"), 0, "stalled"));
        stage.event(new SourceEvent(SourceEvent.Type.SOURCE_RETRY, "gate", Instant.parse("2026-01-01T00:00:01Z"), 1, "in 1 s"));
        StepVerifier.create(Flux.<Caption>empty().transform(stage)).verifyComplete();
        assertEquals(List.of("event", "event", "status"), sink.types().stream().sorted().toList());
        SinkRecord status = sink.got.stream().filter(r -> r.type().equals("status")).findFirst().orElseThrow();
        assertEquals("stopped", SchemaCheck.JSON.readTree(status.json()).get("state").asText());
        SinkRecord retry = sink.got.stream().filter(r -> r.json().contains("source_retry")).findFirst().orElseThrow();
        JsonNode j = SchemaCheck.JSON.readTree(retry.json());
        assertEquals(1, j.get("attempt").asInt());
        assertEquals("2026-01-01T00:00:01Z", j.get("event_time").asText());
        assertEquals("gate", retry.source());
    }

    @Test
    void narrationsAndRepliesGoAlongsideAsSchemaV2Records() throws Exception {
        ManualSink sink = new ManualSink(8, true);
        SinkStage stage = new SinkStage(List.of(sink), null, null, null, null, false, null);
        Instant t = Instant.parse("2026-01-01T00:00:02Z");
        Records.Window w = new Records.Window(4, 0, 3500);
        stage.record(Records.narration("gate", "What changed?", "the circle moved", "stop", w, 35.123, 120.0, t));
        stage.record(Records.reply("gate", "q-1", "What shape?", "a circle", "length", w, -1, -1, 412, t));
        stage.record(Records.reply("gate", "q-2", "What shape?", "a circle", "stop", null, 220, 7333, 95, t));
        StepVerifier.create(Flux.<Caption>empty().transform(stage)).verifyComplete();
        assertEquals(List.of("narration", "reply", "reply", "status"), sink.types().stream().sorted().toList());   // side records: alongside, in their order
        SchemaCheck v2 = SchemaCheck.records();
        for (SinkRecord r : sink.got) {
            assertEquals(List.of(), v2.check(r.json()), r.json());
            assertEquals("gate", r.source());
        }
        List<SinkRecord> mine = sink.got.stream().filter(r -> !r.type().equals("status")).toList();
        JsonNode n = SchemaCheck.JSON.readTree(mine.get(0).json());
        assertEquals("vlmflux.record/2", n.get("schema").asText());
        assertEquals(3500, n.get("window").get("end_ms").asLong());
        assertEquals(35.12, n.get("ttft_ms").asDouble());
        JsonNode overWindow = SchemaCheck.JSON.readTree(mine.get(1).json()), overFrame = SchemaCheck.JSON.readTree(mine.get(2).json());
        assertEquals("window", overWindow.get("over").asText());
        assertFalse(overWindow.has("seq"));
        assertEquals("frame", overFrame.get("over").asText());
        assertEquals(220, overFrame.get("seq").asLong());
        assertFalse(overFrame.has("window"));
        assertThrows(IllegalArgumentException.class, () -> new Records.Window(0, 0, 0), "a window span has video");
    }

    @Test
    void aFailingPipelineSendsWhatItHadThenFails() {
        ManualSink sink = new ManualSink(8, true);
        SinkStage stage = new SinkStage(List.of(sink), null, null, null, null, false, null);
        StepVerifier.create(Flux.concat(Flux.just(TestCaptions.caption("cam", 0), TestCaptions.caption("cam", 1)),
                        Flux.<Caption>error(new IllegalStateException("source failed"))).transform(stage))
                .expectNextCount(2)
                .verifyErrorMessage("source failed");
        assertEquals(List.of("caption", "caption", "status"), sink.types());
    }

    @Test
    void aRecordNoSinkAcknowledgesIsDroppedAndCounted() {
        RecordSink failing = new RecordSink("failing", null, 2) {
            @Override protected Mono<Void> send(SinkRecord r) { return Mono.error(new IllegalStateException("broker refused")); }
            @Override public void close(Duration timeout) {}
        };
        SinkStage stage = new SinkStage(List.of(failing), null, null, null, null, false, null);
        StepVerifier.create(Flux.range(0, 5).map(i -> TestCaptions.caption("cam", i)).transform(stage))
                .expectNextCount(5)   // the pipeline goes on
                .verifyComplete();
        assertEquals(6, failing.metrics().dropped());
        assertEquals(0, failing.metrics().out());
        assertEquals(0, failing.inFlight());
    }
}
