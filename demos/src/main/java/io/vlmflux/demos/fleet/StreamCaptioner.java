package io.vlmflux.demos.fleet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.demos.serve.EventHub;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.sinks.RecordSink;
import io.vlmflux.sinks.Records;
import io.vlmflux.sinks.SinkRecord;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.Sources;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;

import java.io.IOException;
import java.time.Instant;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The camera runner of {@code vlmflux serve --fleet}: each camera Kafka assigns the node becomes a live stream of
 * the server ({@link LiveStreams#add}, captioned by the model with the same caption pipeline as serve's own streams,
 * shown on the page and in {@code GET /v1/streams}), and its events are forwarded to the fleet's events topic as
 * records of schema v1: {@code caption} events as {@code caption} records ({@code tokens} empty: the stream's events
 * carry the text, not the token ids), {@code source_*} events and {@code alert} events as {@code event} records.
 * A camera's {@code prompt} replaces the server's caption prompt for that camera.
 *
 * <p>Records of one camera are sent one at a time, in order. {@link #stop} removes the stream (its pipeline is
 * cancelled, its source closed, its event stream completed), then waits until the records already made are settled
 * by the broker, so nothing of the camera is sent after it returns (the fleet's no-overlap rule).
 */
public final class StreamCaptioner implements CameraRunner {
    private static final System.Logger LOG = System.getLogger("vlmflux.fleet");
    private static final long STOP_WAIT_S = 15;
    private static final Set<String> SOURCE_EVENTS = Set.of("source_down", "source_retry", "source_up", "source_skipped", "source_warning", "source_failed");

    private final LiveStreams streams;
    private final CaptionOptions captions;
    private final RecordSink sink;
    private final ObjectMapper json = new ObjectMapper();
    private final Map<String, Forward> running = new ConcurrentHashMap<>();
    private final AtomicLong lost = new AtomicLong();

    private record Forward(CountDownLatch done, Disposable subscription) {}

    /**
     * @param streams  the server's live streams (cameras are added to and removed from them)
     * @param captions caption options of the cameras (a camera's {@code prompt} replaces the prompt)
     * @param sink     the fleet's events sink (closed by {@link #close()})
     */
    public StreamCaptioner(LiveStreams streams, CaptionOptions captions, RecordSink sink) {
        this.streams = streams;
        this.captions = captions;
        this.sink = sink;
    }

    @Override public void start(CameraDef camera) {
        String id = camera.id();
        if (running.containsKey(id)) throw new IllegalStateException("camera " + id + " runs already");
        FrameSource source = Sources.parse(camera.source());
        CaptionOptions opts = camera.prompt() == null ? captions : captions.withPrompt(camera.prompt());
        String prompt = opts.prompt();
        CountDownLatch done = new CountDownLatch(1);
        Disposable[] d = new Disposable[1];
        // subscribed before the stream starts: its first events (source_up, ...) are forwarded too
        try {
            streams.add(id, camera.source(), source, opts, camera.sampling(), s -> d[0] = s.hub().subscribe()
                .concatMap(e -> {
                    SinkRecord r = record(id, prompt, e);
                    return r == null ? Mono.<Boolean>empty() : sink.publish(r);
                }, 0)
                .doFinally(x -> done.countDown())
                .subscribe(ok -> {}, e -> LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + ": forwarding failed: " + e)));
        } catch (RuntimeException e) {
            if (d[0] != null) {   // our stream was added but did not start: take it out again
                streams.remove(id);
                d[0].dispose();
            }
            throw e;
        }
        running.put(id, new Forward(done, d[0]));
    }

    /** The record of one stream event, or null for events the fleet topic does not carry (live tokens, answers). */
    SinkRecord record(String id, String prompt, EventHub.Event e) {
        JsonNode ev;
        try {
            ev = json.readTree(e.json());
        } catch (IOException ex) {
            throw new IllegalStateException("unreadable event of " + id + ": " + ex.getMessage(), ex);
        }
        Instant at = Instant.ofEpochMilli(ev.path("time_ms").asLong(System.currentTimeMillis()));
        switch (e.type()) {
            case "caption" -> {
                ObjectNode o = head("caption", id, at);
                o.put("seq", Math.max(0, ev.path("frame").asLong())).put("pts_ms", Math.max(-1, ev.path("pts_ms").asLong(-1)));
                if (prompt != null) o.put("prompt", prompt);
                o.put("text", ev.path("text").asText(""));
                o.putArray("tokens");
                o.put("finish_reason", ev.path("finish_reason").asText("stop")).put("dropped", Math.max(0, ev.path("dropped").asLong()));
                ObjectNode t = o.putObject("timings");
                for (String f : List.of("preprocess_ms", "encode_ms", "prefill_ms", "ttft_ms", "total_ms"))
                    t.put(f, Math.max(0, ev.path("timings").path(f).asDouble()));
                return new SinkRecord("caption", id, o.toString());
            }
            case "alert" -> {
                ObjectNode o = head("event", id, at).put("event", "alert");
                o.put("event_time", ev.has("at_ms") ? Instant.ofEpochMilli(ev.get("at_ms").asLong()).toString() : at.toString()).put("attempt", 0)
                        .put("message", ev.path("message").asText(""));
                if (ev.hasNonNull("watch")) o.put("watch", ev.get("watch").asText());
                if (ev.hasNonNull("kind")) o.put("kind", ev.get("kind").asText());
                for (String f : List.of("answer", "previous", "error")) if (ev.hasNonNull(f)) o.put(f, ev.get(f).asText());
                for (String f : List.of("logprob", "confidence")) if (ev.hasNonNull(f)) o.put(f, ev.get(f).asDouble());
                if (ev.has("evidence")) {
                    ArrayNode out = o.putArray("evidence");
                    for (Iterator<JsonNode> it = ev.get("evidence").elements(); it.hasNext(); ) {
                        JsonNode x = it.next();
                        ObjectNode n = out.addObject().put("seq", Math.max(0, x.path("frame").asLong())).put("pts_ms", Math.max(-1, x.path("pts_ms").asLong(-1)));
                        if (x.hasNonNull("answer")) n.put("answer", x.get("answer").asText());
                        if (x.hasNonNull("logprob")) n.put("logprob", x.get("logprob").asDouble());
                    }
                }
                return new SinkRecord("event", id, o.toString());
            }
            case "dropped" -> {
                // this forwarder fell behind the stream (a slow broker): the gap is counted, the stream goes on
                long n = ev.path("count").asLong();
                long all = lost.addAndGet(n);
                LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + ": " + n + " events not forwarded (broker slow; " + all + " so far)");
                return null;
            }
            default -> {
                if (!SOURCE_EVENTS.contains(e.type())) return null;   // tokens, answers, source_ended
                ObjectNode o = head("event", id, at).put("event", e.type()).put("event_time", at.toString())
                        .put("attempt", Math.max(0, ev.path("attempt").asInt())).put("message", ev.path("message").asText(""));
                return new SinkRecord("event", id, o.toString());
            }
        }
    }

    private ObjectNode head(String type, String source, Instant at) {
        return json.createObjectNode().put("schema", Records.SCHEMA).put("type", type).put("source", source).put("time", at.toString());
    }

    @Override public void stop(String id) {
        Forward f = running.remove(id);
        streams.remove(id);   // the pipeline is cancelled and the stream's events complete after those queued
        if (f == null) return;
        try {
            if (!f.done().await(STOP_WAIT_S, TimeUnit.SECONDS)) {
                LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + ": its records were not settled within " + STOP_WAIT_S + " s; cancelling");
                f.subscription().dispose();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.subscription().dispose();
        }
    }

    /** The cameras running now. */
    public Set<String> ids() { return Set.copyOf(running.keySet()); }

    /** Stream events not forwarded because the forwarder fell behind (over all cameras). */
    public long lost() { return lost.get(); }

    @Override public void close() {
        for (String id : List.copyOf(running.keySet())) stop(id);
        sink.close();
    }
}
