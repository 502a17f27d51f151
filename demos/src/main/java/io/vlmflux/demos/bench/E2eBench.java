package io.vlmflux.demos.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.Args;
import io.vlmflux.demos.UsageException;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.runtime.EncoderCacheStats;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.SourceInput;
import io.vlmflux.pipeline.VlmPipeline;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.caption.CaptionStage;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.PushSource;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code bench vlm --e2e}: sustained captioning of N live sources through the real chain — source → VlmPipeline
 * (sampling "all") → caption stage (newest frame wins) → VlmRuntime (GPU preprocessing, encoder, device splice,
 * prefix cache, GPU decode) — one pipeline per source, all sharing one model and its compute thread. Per source
 * count: captions/s, frames/s delivered by the sources, frames dropped (delivered but never captioned), latency from a
 * frame leaving its source to its caption's last token (p50/p90/p99), TTFT inside the stage, encoder-cache counters.
 */
final class E2eBench {
    private E2eBench() {}

    static void run(Args a, Path dir, PixelFormat fmt, ObjectMapper json) throws Exception {
        if (!Files.isRegularFile(dir.resolve("tokenizer.json")))
            throw new UsageException("--e2e: " + dir + " has no tokenizer.json (captions need a tokenizer and chat template; for a random "
                    + "checkpoint from peer_bench_vlm.py run cuda-native/bundle/vlm_tokenizer.py " + dir + ")");
        List<Integer> counts = new ArrayList<>();
        for (String s : a.get("sources", "1,4").split(",")) {
            try { counts.add(Integer.parseInt(s.trim())); } catch (NumberFormatException e) { throw new UsageException("--sources: bad count '" + s + "'"); }
        }
        int seconds = a.getInt("seconds", 10), maxTokens = a.getInt("max-tokens", 32), fps = a.getInt("fps", 30);
        if (seconds < 1 || maxTokens < 1 || fps < 1) throw new UsageException("--seconds, --max-tokens and --fps must be >= 1");
        String[] sz = a.get("e2e-size", "640x480").toLowerCase(Locale.ROOT).split("x");
        int w, h;
        try { w = Integer.parseInt(sz[0]); h = Integer.parseInt(sz[1]); } catch (RuntimeException e) { throw new UsageException("--e2e-size: want WxH"); }
        String feed = a.get("feed", "auto");
        if (feed.equals("auto")) feed = gstreamerWorks() ? "test" : "push";
        if (!feed.equals("test") && !feed.equals("push")) throw new UsageException("--feed must be test or push, got '" + feed + "'");
        System.err.printf("end to end: %s sources (%s), %dx%d %s at %d fps each, %d tokens per caption, greedy, newest frame wins%n",
                counts, feed.equals("test") ? "GStreamer videotestsrc ball through appsink" : "synthetic moving frames through PushSource", w, h, fmt, fps, maxTokens);
        String backend = a.get("e2e-backend", "cuda");   // cpu: to try the harness on a machine without a GPU
        // the encoder cache is off unless asked for: N test sources show identical frames at the same instants, which
        // would let one encoder run serve all of them and flatter the N-source figures
        long encoderCache = a.flag("encoder-cache") ? RuntimeOptions.DEFAULT_ENCODER_CACHE_BYTES : 0;
        RuntimeOptions ro = RuntimeOptions.defaults().withBackend(Backend.parse(backend)).withEncoderCacheBytes(encoderCache);
        // batching is tuning, read once when the runtime loads: the turn-taking runs get a runtime of their own
        CaptionOptions options = new CaptionOptions("Describe the image.", null, maxTokens, SamplingParams.greedyDecoding(),
                CaptionOptions.Backpressure.NEWEST_WINS);
        System.err.println("| sources | feed | batched decode (mean batch) | captions/s | frames/s (delivered) | frames dropped | tokens/s | latency p50 / p90 / p99 ms (source -> caption) | TTFT p50 ms (stage) | encoder cache hits/misses |");
        System.err.println("|---|---|---|---|---|---|---|---|---|---|");
        String prop = System.getProperty("vlmflux.batchDecode");
        for (boolean batchedMode : new boolean[] {true, false}) {
            List<Integer> ns = new ArrayList<>();
            for (int n : counts) if (batchedMode || n > 1) ns.add(n);
            if (ns.isEmpty()) continue;
            System.setProperty("vlmflux.batchDecode", Boolean.toString(batchedMode));
            VlmRuntime model;
            try {
                model = VlmRuntime.load(dir, ro);
            } finally {
                if (prop == null) System.clearProperty("vlmflux.batchDecode"); else System.setProperty("vlmflux.batchDecode", prop);
            }
            try (model) {
            if (!batchedMode && !model.backend().equals(Backend.CUDA)) break;   // cpu: never batched, nothing to compare
            warmUp(model, options, w, h, fmt);
            for (int n : ns) {
                boolean batched = model.batchDecode();
                long[] b0 = model.batchStats();
                Result r = once(model, options, n, feed, w, h, fmt, fps, seconds);
                long[] b1 = model.batchStats();
                double meanBatch = b1[0] == b0[0] ? 0 : (double) (b1[1] - b0[1]) / (b1[0] - b0[0]);
                System.err.printf(Locale.ROOT, "| %d | %s | %s | %.2f | %.1f | %d of %d | %.0f | %.1f / %.1f / %.1f | %.1f | %d / %d |%n", n, feed,
                        batched ? String.format(Locale.ROOT, "yes (%.2f)", meanBatch) : "no", r.captionsPerS, r.framesPerS,
                        r.dropped, r.frames, r.tokensPerS, r.p50, r.p90, r.p99, r.ttftP50, r.cache.hits(), r.cache.misses());
                if (a.flag("json")) {
                    Map<String, Object> o = new LinkedHashMap<>();
                    o.put("what", "vlmflux_e2e");
                    o.put("sources", n);
                    o.put("feed", feed);
                    o.put("input", w + "x" + h);
                    o.put("format", fmt.name());
                    o.put("fps_per_source", fps);
                    o.put("max_tokens", maxTokens);
                    o.put("seconds", r.seconds);
                    o.put("captions", r.captions);
                    o.put("captions_per_s", r.captionsPerS);
                    o.put("frames", r.frames);
                    o.put("frames_per_s", r.framesPerS);
                    o.put("frames_dropped", r.dropped);
                    o.put("tokens_per_s", r.tokensPerS);
                    o.put("latency_ms_p50", r.p50);
                    o.put("latency_ms_p90", r.p90);
                    o.put("latency_ms_p99", r.p99);
                    o.put("ttft_ms_p50", r.ttftP50);
                    o.put("encoder_cache_hits", r.cache.hits());
                    o.put("encoder_cache_misses", r.cache.misses());
                    o.put("batched_decode", batched);
                    o.put("mean_batch", meanBatch);
                    System.out.println(json.writeValueAsString(o));
                }
            }
            }
        }
    }

