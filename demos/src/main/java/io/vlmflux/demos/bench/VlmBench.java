package io.vlmflux.demos.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.vision.CachingVisionEncoder;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.cuda.DeviceEmbeddings;
import io.vlmflux.vision.cuda.GpuImageProcessor;
import io.vlmflux.vision.cuda.GpuPixels;
import io.vlmflux.vision.cuda.GpuVisionEncoder;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code vlmflux bench vlm}: the GPU vision path of a VLM checkpoint (e.g. a random-weight Qwen2.5-VL-3B written by
 * {@code cuda-native/bundle/peer_bench_vlm.py}): per input size, GPU preprocessing of a host frame (pinned copy +
 * upload + kernels, wall time) and its kernel time, vision encoder latency (CUDA events, median), the encoder-output
 * cache hit time, and the CPU preprocessing for comparison; {@code --ttft}: time to first token from a host frame
 * (device-side splice into the decoder) and decode speed; {@code --e2e}: sustained captions/s, frames/s, drops and
 * latency for N live sources through the real pipeline, with and without batched decode ({@link E2eBench}).
 * Tables on stderr, {@code --json} lines on stdout.
 */
public final class VlmBench implements Command {
    @Override public String summary() { return "GPU preprocessing + vision encoder latency, TTFT and captions/s of a VLM checkpoint (cuda)"; }

