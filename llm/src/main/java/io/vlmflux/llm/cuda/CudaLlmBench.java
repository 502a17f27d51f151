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

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: CudaLlmBench MODEL_DIR [CONTEXTS=512,2048] [DECODE_TOKENS=128]");
            System.exit(2);
        }
        int[] ctx = java.util.Arrays.stream((args.length > 1 ? args[1] : "512,2048").split(",")).mapToInt(Integer::parseInt).toArray();
        for (Result r : run(Path.of(args[0]), ctx, args.length > 2 ? Integer.parseInt(args[2]) : 128)) System.out.println(r.json());
    }
}
