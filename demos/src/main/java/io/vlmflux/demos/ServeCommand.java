package io.vlmflux.demos;

import io.vlmflux.demos.serve.ChatServer;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.demos.serve.ServeOptions;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code vlmflux serve}: loads one model into a {@link VlmRuntime} and serves it over an OpenAI-compatible HTTP API
 * ({@link ChatServer}) until Ctrl-C. Owns the flag checks, above all that a non-loopback address is not opened
 * without an API key unless the user says {@code --insecure}.
 */
public final class ServeCommand implements Command {
    private static final Set<String> VALUED = union(Set.of("model", "host", "port", "api-key", "max-concurrent", "max-body-bytes", "max-tokens",
            "request-timeout", "backend", "device", "cors-origin"), union(ServeStreams.VALUED, FleetServe.VALUED));
    private static final Set<String> FLAGS = union(Set.of("insecure", "fetch-images"), ServeStreams.FLAGS);

    private static Set<String> union(Set<String> a, Set<String> b) {
        java.util.HashSet<String> u = new java.util.HashSet<>(a);
        u.addAll(b);
        return Set.copyOf(u);
    }

    @Override public String summary() { return "serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions)"; }

    @Override public String usage() {
        ServeOptions d = ServeOptions.defaults();
        return """
                vlmflux serve [--config FILE] [--model DIR] [--source SPEC]... [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--insecure]
                              [--max-concurrent N] [--max-body-bytes N] [--max-tokens N] [--request-timeout D] [--fetch-images]
                              [--cors-origin ORIGIN]... [--backend auto|cpu|cuda] [--device N]
                              [--every D] [--prompt TEXT] [--caption-tokens N] [--view-fps N] [--alert "Q? A|B"]... [--no-streams]
                              [--fleet kafka://BROKERS [--group NAME] [--node NAME] [--cameras-topic T] [--events-topic T] [--session-timeout D]]
                  --model DIR          model folder (default demos/models/shapes-vl, the embedded demo model); its folder name
                                       is the model id clients send
                  --host ADDR          address to bind (default 127.0.0.1). Any other than loopback needs --api-key or --insecure
                  --port N             TCP port (default %d; 0 picks a free one, logged)
                  --api-key KEY        require 'Authorization: Bearer KEY' on every /v1 request (or set VLMFLUX_API_KEY)
                  --insecure           allow a non-loopback --host without an API key
                  --max-concurrent N   completions running at once (default %d); more are answered 429 with Retry-After
                  --max-body-bytes N   largest request body, images included (default %d); more is 413
                  --max-tokens N       largest max_tokens a request may ask, and the default (default %d)
                  --request-timeout D  longest a completion may run (default %ds)
                  --fetch-images       fetch http(s) image URLs (public addresses only, no redirects, image/* up to 20 MiB,
                                       20 s); without it only data: URLs are accepted
                  --cors-origin ORIGIN let browser pages from ORIGIN (https://host[:port], or * for any; repeatable or
                                       comma-separated) call the API; without it no CORS headers are sent
                  --source SPEC        a live stream: a source captioned continuously (repeatable; default test:ball, or the
                                       config's sources); --no-streams serves the API only
                  --config FILE        pipeline config JSON (configs/*.json): sources, prompt, sampling, model
                  --every SPEC         caption sampling of each stream (default 1s);  --prompt TEXT: the caption question
                  --caption-tokens N   tokens per caption (default 32);  --view-fps N: live view frames per second (default 5)
                  --alert "Q? A|B"     also ask Q about every sampled frame of every stream, next to the captions (repeatable;
                                       as caption --alert, with --alert-agree/-debounce/-min-interval/-max-interval);
                                       changes are published as 'alert' events (GET /v1/streams/ID/events)
                  --fleet kafka://B    join a fleet: the cameras Kafka assigns this node (compacted topic --cameras-topic,
                                       default vlmflux.cameras; consumer group --group, default vlmflux-fleet) are its live
                                       streams, captioned by the model; records go to --events-topic (vlmflux.records);
                                       GET /v1/fleet shows its cameras and the group (docs/fleet.md); no default stream
                  --live all|ID,...    those streams (with --fleet: those cameras) also run a live-video session (docs/live.md):
                                       their questions are answered over the recent past (--live-window 30s at --live-fps 2),
                                       tokens streamed as events;
                                       --live-narrate D asks --live-prompt ("What changed?", or the model folder's vlmflux_live.json) every D; --live-tokens N (64);
                                       their --alert alerts are asked over the window every --live-alert-every D of video
                                       (default the narration period, else 2s) instead of on each sampled frame
                  --kafka B/TOPIC      also send the streams' captions, alerts, narrations, answers and source events as
                  --mqtt URL/PREFIX    records to Kafka and/or MQTT (docs/sinks.md; or the config's output.kafka / output.mqtt)
                Endpoints: GET /healthz, GET /metrics (Prometheus text), GET /v1/models, POST /v1/chat/completions
                (stream: true for server-sent events; images as data: URLs in image_url parts; response_format, logprobs,
                logit_bias); the page at / ; GET /v1/streams, GET /v1/streams/ID/events (SSE), POST /v1/streams/ID/questions,
                GET /v1/streams/ID/view.mjpeg (docs/serve.md). Ctrl-C stops.""".formatted(d.port(), d.maxConcurrent(), d.maxBodyBytes(), d.maxTokens(),
                d.requestTimeout().toSeconds());
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, VALUED, FLAGS);
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        ServeOptions o = options(a, System.getenv("VLMFLUX_API_KEY"));
        FleetServe fleet = FleetServe.of(a);   // --fleet kafka://BROKERS: the fleet's cameras are the live streams (docs/fleet.md)
        io.vlmflux.pipeline.config.PipelineConfig config = ServeStreams.config(a);
        Path dir = CaptionCommand.modelDir(a.get("model", config != null ? config.model().dir() : CaptionCommand.DEFAULT_MODEL));
        LiveStreams.Options streamOptions = ServeStreams.options(a);
        Backend backend;
        try {
            backend = Backend.parse(a.get("backend", config != null ? config.model().backend() : "auto"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--backend: " + e.getMessage());
        }
        int device = a.getInt("device", config != null ? config.model().device() : 0);
        if (device < 0) throw new UsageException("--device must be >= 0, got " + device);

        CountDownLatch closed = new CountDownLatch(1);
        try (VlmRuntime runtime = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(backend).withDevice(device));
             LiveStreams streams = new LiveStreams(runtime, streamOptions)) {
            if (fleet == null || a.has("source")) ServeStreams.add(streams, a, config, runtime);
            if (fleet != null) ServeStreams.liveFleet(streams, a, runtime);   // --live on the cameras Kafka assigns this node
            ChatServer server = ChatServer.start(runtime, o, fleet == null ? streams : fleet.routes(streams));
            try {
                ServeStreams.wire(streams, server, a, config, runtime);   // /metrics per source; --alert / config alerts
            } catch (RuntimeException e) {
                server.close();
                throw e;
            }
            streams.start();
            if (fleet != null) fleet.start(streams, ServeStreams.captions(a, config, runtime));
            Thread hook = new Thread(() -> {
                if (fleet != null) fleet.close();   // leaves the group first: its cameras move to the other nodes at once
                streams.close();   // ends the event streams and live views first: the server then closes without waiting on them
                server.close();
                try { closed.await(10, TimeUnit.SECONDS); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            }, "vlmflux-serve-shutdown");
            Runtime.getRuntime().addShutdownHook(hook);
            System.err.printf("vlmflux: serving %s (%s) at %s/v1 — %s%s (Ctrl-C to stop)%n", server.modelId(), runtime.describe(), server.url(),
                    o.apiKey() != null ? "API key required" : "no API key", isLoopback(o.host()) ? "" : ", listening beyond this machine");
            if (!streams.all().isEmpty())
                System.err.printf("vlmflux: live streams %s — the page is at %s/%n", String.join(", ", streams.ids()), server.url());
            System.err.flush();
            try {
                server.awaitClose();
            } finally {
                if (fleet != null) fleet.close();
                streams.close();
                server.close();
            }
        } finally {
            closed.countDown();
        }
        return 0;
    }

    /** The server options from the flags; {@code envKey} (VLMFLUX_API_KEY) when --api-key is absent. */
    static ServeOptions options(Args a, String envKey) {
        ServeOptions d = ServeOptions.defaults();
        String host = a.get("host", d.host()).strip();
        int port = a.getInt("port", d.port());
        if (port < 0 || port > 65535) throw new UsageException("--port must be in 0..65535, got " + port);
        String key = a.get("api-key", envKey == null || envKey.isBlank() ? null : envKey);
        if (key != null && key.isBlank()) throw new UsageException("--api-key must not be blank");
        if (!isLoopback(host) && key == null && !a.flag("insecure"))
            throw new UsageException("--host " + host + " is reachable from other machines: give --api-key KEY (or VLMFLUX_API_KEY), "
                    + "or --insecure to serve without one");
        int conc = a.getInt("max-concurrent", d.maxConcurrent());
        if (conc < 1) throw new UsageException("--max-concurrent must be at least 1, got " + conc);
        long body = a.getLong("max-body-bytes", d.maxBodyBytes());
        if (body < 1024) throw new UsageException("--max-body-bytes must be at least 1024, got " + body);
        int tokens = a.getInt("max-tokens", d.maxTokens());
        if (tokens < 1) throw new UsageException("--max-tokens must be at least 1, got " + tokens);
        Duration timeout = a.has("request-timeout") ? a.getDuration("request-timeout") : d.requestTimeout();
        if (timeout.isNegative() || timeout.isZero()) throw new UsageException("--request-timeout must be positive, got '" + a.get("request-timeout") + "'");
        List<String> cors = new java.util.ArrayList<>();
        for (String v : a.all("cors-origin"))
            for (String o : v.split(",")) if (!o.isBlank()) cors.add(o.strip());
        try {
            return new ServeOptions(host, port, key, conc, body, tokens, timeout, a.flag("fetch-images"), cors);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--cors-origin: " + e.getMessage());
        }
    }

    /** True for loopback names and addresses; a name that does not resolve is not loopback. */
    static boolean isLoopback(String host) {
        try {
            InetAddress[] all = InetAddress.getAllByName(host);
            for (InetAddress i : all) if (!i.isLoopbackAddress()) return false;
            return all.length > 0;
        } catch (UnknownHostException e) {
            throw new UsageException("--host " + host + ": unknown host");
        }
    }
}
