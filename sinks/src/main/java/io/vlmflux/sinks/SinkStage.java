package io.vlmflux.sinks;

import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.config.OutputConfig;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.SourceEvent;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.UnaryOperator;

/**
 * The Kafka/MQTT outputs of a caption pipeline as one Reactor stage: {@code captions.transform(stage)} sends each
 * caption as a record to every sink and passes it on, in order, once every sink has settled it (acknowledged, or
 * given up and counted). Source events ({@link #event}) and per-source status records (every
 * {@code statusEvery}, and a last one with state {@code stopped} when the captions end) go to the sinks alongside.
 *
 * <p>Backpressure: at most {@code maxInFlight} records (the smallest of the sinks') are open at once; the stage
 * requests the next caption only when one settles, so a broker outage stalls the caption stage, whose live sources
 * then drop frames (counted by the pipeline's metrics) instead of anything growing. Events wait in a bounded queue
 * ({@value #EVENT_QUEUE} records); beyond it they are dropped and counted ({@link #sideDropped()}). Errors of the
 * captions are passed on after the open records settled. Cancel cancels the open publishes; {@link #close()} then
 * flushes what the clients hold (bounded) and releases their connections and threads. One stage serves one
 * subscription (its event queue ends with the captions).
 */
public final class SinkStage implements Function<Flux<Caption>, Flux<Caption>>, AutoCloseable {
    static final int EVENT_QUEUE = 256;

    private final List<RecordSink> sinks;
    private final int maxInFlight;
    private final Duration statusEvery;
    private final Scheduler timer;
    private final PipelineMetrics metrics;
    private final String prompt;
    private final boolean answers;
    private final UnaryOperator<String> sourceName;
    private final Sinks.Many<SinkRecord> side = Sinks.many().multicast().onBackpressureBuffer(EVENT_QUEUE, false);
    private final AtomicLong sideDropped = new AtomicLong();
    private final Map<String, SourceState> states = new ConcurrentHashMap<>();

    /**
     * @param sinks       the outputs (closed by {@link #close()})
     * @param statusEvery interval of status records; null or zero: none (the last one at the end still goes)
     * @param timer       runs the status interval (virtual time in tests); null: Reactor's parallel scheduler
     * @param metrics     the pipeline's metrics (frames in/dropped per source for status records); nullable
     * @param prompt      the prompt written into caption records; nullable
     * @param answers     records are {@code answer}s (a constrained question) rather than {@code caption}s
     * @param sourceName  maps a frame's source id to the record's {@code source}; null: as is
     */
    public SinkStage(List<RecordSink> sinks, Duration statusEvery, Scheduler timer, PipelineMetrics metrics, String prompt, boolean answers,
                     UnaryOperator<String> sourceName) {
        if (sinks.isEmpty()) throw new IllegalArgumentException("no sinks");
        this.sinks = List.copyOf(sinks);
        this.maxInFlight = sinks.stream().mapToInt(RecordSink::maxInFlight).min().orElseThrow();
        this.statusEvery = statusEvery == null || statusEvery.isZero() ? null : statusEvery;
        this.timer = timer != null ? timer : Schedulers.parallel();
        this.metrics = metrics;
        this.prompt = prompt;
        this.answers = answers;
        this.sourceName = sourceName != null ? sourceName : UnaryOperator.identity();
    }

    /**
     * The sinks {@code output} asks for ({@code output.kafka}, {@code output.mqtt}), their metrics as stages
     * {@code sink/kafka} and {@code sink/mqtt} of {@code metrics}; null when it asks for none.
     */
    public static SinkStage open(OutputConfig output, PipelineMetrics metrics, String prompt, boolean answers, UnaryOperator<String> sourceName) {
        if (!output.hasSinks()) return null;
        List<RecordSink> sinks = new ArrayList<>();
        try {
            if (output.kafka() != null) sinks.add(new KafkaSink(output.kafka(), metrics == null ? null : metrics.stage("sink/kafka")));
            if (output.mqtt() != null) sinks.add(new MqttSink(output.mqtt(), metrics == null ? null : metrics.stage("sink/mqtt")));
        } catch (RuntimeException e) {
            sinks.forEach(RecordSink::close);
            throw e;
        }
        return new SinkStage(sinks, Duration.ofMillis(output.statusEveryMs()), null, metrics, prompt, answers, sourceName);
    }

    public List<RecordSink> sinks() { return sinks; }

    /** Events and status records dropped because the side queue was full (a long outage). */
    public long sideDropped() { return sideDropped.get(); }

    /** Names sources up front so status records cover them before their first caption. */
    public SinkStage sources(Collection<String> ids) {
        for (String id : ids) state(sourceName.apply(id));
        return this;
    }

    /** A source event: sent as an {@code event} record, and it sets the source's state in status records. */
    public void event(SourceEvent e) {
        String src = sourceName.apply(e.sourceId());
        SourceState s = state(src);
        switch (e.type()) {
            case SOURCE_DOWN -> s.state = "down";
            case SOURCE_UP -> s.state = "up";
            case SOURCE_FAILED -> s.state = "failed";
            default -> { }
        }
        offer(Records.event(e, src, Instant.now()));
    }

