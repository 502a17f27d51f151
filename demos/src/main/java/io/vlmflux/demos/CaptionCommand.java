package io.vlmflux.demos;

import io.vlmflux.llm.GenerationConfig;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.SourceInput;
import io.vlmflux.pipeline.VlmPipeline;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.config.GenerationSettings;
import io.vlmflux.pipeline.config.OutputConfig;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.pipeline.config.PipelineConfig;
import io.vlmflux.pipeline.config.SourceConfig;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@code vlmflux caption}: streams captions of a video source as they are produced, until the source ends, the
 * count or duration is reached, or Ctrl-C (a shutdown hook cancels the pipeline and waits briefly for the sources
 * and the model to close). Captions go to stdout (one line each, flushed at once), logs to stderr.
 */
public final class CaptionCommand implements Command {
    static final String DEFAULT_SOURCE = "test:ball";
    static final String DEFAULT_MODEL = "demos/models/shapes-vl";
    /** A caption of the demo model takes ~0.15–0.35 s on 2 busy CPU cores: one a second leaves headroom. */
    static final String DEFAULT_EVERY = "1s";

    @Override public String summary() { return "caption a live or recorded video with a vision-language model"; }

    @Override public String usage() {
        return """
                vlmflux caption [--source SOURCE] [--model DIR] [--prompt TEXT] [--every 1s|500ms|30f] [--max-tokens N]
                                [--count N | --duration D] [--backend auto|cpu|cuda] [--device N] [--config FILE] [--json]
                                [--json-schema FILE | --regex RE | --choice A,B,C | --grammar FILE] [--kafka BROKERS[/topic]] [--mqtt tcp://HOST:PORT[/prefix]]
                  --source SOURCE   test:ball, test:smpte?live=false, a video file, rtsp://..., v4l2:///dev/video0, images:DIR, gst:...
                                    (default test:ball: GStreamer's bouncing ball, live)
                  --model DIR       Hugging Face Qwen2-VL / Qwen2.5-VL folder (default demos/models/shapes-vl, the embedded demo model;
                                    relative paths resolve against the working directory, then $VLMFLUX_HOME)
                  --prompt TEXT     question asked about each frame (default "Describe the image.")
                  --every SPEC      sampling: 1s, 500ms, 5fps, 30f, all, scene:0.1, scene:0.05+1s (default 1s)
                  --max-tokens N    tokens per caption (default 32)
                  --count N         stop after N captions
                  --duration D      stop after D (e.g. 30s, 2m)
                  --backend NAME    auto, cpu or cuda (default auto: cuda when a GPU is usable; or the config's)
                  --device N        CUDA device index (default 0, or the config's model.device)
                  --json-schema F   each answer is an instance of the JSON Schema in file F (canonical JSON)
                  --regex RE        each answer matches RE in full;  --choice A,B,C: each answer is one of the options
                  --grammar F       each answer is a sentence of the GBNF grammar in F (*.lark, *.ebnf: Lark-like EBNF)
                  --config FILE     pipeline config JSON (configs/*.json); flags override its fields; its output block
                                    (format text|json, path: file to append to, tokens: live tokens) says where captions go
                  --kafka SPEC      also send JSON records (captions, events, per-source status; docs/sinks.md) to Kafka:
                                    host:9092[,host2:9092][/topic] (default topic vlmflux.records; key = source id)
                  --mqtt SPEC       also publish them over MQTT: tcp://host:1883[/prefix][?qos=0|1] (topic PREFIX/SOURCE/TYPE)
                  --json            one JSON object per caption: source, seq, pts_ms, text, tokens, finish_reason, dropped,
                                    timings {preprocess_ms, encode_ms, prefill_ms, ttft_ms, total_ms}
                Live sources keep only the newest frame while a caption is being generated (dropped frames are counted);
                files and other non-live sources are captioned losslessly at the sampling rate. Ctrl-C stops cleanly.
                At the end stderr gets one line per stage: in, out, dropped, errors, latency (docs/pipeline.md).
                """ + AlertMode.USAGE;
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, Set.of("source", "model", "prompt", "every", "max-tokens", "count", "duration", "backend", "device", "config",
                "json-schema", "regex", "choice", "grammar", "alert", "alert-agree", "alert-debounce", "alert-min-interval", "alert-max-interval",
                "kafka", "mqtt"), Set.of("json"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        if (a.has("count") && a.has("duration")) throw new UsageException("give --count or --duration, not both");
        PipelineConfig config = null;
        if (a.has("config")) {
            Path f = Path.of(a.get("config"));
            if (!Files.isRegularFile(f)) f = resolveHome(a.get("config"), f);
            config = PipelineConfig.load(f);
        }
        long count = a.getLong("count", -1);
        if (a.has("count") && count < 1) throw new UsageException("--count must be at least 1, got " + count);
        Duration duration = a.getDuration("duration");
        if (duration != null && (duration.isNegative() || duration.isZero())) throw new UsageException("--duration must be positive, got '" + a.get("duration") + "'");
        int maxTokens = a.getInt("max-tokens", config != null ? config.maxTokens() : CaptionOptions.DEFAULT_MAX_TOKENS);
        if (maxTokens < 1) throw new UsageException("--max-tokens must be at least 1, got " + maxTokens);
        String every = a.get("every", config != null && config.sampling().every() != null && a.get("source") == null ? config.sampling().every() : DEFAULT_EVERY);
        SamplingPolicy policy;
        try {
            policy = SamplingPolicy.parse(every);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--every: " + e.getMessage());
        }
        String prompt = a.get("prompt", config != null ? config.prompt() : CaptionOptions.DEFAULT_PROMPT);
        if (prompt.isBlank()) throw new UsageException("--prompt must not be blank");
        Backend backend;
        try {
            backend = Backend.parse(a.get("backend", config != null ? config.model().backend() : "auto"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--backend: " + e.getMessage());
        }
        int device = a.getInt("device", config != null ? config.model().device() : 0);
        if (device < 0) throw new UsageException("--device must be >= 0, got " + device);
        Path modelDir = modelDir(a.get("model", config != null ? config.model().dir() : DEFAULT_MODEL));
        boolean json = a.flag("json");
        io.vlmflux.llm.constrain.ConstraintSpec constraint = constraint(a);
        if (constraint == null && config != null && config.constraint() != null) {
            try {
                constraint = AlertMode.constraint(config.constraint(), "constraint");
            } catch (IllegalArgumentException e) {
                throw new UsageException("config " + e.getMessage());
            }
        }
        List<io.vlmflux.pipeline.caption.Alert> alerts = AlertMode.alerts(a, config);   // flags, else the config's
        if (!alerts.isEmpty() && ConstraintFlags.NAMES.stream().anyMatch(a::has))
            throw new UsageException("--alert asks its own questions instead of captioning: give the answers in the alert (\"Q? A|B\", \"Q? /RE/\"), not " + constraintFlag(a));

        // sources: --source replaces the config's list
        PipelineMetrics metrics = new PipelineMetrics();        // one set of counters for the run, summarized at the end
        VlmPipeline.Builder b = VlmPipeline.builder().sampling(policy).metrics(metrics);
        List<FrameSource> opened = new ArrayList<>();
        List<SourceInput> inputs = new ArrayList<>();          // for one caption stage per source (batched decode)
        List<SamplingPolicy> policies = new ArrayList<>();
        boolean live = false;
        if (a.has("source") || config == null) {
            FrameSource s = Sources.parse(sourceSpec(a.get("source", DEFAULT_SOURCE)));
            opened.add(s);
            live = s.isLive();
            b.source(SourceInput.of(s));
            inputs.add(SourceInput.of(s));
            policies.add(policy);
        } else {
            if (config.sampling().fanInOptions() != null) b.fanIn(config.sampling().fanInOptions());
            for (SourceConfig sc : config.sources()) {
                FrameSource s = Sources.parse(sourceSpec(sc.uri()), new SourceOptions(sc.width() == null ? 0 : sc.width(),
                        sc.height() == null ? 0 : sc.height(), sc.pixelFormat()));
                if (sc.id() != null) s = s.named(sc.id());   // frames, events and errors carry the config's id
                live |= s.isLive();
                String id = s.id();
                SamplingPolicy own = sc.every() == null ? null : SamplingPolicy.parse(sc.every());
                b.source(new SourceInput(id, s.frames(), s.isLive()), own);
                inputs.add(new SourceInput(id, s.frames(), s.isLive()));
                policies.add(own == null ? policy : own);
                opened.add(s);
            }
        }
        PrintStream err = System.err;
        OutputConfig outputConfig = CaptionSinks.output(config != null ? config.output() : OutputConfig.DEFAULT, a);
        RuntimeOptions ro = RuntimeOptions.defaults().withBackend(backend).withDevice(device);
        try (CaptionOutput output = CaptionOutput.open(outputConfig, json, opened.size() > 1, id -> id, System.out);
             VlmRuntime model = VlmRuntime.load(modelDir, ro);
             io.vlmflux.sinks.SinkStage sinks = CaptionSinks.open(outputConfig, metrics, prompt, constraint != null, opened)) {
            SamplingParams sampling = sampling(config == null ? null : config.generation(), model.generationConfig());
            CaptionOptions options = new CaptionOptions(prompt, null, maxTokens, sampling,
                    CaptionOptions.Backpressure.AUTO, constraint);   // resolved per pipeline from its sources (files lossless)
            if (constraint != null) {
                try {
                    model.controls(constraint, 0);   // compile now: a bad pattern or schema is a usage error naming the flag
                } catch (io.vlmflux.llm.constrain.ConstraintException e) {
                    throw new UsageException(constraintFlag(a) + ": " + e.getMessage());
                }
            }
            boolean multi = opened.size() > 1;
            if (!alerts.isEmpty()) {
                AlertMode.check(model, alerts);
                err.printf("vlmflux: watching %s with %s on %s, every %s%s: %d alert(s) (Ctrl-C to stop)%n", multi ? opened.size() + " sources" : opened.get(0).id(),
                        modelDir.getFileName(), model.backend().wire(), policy.spec(), live ? ", newest frame wins" : ", lossless", alerts.size());
                var backpressure = b.resolve(CaptionOptions.defaults()).backpressure();
                Flux<io.vlmflux.pipeline.watch.Event> events = b.model(io.vlmflux.pipeline.Stages.watch(model, alerts, backpressure)).flux();
                if (count > 0) events = events.take(count);
                if (duration != null) events = events.take(duration);
                if (sinks != null) events = events.transform(sinks.alerts());   // Kafka/MQTT: 'alert' event records, printed once acknowledged
                List<Disposable> sourceEvents = new ArrayList<>();   // source_down/up, retries: as for captions
                for (FrameSource s : opened) sourceEvents.add(s.events().subscribe(e -> {
                    output.event(e);
                    if (sinks != null) sinks.event(e);
                }));
                int rc;
                try {
                    rc = stream(events, output::alert);
                } finally {
                    sourceEvents.forEach(Disposable::dispose);
                }
                for (var stage : metrics.snapshot().stages()) err.println("vlmflux: stage " + stage.format());
                var cache = model.encoderCacheStats();
                err.printf("vlmflux: encoder cache %d hits, %d misses (one encoding per frame for all alerts)%n", cache.hits(), cache.misses());
                return rc;
            }
            // several sources on cuda: one caption stage per source so their captions run concurrently and the model
            // batches their decode steps; otherwise one stage behind the fair fan-in (captions take turns)
            boolean perSource = multi && model.batchDecode();
            err.printf("vlmflux: captioning %s with %s on %s, every %s%s%s (Ctrl-C to stop)%n",
                    multi ? opened.size() + " sources" : opened.get(0).id(), modelDir.getFileName(), model.backend().wire(), policy.spec(),
                    live ? ", newest frame wins" : ", lossless", perSource ? ", one caption stage per source, decode steps batched" : "");
            Flux<Caption> captions;
            if (perSource) {
                List<Flux<Caption>> each = new ArrayList<>();
                for (int i = 0; i < inputs.size(); i++) {
                    String id = inputs.get(i).id();
                    VlmPipeline.Builder one = VlmPipeline.builder().source(inputs.get(i), policies.get(i)).sampling(policy).metrics(metrics);
                    each.add(one.model(output.stage(model, one.resolve(options), metrics.stage("model")), Caption::frame).flux()
                            .doOnError(e -> err.println("vlmflux: source " + id + " failed (the others go on): " + e.getMessage())));
                }
                // a failing source does not stop the others; its error ends the command once they are done
                captions = Flux.fromIterable(each).flatMapDelayError(f -> f, each.size(), 32);
            } else {
                captions = b.model(output.stage(model, b.resolve(options), metrics.stage("model")), Caption::frame).flux();
            }
            if (count > 0) captions = captions.take(count);
            if (duration != null) captions = captions.take(duration);
            if (sinks != null) captions = captions.transform(sinks);   // Kafka/MQTT: a caption is printed once they acknowledged it
            // source events (source_down/source_up/retries, skipped files, warnings) reach the output as they happen
            List<Disposable> events = new ArrayList<>();
            for (FrameSource s : opened) events.add(s.events().subscribe(e -> {
                output.event(e);
                if (sinks != null) sinks.event(e);
            }));
            int rc;
            try {
                rc = stream(captions, output::caption);
            } finally {
                events.forEach(Disposable::dispose);
            }
            for (FrameSource s : opened)
                if (s.stats().skipped() > 0 || s.stats().warnings() > 0)
                    err.println("vlmflux: source " + s.id() + ": " + s.stats().skipped() + " file(s) skipped, " + s.stats().warnings() + " warning(s)");
            if (outputConfig.path() != null) err.println("vlmflux: captions appended to " + Path.of(outputConfig.path()).toAbsolutePath());
            // one line per stage (sample/<id>, fan-in/<id>, model): the counters are defined in docs/pipeline.md
            for (var stage : metrics.snapshot().stages()) err.println("vlmflux: stage " + stage.format());
            var cache = model.encoderCacheStats();
            long[] batch = model.batchStats();
            err.printf("vlmflux: encoder cache %d hits, %d misses%s%n", cache.hits(), cache.misses(),
                    batch[0] == 0 ? "" : String.format(Locale.ROOT, "; %d batched decode steps, mean batch %.2f", batch[0], (double) batch[1] / batch[0]));
            return rc;
        }
    }

    /** The answer constraint of --json-schema / --regex / --choice / --grammar (at most one), or null. */
    static io.vlmflux.llm.constrain.ConstraintSpec constraint(Args a) throws java.io.IOException {
        return ConstraintFlags.spec(a);
    }

    private static String constraintFlag(Args a) {
        return "--" + ConstraintFlags.NAMES.stream().filter(a::has).findFirst().orElse("constraint");
    }

    /** Subscribes, waits for the end, and turns Ctrl-C into a cancel that waits (bounded) for the teardown. */
    static <T> int stream(Flux<T> captions, java.util.function.Consumer<T> print) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<Throwable> error = new AtomicReference<>();
        Disposable sub = captions.doFinally(s -> done.countDown()).subscribe(print, error::set);
        Thread hook = new Thread(() -> {
            if (done.getCount() > 0) System.err.println("vlmflux: stopping (closing sources and model)");
            sub.dispose();
            try {
                if (!done.await(3, TimeUnit.SECONDS)) System.err.println("vlmflux: teardown takes longer than 3 s; exiting anyway");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "vlmflux-caption-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            done.await();
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running: it disposes and waits
            }
        }
        Throwable t = error.get();
        if (t instanceof Exception e) throw e;
        if (t != null) throw new RuntimeException(t);
        return 0;
    }

    /** Config sampling over the model's generation_config.json; null (the model's defaults) when nothing is set. */
    static SamplingParams sampling(GenerationSettings g, GenerationConfig model) {
        if (g == null || g.equals(GenerationSettings.MODEL_DEFAULTS)) return null;
        double rp = g.repetitionPenalty() != null ? g.repetitionPenalty() : model.repetitionPenalty();
        boolean greedy = g.greedy() != null ? g.greedy() : !model.doSample();
        if (greedy) return SamplingParams.greedyDecoding().withRepetitionPenalty(rp);
        return new SamplingParams(false, g.temperature() != null ? g.temperature() : model.temperature(), g.topK() != null ? g.topK() : model.topK(),
                g.topP() != null ? g.topP() : model.topP(), g.minP() != null ? g.minP() : model.minP(), rp, g.seed() != null ? g.seed() : 0);
    }

    /** A relative file path in a source spec resolves like the model folder (working directory, then the home). */
    static String sourceSpec(String spec) {
        if (spec.contains(":") || Files.exists(Path.of(spec))) return spec;
        for (Path home : homes()) if (Files.exists(home.resolve(spec))) return home.resolve(spec).toString();
        return spec;
    }

    /** The model folder: as given when it exists, else under $VLMFLUX_HOME (or the repository root in tests). */
    static Path modelDir(String dir) {
        Path p = Path.of(dir);
        if (Files.isDirectory(p)) return p;
        Path r = resolveHome(dir, p);
        if (Files.isDirectory(r)) return r;
        StringBuilder tried = new StringBuilder(p.toAbsolutePath().toString());
        for (Path h : homes()) tried.append(", ").append(h.resolve(dir));
        throw new UsageException("model folder '" + dir + "' not found (looked in " + tried + "); pass --model DIR or set VLMFLUX_HOME to the vlmflux checkout");
    }

    private static Path resolveHome(String rel, Path fallback) {
        if (Path.of(rel).isAbsolute()) return fallback;
        for (Path h : homes()) if (Files.exists(h.resolve(rel))) return h.resolve(rel);
        return fallback;
    }

    private static List<Path> homes() {
        List<Path> h = new ArrayList<>();
        String env = System.getenv("VLMFLUX_HOME");
        if (env != null && !env.isBlank()) h.add(Path.of(env));
        String root = System.getProperty("vlmflux.root");
        if (root != null && !root.isBlank()) h.add(Path.of(root));
        return h;
    }
}
