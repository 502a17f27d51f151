package io.vlmflux.sinks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.caption.CaptionTimings;
import io.vlmflux.sources.SourceEvent;

import java.time.Instant;

/**
 * Builds the versioned JSON records of docs/schemas/record-v2.schema.json. Every record has {@code schema}
 * ({@value #SCHEMA}), {@code type}, {@code source} and {@code time} (ISO-8601 UTC, when the record was made);
 * the rest depends on the type. The schema is closed: any added, removed or changed field makes a new version
 * (docs/sinks.md). Version 2 is version 1 (captions, constrained answers, source and alert events, status) plus the
 * records of serve's live streams: {@link #narration} and {@link #reply}.
 */
public final class Records {
    /** The record format's name and major version. */
    public static final String SCHEMA = "vlmflux.record/2";
    /** The JSON Schema of {@link #SCHEMA}, relative to the repository root. */
    public static final String SCHEMA_FILE = "docs/schemas/record-v2.schema.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private Records() {}

    /**
     * A caption ({@code type caption}) or, when {@code answer}, the answer to a constrained question
     * ({@code type answer}: the text matched the --json-schema/--regex/--choice constraint).
     */
    public static SinkRecord caption(Caption c, String source, String prompt, boolean answer, Instant now) {
        String type = answer ? "answer" : "caption";
        ObjectNode o = head(type, source, now);
        o.put("seq", c.frame().sequence());
        o.put("pts_ms", c.frame().ptsMillis());
        if (c.frame().label() != null) o.put("file", c.frame().label());
        if (prompt != null) o.put("prompt", prompt);
        o.put("text", c.text());
        ArrayNode t = o.putArray("tokens");
        for (int id : c.tokens()) t.add(id);
        o.put("finish_reason", c.finishReason().wire());
        o.put("dropped", c.dropped());
        CaptionTimings ti = c.timings();
        ObjectNode tn = o.putObject("timings");
        tn.put("preprocess_ms", round(ti.preprocessMs()));
        tn.put("encode_ms", round(ti.encodeMs()));
        tn.put("prefill_ms", round(ti.prefillMs()));
        tn.put("ttft_ms", round(ti.ttftMs()));
        tn.put("total_ms", round(ti.totalMs()));
        return new SinkRecord(type, source, o.toString());
    }

    /** A source event ({@code type event}): {@code event} is source_down, source_up, ... as in {@code caption --json}. */
    public static SinkRecord event(SourceEvent e, String source, Instant now) {
        ObjectNode o = head("event", source, now);
        o.put("event", e.type().wire());
        o.put("event_time", e.time().toString());
        o.put("attempt", e.attempt());
        o.put("message", e.message());
        return new SinkRecord("event", source, o.toString());
    }

    /**
     * An alert's event ({@code type event}, {@code event alert}): {@code caption --alert}'s watch events with the
     * alert's fields ({@code watch}, {@code kind}, {@code answer}, {@code previous}, {@code logprob},
     * {@code confidence}, {@code evidence}, {@code error}; absent when null). {@code event_time} is when the watch
     * decided it, {@code attempt} 0, {@code message} a line for people.
     */
    public static SinkRecord alert(io.vlmflux.pipeline.watch.Event e, String source, Instant now) {
        ObjectNode o = head("event", source, now);
        o.put("event", "alert");
        o.put("event_time", Instant.ofEpochMilli(e.atMillis()).toString());
        o.put("attempt", 0);
        o.put("message", e.watch() + ": " + switch (e.kind()) {
            case CHANGED -> e.answer() + (e.previous() != null ? " (was " + e.previous() + ")" : "");
            case REPEATED -> "still " + e.answer();
            case STALLED -> "no answers (stalled)";
            case ERROR -> "error " + e.error();
        });
        o.put("watch", e.watch());
        o.put("kind", e.kind().wire());
        if (e.answer() != null) o.put("answer", e.answer());
        if (e.previous() != null) o.put("previous", e.previous());
        if (e.logprob() != null) o.put("logprob", e.logprob());
        if (e.confidence() != null) o.put("confidence", e.confidence());
        ArrayNode ev = o.putArray("evidence");
        for (var x : e.evidence()) {
            ObjectNode n = ev.addObject().put("seq", x.sequence()).put("pts_ms", x.ptsMillis());
            if (x.answer() != null) n.put("answer", x.answer());
            if (x.logprob() != null) n.put("logprob", x.logprob());
        }
        if (e.error() != null) o.put("error", e.error());
        return new SinkRecord("event", source, o.toString());
    }

