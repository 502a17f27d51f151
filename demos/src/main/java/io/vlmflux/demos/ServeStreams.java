package io.vlmflux.demos;

import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.config.PipelineConfig;
import io.vlmflux.pipeline.config.SourceConfig;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The live streams of {@code vlmflux serve} from its flags: {@code --source SPEC} (repeatable) or the config's
 * {@code sources} (with their ids and sampling), {@code test:ball} when neither is given; {@code --no-streams} for
 * none. Caption prompt, tokens and sampling from {@code --prompt}, {@code --every}, the config, or the caption
 * defaults. Sources are parsed here (bad specs are usage errors) but not opened until {@link LiveStreams#start()}.
 */
final class ServeStreams {
    static final java.util.Set<String> VALUED = union(java.util.Set.of("config", "source", "every", "prompt", "caption-tokens", "view-fps", "kafka", "mqtt", "live",
            "live-fps", "live-window", "live-narrate", "live-prompt", "live-tokens", "live-alert-every"), AlertMode.OPTIONS);

    private static java.util.Set<String> union(java.util.Set<String> a, List<String> b) {
        java.util.Set<String> u = new java.util.HashSet<>(a);
        u.addAll(b);
        return java.util.Set.copyOf(u);
    }

    /**
     * Wires the streams to the server before they start: their frames, drops and caption latencies feed
     * {@code server.metrics()}, and the alerts of {@code --alert} (else the config's {@code alerts}) run on every
     * stream next to its captions, published as {@code alert} events.
     */
    static void wire(LiveStreams streams, io.vlmflux.demos.serve.ChatServer server, Args a, PipelineConfig config, VlmRuntime runtime) {
        streams.metrics(server.metrics());
        sinks(streams, a, config);
        if (a.flag("no-streams") && !a.has("alert")) return;   // a config's alerts need streams: none here
        List<io.vlmflux.pipeline.caption.Alert> alerts = AlertMode.alerts(a, config);
        if (alerts.isEmpty()) return;
        if (a.flag("no-streams")) throw new UsageException("--alert runs on the live streams: give --source (or none for test:ball), not --no-streams");
        AlertMode.check(runtime, alerts);
        streams.alerts(alerts);
        System.err.printf("vlmflux: %d alert(s) on every stream, published as 'alert' events%n", alerts.size());
    }
    static final java.util.Set<String> FLAGS = java.util.Set.of("no-streams");

    /**
     * {@code --kafka}/{@code --mqtt} (over the config's {@code output.kafka}/{@code output.mqtt}): the streams'
     * captions and source events go there as {@code vlmflux caption}'s records ({@link io.vlmflux.demos.serve.StreamSinks}),
     * closed after the streams.
     */
    static void sinks(LiveStreams streams, Args a, PipelineConfig config) {
        io.vlmflux.pipeline.config.OutputConfig output = CaptionSinks.output(config != null ? config.output()
                : io.vlmflux.pipeline.config.OutputConfig.DEFAULT, a);
        if (!output.hasSinks()) return;
        if (a.flag("no-streams")) {
            if (a.has("kafka") || a.has("mqtt")) throw new UsageException("--kafka/--mqtt send the live streams' records: give --source (or none for test:ball), not --no-streams");
            return;
        }
        String prompt = a.get("prompt", config != null ? config.prompt() : CaptionOptions.DEFAULT_PROMPT);
        io.vlmflux.sinks.SinkStage stage = CaptionSinks.open(output, null, prompt, false, streams.all().stream().map(io.vlmflux.demos.serve.LiveStream::source).toList());
        streams.closeAfter(new io.vlmflux.demos.serve.StreamSinks(stage, streams.all()));
    }

    private ServeStreams() {}

    /** The config of --config, or null. */
    static PipelineConfig config(Args a) {
        if (!a.has("config")) return null;
        Path f = Path.of(a.get("config"));
        if (!Files.isRegularFile(f)) {
            String home = System.getenv("VLMFLUX_HOME");
            if (home != null && !f.isAbsolute() && Files.isRegularFile(Path.of(home).resolve(f))) f = Path.of(home).resolve(f);
        }
        return PipelineConfig.load(f);
    }

    static LiveStreams.Options options(Args a) {
        double fps;
        try {
            fps = Double.parseDouble(a.get("view-fps", "5").trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--view-fps expects a number, got '" + a.get("view-fps") + "'");
        }
        if (!(fps > 0) || fps > 60) throw new UsageException("--view-fps must be in (0, 60], got " + a.get("view-fps"));
        return LiveStreams.Options.defaults().withViewFps(fps);
    }

    /** The caption options of the live streams: --prompt, --caption-tokens, the config, the model's generation config. */
    static CaptionOptions captions(Args a, PipelineConfig config, VlmRuntime runtime) {
        int tokens = a.getInt("caption-tokens", config != null ? config.maxTokens() : CaptionOptions.DEFAULT_MAX_TOKENS);
        if (tokens < 1) throw new UsageException("--caption-tokens must be at least 1, got " + tokens);
        String prompt = a.get("prompt", config != null ? config.prompt() : CaptionOptions.DEFAULT_PROMPT);
        if (prompt.isBlank()) throw new UsageException("--prompt must not be blank");
        return new CaptionOptions(prompt, null, tokens, CaptionCommand.sampling(config == null ? null : config.generation(),
                runtime.generationConfig()), CaptionOptions.Backpressure.AUTO, null);
    }

    /** Adds the streams the flags and config name to {@code streams}. */
    static void add(LiveStreams streams, Args a, PipelineConfig config, VlmRuntime runtime) {
        if (a.flag("no-streams")) {
            if (a.has("source")) throw new UsageException("give --source or --no-streams, not both");
            if (a.has("live")) throw new UsageException("--live runs on the live streams: give --source (or none for test:ball), not --no-streams");
            return;
        }
        String every = a.get("every", config != null && config.sampling().every() != null ? config.sampling().every() : CaptionCommand.DEFAULT_EVERY);
        SamplingPolicy policy;
        try {
            policy = SamplingPolicy.parse(every);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--every: " + e.getMessage());
        }
        CaptionOptions captions = captions(a, config, runtime);
        List<SourceConfig> sources = new ArrayList<>();
        if (a.has("source")) for (String s : a.all("source")) sources.add(new SourceConfig(s));
        else if (config != null) sources.addAll(config.sources());
        else sources.add(new SourceConfig(CaptionCommand.DEFAULT_SOURCE));
        java.util.Map<String, io.vlmflux.pipeline.config.LiveConfig> configLive = new java.util.LinkedHashMap<>();
        for (SourceConfig sc : sources) {
            String spec = CaptionCommand.sourceSpec(sc.uri());
            FrameSource fs;
            try {
                fs = Sources.parse(spec, new SourceOptions(sc.width() == null ? 0 : sc.width(), sc.height() == null ? 0 : sc.height(), sc.pixelFormat()));
            } catch (IllegalArgumentException | io.vlmflux.sources.SourceException e) {
                throw new UsageException((a.has("source") ? "--source " : "source ") + sc.uri() + ": " + e.getMessage());
            }
            String id = sc.id() != null ? sc.id() : streams.idFor(sc.uri());
            SamplingPolicy own = sc.every() == null ? policy : SamplingPolicy.parse(sc.every());
            try {
                streams.add(id, sc.uri(), fs, captions, own);
            } catch (IllegalArgumentException e) {
                throw new UsageException("source " + sc.uri() + ": " + e.getMessage());
            }
            if (sc.live() != null) configLive.put(id, sc.live());
        }
        java.util.Set<String> named = live(streams, a, runtime);
        io.vlmflux.llm.runtime.LiveDefaults model = null;   // the model folder's live settings, read once
        for (var e : configLive.entrySet()) {   // a config source's "live" block (--live on the same stream wins)
            if (named.contains(e.getKey())) continue;
            if (!runtime.hasVision()) throw new UsageException("source " + e.getKey() + ": 'live': " + runtime.dir() + " is a text-only model: it cannot watch video");
            io.vlmflux.pipeline.config.LiveConfig c = e.getValue();
            if (model == null) model = modelLiveDefaults(runtime);
            streams.live(e.getKey(), withModelEviction(liveOptions(c.fps(), c.windowDuration(), c.narrateDuration(), c.prompt(), c.maxTokens(),
                    c.alertEveryDuration()), model));
            System.err.printf(java.util.Locale.ROOT, "vlmflux: live-video session on %s (config): %.3g fps, window %s; questions%s are answered over the window%n",
                    e.getKey(), c.fps(), c.window(), a.has("alert") || !config.alerts().isEmpty() ? " and alerts" : "");
        }
    }

    static io.vlmflux.demos.serve.LiveWindowAnswerer.Options liveOptions(double fps, java.time.Duration window, java.time.Duration narrate, String prompt,
                                                                      int tokens, java.time.Duration alertEvery) {
        return io.vlmflux.demos.serve.LiveWindowAnswerer.Options.defaults()
                .withSession(io.vlmflux.llm.runtime.LiveSession.Options.defaults().withFps(fps).withWindow(window).withMaxAnswerTokens(tokens))
                .withNarration(narrate, prompt).withAlertEvery(alertEvery);
    }

    /** The live-session options of the {@code --live-*} flags (checked), or null without {@code --live}. */
    static io.vlmflux.demos.serve.LiveWindowAnswerer.Options liveOptions(Args a, VlmRuntime runtime) {
        if (!a.has("live")) {
            for (String f : List.of("live-fps", "live-window", "live-narrate", "live-prompt", "live-tokens", "live-alert-every"))
                if (a.has(f)) throw new UsageException("--" + f + " needs --live all|ID[,ID]");
            return null;
        }
        if (!runtime.hasVision()) throw new UsageException("--live: " + runtime.dir() + " is a text-only model: it cannot watch video");
        double fps = a.getDouble("live-fps", 2);
        if (!(fps > 0 && fps <= 30)) throw new UsageException("--live-fps must be in (0, 30], got " + a.get("live-fps"));
        io.vlmflux.llm.runtime.LiveDefaults model = modelLiveDefaults(runtime);
        java.time.Duration window = a.has("live-window") ? a.getDuration("live-window") : model.windowOr(java.time.Duration.ofSeconds(30));
        if (window.isZero() || window.isNegative()) throw new UsageException("--live-window must be positive, got '" + a.get("live-window") + "'");
        String narrateArg = a.get("live-narrate", "off");
        java.time.Duration narrate = narrateArg.equalsIgnoreCase("off") ? null : Args.parseDuration("--live-narrate", narrateArg);
        if (narrate != null && (narrate.isZero() || narrate.isNegative())) throw new UsageException("--live-narrate must be positive or off");
        String prompt = a.has("live-prompt") ? a.get("live-prompt") : model.promptOr(io.vlmflux.pipeline.config.LiveConfig.DEFAULT_PROMPT);
        if (prompt.isBlank()) throw new UsageException("--live-prompt must not be blank");
        int tokens = a.getInt("live-tokens", 64);
        if (tokens < 1) throw new UsageException("--live-tokens must be at least 1, got " + tokens);
        java.time.Duration alertEvery = a.has("live-alert-every") ? a.getDuration("live-alert-every") : null;
        if (alertEvery != null && (alertEvery.isZero() || alertEvery.isNegative()))
            throw new UsageException("--live-alert-every must be positive, got '" + a.get("live-alert-every") + "'");
        return withModelEviction(liveOptions(fps, window, narrate, prompt, tokens, alertEvery), model);
    }

    /** The model folder's recommended live settings (vlmflux_live.json); a bad file is a usage error naming it. */
    static io.vlmflux.llm.runtime.LiveDefaults modelLiveDefaults(VlmRuntime runtime) {
        try {
            return io.vlmflux.llm.runtime.LiveDefaults.of(runtime.dir());
        } catch (IllegalArgumentException e) {
            throw new UsageException("live: " + e.getMessage());
        }
    }

    /** {@code o} with the session sliding as the model folder recommends (the flags have no eviction of their own). */
    static io.vlmflux.demos.serve.LiveWindowAnswerer.Options withModelEviction(io.vlmflux.demos.serve.LiveWindowAnswerer.Options o,
                                                                             io.vlmflux.llm.runtime.LiveDefaults model) {
        return o.withSession(o.session().withEviction(model.evictionOr(o.session().eviction())));
    }

    /**
     * {@code serve --fleet --live all|ID[,ID]}: the fleet cameras of those ids (all: every one) get a live-video session
     * when this node is assigned them (ids of cameras not known yet are taken as given).
     */
    static void liveFleet(LiveStreams streams, Args a, VlmRuntime runtime) {
        io.vlmflux.demos.serve.LiveWindowAnswerer.Options o = liveOptions(a, runtime);
        if (o == null) return;
        String which = a.get("live").strip();
        try {
            if (which.equals("all")) streams.liveWhenAdded("*", o);
            else for (String id : which.split(",")) if (!id.isBlank()) streams.liveWhenAdded(id.strip(), o);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--live " + which + ": " + e.getMessage());
        }
        System.err.printf(java.util.Locale.ROOT, "vlmflux: live-video sessions on the fleet cameras %s when assigned: %.3g fps, window %ss%n",
                which, o.session().fps(), o.session().window().toMillis() / 1000.0);
    }

    /**
     * {@code --live all|ID[,ID]}: those streams also run a live-video session (docs/live.md) whose window answers their
     * questions; {@code --live-fps} (2), {@code --live-window} (30s), {@code --live-narrate D|off} (off),
     * {@code --live-prompt} ("What changed?"), {@code --live-tokens} (64). The alerts of those streams ({@code --alert},
     * the config's) are checked over the window every {@code --live-alert-every} of video (default the narration period,
     * else 2s) instead of on each sampled frame. Returns the streams it named (a config source's own {@code live} block
     * does not apply to those).
     */
    static java.util.Set<String> live(LiveStreams streams, Args a, VlmRuntime runtime) {
        io.vlmflux.demos.serve.LiveWindowAnswerer.Options o = liveOptions(a, runtime);
        if (o == null) return java.util.Set.of();
        List<String> ids = new ArrayList<>();
        String which = a.get("live").strip();
        if (which.equals("all")) ids.addAll(streams.ids());
        else for (String id : which.split(",")) if (!id.isBlank()) ids.add(id.strip());
        if (ids.isEmpty()) throw new UsageException("--live: no streams" + (a.flag("no-streams") ? " (--no-streams)" : ""));
        List<String> local = new ArrayList<>();
        for (String id : ids) {
            if (streams.stream(id) == null) {
                if (a.has("fleet")) continue;   // a fleet camera's id: liveFleet gives it its session when it is assigned
                throw new UsageException("--live " + which + ": no stream '" + id + "' (the streams are " + String.join(", ", streams.ids()) + ")");
            }
            streams.live(id, o);
            local.add(id);
        }
        System.err.printf(java.util.Locale.ROOT, "vlmflux: live-video sessions on %s: %.3g fps, window %ss%s; questions%s are answered over the window%n",
                String.join(", ", local), o.session().fps(), o.session().window().toMillis() / 1000.0,
                o.narrateEvery() == null ? "" : ", narrating every " + o.narrateEvery().toMillis() / 1000.0 + "s",
                a.has("alert") || o.alertEvery() != null ? " and alerts (every " + o.alertPeriod().toMillis() / 1000.0 + "s of video)" : "");
        return java.util.Set.copyOf(local);
    }
}
