package io.vlmflux.demos;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.constrain.ConstraintException;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.llm.runtime.LiveDefaults;
import io.vlmflux.llm.runtime.LiveSession;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.config.LiveConfig;
import io.vlmflux.pipeline.live.LiveVideo;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.Sources;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Schedulers;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code vlmflux watch}: a live session on one source — narrates every N seconds over the window and answers each line
 * typed on stdin (one JSON object per answer with {@code --json}). No arguments: the demo model on {@code test:ball}.
 */
public final class WatchCommand implements Command {
    static final String DEFAULT_SOURCE = "test:ball";
    private static final Set<String> VALUED = Set.of("source", "model", "fps", "window", "narrate", "prompt", "system", "max-tokens", "backend",
            "device", "duration", "eviction", "queue", "json-schema", "regex", "choice", "grammar", "alert", "alert-agree", "alert-debounce",
            "alert-min-interval", "alert-max-interval", "alert-every");
    private static final Set<String> FLAGS = Set.of("json", "keep-dialogue", "logprobs");

    private final InputStream in;
    private final PrintStream out;

    public WatchCommand() { this(System.in, System.out); }

    WatchCommand(InputStream in, PrintStream out) {
        this.in = in;
        this.out = out;
    }

    @Override public String summary() { return "watch a live source: narrate its video and answer questions typed on stdin"; }

