package io.vlmflux.vision.cuda;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.vision.ImageProcessor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Tooling, not library API (test sources): GPU preprocessing and vision-encoder latency per input size, with an
 * optional per-op profile. Run from the GPU bundle's test classes:
 * {@code java -cp 'lib/*:test-classes' io.vlmflux.vision.cuda.VisionEncoderBench MODEL_DIR [448x448,640x480] [RGB|NV12|I420] [iters] [--profile] [--json]}.
 * The end-to-end figures (TTFT through the runtime, captions/s) are {@code vlmflux bench vlm}.
 */
public final class VisionEncoderBench {
    private VisionEncoderBench() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) { System.err.println("usage: VisionEncoderBench MODEL_DIR [SIZES] [FORMAT] [ITERS] [--profile] [--json]"); System.exit(2); }
        if (!Gpu.isAvailable()) { System.err.println("needs a GPU: " + Gpu.unavailableReason()); System.exit(2); }
        List<String> flags = Arrays.stream(args).filter(x -> x.startsWith("--")).toList();
        List<String> pos = Arrays.stream(args).filter(x -> !x.startsWith("--")).toList();
        Path dir = Path.of(pos.get(0));
        List<int[]> sizes = new ArrayList<>();
        for (String s : (pos.size() > 1 ? pos.get(1) : "448x448,640x480,1280x720").split(",")) {
            String[] p = s.trim().split("x");
            sizes.add(new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1])});
        }
        PixelFormat fmt = PixelFormat.valueOf(pos.size() > 2 ? pos.get(2) : "RGB");
        int iters = pos.size() > 3 ? Integer.parseInt(pos.get(3)) : 20;
        visionTable(flags.contains("--profile"), flags.contains("--json"), dir, fmt, sizes, iters, new ObjectMapper());
    }

    static void visionTable(boolean profile, boolean jsonOut, Path dir, PixelFormat fmt, List<int[]> sizes, int iters, ObjectMapper json) throws Exception {
        ImageProcessor cpuProc = ImageProcessor.load(dir);
        long l0 = System.nanoTime();
        try (GpuVisionEncoder enc = GpuVisionEncoder.load(dir);
             GpuImageProcessor proc = GpuImageProcessor.load(dir, enc.stream())) {
            GpuStream st = enc.stream();
            System.err.printf("vision tower %s%n  load %d ms, %d MiB of weights on %s%n", enc.describe(),
                    (System.nanoTime() - l0) / 1_000_000, enc.weightBytes() >> 20, st.device());
            System.err.println("| input | grid | tokens | GPU preprocess wall ms | GPU preprocess kernels ms | encoder ms (median) | encoder ms (min) | preprocess+encode ms | CPU preprocess ms |");
            System.err.println("|---|---|---|---|---|---|---|---|---|");
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
                    long cp0 = System.nanoTime();
                    for (int i = 0; i < 3; i++) cpuProc.process(frame);
                    double cpuPre = (System.nanoTime() - cp0) / 1e6 / 3;
                    if (profile) {
                        Map<String, Double> prof = enc.profile(px);
                        double total = prof.values().stream().mapToDouble(Double::doubleValue).sum();
                        StringBuilder sb = new StringBuilder("  profile " + w + "x" + h + " (eager, a timing event after each op; total " + String.format("%.2f", total) + " ms):");
                        prof.forEach((k, v) -> sb.append(String.format(" %s %.2f;", k, v)));
                        System.err.println(sb);
                    }
                    int tokens = px.numPatches() / (enc.mergeSize() * enc.mergeSize());
                    String grid = px.gridT() + "x" + px.gridH() + "x" + px.gridW();
                    System.err.printf("| %dx%d %s | %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f |%n", w, h, fmt, grid, tokens,
                            median(pre), median(preK), median(encMs), min(encMs), median(both), cpuPre);
                    if (jsonOut) {
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
                        o.put("cpu_preprocess_ms", cpuPre);
                        o.put("iters", iters);
                        System.out.println(json.writeValueAsString(o));
                    }
                }
            }
        }
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
