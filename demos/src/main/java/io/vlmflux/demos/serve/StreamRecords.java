package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.sinks.Records;
import io.vlmflux.sinks.SinkRecord;

import java.io.IOException;
import java.time.Instant;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * The Kafka/MQTT records (docs/schemas/record-v2.schema.json) of a live stream's events ({@link EventHub}), for the
 * outputs that follow a stream's events: the fleet's events topic ({@code StreamCaptioner}) and serve's
 * {@code --kafka}/{@code --mqtt} ({@link StreamSinks}, for what is not a caption). {@code caption} events become
 * {@code caption} records ({@code tokens} empty: the events carry the text, not the token ids), {@code alert} and
 * {@code source_*} events {@code event} records, {@code narration} events {@code narration} records, and a question's
 * {@code answer} event of state {@code done} a {@code reply} record. Live tokens, answers in progress, the hub's
 * {@code dropped} notices and {@code source_ended} have no record.
 */
public final class StreamRecords {
    /** The source events that are records. */
    public static final Set<String> SOURCE_EVENTS = Set.of("source_down", "source_retry", "source_up", "source_skipped", "source_warning", "source_failed");
    /** The event types that may make a record ({@link #record} may still return null, e.g. for an answer's tokens). */
    public static final Set<String> TYPES = union(Set.of("caption", "alert", "narration", "answer"), SOURCE_EVENTS);

    private final ObjectMapper json = new ObjectMapper();

    private static Set<String> union(Set<String> a, Set<String> b) {
        java.util.HashSet<String> u = new java.util.HashSet<>(a);
        u.addAll(b);
        return Set.copyOf(u);
    }

    /** How many events a {@code dropped} notice says were lost. */
    public long dropped(EventHub.Event e) { return read(e).path("count").asLong(); }

    /** The record of event {@code e} of stream {@code id} ({@code prompt}: the stream's caption prompt, nullable), or null. */
    public SinkRecord record(String id, String prompt, EventHub.Event e) {
        if (!TYPES.contains(e.type())) return null;
        JsonNode ev = read(e);
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
            case "narration" -> {
                Records.Window w = window(ev);
                if (w == null) return null;   // narrations are made over a window with video: never without
                return Records.narration(id, ev.path("prompt").asText(""), ev.path("text").asText(""), ev.path("finish_reason").asText("stop"), w,
                        ev.path("ttft_ms").asDouble(), ev.path("total_ms").asDouble(), at);
            }
            case "answer" -> {
                if (!ev.path("state").asText().equals("done")) return null;   // started, token, failed
                Records.Window w = ev.path("over").asText().equals("window") ? window(ev) : null;
                return Records.reply(id, ev.path("id").asText(""), ev.path("question").asText(""), ev.path("text").asText(""),
                        ev.path("finish_reason").asText("stop"), w, ev.path("frame").asLong(-1), ev.path("pts_ms").asLong(-1), ev.path("elapsed_ms").asLong(), at);
            }
            default -> {   // the source events
                ObjectNode o = head("event", id, at).put("event", e.type()).put("event_time", at.toString())
                        .put("attempt", Math.max(0, ev.path("attempt").asInt())).put("message", ev.path("message").asText(""));
                return new SinkRecord("event", id, o.toString());
            }
        }
    }

    /** The window span of a narration or answer event ({@code window_groups}, {@code window_start_s}, {@code window_end_s}), or null when empty. */
    private static Records.Window window(JsonNode ev) {
        int groups = ev.path("window_groups").asInt();
        if (groups < 1 || !ev.path("window_start_s").isNumber() || !ev.path("window_end_s").isNumber()) return null;
        long start = Math.max(0, Math.round(ev.get("window_start_s").asDouble() * 1000));
        return new Records.Window(groups, start, Math.max(start, Math.round(ev.get("window_end_s").asDouble() * 1000)));
    }

    private JsonNode read(EventHub.Event e) {
        try {
            return json.readTree(e.json());
        } catch (IOException ex) {
            throw new IllegalStateException("unreadable event of stream: " + ex.getMessage() + " in " + e.json(), ex);
        }
    }

    private ObjectNode head(String type, String source, Instant at) {
        return json.createObjectNode().put("schema", Records.SCHEMA).put("type", type).put("source", source).put("time", at.toString());
    }
}