    /**
     * Any other record of a source (e.g. serve's alert events, narrations and replies), sent alongside the captions like
     * source events: through the same bounded queue, dropped and counted ({@link #sideDropped()}) beyond it.
     */
    public void record(SinkRecord r) {
        state(r.source());
        offer(r);
    }

    private synchronized void offer(SinkRecord r) {
        Sinks.EmitResult res = side.tryEmitNext(r);
        if (res == Sinks.EmitResult.FAIL_OVERFLOW || res == Sinks.EmitResult.FAIL_ZERO_SUBSCRIBER) sideDropped.incrementAndGet();
    }

    @Override public Flux<Caption> apply(Flux<Caption> captions) {
        return through(captions, c -> {
            String src = sourceName.apply(c.frame().sourceId());
            SourceState s = state(src);
            s.captions.incrementAndGet();
            s.lastSeq = c.frame().sequence();
            return Records.caption(c, src, prompt, answers, Instant.now());
        });
    }

    /**
     * The stage for {@code caption --alert}: each watch {@link io.vlmflux.pipeline.watch.Event} is sent as an
     * {@code event} record with {@code event: alert} ({@link Records#alert}) and passed on once every sink settled it,
     * with the same flow control, source events and status records as captions (status {@code captions} stays 0).
     */
    public Function<Flux<io.vlmflux.pipeline.watch.Event>, Flux<io.vlmflux.pipeline.watch.Event>> alerts() {
        return events -> through(events, e -> {
            String src = sourceName.apply(e.source());
            state(src);
            return Records.alert(e, src, Instant.now());
        });
    }

    private <T> Flux<T> through(Flux<T> values, Function<T, SinkRecord> record) {
        return Flux.defer(() -> {
            Sinks.Empty<Void> done = Sinks.empty();
            Flux<Item> last = Flux.defer(() -> Flux.fromIterable(status("stopped"))).map(r -> new Item(r, null));
            Flux<Item> main = values
                    .map(v -> new Item(record.apply(v), v))
                    .doFinally(sig -> {
                        done.tryEmitEmpty();
                        synchronized (this) {
                            side.tryEmitComplete();   // the events queued so far still go, then the side ends
                        }
                    })
                    .onErrorResume(e -> Flux.concat(last, Flux.error(e)))
                    .concatWith(last);   // one status record per source with state "stopped"
            Flux<SinkRecord> periodic = statusEvery == null ? Flux.empty()
                    : Flux.interval(statusEvery, timer).onBackpressureDrop(t -> sideDropped.incrementAndGet()).concatMapIterable(t -> status(null), 1);
            // events and periodic status go alongside and end with the values
            Flux<Item> rest = Flux.merge(side.asFlux(), periodic.takeUntilOther(done.asMono())).map(r -> new Item(r, null));
            @SuppressWarnings("unchecked")
            Flux<T> out = Flux.mergeDelayError(32, main, rest)
                    .flatMapSequentialDelayError(this::publishAll, maxInFlight, 1)
                    .filter(i -> i.value != null)
                    .map(i -> (T) i.value);
            return out;
        });
    }

    private Mono<Item> publishAll(Item i) {
        return Flux.fromIterable(sinks).flatMap(s -> s.publish(i.record)).then(Mono.just(i));
    }

    private List<SinkRecord> status(String forcedState) {
        Instant now = Instant.now();
        long dropped = 0;
        for (RecordSink s : sinks) dropped += s.metrics().dropped();
        List<SinkRecord> out = new ArrayList<>();
        for (Map.Entry<String, SourceState> e : states.entrySet()) {
            SourceState s = e.getValue();
            out.add(Records.status(e.getKey(), forcedState != null ? forcedState : s.state, s.captions.get(), s.lastSeq,
                    counter("sample/" + e.getKey(), StageMetrics::in), counter("fan-in/" + e.getKey(), StageMetrics::dropped), dropped, now));
        }
        return out;
    }

    private long counter(String stage, java.util.function.ToLongFunction<StageMetrics> f) {
        if (metrics == null) return -1;
        for (var st : metrics.snapshot().stages())
            if (st.name().equals(stage)) return f.applyAsLong(metrics.stage(stage));
        return -1;
    }

    private SourceState state(String src) {
        return states.computeIfAbsent(Objects.requireNonNull(src), k -> new SourceState());
    }

    /** Flushes (bounded) and closes every sink. */
    @Override public void close() {
        RuntimeException first = null;
        for (RecordSink s : sinks) {
            try {
                s.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
                else first.addSuppressed(e);
            }
        }
        if (first != null) throw first;
    }

    private record Item(SinkRecord record, Object value) {}

    private static final class SourceState {
        final AtomicLong captions = new AtomicLong();
        volatile long lastSeq = -1;
        volatile String state = "up";
    }
}
