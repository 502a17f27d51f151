package io.vlmflux.demos.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import reactor.core.publisher.BufferOverflowStrategy;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;

/**
 * The events of one live stream, published by its pipelines (captions, live tokens, answers, alerts, source state)
 * and delivered to any number of subscribers (SSE clients). Every event is one JSON object, the envelope
 * {@code {"type", "stream", "seq", "time_ms", ...fields}}: {@code seq} counts the stream's events from 1, so a client
 * sees gaps. Hot: a subscriber gets the events published after it subscribed.
 *
 * <p>Publishing never waits for a subscriber: each subscriber has its own queue of at most {@code capacity} events;
 * when it is full the oldest queued event is dropped and counted, and before the next event the subscriber gets is
 * a {@code {"type":"dropped", "count": N}} event saying how many it lost. Thread-safe: publish from any thread.
 */
public final class EventHub implements StreamEventSink {
    /** Event types: letters, digits and underscores, starting with a letter (e.g. {@code caption}, {@code source_down}). */
    static final Pattern TYPE = Pattern.compile("[a-z][a-z0-9_]{0,31}");
    /** Fields the envelope owns; a publisher cannot set them. */
    static final Set<String> ENVELOPE = Set.of("type", "stream", "seq", "time_ms");

    /** One rendered event. */
    public record Event(long seq, String type, String json) {}

    private final String stream;
    private final int capacity;
    private final ObjectMapper json;
    private final Sinks.Many<Event> sink = Sinks.many().multicast().directBestEffort();
    private final AtomicLong seq = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicInteger subscribers = new AtomicInteger();
    private volatile boolean closed;

    public EventHub(String stream, int capacity, ObjectMapper json) {
        if (capacity < 1) throw new IllegalArgumentException("event queue capacity must be >= 1, got " + capacity);
        this.stream = stream;
        this.capacity = capacity;
        this.json = json;
    }

    public String stream() { return stream; }

    /** A fresh object for {@link #publish}'s fields. */
    public ObjectNode fields() { return json.createObjectNode(); }

    /**
     * Publishes one event of {@code type} with {@code fields} (not modified; the envelope's own names are refused).
     * Returns the event (its seq), or null once the hub is closed.
     */
    @Override public Event publish(String type, ObjectNode fields) {
        if (type == null || !TYPE.matcher(type).matches())
            throw new IllegalArgumentException("event type '" + type + "' is not [a-z][a-z0-9_]{0,31}");
        if (fields != null) for (String f : ENVELOPE) if (fields.has(f))
            throw new IllegalArgumentException("event field '" + f + "' belongs to the envelope (type, stream, seq, time_ms)");
        synchronized (this) {   // one emitter at a time (the sink is not thread-safe), events in seq order
            if (closed) return null;
            long n = seq.incrementAndGet();
            ObjectNode o = json.createObjectNode().put("type", type).put("stream", stream).put("seq", n).put("time_ms", System.currentTimeMillis());
            if (fields != null) o.setAll(fields);
            Event e = new Event(n, type, write(o));
            sink.tryEmitNext(e);   // no subscriber: nothing to do
            return e;
        }
    }

    /** The events from now on, with the per-subscriber bound described above. Completes when the hub is closed. */
    public Flux<Event> subscribe() {
        return Flux.defer(() -> {
            // the gap is computed from the seqs this subscriber actually gets: a count kept by the overflow callback
            // (publisher's thread) could include drops of events newer than the one being emitted (drain thread)
            AtomicLong last = new AtomicLong(-1);
            return sink.asFlux()
                    .onBackpressureBuffer(capacity, e -> dropped.incrementAndGet(), BufferOverflowStrategy.DROP_OLDEST)
                    .concatMapIterable(e -> {
                        long prev = last.getAndSet(e.seq());
                        long gap = prev < 0 ? 0 : e.seq() - prev - 1;
                        return gap <= 0 ? List.of(e) : List.of(droppedEvent(gap), e);
                    }, 1)
                    .doOnSubscribe(s -> subscribers.incrementAndGet())
                    .doFinally(s -> subscribers.decrementAndGet());
        });
    }

    private Event droppedEvent(long n) {
        ObjectNode o = json.createObjectNode().put("type", "dropped").put("stream", stream).put("time_ms", System.currentTimeMillis()).put("count", n);
        return new Event(-1, "dropped", write(o));
    }

    /** Events published so far. */
    public long published() { return seq.get(); }
    /** Events dropped for slow subscribers, over all of them. */
    public long dropped() { return dropped.get(); }
    /** Subscribers now. */
    public int subscribers() { return subscribers.get(); }

    /** Completes every subscriber's flux (after what is queued for it); later publishes are ignored. */
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
            sink.tryEmitComplete();
        }
    }

    private String write(ObjectNode o) {
        try {
            return json.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize an event: " + e.getMessage(), e);
        }
    }
}