    @Override public String usage() {
        return "vlmflux bench vlm --model DIR [--sizes 448x448,640x480,1280x720] [--format RGB|NV12|I420] [--iters 20] [--profile] [--json]\n"
                + "       [--ttft [--ttft-size 640x480] [--question-tokens 20] [--decode-tokens 32]]\n"
                + "       [--e2e [--sources 1,4] [--seconds 10] [--max-tokens 32] [--fps 30] [--e2e-size 640x480] [--feed test|push] [--encoder-cache]] [--skip-vision]\n"
                + "  --model DIR   a Qwen2-VL / Qwen2.5-VL folder (config.json, preprocessor_config.json, safetensors)\n"
                + "  --profile     also time every encoder op (eager, synchronized) and print the sums per op kind\n"
                + "  --ttft        also load the language model on cuda (the folder needs its weights) and time the first token\n"
                + "                from a host frame (preprocess + encode + prefill of image + question with the prefix cached)\n"
                + "                and the greedy decode speed after it (image rows spliced on the device: nothing but the id crosses)\n"
                + "  --e2e         sustained captions through VlmPipeline + the caption stage (CaptionModel on cuda; the folder needs\n"
                + "                tokenizer.json + chat template): N live sources at --fps each, --max-tokens per caption, greedy,\n"
                + "                newest frame wins; captions/s, frames/s, frames dropped, latency percentiles (frame out of the\n"
                + "                source -> caption done), encoder cache counters. --feed test: GStreamer videotestsrc ball\n"
                + "                (default when GStreamer loads), push: synthetic moving frames pushed at --fps (PushSource);\n"
                + "                the encoder-output cache is off unless --encoder-cache (identical test frames would share it)\n"
                + "  --skip-vision skip the per-size encoder table";
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, Set.of("model", "sizes", "format", "iters", "ttft-size", "question-tokens", "decode-tokens", "sources", "seconds", "max-tokens", "fps",
                "e2e-size", "feed", "e2e-backend"), Set.of("json", "profile", "ttft", "e2e", "skip-vision", "encoder-cache"));
        Path dir = Path.of(a.require("model"));
        if (!Files.isRegularFile(dir.resolve("config.json"))) throw new UsageException("--model " + dir + ": no config.json");
        int iters = a.getInt("iters", 20);
        if (iters < 1) throw new UsageException("--iters must be >= 1");
        PixelFormat fmt;
        try { fmt = PixelFormat.valueOf(a.get("format", "RGB").toUpperCase(java.util.Locale.ROOT)); }
        catch (IllegalArgumentException e) { throw new UsageException("--format must be RGB, NV12 or I420"); }
        if (fmt != PixelFormat.RGB && fmt != PixelFormat.NV12 && fmt != PixelFormat.I420) throw new UsageException("--format must be RGB, NV12 or I420");
        List<int[]> sizes = new ArrayList<>();
        for (String s : a.get("sizes", "448x448,640x480,1280x720").split(",")) {
            String[] p = s.trim().toLowerCase(java.util.Locale.ROOT).split("x");
            try { sizes.add(new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1])}); }
            catch (RuntimeException e) { throw new UsageException("--sizes: bad size '" + s + "' (want WxH)"); }
        }
        boolean cpuOnly = a.flag("skip-vision") && !a.flag("ttft") && a.get("e2e-backend", "cuda").equals("cpu");
        if (!Gpu.isAvailable() && !cpuOnly) {
            System.err.println("bench vlm needs a GPU: " + Gpu.unavailableReason());
            return 2;
        }
        ObjectMapper json = new ObjectMapper();
        if (!a.flag("skip-vision")) visionTable(a, dir, fmt, sizes, iters, json);
        if (a.flag("ttft")) ttft(a, dir, fmt, json);
        if (a.flag("e2e")) E2eBench.run(a, dir, fmt, json);
        return 0;
    }

    private void visionTable(Args a, Path dir, PixelFormat fmt, List<int[]> sizes, int iters, ObjectMapper json) throws Exception {
        ImageProcessor cpuProc = ImageProcessor.load(dir);
        long l0 = System.nanoTime();
        try (GpuVisionEncoder enc = GpuVisionEncoder.load(dir);
             GpuImageProcessor proc = GpuImageProcessor.load(dir, enc.stream())) {
            GpuStream st = enc.stream();
            System.err.printf("vision tower %s%n  load %d ms, %d MiB of weights on %s%n", enc.config(),
                    (System.nanoTime() - l0) / 1_000_000, enc.weightBytes() >> 20, st.device());
            System.err.println("| input | grid | tokens | GPU preprocess wall ms | GPU preprocess kernels ms | encoder ms (median) | encoder ms (min) | preprocess+encode ms | cache hit ms | CPU preprocess ms |");
            System.err.println("|---|---|---|---|---|---|---|---|---|---|");
            for (int[] sz : sizes) {
                int w = sz[0], h = sz[1];
                try (Frame frame = randomFrame(fmt, w, h, 11L * w + h)) {
                    // warm-up: tables, scratch, cuBLAS heuristics
                    for (int i = 0; i < 3; i++) enc.encodeToDevice(proc.process(frame));
                    st.synchronize();
                    double[] pre = new double[iters], preK = new double[iters], encMs = new double[iters], both = new double[iters];
                    GpuPixels px = null;
                    for (int i = 0; i < iters; i++) {
                        st.synchronize();
                        long t0 = System.nanoTime();
                        px = proc.process(frame);
                        st.synchronize();
                        pre[i] = (System.nanoTime() - t0) / 1e6;
                        final Frame f = frame;
                        preK[i] = st.time(() -> proc.process(f));
                        final GpuPixels in = px;
                        encMs[i] = st.time(() -> enc.encodeToDevice(in));
                        long t1 = System.nanoTime();
                        DeviceEmbeddings de = enc.encodeToDevice(proc.process(frame));
                        st.synchronize();
                        both[i] = (System.nanoTime() - t1) / 1e6;
                        if (de.tokens() <= 0) throw new IllegalStateException("no tokens");
                    }
                    // cache hit: the same frame again through the host-path cache
                    PixelValues pv = cpuProc.process(frame);
                    double cacheMs;
                    try (CachingVisionEncoder cache = new CachingVisionEncoder(new NonClosing(enc), 256L << 20)) {
                        cache.encode(pv);
                        long c0 = System.nanoTime();
                        for (int i = 0; i < iters; i++) cache.encode(pv);
                        cacheMs = (System.nanoTime() - c0) / 1e6 / iters;
                    }
                    long cp0 = System.nanoTime();
                    for (int i = 0; i < 3; i++) cpuProc.process(frame);
                    double cpuPre = (System.nanoTime() - cp0) / 1e6 / 3;
                    if (a.flag("profile")) {
                        Map<String, Double> prof = enc.profile(px);
                        double total = prof.values().stream().mapToDouble(Double::doubleValue).sum();
                        StringBuilder sb = new StringBuilder("  profile " + w + "x" + h + " (eager, each op synchronized; total " + String.format("%.2f", total) + " ms):");
                        prof.forEach((k, v) -> sb.append(String.format(" %s %.2f;", k, v)));
                        System.err.println(sb);
                    }
                    int tokens = px.numPatches() / (enc.mergeSize() * enc.mergeSize());
                    String grid = px.gridT() + "x" + px.gridH() + "x" + px.gridW();
                    System.err.printf("| %dx%d %s | %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.4f | %.1f |%n", w, h, fmt, grid, tokens,
                            median(pre), median(preK), median(encMs), min(encMs), median(both), cacheMs, cpuPre);
                    if (a.flag("json")) {
                        Map<String, Object> o = new LinkedHashMap<>();
                        o.put("what", "vlmflux_vision");
                        o.put("device", st.device().toString());
                        o.put("input", w + "x" + h);
                        o.put("format", fmt.name());
                        o.put("grid_thw", grid);
                        o.put("image_tokens", tokens);
                        o.put("gpu_preprocess_wall_ms", median(pre));
                        o.put("gpu_preprocess_kernels_ms", median(preK));
                        o.put("encoder_ms_median", median(encMs));
                        o.put("encoder_ms_min", min(encMs));
                        o.put("preprocess_plus_encoder_wall_ms", median(both));
                        o.put("cache_hit_ms", cacheMs);
                        o.put("cpu_preprocess_ms", cpuPre);
                        o.put("iters", iters);
                        System.out.println(json.writeValueAsString(o));
                    }
                }
            }
        }
    }

    /**
     * Time to first token from a host frame: the chat prefix (up to {@code <|vision_start|>}) is prefilled once and
     * reused; per frame: GPU preprocessing, the vision encoder (on the decoder's stream), its bf16 rows spliced on the
     * device into the decoder's embeddings (a device span: no host round trip), prefill of image tokens +
     * {@code <|vision_end|>} + question + assistant header, and the first token chosen on the device. Measured twice:
     * with a synchronization after each stage (the split) and without any (the TTFT). Then greedy decode (tokens/s).
     */
    private void ttft(Args a, Path dir, PixelFormat fmt, ObjectMapper json) throws Exception {
        String[] sz = a.get("ttft-size", "640x480").toLowerCase(java.util.Locale.ROOT).split("x");
        int w, h;
        try { w = Integer.parseInt(sz[0]); h = Integer.parseInt(sz[1]); }
        catch (RuntimeException e) { throw new UsageException("--ttft-size: want WxH"); }
        int qTokens = a.getInt("question-tokens", 20), decode = a.getInt("decode-tokens", 32);
        int iters = a.getInt("iters", 20);
        io.vlmflux.llm.ModelConfig mc = io.vlmflux.llm.ModelConfig.load(dir);
        try (io.vlmflux.llm.Decoder dec = io.vlmflux.llm.Models.load(dir, "cuda");
             GpuVisionEncoder enc = GpuVisionEncoder.load(dir, io.vlmflux.llm.cuda.CudaDecoders.stream(dec).orElseThrow(
                     () -> new IllegalStateException("bench vlm --ttft needs the cuda decoder, got " + dec.backend())));
             GpuImageProcessor proc = GpuImageProcessor.load(dir, enc.stream());
             Frame frame = randomFrame(fmt, w, h, 5)) {
            GpuStream st = enc.stream();
            int imageTok = mc.imageTokenId();
            int[] prefix = {151644, 872, 198, mc.visionStartTokenId()};           // <|im_start|>user\n<|vision_start|>
            GpuPixels px0 = proc.process(frame);
            int nImg = px0.numPatches() / (enc.mergeSize() * enc.mergeSize());
            int[] tail = new int[nImg + 1 + qTokens + 5];
            Arrays.fill(tail, 0, nImg, imageTok);
            tail[nImg] = mc.visionStartTokenId() + 1;                             // <|vision_end|>
            for (int i = 0; i < qTokens; i++) tail[nImg + 1 + i] = 1000 + i;
            System.arraycopy(new int[] {151645, 198, 151644, 77091, 198}, 0, tail, nImg + 1 + qTokens, 5);
            int total = prefix.length + tail.length;
            int[] all = new int[total];
            System.arraycopy(prefix, 0, all, 0, prefix.length);
            System.arraycopy(tail, 0, all, prefix.length, tail.length);
            float[] dummy = new float[nImg * enc.outHidden()];
            io.vlmflux.llm.EmbeddingSpan full = io.vlmflux.llm.EmbeddingSpan.image(prefix.length, dummy, enc.outHidden(), px0.gridH(), px0.gridW(), 0);
            io.vlmflux.llm.MropePositions mp = io.vlmflux.llm.MropePositions.compute(new io.vlmflux.llm.MultimodalPrompt(all, List.of(full)), mc);
            int[][] prePos = new int[3][], tailPos = new int[3][];
            for (int c = 0; c < 3; c++) {
                prePos[c] = Arrays.copyOfRange(mp.positions()[c], 0, prefix.length);
                tailPos[c] = Arrays.copyOfRange(mp.positions()[c], prefix.length, total);
            }
            io.vlmflux.llm.SamplingParams greedy = io.vlmflux.llm.SamplingParams.greedyDecoding();
            double[] ttft = new double[iters], split = new double[iters], pre = new double[iters], encMs = new double[iters], prefill = new double[iters],
                    tps = new double[iters];
            try (io.vlmflux.llm.KvCache cache = dec.newCache(total + decode + 8)) {
                dec.forward(cache, new io.vlmflux.llm.ForwardInput(prefix, List.of(), prePos), false);   // the cached prefix
                for (int it = -2; it < iters; it++) {                                                    // 2 warm-ups
                    // (1) split: synchronized after each stage
                    cache.reset(prefix.length);
                    st.synchronize();
                    long t0 = System.nanoTime();
                    GpuPixels px = proc.process(frame);
                    st.synchronize();
                    long t1 = System.nanoTime();
                    DeviceEmbeddings de = enc.encodeToDevice(px);
                    st.synchronize();
                    long t2 = System.nanoTime();
                    cache.positionDelta(mp.delta());
                    dec.forwardSample(cache, new io.vlmflux.llm.ForwardInput(tail, List.of(deviceSpan(de)), tailPos), greedy);
                    long t3 = System.nanoTime();
                    // (2) TTFT: host frame -> first token id, no synchronization but the id's
                    cache.reset(prefix.length);
                    st.synchronize();
                    long u0 = System.nanoTime();
                    DeviceEmbeddings de2 = enc.encodeToDevice(proc.process(frame));
                    cache.positionDelta(mp.delta());
                    int next = dec.forwardSample(cache, new io.vlmflux.llm.ForwardInput(tail, List.of(deviceSpan(de2)), tailPos), greedy);
                    long u1 = System.nanoTime();
                    for (int i = 0; i < decode; i++) next = dec.forwardSample(cache, io.vlmflux.llm.ForwardInput.tokens(next), greedy);
                    long u2 = System.nanoTime();
                    if (it < 0) continue;
                    pre[it] = (t1 - t0) / 1e6; encMs[it] = (t2 - t1) / 1e6; prefill[it] = (t3 - t2) / 1e6; split[it] = (t3 - t0) / 1e6;
                    ttft[it] = (u1 - u0) / 1e6; tps[it] = decode / ((u2 - u1) / 1e9);
                }
            }
            System.err.printf("time to first token, %dx%d %s frame, %d image tokens + %d question tokens (prefix of %d cached), %s:%n",
                    w, h, fmt, nImg, qTokens, prefix.length, dec.backend());
            System.err.printf("  TTFT %.2f ms (median of %d; min %.2f); synchronized split %.2f = preprocess %.2f + encoder %.2f + device splice, prefill+first token %.2f; decode %.1f tok/s%n",
                    median(ttft), iters, min(ttft), median(split), median(pre), median(encMs), median(prefill), median(tps));
            if (a.flag("json")) {
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("what", "vlmflux_ttft");
                o.put("input", w + "x" + h);
                o.put("format", fmt.name());
                o.put("image_tokens", nImg);
                o.put("question_tokens", qTokens);
                o.put("ttft_ms", median(ttft));
                o.put("ttft_ms_min", min(ttft));
                o.put("preprocess_ms", median(pre));
                o.put("encoder_ms", median(encMs));
                o.put("split_total_ms", median(split));
                o.put("embeddings_to_host_ms", 0.0);
                o.put("prefill_and_first_token_ms", median(prefill));
                o.put("decode_tokens_per_s", median(tps));
                o.put("decode_tokens", decode);
                System.out.println(json.writeValueAsString(o));
            }
        }
    }

    private static io.vlmflux.llm.EmbeddingSpan deviceSpan(DeviceEmbeddings de) {
        return io.vlmflux.llm.EmbeddingSpan.deviceImage(0, de.tokens(), de.hidden(), de.bf16(), true, de.gridH(), de.gridW(), de.contentHash());
    }

    /** Lets the cache wrap the bench's encoder without closing it. */
    private record NonClosing(GpuVisionEncoder e) implements io.vlmflux.vision.VisionEncoder {
        @Override public io.vlmflux.vision.ImageEmbeddings encode(PixelValues p) { return e.encode(p); }
        @Override public int outHidden() { return e.outHidden(); }
        @Override public int mergeSize() { return e.mergeSize(); }
        @Override public String describe() { return e.describe(); }
        @Override public void close() { }
    }

    static Frame randomFrame(PixelFormat fmt, int w, int h, long seed) {
        long size = switch (fmt) {
            case RGB -> 3L * w * h;
            default -> (long) w * h + 2L * ((w + 1) / 2) * ((h + 1) / 2);
        };
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(size);
        SplittableRandom r = new SplittableRandom(seed);
        for (long i = 0; i < size; i++) seg.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt(256));
        return Frame.builder().format(fmt).size(w, h).data(seg).releaser(arena::close).build();
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    static double min(double[] v) {
        return Arrays.stream(v).min().orElse(Double.NaN);
    }
}
