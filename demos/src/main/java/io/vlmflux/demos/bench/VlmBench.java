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
 * cache hit time, and the CPU preprocessing for comparison. Table on stderr, {@code --json} lines on stdout.
 * Time to first token and captions/s need the GPU language model and are not measured here.
 */
public final class VlmBench implements Command {
    @Override public String summary() { return "GPU preprocessing + vision encoder latency of a VLM checkpoint (cuda)"; }

    @Override public String usage() {
        return "vlmflux bench vlm --model DIR [--sizes 448x448,640x480,1280x720] [--format RGB|NV12|I420] [--iters 20] [--profile] [--json]\n"
                + "  --model DIR   a Qwen2-VL / Qwen2.5-VL folder (config.json, preprocessor_config.json, safetensors)\n"
                + "  --profile     also time every encoder op (eager, synchronized) and print the sums per op kind";
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, Set.of("model", "sizes", "format", "iters"), Set.of("json", "profile"));
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
        if (!Gpu.isAvailable()) {
            System.err.println("bench vlm needs a GPU: " + Gpu.unavailableReason());
            return 2;
        }
        ObjectMapper json = new ObjectMapper();
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
        return 0;
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
