package io.vlmflux.demos.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.buffer.Unpooled;
import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.demos.serve.ChatServer;
import io.vlmflux.demos.serve.LiveStream;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.demos.serve.ServeOptions;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.netty.http.client.HttpClient;
import reactor.netty.resources.ConnectionProvider;

import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code bench serve}: the real {@link ChatServer} on loopback under N concurrent streaming clients for a duration —
 * most read their event streams, some never read a byte of the answer (a raw socket that only sends) — once alone and
 * once while the server's own live streams ({@link LiveStreams}, mounted at {@code /v1/streams} as {@code vlmflux
 * serve} does, feeding {@code /metrics}) caption test video on the same runtime, one SSE client following each
 * stream's events. Reports completed requests/s, 429s/s (clients wait the Retry-After before trying again), TTFT p50/p99 as the
 * clients see it (request sent to the first content chunk), tokens/s, and heap and RSS at start and end.
 */
public final class ServeBench implements Command {
    private static final Set<String> VALUED = Set.of("model", "backend", "clients", "seconds", "stalled", "max-tokens", "max-concurrent",
            "live-streams", "live-fps", "sample-every");

    @Override public String summary() { return "N concurrent SSE clients (some never reading) against vlmflux serve, with and without live streams"; }

    @Override public String usage() {
        return """
                vlmflux bench serve [--model DIR] [--backend cpu|cuda] [--clients 200] [--seconds 30] [--stalled 0.1] [--max-tokens 16]
                                    [--max-concurrent 16] [--live-streams 2] [--live-fps 5] [--sample-every 60s] [--live-video] [--json]
                  --clients N        concurrent streaming clients (each sends its next request when the last one ends)
                  --stalled F        fraction of them that send one request and never read the answer
                  --seconds S        length of each phase (without, then with live streams)
                  --max-concurrent N the server's admission bound; more are answered 429 and retry after Retry-After
                  --live-streams N   live streams of the server (/v1/streams: GStreamer test:ball, every frame offered, newest
                                     frame wins, one SSE client each) started for the second phase; 0: skip it
                  --live-video       the live streams also run a live-video session each (serve --live: 2 fps, 30 s window,
                                     narration every 5 s)
                  --sample-every D   memory series: heap used, heap after GC, direct/mapped buffers, RSS, and the bytes
                                     the runtime's caches hold (encoder outputs + prompt prefixes: "tracked") every D (60s)
                                     from the phase's start, and once at its end""";
    }