    @Override public String usage() {
        return """
                vlmflux watch [--source SPEC] [--model DIR] [--fps 2] [--window 30s] [--narrate 5s|off] [--prompt TEXT] [--json]
                              [--system TEXT] [--max-tokens N] [--keep-dialogue] [--eviction slide|reprefill] [--queue N]
                              [--duration D] [--backend auto|cpu|cuda] [--device N]
                  A live session (docs/live.md): frames sampled at --fps are appended in temporal groups of 2 frames to the
                  session's KV cache (incremental prefill); the cache keeps the system prompt plus the last --window of video.
                  Every --narrate it asks --prompt (default "What changed?") over the window; each line typed on stdin is a
                  question answered over the window at that moment. A model folder's vlmflux_live.json may recommend its own
                  window, eviction and prompt (the demo model: 4s, reprefill, "Describe the video."); flags override it.
                  --source SPEC     frame source (default test:ball; see docs/sources.md)
                  --model DIR       Qwen2-VL / Qwen2.5-VL / Qwen3-VL folder (default demos/models/shapes-vl, the embedded demo model)
                  --json            one JSON object per answer/narration: kind, question, text, window_start_s, window_end_s,
                                    window_groups, ttft_ms, total_ms, tokens, finish_reason, dropped_groups
                  --keep-dialogue   keep questions and answers in the cache as dialogue memory (evicted with the window)
                  --eviction        slide (default: cut evicted groups out of the cache) or reprefill (exact, recompute the window)
                  --queue N         groups queued while an answer runs, then newest wins (default 4 for live sources; files: lossless)
                  --duration D      stop after D (e.g. 60s); default: until the source ends or Ctrl-C
                  --json-schema F, --regex RE, --choice A,B,C, --grammar F
                                    constrain every answer to a typed question AND every narration (at most one; as in
                                    caption/generate). Alerts carry their own answers ("Q? A|B", "Q? /RE/") instead.
                  --logprobs        each answer/narration's log-probability (sum over its tokens): "logprob" in --json, p=
                                    in text
                  --alert "Q? A|B"  also ask Q over the window every --alert-every (answer one of A, B, ...; "Q? /RE/": a regex;
                                    "Q?": free text; repeatable, asked one after the other) and print an event when the
                                    answer changes: text lines, or with --json {event: alert, watch, source, kind:
                                    changed|repeated|stalled|error, answer, previous, logprob, confidence, evidence:
                                    [{sequence: newest group, ptsMillis: window end, answer, logprob}], atMillis, error}
                  --alert-every D   check the alerts after each D of video time (default the --narrate period, or 2s with
                                    --narrate off); the first group is checked
                  --alert-agree K, --alert-debounce D, --alert-min-interval D, --alert-max-interval D
                                    the alerts' policy, as in caption --alert (docs/pipeline.md "Alerts")""";
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, VALUED, FLAGS);
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().getFirst() + "'");
        double fps = a.getDouble("fps", 2);
        if (!(fps > 0 && fps <= 60)) throw new UsageException("--fps must be in (0, 60], got " + a.get("fps"));
        Path modelDir = CaptionCommand.modelDir(a.get("model", CaptionCommand.DEFAULT_MODEL));
        LiveDefaults model;   // the model folder's recommended window, eviction and narration prompt (vlmflux_live.json)
        try {
            model = LiveDefaults.of(modelDir);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--model: " + e.getMessage());
        }
        Duration window = a.has("window") ? a.getDuration("window") : model.windowOr(Duration.ofSeconds(30));
        if (window.isZero() || window.isNegative()) throw new UsageException("--window must be positive");
        String narrateArg = a.get("narrate", "5s");
        Duration narrate = narrateArg.equalsIgnoreCase("off") ? null : Args.parseDuration("--narrate", narrateArg);
        String prompt = a.has("prompt") ? a.get("prompt") : model.promptOr(LiveConfig.DEFAULT_PROMPT);
        if (prompt.isBlank()) throw new UsageException("--prompt must not be blank");
        int maxTokens = a.getInt("max-tokens", 48);
        if (maxTokens <= 0) throw new UsageException("--max-tokens must be positive");
        LiveSession.Eviction eviction;
        try {
            eviction = a.has("eviction") ? LiveSession.Eviction.valueOf(a.get("eviction").toUpperCase(Locale.ROOT))
                    : model.evictionOr(LiveSession.Eviction.SLIDE);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--eviction must be slide or reprefill, got '" + a.get("eviction") + "'");
        }
        Backend backend;
        try {
            backend = Backend.parse(a.get("backend", "auto"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--backend: " + e.getMessage());
        }
        int device = a.getInt("device", 0);
        Duration duration = a.has("duration") ? a.getDuration("duration") : null;
        FrameSource source = Sources.parse(CaptionCommand.sourceSpec(a.get("source", DEFAULT_SOURCE)));
        int queue = a.getInt("queue", source.isLive() ? 4 : 0);
        if (queue < 0) throw new UsageException("--queue must be >= 0");
        boolean json = a.flag("json");
        boolean logprobs = a.flag("logprobs");
        ConstraintSpec constraint = ConstraintFlags.spec(a);
        List<Alert> alerts = AlertMode.alerts(a, null);
        if (a.has("alert-every") && alerts.isEmpty()) throw new UsageException("--alert-every needs --alert");
        Duration alertEvery = a.has("alert-every") ? a.getDuration("alert-every") : narrate != null ? narrate : Duration.ofSeconds(2);
        if (alertEvery.isZero() || alertEvery.isNegative()) throw new UsageException("--alert-every must be positive");
        ObjectMapper mapper = new ObjectMapper();
        try (VlmRuntime rt = VlmRuntime.load(modelDir, RuntimeOptions.defaults().withBackend(backend).withDevice(device))) {
            TokenControls controls;
            try {
                controls = rt.controls(constraint, logprobs ? 1 : 0);   // compiled now: a bad pattern or schema names the flag
            } catch (ConstraintException e) {
                throw new UsageException("--" + ConstraintFlags.NAMES.stream().filter(a::has).findFirst().orElse("constraint") + ": " + e.getMessage());
            }
            if (!alerts.isEmpty()) AlertMode.check(rt, alerts);
            LiveSession.Options so = LiveSession.Options.defaults().withFps(fps).withWindow(window).withMaxAnswerTokens(maxTokens)
                    .withKeepDialogue(a.flag("keep-dialogue")).withEviction(eviction).withSystemPrompt(a.get("system"));
            LiveVideo live = LiveVideo.on(rt, new LiveVideo.Options(so, narrate, prompt, queue)).withControls(controls);
            if (!alerts.isEmpty()) live = live.withAlerts(alerts, alertEvery);
            System.err.printf(Locale.ROOT, "watching %s with %s on %s: %.3g fps, window %ss%s; type a question and press Enter%n", source.id(),
                    modelDir.getFileName(), rt.backend().wire(), fps, window.toMillis() / 1000.0,
                    narrate == null ? "" : ", narrating every " + narrate.toMillis() / 1000.0 + "s");
            if (!alerts.isEmpty())
                System.err.printf(Locale.ROOT, "%d alert(s) over the window every %ss of video%n", alerts.size(), alertEvery.toMillis() / 1000.0);
            Flux<LiveVideo.Output> outputs = live.watch(source.frames(), stdinLines());
            if (duration != null) outputs = outputs.take(duration);
            outputs.doOnNext(o -> {
                if (o.event() != null) printEvent(o.event(), json, mapper);
                else printAnswer(o.answer(), json, logprobs, mapper);
            }).blockLast();
        }
        return 0;
    }

    private void printEvent(Event e, boolean json, ObjectMapper mapper) {
        if (json) {
            ObjectNode o = mapper.createObjectNode();
            o.put("event", "alert");
            o.setAll((ObjectNode) mapper.valueToTree(e));
            out.println(o);
        } else {
            StringBuilder sb = new StringBuilder("[alert ").append(e.kind().name().toLowerCase(Locale.ROOT)).append(" | ").append(e.watch()).append("] ");
            if (e.answer() != null) sb.append(e.answer());
            if (e.previous() != null) sb.append(" (was ").append(e.previous()).append(')');
            if (e.error() != null) sb.append(e.error());
            if (e.confidence() != null) sb.append(String.format(Locale.ROOT, " p=%.3f", e.confidence()));
            if (!e.evidence().isEmpty() && e.evidence().getLast().ptsMillis() >= 0)
                sb.append(String.format(Locale.ROOT, " @%.2fs", e.evidence().getLast().ptsMillis() / 1000.0));
            out.println(sb);
        }
        out.flush();
    }

    private void printAnswer(LiveVideo.LiveAnswer ans, boolean json, boolean logprobs, ObjectMapper mapper) {
                if (json) {
                    ObjectNode o = mapper.createObjectNode();
                    o.put("kind", ans.kind().name().toLowerCase(Locale.ROOT));
                    o.put("question", ans.question());
                    o.put("text", ans.text());
                    if (ans.windowGroups() > 0) {
                        o.put("window_start_s", ans.windowStartPts() / 1e9);
                        o.put("window_end_s", ans.windowEndPts() / 1e9);
                    } else {   // no video yet
                        o.putNull("window_start_s");
                        o.putNull("window_end_s");
                    }
                    o.put("window_groups", ans.windowGroups());
                    o.put("ttft_ms", Math.round(ans.ttftMs() * 100) / 100.0);
                    o.put("total_ms", Math.round(ans.totalMs() * 100) / 100.0);
                    o.put("tokens", ans.tokens());
                    o.put("finish_reason", ans.finishReason() == null ? null : ans.finishReason().wire());
                    o.put("dropped_groups", ans.droppedGroups());
                    if (logprobs) o.put("logprob", ans.logprob());
                    out.println(o);
                } else {
                    String span = ans.windowGroups() == 0 ? "[no video yet]"
                            : String.format(Locale.ROOT, "[%.1f–%.1fs]", ans.windowStartPts() / 1e9, ans.windowEndPts() / 1e9);
                    String p = logprobs ? String.format(Locale.ROOT, " (p=%.3f)", Math.exp(ans.logprob())) : "";
                    out.println(ans.kind() == LiveVideo.LiveAnswer.Kind.NARRATION ? span + " " + ans.text() + p
                            : span + " Q: " + ans.question() + "\n" + " ".repeat(span.length()) + " A: " + ans.text() + p);
                }
                out.flush();
    }

    /** Lines typed on stdin, read on a blocking-capable thread; completes at end of input. */
    private Flux<String> stdinLines() {
        return Flux.<String>create(sink -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while (!sink.isCancelled() && (line = r.readLine()) != null) if (!line.isBlank()) sink.next(line.strip());
                sink.complete();
            } catch (java.io.IOException e) {
                sink.error(e);
            }
        }).subscribeOn(Schedulers.boundedElastic());
    }
}
