package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuDevice;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.SamplingParams;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Batch-1 benchmark of the CUDA decoder (used by {@code vlmflux bench llm --backend cuda} and runnable alone:
 * {@code java io.vlmflux.llm.cuda.CudaLlmBench MODEL_DIR [CONTEXTS=512,2048] [DECODE_TOKENS=128]}). Per context C:
 * prefill of C random tokens (median of 3, after a warm-up), then greedy decode of N tokens on top (device argmax, graph
 * replay; tok/s over the N steps, each step ending with the id on the host). Also: device copy bandwidth (1 GiB D2D,
 * read + write), the roofline (bytes per token = bf16 weights read per step + K/V at that context, over that bandwidth),
 * device memory of the decoder (arena) and of the KV cache. One JSON line per context on stdout.
 * {@code CudaLlmBench MODEL_DIR --batch 1,2,4,8 [CTX] [STEPS]}: batched decode steps, graph path vs eager ({@link #runBatch}).
 */
public final class CudaLlmBench {
    private CudaLlmBench() {}

    /**
     * One context's figures. {@code kvBytesPerToken}: K/V bytes one decode step reads at that context;
     * {@code deviceUsedBytes}: device memory in use (total - free, all processes and the CUDA context) while the cache
     * is allocated.
     */
    public record Result(String model, String device, int context, int decodeTokens, double prefillMs, double decodeTokS,
                         double rooflineTokS, double fracOfRoofline, double bandwidthGBs, long weightBytesPerToken, long kvBytesPerToken,
                         long decoderBytes, long kvCacheBytes, long deviceUsedBytes, boolean graphs) {
        public String json() {
            return String.format(Locale.ROOT, "{\"what\":\"vlmflux_llm\",\"backend\":\"cuda\",\"model\":\"%s\",\"device\":\"%s\",\"ctx\":%d,"
                            + "\"decode_tokens\":%d,\"prefill_ms\":%.2f,\"decode_tok_s\":%.1f,\"roofline_tok_s\":%.1f,\"frac_of_roofline\":%.3f,"
                            + "\"bandwidth_GBps\":%.1f,\"weight_GB_per_token\":%.3f,\"kv_MB_per_token\":%.1f,\"gpu_mem_decoder_MB\":%d,"
                            + "\"gpu_mem_kv_MB\":%d,\"gpu_mem_device_used_MB\":%d,\"cuda_graphs\":%s}",
                    model.replace("\"", "'"), device.replace("\"", "'"), context, decodeTokens, prefillMs, decodeTokS, rooflineTokS,
                    fracOfRoofline, bandwidthGBs, weightBytesPerToken / 1e9, kvBytesPerToken / 1e6, decoderBytes >> 20, kvCacheBytes >> 20,
                    deviceUsedBytes >> 20, graphs);
        }
    }

    /** Device-to-device copy bandwidth (bytes read + written per second), median of 10 copies of 1 GiB. */
    public static double bandwidth() {
        GpuDevice dev = Gpu.device();
        long n = 1L << 30;
        try (GpuStream st = dev.newStream(); DeviceArena a = dev.newArena("bandwidth", 2 * n + 512)) {
            DeviceBuffer x = a.alloc("src", n), y = a.alloc("dst", n);
            st.memsetAsync(x, 1, n);
            for (int i = 0; i < 3; i++) st.copyAsync(y, x, n);
            float[] t = new float[10];
            for (int i = 0; i < t.length; i++) t[i] = st.time(() -> st.copyAsync(y, x, n));
            java.util.Arrays.sort(t);
            return 2.0 * n / (t[t.length / 2] / 1e3);
        }
    }

    /** Bytes of weights one decode step reads: everything but the embedding table (one row), plus the lm head. */
    static long weightBytesPerToken(ModelConfig c) {
        long H = c.hiddenSize(), L = c.numLayers();
        long perLayer = (long) (c.qDim() + 2 * c.kvDim()) * H + (long) H * c.qDim() + 3L * c.intermediateSize() * H + 2 * H;
        return 2 * (L * perLayer + (long) c.vocabSize() * H + H);
    }

    /** Benchmarks {@code model} at each context; results in order (nothing printed). */
    public static List<Result> run(Path model, int[] contexts, int decodeTokens) throws Exception {
        for (int ctx : contexts) if (ctx < 1) throw new IllegalArgumentException("context must be >= 1, got " + ctx);
        if (decodeTokens < 1) throw new IllegalArgumentException("decode tokens must be >= 1, got " + decodeTokens);
        if (!Gpu.isAvailable()) throw new IllegalStateException("backend 'cuda' cannot run here: " + Gpu.unavailableReason());
        double bw = bandwidth();
        List<Result> out = new ArrayList<>();
        try (Decoder d = Models.load(model, "cuda")) {
            CudaDecoder cd = (CudaDecoder) d;
            ModelConfig c = d.config();
            SplittableRandom r = new SplittableRandom(7);
            SamplingParams greedy = SamplingParams.greedyDecoding();
            for (int ctx : contexts) {
                if (ctx + decodeTokens + 8 > c.maxPositionEmbeddings())
                    throw new IllegalArgumentException("context " + ctx + " + " + decodeTokens + " decode tokens exceeds the model's max_position_embeddings "
                            + c.maxPositionEmbeddings());
                int[] prompt = new int[ctx];
                for (int i = 0; i < ctx; i++) prompt[i] = r.nextInt(Math.min(c.vocabSize(), 100_000));
                try (KvCache cache = d.newCache(ctx + decodeTokens + 8)) {
                    double[] pre = new double[4];
                    int tok = 0;
                    for (int rep = 0; rep < pre.length; rep++) {
                        cache.reset(0);
                        long t0 = System.nanoTime();
                        tok = d.forwardSample(cache, ForwardInput.tokens(prompt), greedy);
                        pre[rep] = (System.nanoTime() - t0) / 1e6;
                    }
                    double[] p3 = java.util.Arrays.copyOfRange(pre, 1, pre.length);
                    java.util.Arrays.sort(p3);
                    for (int i = 0; i < 4; i++) tok = d.forwardSample(cache, ForwardInput.tokens(tok), greedy);   // capture + warm-up
                    cache.reset(ctx);
                    long t0 = System.nanoTime();
                    for (int i = 0; i < decodeTokens; i++) tok = d.forwardSample(cache, ForwardInput.tokens(tok), greedy);
                    double tps = decodeTokens / ((System.nanoTime() - t0) / 1e9);
                    long wb = weightBytesPerToken(c);
                    long kvb = 2L * c.numLayers() * c.kvDim() * 2 * (ctx + decodeTokens / 2);
                    double roof = bw / (wb + kvb);
                    long[] mem = cd.device().memoryInfo();
                    out.add(new Result(model.getFileName().toString(), cd.device().name(), ctx, decodeTokens, p3[1], tps, roof, tps / roof,
                            bw / 1e9, wb, kvb, cd.arenaBytes(), cache.bytes(), mem[1] - mem[0], cd.graphsEnabled()));
                }
            }
        }
        return out;
    }

    /**
     * Batched decode steps ({@link Decoder#forwardSampleBatch}) of B sequences at context {@code ctx}: ms per step and
     * tokens/s with the default path (one graph per batch size, skinny GEMM) and with the eager path of before
     * ({@code vlmflux.cuda.batchGraphs=false}, {@code vlmflux.cuda.skinnyGemm=false}: cuBLAS GEMMs, per-row launches),
     * median of 3 timed runs of {@code steps} steps each after a warm-up; B = 1 is the single-sequence graph step. Also how
     * many chosen tokens the two paths agree on (random weights have near-ties; the GEMMs differ in rounding). One JSON
     * line per batch size.
     */
    public static List<String> runBatch(Path model, int[] batches, int ctx, int steps) throws Exception {
        if (!Gpu.isAvailable()) throw new IllegalStateException("backend 'cuda' cannot run here: " + Gpu.unavailableReason());
        List<String> out = new ArrayList<>();
        Decoder fast = Models.load(model, "cuda");
        Decoder slow;
        String g0 = System.getProperty("vlmflux.cuda.batchGraphs"), s0 = System.getProperty("vlmflux.cuda.skinnyGemm");
        System.setProperty("vlmflux.cuda.batchGraphs", "false");
        System.setProperty("vlmflux.cuda.skinnyGemm", "false");
        try { slow = Models.load(model, "cuda"); } finally {
            if (g0 == null) System.clearProperty("vlmflux.cuda.batchGraphs"); else System.setProperty("vlmflux.cuda.batchGraphs", g0);
            if (s0 == null) System.clearProperty("vlmflux.cuda.skinnyGemm"); else System.setProperty("vlmflux.cuda.skinnyGemm", s0);
        }
        try (fast; slow) {
            ModelConfig c = fast.config();
            SplittableRandom r = new SplittableRandom(11);
            for (int B : batches) {
                if (B < 1) throw new IllegalArgumentException("batch size must be >= 1, got " + B);
                KvCache[][] caches = new KvCache[2][B];
                int[][] first = new int[2][B];
                try {
                    for (int i = 0; i < B; i++) {
                        int[] prompt = new int[ctx];
                        for (int t = 0; t < ctx; t++) prompt[t] = r.nextInt(Math.min(c.vocabSize(), 100_000));
                        for (int d = 0; d < 2; d++) {
                            Decoder dec = d == 0 ? fast : slow;
                            caches[d][i] = dec.newCache(ctx + steps + 16);
                            first[d][i] = dec.forwardSample(caches[d][i], ForwardInput.tokens(prompt), SamplingParams.greedyDecoding());
                        }
                    }
                    SamplingParams[] ps = new SamplingParams[B];
                    java.util.Arrays.fill(ps, SamplingParams.greedyDecoding());
                    double[] ms = new double[2];
                    int[][][] toks = new int[2][steps][];
                    for (int d = 0; d < 2; d++) {
                        Decoder dec = d == 0 ? fast : slow;
                        double[] runs = new double[4];
                        for (int rep = 0; rep < runs.length; rep++) {   // run 0 warms up (graph capture)
                            int[] tok = first[d].clone();
                            for (KvCache kc : caches[d]) kc.reset(ctx);
                            long t0 = System.nanoTime();
                            for (int s = 0; s < steps; s++) { tok = dec.forwardSampleBatch(caches[d], tok, ps); toks[d][s] = tok; }
                            runs[rep] = (System.nanoTime() - t0) / 1e6 / steps;
                        }
                        double[] timed = java.util.Arrays.copyOfRange(runs, 1, runs.length);
                        java.util.Arrays.sort(timed);
                        ms[d] = timed[1];
                    }
                    int same = 0;
                    for (int s = 0; s < steps; s++) for (int i = 0; i < B; i++) if (toks[0][s][i] == toks[1][s][i]) same++;
                    CudaDecoder cf = (CudaDecoder) fast;
                    out.add(String.format(Locale.ROOT, "{\"what\":\"vlmflux_llm_batch\",\"model\":\"%s\",\"device\":\"%s\",\"batch\":%d,\"ctx\":%d,"
                                    + "\"steps\":%d,\"graph_ms_per_step\":%.3f,\"eager_ms_per_step\":%.3f,\"graph_tok_s\":%.1f,\"eager_tok_s\":%.1f,"
                                    + "\"batch_graphs\":%s,\"batch_graphs_captured\":%d,\"tokens_equal\":%d,\"tokens\":%d}",
                            model.getFileName(), cf.device().name(), B, ctx, steps, ms[0], ms[1], B * 1000 / ms[0], B * 1000 / ms[1],
                            cf.batchGraphsEnabled(), cf.batchGraphCount(), same, steps * B));
                } finally {
                    for (KvCache[] cs : caches) for (KvCache kc : cs) if (kc != null) kc.close();
                }
            }
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: CudaLlmBench MODEL_DIR [CONTEXTS=512,2048] [DECODE_TOKENS=128]\n"
                    + "       CudaLlmBench MODEL_DIR --batch SIZES=1,2,4,8 [CTX=384] [STEPS=64]");
            System.exit(2);
        }
        if (args.length > 1 && args[1].equals("--batch")) {
            int[] bs = java.util.Arrays.stream((args.length > 2 ? args[2] : "1,2,4,8").split(",")).mapToInt(Integer::parseInt).toArray();
            for (String line : runBatch(Path.of(args[0]), bs, args.length > 3 ? Integer.parseInt(args[3]) : 384,
                    args.length > 4 ? Integer.parseInt(args[4]) : 64)) System.out.println(line);
            return;
        }
        int[] ctx = java.util.Arrays.stream((args.length > 1 ? args[1] : "512,2048").split(",")).mapToInt(Integer::parseInt).toArray();
        for (Result r : run(Path.of(args[0]), ctx, args.length > 2 ? Integer.parseInt(args[2]) : 128)) System.out.println(r.json());
    }
}