    record Phase(String name, double seconds, long completed, long rejected, long failed, double tokensPerSecond, double ttftP50, double ttftP99,
                 double captionsPerSecond, double liveFramesPerSecond, long heapStartMb, long heapEndMb, long rssStartMb, long rssEndMb,
                 List<MemorySampler.Sample> memory) {}

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, VALUED, Set.of("json", "live-video"));
        int clients = a.getInt("clients", 200), seconds = a.getInt("seconds", 30), maxTokens = a.getInt("max-tokens", 16);
        int maxConcurrent = a.getInt("max-concurrent", 16), live = a.getInt("live-streams", 2), liveFps = a.getInt("live-fps", 5);
        double stalled = a.getDouble("stalled", 0.1);
        Duration sampleEvery = a.has("sample-every") ? a.getDuration("sample-every") : Duration.ofSeconds(60);
        if (sampleEvery.isNegative() || sampleEvery.isZero()) throw new UsageException("--sample-every must be positive, got '" + a.get("sample-every") + "'");
        if (clients < 1 || seconds < 1 || maxTokens < 1 || maxConcurrent < 1 || live < 0 || liveFps < 1 || stalled < 0 || stalled >= 1)
            throw new UsageException("--clients, --seconds, --max-tokens, --max-concurrent, --live-fps must be >= 1, --live-streams >= 0, --stalled in [0, 1)");
        Path dir = Path.of(a.get("model", "demos/models/shapes-vl"));
        if (!Files.isDirectory(dir)) throw new UsageException("--model: no folder " + dir);
        Backend backend = Backend.parse(a.get("backend", "auto"));
        List<Phase> phases = new ArrayList<>();
        java.util.logging.Logger quiet = java.util.logging.Logger.getLogger("vlmflux.serve");   // one INFO line per request otherwise
        quiet.setLevel(java.util.logging.Level.WARNING);
        try (VlmRuntime runtime = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(backend));
             LiveStreams streams = new LiveStreams(runtime, LiveStreams.Options.defaults());
             ChatServer server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withMaxConcurrent(maxConcurrent)
                     .withMaxTokens(Math.max(maxTokens, 16)).withRequestTimeout(Duration.ofSeconds(seconds + 30L)), streams)) {
            // the streams are the server's (/v1/streams, /metrics); they start with the second phase and end with it
            CaptionOptions co = new CaptionOptions("Describe the image.", null, maxTokens, SamplingParams.greedyDecoding(), CaptionOptions.Backpressure.NEWEST_WINS);
            for (int i = 0; i < live; i++) {
                String spec = "test:ball?width=320&height=240&fps=" + liveFps;
                streams.add("live" + i, spec, Sources.parse(spec, new SourceOptions(320, 240, PixelFormat.RGB)), co, SamplingPolicy.parse("all"));
                if (a.flag("live-video")) streams.live("live" + i, io.vlmflux.demos.serve.LiveWindowAnswerer.Options.defaults()
                        .withNarration(Duration.ofSeconds(5), "What changed?"));
            }
            streams.metrics(server.metrics());
            System.err.printf("serve bench: %s, %d clients (%d never reading), %d s per phase, %d tokens per answer, admission %d, at %s%n",
                    runtime.describe(), clients, (int) Math.round(clients * stalled), seconds, maxTokens, maxConcurrent, server.url());
            String model = server.modelId();
            // the memory series' "tracked" column: what the runtime's bounded caches hold (encoder outputs, prompt prefixes)
            java.util.function.LongSupplier caches = () -> runtime.encoderCacheStats().bytes() + (runtime.prefixCache() == null ? 0 : runtime.prefixCache().bytes());
            once(server, model, clients, 0, 2, maxTokens, null, sampleEvery, caches);   // warm-up: JIT, connections
            phases.add(once(server, model, clients, stalled, seconds, maxTokens, null, sampleEvery, caches));
            if (live > 0) phases.add(once(server, model, clients, stalled, seconds, maxTokens, streams, sampleEvery, caches));
        }
        System.err.println("| phase | completed req/s | 429/s | failed | tokens/s | TTFT p50 / p99 ms (client) | live captions/s (frames/s in) | heap MB start -> end | RSS MB start -> end |");
        System.err.println("|---|---|---|---|---|---|---|---|---|");
        for (Phase p : phases)
            System.err.printf("| %s | %.1f | %.1f | %d | %.0f | %.0f / %.0f | %.2f (%.1f) | %d -> %d | %d -> %d |%n", p.name(), p.completed() / p.seconds(),
                    p.rejected() / p.seconds(), p.failed(), p.tokensPerSecond(), p.ttftP50(), p.ttftP99(), p.captionsPerSecond(), p.liveFramesPerSecond(),
                    p.heapStartMb(), p.heapEndMb(), p.rssStartMb(), p.rssEndMb());
        if (a.flag("json")) {
            ObjectMapper json = new ObjectMapper();
            ObjectNode o = json.createObjectNode().put("clients", clients).put("stalled", stalled).put("seconds", seconds).put("max_tokens", maxTokens)
                    .put("max_concurrent", maxConcurrent);
            ArrayNode arr = o.putArray("phases");
            for (Phase p : phases) arr.add(json.valueToTree(p));
            System.out.println(json.writeValueAsString(o));
        }
        return 0;
    }

    /** One phase; with {@code streams}, they are started for it (and closed after it). */
    private static Phase once(ChatServer server, String model, int clients, double stalledFraction, int seconds, int maxTokens,
                              LiveStreams streams, Duration sampleEvery, java.util.function.LongSupplier caches) throws Exception {
        System.gc();
        long heap0 = heapMb(), rss0 = rssMb();
        List<MemorySampler.Sample> memory = java.util.Collections.synchronizedList(new ArrayList<>());
        long t00 = System.nanoTime();
        Disposable sampler = MemorySampler.every(sampleEvery, reactor.core.scheduler.Schedulers.parallel(), caches).subscribe(memory::add);
        int stalled = (int) Math.round(clients * stalledFraction);
        int active = clients - stalled;
        AtomicLong completed = new AtomicLong(), rejected = new AtomicLong(), failed = new AtomicLong(), tokens = new AtomicLong(), captions = new AtomicLong();
        ConcurrentLinkedQueue<Double> ttft = new ConcurrentLinkedQueue<>();
        List<Disposable> liveSubs = new ArrayList<>();
        AtomicLong liveFrames = new AtomicLong(), sseEvents = new AtomicLong();
        int live = streams == null ? 0 : streams.all().size();
        HttpClient sse = HttpClient.create().baseUrl(server.url());
        if (streams != null) {
            streams.start();
            for (LiveStream st : streams.all()) {   // one client follows each stream's events, as the page does
                char[] last = {0};   // an event ends with a blank line, which may be split between chunks
                liveSubs.add(sse.get().uri("/v1/streams/" + st.id() + "/events").responseContent().asString()
                        .subscribe(chunk -> {
                            String t = last[0] + chunk;
                            sseEvents.addAndGet(t.split("\n\n", -1).length - 1);
                            if (!chunk.isEmpty()) last[0] = chunk.charAt(chunk.length() - 1);
                        }, e -> { }));
            }
        }
        String body = "{\"model\":\"" + model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"a red circle\"}],\"max_tokens\":" + maxTokens
                + ",\"temperature\":0,\"ignore_eos\":true,\"stream\":true}";
        List<Socket> silent = new ArrayList<>();
        byte[] raw = ("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body).getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < stalled; i++) {   // they send one request and never read the answer
            Socket s = new Socket(InetAddress.getLoopbackAddress(), server.port());
            OutputStream out = s.getOutputStream();
            out.write(raw);
            out.flush();
            silent.add(s);
        }
        ConnectionProvider pool = ConnectionProvider.builder("serve-bench").maxConnections(active + 8).pendingAcquireMaxCount(-1).build();
        HttpClient http = HttpClient.create(pool).baseUrl(server.url()).headers(h -> h.add("Content-Type", "application/json"));
        long start = System.nanoTime(), end = start + seconds * 1_000_000_000L;
        Flux.range(0, active).flatMap(i -> Mono.defer(() -> request(http, body, ttft, completed, rejected, failed, tokens, maxTokens))
                .flatMap(retryAfter -> retryAfter > 0 ? Mono.delay(Duration.ofMillis(retryAfter)).then() : Mono.<Void>empty())
                .repeat(() -> System.nanoTime() < end), active)
                .blockLast(Duration.ofSeconds(seconds + 120L));
        double secs = (System.nanoTime() - start) / 1e9;
        sampler.dispose();
        memory.add(MemorySampler.sample((System.nanoTime() - t00) / 1e9, caches));   // the phase's end
        for (Disposable d : liveSubs) d.dispose();
        if (streams != null) {
            for (LiveStream st : streams.all()) {
                captions.addAndGet(st.captions());
                liveFrames.addAndGet((long) server.metrics().source(st.id()).framesIn());
            }
            streams.close();
            System.err.printf("serve bench: %d live streams: %d captions, %d SSE events received by their clients, %d events dropped for slow clients%n",
                    live, captions.get(), sseEvents.get(), streams.all().stream().mapToLong(st -> st.hub().dropped()).sum());
            for (LiveStream st : streams.all())
                if (st.liveWindow() != null)
                    System.err.printf("serve bench: live session of %s: %s%n", st.id(), st.liveWindow().describe(new ObjectMapper().createObjectNode()));
        }
        for (Socket s : silent) s.close();
        pool.disposeLater().block(Duration.ofSeconds(10));
        double[] t = ttft.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        System.gc();
        Phase p = new Phase(live == 0 ? (seconds <= 2 ? "warm-up" : "chat only") : "chat + " + live + " live streams", secs, completed.get(), rejected.get(),
                failed.get(), tokens.get() / secs, pct(t, 50), pct(t, 99), captions.get() / secs, liveFrames.get() / secs, heap0, heapMb(), rss0, rssMb(),
                List.copyOf(memory));
        if (seconds > 2) printSeries(p);
        return p;
    }

    private static void printSeries(Phase p) {
        System.err.printf("memory, %s (every --sample-every from the phase's start, last row at its end):%n%s%n", p.name(), MemorySampler.HEADER);
        for (MemorySampler.Sample s : p.memory()) System.err.println(s.line());
    }

    /** One streamed completion; emits the milliseconds to wait before the next (the Retry-After of a 429), else 0. */
    private static Mono<Long> request(HttpClient http, String body, ConcurrentLinkedQueue<Double> ttft, AtomicLong completed, AtomicLong rejected,
                                      AtomicLong failed, AtomicLong tokens, int maxTokens) {
        long t0 = System.nanoTime();
        return http.post().uri("/v1/chat/completions").send(Mono.just(Unpooled.wrappedBuffer(body.getBytes(StandardCharsets.UTF_8))))
                .response((res, content) -> {
                    int code = res.status().code();
                    if (code == 429) {
                        String ra = res.responseHeaders().get("Retry-After", "1");
                        rejected.incrementAndGet();
                        return content.then(Mono.just(1000L * Long.parseLong(ra.trim())));
                    }
                    if (code != 200) {
                        failed.incrementAndGet();
                        return content.then(Mono.just(100L));
                    }
                    boolean[] first = {false, false};
                    return content.asString().doOnNext(s -> {
                        if (!first[0] && s.matches("(?s).*\"delta\":\\{\"content\":\"[^\"].*")) {
                            first[0] = true;
                            ttft.add((System.nanoTime() - t0) / 1e6);
                        }
                        if (s.contains("[DONE]")) first[1] = true;
                    }).then(Mono.fromSupplier(() -> {
                        if (first[1]) {
                            completed.incrementAndGet();
                            tokens.addAndGet(maxTokens);
                        } else failed.incrementAndGet();
                        return 0L;
                    }));
                })
                .next()
                .onErrorResume(e -> {
                    failed.incrementAndGet();
                    return Mono.just(100L);
                });
    }

    private static long heapMb() {
        Runtime r = Runtime.getRuntime();
        return (r.totalMemory() - r.freeMemory()) >> 20;
    }

    private static long rssMb() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status")))
                if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("\\D", "")) >> 10;
        } catch (Exception e) {
            // not Linux
        }
        return -1;
    }

    private static double pct(double[] sorted, double p) {
        if (sorted.length == 0) return Double.NaN;
        int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
    }
}
