package io.vlmflux.demos;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.caption.CaptionStage;
import io.vlmflux.pipeline.caption.CaptionTimings;
import io.vlmflux.pipeline.config.OutputConfig;
import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameInfo;
import io.vlmflux.sources.SourceEvent;
import reactor.core.publisher.Flux;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;
import java.util.function.Function;
import java.util.function.UnaryOperator;

/**
 * Where {@code vlmflux caption} writes, as the config's {@code output} block (and {@code --json}) say: text lines or
 * JSON lines, on stdout or appended to a file (created with its parent folders), flushed after every caption; with
 * {@code tokens} also each token as it is decoded. Text: the caption's line grows token by token (one caption line
 * at a time; a caption whose line cannot start because another is being written comes out whole when done). JSON:
 * one token object per line ({@code source, seq, index, token, text}) before the caption's object. Owns the file.
 */
final class CaptionOutput implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final PrintStream out;
    private final boolean ownsStream;
    private final boolean json;
    private final boolean tokens;
    private final boolean showSource;
    private final UnaryOperator<String> sourceName;
    /** Text with tokens: the caption whose line is open, and whitespace held back (the line is stripped like c.text()). */
    private FrameInfo openLine;
    private final StringBuilder heldSpace = new StringBuilder();
    private boolean lineHasText;

    private CaptionOutput(PrintStream out, boolean ownsStream, boolean json, boolean tokens, boolean showSource, UnaryOperator<String> sourceName) {
        this.out = out;
        this.ownsStream = ownsStream;
        this.json = json;
        this.tokens = tokens;
        this.showSource = showSource;
        this.sourceName = sourceName;
    }

    /**
     * Opens the output of {@code config} ({@code forceJson}: {@code --json}); {@code sourceName} maps a frame's
     * source id to the name printed, {@code showSource} adds it to text lines. Fails naming the path when the file
     * cannot be created or opened for appending.
     */
    static CaptionOutput open(OutputConfig config, boolean forceJson, boolean showSource, UnaryOperator<String> sourceName, PrintStream stdout) {
        boolean json = forceJson || config.format().equals("json");
        if (config.path() == null) return new CaptionOutput(stdout, false, json, config.tokens(), showSource, sourceName);
        Path p = Path.of(config.path()).toAbsolutePath();
        try {
            if (p.getParent() != null) Files.createDirectories(p.getParent());
            OutputStream os = Files.newOutputStream(p, StandardOpenOption.CREATE, StandardOpenOption.APPEND, StandardOpenOption.WRITE);
            return new CaptionOutput(new PrintStream(os, false, StandardCharsets.UTF_8), true, json, config.tokens(), showSource, sourceName);
        } catch (IOException | UnsupportedOperationException e) {
            throw new IllegalArgumentException("output.path '" + config.path() + "': cannot open " + p + " for appending: " + e, e);
        }
    }

    boolean json() { return json; }

    /**
     * The caption stage this output needs: plain captions, or (with tokens) one stream per frame whose tokens are
     * written as they come. Dropped frames are counted into {@code metrics} (nullable), like the caption count.
     */
    Function<Flux<Frame>, Flux<Caption>> stage(VlmRuntime model, CaptionOptions options, StageMetrics metrics) {
        if (!tokens) return CaptionStage.captions(model, options, metrics);
        var streams = CaptionStage.streams(model, options, metrics);
        return frames -> frames.transform(streams)
                .concatMap(s -> s.tokens().doOnNext(e -> token(s.frame(), e)).then(s.caption()), 0);
    }

    /** One token of the caption of {@code frame}. */
    synchronized void token(FrameInfo frame, TokenEvent e) {
        if (json) {
            if (e.tokenId() < 0) return;
            ObjectNode o = JSON.createObjectNode();
            o.put("source", sourceName.apply(frame.sourceId()));
            o.put("seq", frame.sequence());
            o.put("index", e.index());
            o.put("token", e.tokenId());
            o.put("text", e.textDelta());
            out.println(o);
            out.flush();
            return;
        }
        if (openLine == null) {
            openLine = frame;
            heldSpace.setLength(0);
            lineHasText = false;
            out.print(prefix(frame));
        }
        if (!openLine.equals(frame) || e.textDelta().isEmpty()) return;
        String d = e.textDelta();
        int end = d.length();
        while (end > 0 && Character.isWhitespace(d.charAt(end - 1))) end--;
        if (end > 0) {
            int start = 0;
            if (!lineHasText) while (start < end && Character.isWhitespace(d.charAt(start))) start++;
            if (start < end) {
                if (lineHasText) out.print(heldSpace);
                heldSpace.setLength(0);
                out.print(d.substring(start, end));
                lineHasText = true;
            }
        }
        if (lineHasText) heldSpace.append(d, end, d.length());
        out.flush();
    }

    /** A finished caption: its line (or the end of its token line), flushed. */
    synchronized void caption(Caption c) {
        String src = sourceName.apply(c.frame().sourceId());
        if (json) {
            out.println(json(c, src));
        } else if (tokens && c.frame().equals(openLine)) {
            out.println();
            openLine = null;
        } else {
            out.println(line(c, showSource ? src : null));
        }
        out.flush();
    }

    /** Ends a token line cut off at stop, flushes, and closes the file (never stdout). */
    /**
     * A source event (connection lost or back, a retry, a skipped file, a warning, a failure): in JSON one object
     * per line ({@code event, source, time, attempt, message}) among the captions; in text a line on stderr, so the
     * caption lines stay clean.
     */
    synchronized void event(SourceEvent e) {
        if (json) {
            ObjectNode o = JSON.createObjectNode();
            o.put("event", e.type().wire());
            o.put("source", sourceName.apply(e.sourceId()));
            o.put("time", e.time().toString());
            o.put("attempt", e.attempt());
            o.put("message", e.message());
            out.println(o);
            out.flush();
        } else {
            System.err.println("vlmflux: " + e.type().wire() + " " + sourceName.apply(e.sourceId()) + (e.attempt() > 0 ? " (attempt " + e.attempt() + ")" : "")
                    + (e.message().isEmpty() ? "" : ": " + e.message()));
        }
    }

    /** An alert event: a JSON object ({@code "event": "alert"} and the event's fields) or a text line. */
    synchronized void alert(io.vlmflux.pipeline.watch.Event e) {
        if (json) {
            ObjectNode o = JSON.createObjectNode();
            o.put("event", "alert");
            o.setAll((ObjectNode) JSON.valueToTree(e));
            o.put("source", sourceName.apply(e.source()));
            out.println(o);
        } else {
            StringBuilder sb = new StringBuilder("[alert ").append(e.kind().wire()).append(" | ").append(sourceName.apply(e.source())).append(" | ")
                    .append(e.watch()).append("] ");
            if (e.answer() != null) sb.append(e.answer());
            if (e.previous() != null) sb.append(" (was ").append(e.previous()).append(')');
            if (e.error() != null) sb.append(e.error());
            if (e.confidence() != null) sb.append(String.format(Locale.ROOT, " p=%.3f", e.confidence()));
            if (!e.evidence().isEmpty()) {
                sb.append(" on seq");
                for (var v : e.evidence()) sb.append(' ').append(v.sequence());
                var last = e.evidence().getLast();
                if (last.ptsMillis() >= 0) sb.append(String.format(Locale.ROOT, " @%.2fs", last.ptsMillis() / 1000.0));
            }
            out.println(sb);
        }
        out.flush();
    }

    @Override public synchronized void close() {
        if (openLine != null) {   // a caption cut off at stop
            out.println();
            openLine = null;
        }
        out.flush();
        if (ownsStream) out.close();
    }

    private String prefix(FrameInfo f) {
        long pts = f.ptsNanos();
        String when = pts < 0 ? "" : String.format(Locale.ROOT, " | %.2fs", pts / 1e9);
        return "[" + (showSource ? sourceName.apply(f.sourceId()) + " " : "") + "seq " + f.sequence() + when + (f.label() != null ? " | " + f.label() : "") + "] ";
    }

    /** {@code [seq 12 | 0.40s] a white circle ...}, prefixed with {@code source} when not null. */
    static String line(Caption c, String source) {
        long pts = c.frame().ptsNanos();
        String when = pts < 0 ? "" : String.format(Locale.ROOT, " | %.2fs", pts / 1e9);
        String file = c.frame().label() != null ? " | " + c.frame().label() : "";
        return "[" + (source != null ? source + " " : "") + "seq " + c.frame().sequence() + when + file + "] " + c.text().strip();
    }

    /** The documented {@code caption --json} object (README): its key set is a contract. */
    static String json(Caption c, String source) {
        ObjectNode o = JSON.createObjectNode();
        o.put("source", source);
        o.put("seq", c.frame().sequence());
        o.put("pts_ms", c.frame().ptsMillis());
        if (c.frame().label() != null) o.put("file", c.frame().label());   // stills of an image folder: the file's name
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
        return o.toString();
    }

    private static double round(double ms) { return Math.round(ms * 100) / 100.0; }
}