    private record Result(double seconds, long captions, double captionsPerS, long frames, double framesPerS, long dropped, double tokensPerS,
                          double p50, double p90, double p99, double ttftP50, EncoderCacheStats cache) {}

    private static void warmUp(VlmRuntime model, CaptionOptions options, int w, int h, PixelFormat fmt) {
        List<Frame> frames = new ArrayList<>();
        for (int i = 0; i < 3; i++) frames.add(heapFrame("warm-up", i, w, h, fmt, i * 7));
        Flux.fromIterable(frames).transform(CaptionStage.captions(model, options)).blockLast(Duration.ofMinutes(2));
    }

    private static Result once(VlmRuntime model, CaptionOptions options, int n, String feed, int w, int h, PixelFormat fmt, int fps, int seconds)
            throws Exception {
        Map<String, Long> born = new ConcurrentHashMap<>();     // source#seq -> when the frame left its source
        AtomicLong frames = new AtomicLong(), tokens = new AtomicLong();
        ConcurrentLinkedQueue<double[]> lat = new ConcurrentLinkedQueue<>();   // {source->done ms, ttft ms}
        EncoderCacheStats c0 = model.encoderCacheStats();
        List<Disposable> subs = new ArrayList<>();
        List<PushSource> pushes = new ArrayList<>();
        ScheduledExecutorService ticker = feed.equals("push") ? Executors.newSingleThreadScheduledExecutor() : null;
        long measureFrom = System.nanoTime() + 1_000_000_000L;   // the first second settles (pipelines starting)
        AtomicLong captions = new AtomicLong(), framesInWindow = new AtomicLong();
        for (int i = 0; i < n; i++) {
            String id = "src" + i;
            FrameSource src;
            if (feed.equals("test")) {
                src = Sources.parse("test:ball?width=" + w + "&height=" + h + "&fps=" + fps, new SourceOptions(w, h, fmt));
            } else {
                PushSource p = Sources.push(id);
                pushes.add(p);
                src = p;
            }
            Flux<Frame> tapped = src.frames().doOnNext(f -> {
                long now = System.nanoTime();
                frames.incrementAndGet();
                if (now >= measureFrom) framesInWindow.incrementAndGet();
                born.put(id + "#" + f.sequence(), now);   // SourceInput labels the frames with id
            });
            VlmPipeline<Caption> p = VlmPipeline.builder().source(new SourceInput(id, tapped, true), SamplingPolicy.parse("all"))
                    .model(CaptionStage.captions(model, options), Caption::frame);
            subs.add(p.flux().subscribe(cap -> {
                long now = System.nanoTime();
                Long b = born.remove(cap.frame().sourceId() + "#" + cap.frame().sequence());
                if (now < measureFrom) return;
                captions.incrementAndGet();
                tokens.addAndGet(cap.tokens().length);
                lat.add(new double[] {b == null ? Double.NaN : (now - b) / 1e6, cap.timings().ttftMs()});
            }, e -> System.err.println("e2e: " + id + " failed: " + e)));
        }
        if (ticker != null) {
            long[] seq = {0};
            ticker.scheduleAtFixedRate(() -> {
                long s = seq[0]++;
                for (int i = 0; i < pushes.size(); i++) {
                    try {
                        pushes.get(i).push(heapFrame("src" + i, s, w, h, fmt, (int) (s * 3 + i * 11)));
                    } catch (IllegalStateException ended) { /* source completed */ }
                }
            }, 0, 1_000_000 / fps, TimeUnit.MICROSECONDS);
        }
        Thread.sleep(1000L + seconds * 1000L);
        long end = System.nanoTime();
        if (ticker != null) ticker.shutdownNow();
        for (Disposable d : subs) d.dispose();
        for (PushSource p : pushes) p.complete();
        Thread.sleep(300);
        double secs = (end - measureFrom) / 1e9;
        double[] l = lat.stream().mapToDouble(x -> x[0]).filter(x -> !Double.isNaN(x)).sorted().toArray();
        double[] t = lat.stream().mapToDouble(x -> x[1]).sorted().toArray();
        EncoderCacheStats c1 = model.encoderCacheStats();
        EncoderCacheStats dc = new EncoderCacheStats(c1.hits() - c0.hits(), c1.misses() - c0.misses(), c1.evictions() - c0.evictions(), c1.entries(),
                c1.bytes(), c1.maxBytes(), c1.allocations());
        long fw = framesInWindow.get(), cw = captions.get();
        return new Result(secs, cw, cw / secs, fw, fw / secs, Math.max(0, fw - cw), tokens.get() / secs, pct(l, 50), pct(l, 90), pct(l, 99), pct(t, 50), dc);
    }