    /**
     * The span of a live-video session's window ({@code window} of {@link #narration} and {@link #reply}), in session
     * milliseconds.
     */
    public record Window(int groups, long startMs, long endMs) {
        public Window {
            if (groups < 1) throw new IllegalArgumentException("a window span needs at least one group, got " + groups);
            if (startMs < 0 || endMs < startMs) throw new IllegalArgumentException("window span " + startMs + ".." + endMs + " ms");
        }
    }

    /**
     * A live-video session's narration ({@code type narration}, v2): the standing {@code prompt} asked over the
     * {@code window}, its {@code text} and {@code finish_reason} ({@code stop}, {@code length}), time to first token
     * and total time.
     */
    public static SinkRecord narration(String source, String prompt, String text, String finishReason, Window window, double ttftMs,
                                       double totalMs, Instant now) {
        ObjectNode o = head("narration", source, now);
        o.put("prompt", prompt).put("text", text).put("finish_reason", finishReason);
        window(o, window);
        o.put("ttft_ms", round(Math.max(0, ttftMs))).put("total_ms", round(Math.max(0, totalMs)));
        return new SinkRecord("narration", source, o.toString());
    }

    /**
     * The answer to a question asked of a live stream ({@code type reply}, v2), over its latest frame ({@code window}
     * null: {@code over} frame with {@code seq} and {@code pts_ms}, when a frame is known) or over its live-video window
     * ({@code over} window).
     */
    public static SinkRecord reply(String source, String id, String question, String text, String finishReason, Window window, long seq,
                                   long ptsMs, long elapsedMs, Instant now) {
        ObjectNode o = head("reply", source, now);
        o.put("id", id).put("question", question).put("text", text).put("finish_reason", finishReason).put("over", window == null ? "frame" : "window");
        if (window != null) window(o, window);
        else if (seq >= 0) o.put("seq", seq).put("pts_ms", Math.max(-1, ptsMs));
        o.put("elapsed_ms", Math.max(0, elapsedMs));
        return new SinkRecord("reply", source, o.toString());
    }

    private static void window(ObjectNode o, Window w) {
        o.putObject("window").put("groups", w.groups()).put("start_ms", w.startMs()).put("end_ms", w.endMs());
    }

    /**
     * A source's status ({@code type status}), sent every {@code output.statusEveryMs} and once at the end.
     *
     * @param state        {@code up}, {@code down} (between source_down and source_up), {@code failed} or {@code stopped}
     * @param captions     captions (and answers) of this source so far in this run
     * @param lastSeq      frame sequence of the last caption, -1 when none
     * @param framesIn     frames the source delivered to sampling (-1 when not measured)
     * @param framesDropped frames dropped before the model for this source (sampling/fan-in; -1 when not measured)
     * @param sinkDropped  records of all sources the sinks gave up so far (not acknowledged in time)
     */
    public static SinkRecord status(String source, String state, long captions, long lastSeq, long framesIn, long framesDropped,
                                    long sinkDropped, Instant now) {
        ObjectNode o = head("status", source, now);
        o.put("state", state);
        o.put("captions", captions);
        o.put("last_seq", lastSeq);
        o.put("frames_in", framesIn);
        o.put("frames_dropped", framesDropped);
        o.put("sink_dropped", sinkDropped);
        return new SinkRecord("status", source, o.toString());
    }

    private static ObjectNode head(String type, String source, Instant now) {
        ObjectNode o = JSON.createObjectNode();
        o.put("schema", SCHEMA);
        o.put("type", type);
        o.put("source", source);
        o.put("time", now.toString());
        return o;
    }

    private static double round(double ms) { return Math.round(ms * 100) / 100.0; }
}