    private static double pct(double[] sorted, double p) {
        if (sorted.length == 0) return Double.NaN;
        int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
    }

    private static boolean gstreamerWorks() {
        try {
            FrameSource s = Sources.parse("test:ball?live=false&width=64&height=48", null);
            Frame f = s.frames().take(1).blockFirst(Duration.ofSeconds(20));
            if (f != null) f.close();
            return f != null;
        } catch (Throwable e) {
            System.err.println("e2e: GStreamer unavailable (" + e.getMessage() + "): synthetic frames through PushSource");
            return false;
        }
    }

    /** A frame owned by its own arena (released with the frame): a bright square moving over a gradient. */
    private static Frame heapFrame(String id, long seq, int w, int h, PixelFormat fmt, int phase) {
        Arena arena = Arena.ofShared();
        long size = fmt == PixelFormat.RGB ? 3L * w * h : (long) w * h + 2L * ((w + 1) / 2) * ((h + 1) / 2);
        MemorySegment seg = arena.allocate(size);
        byte[] row = new byte[(int) Math.min(size, fmt == PixelFormat.RGB ? 3L * w : w)];
        int bx = (phase * 5) % Math.max(1, w - 40), by = (phase * 3) % Math.max(1, h - 40);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                boolean in = x >= bx && x < bx + 40 && y >= by && y < by + 40;
                int v = in ? 250 : (x + y + phase) & 0x7f;
                if (fmt == PixelFormat.RGB) { row[3 * x] = (byte) v; row[3 * x + 1] = (byte) (in ? 250 : 64); row[3 * x + 2] = (byte) (255 - v); }
                else row[x] = (byte) v;
            }
            MemorySegment.copy(row, 0, seg, ValueLayout.JAVA_BYTE, (long) y * row.length, row.length);
        }
        if (fmt != PixelFormat.RGB) seg.asSlice((long) w * h).fill((byte) 128);
        return Frame.builder().format(fmt).size(w, h).data(seg).sequence(seq).sourceId(id).releaser(arena::close).build();
    }
}
