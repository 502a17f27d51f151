package io.vlmflux.demos.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.SamplingParams;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Supplier;

/**
 * {@code vlmflux bench llm}: loads a checkpoint ({@code --model DIR}, or a random bf16 one of a named shape written to a
 * temporary folder by {@link RandomCheckpoint}) on a backend and times it through the backend-neutral {@link Decoder}
 * API only. {@code cuda} (what {@code auto} picks where a GPU is usable): per context C, prefill of C tokens (median of
 * 3 after a warm-up) and greedy decode tok/s with C tokens cached (device token choice, {@code forwardSample}), the
 * decoder's memory and, given {@code --bandwidth-gbps} (KernelBench's device copy figure), the roofline; with
 * {@code --batch 1,2,4,8}, batched decode steps ({@code forwardSampleBatch}) with the default path and with eager
 * cuBLAS steps. {@code cpu}: prefill of {@code --prompt-tokens} and decode steps on top. Table on stderr,
 * {@code --json}: one JSON object per line on stdout.
 */
public final class LlmBench implements Command {
    private static final System.Logger LOG = System.getLogger("vlmflux.bench");

    @Override public String summary() { return "prefill + decode speed of a model (random weights of a named shape by default)"; }

    @Override public String usage() {
        return """
                vlmflux bench llm [--backend auto|cpu|cuda] [--model DIR | --shape NAME [--keep-checkpoint DIR]] [--json]
                                  cuda: [--contexts 512,2048] [--decode-tokens 128] [--no-cuda-graph] [--bandwidth-gbps B]
                                        [--batch 1,2,4,8,16 [--batch-ctx 384] [--batch-steps 64]] [--json-schema FILE]
                                        [--sampled] [--profile-steps N] [--profile-prefill]
                                  cpu:  [--prompt-tokens 128] [--decode-tokens 32]
                  --backend      auto (default): cuda when a usable GPU is present, else cpu (the choice is logged)
                  --model DIR    benchmark an existing checkpoint instead of writing a random one
                  --shape NAME   random bf16 weights of qwen2.5-0.5b (default), qwen2.5-1.5b, qwen2.5-3b, qwen2.5-7b,
                                 qwen3-0.6b, qwen3-1.7b or tiny
                  --keep-checkpoint DIR  write the random checkpoint to DIR and keep it (e.g. to `vlmflux quantize` it)
                  --contexts     cuda: cached-token counts; each is prefilled (median of 3) and decoded on top of
                  cuda output    prefill ms, decode tok/s, GPU memory (decoder, KV cache); with --bandwidth-gbps (device
                                 copy GB/s, read + write, as KernelBench prints it) the roofline tok/s (bf16 weights + K/V
                                 read per token over that bandwidth) and the fraction reached
                  --batch        cuda: batched decode steps of B sequences at --batch-ctx cached tokens: ms per step and
                                 tok/s with the default path (graph per batch size, skinny GEMM) and eager cuBLAS steps,
                                 and how many chosen tokens the two agree on
                  --sampled      cuda: also time sampled decode (temperature 0.7, top-k 40, top-p 0.9, min-p 0.05, the
                                 multi-block device sampler) next to greedy: sampled_decode_tok_s and sampled_vs_greedy;
                                 with --batch, sampled batched steps too (default path)
                  --json-schema  cuda, with --model (its tokenizer.json): also decode under this JSON Schema, the mask applied
                                 on the device each step (constrained_decode_tok_s; the automaton's states warmed first)
                  --profile-steps cuda: before the timed steps of each context, N greedy steps between
                                 cudaProfilerStart/Stop, so `ncu --profile-from-start off` profiles a few decode steps only
                                 (cuda-native/bundle/ncu_step_table.py turns its CSV into the per-step table)
                  --profile-prefill cuda: after each context's timed prefills, one more with a timing event after each
                                 kind of operation (norms, each product, attention, SiLU-gate, 4-bit dequantization, lm head;
                                 nothing synchronized in between): where the prefill's milliseconds go (prefill_profile)
                """;
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, Set.of("backend", "shape", "model", "prompt-tokens", "decode-tokens", "contexts", "bandwidth-gbps",
                "batch", "batch-ctx", "batch-steps", "json-schema", "keep-checkpoint", "profile-steps"), Set.of("json", "no-cuda-graph", "sampled", "profile-prefill"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        String requested = a.get("backend", "auto");
        if (!Set.of("auto", "cpu", "cuda").contains(requested)) throw new UsageException("--backend must be auto, cpu or cuda, got '" + requested + "'");
        if (a.has("model") && a.has("shape")) throw new UsageException("give --model or --shape, not both");
        String backend = Models.resolve(requested);
        boolean cuda = backend.equals("cuda");
        if (cuda && a.has("prompt-tokens")) throw new UsageException("--prompt-tokens is for the cpu backend; with cuda use --contexts");
        if (!cuda && (a.has("contexts") || a.flag("no-cuda-graph") || a.has("batch") || a.has("bandwidth-gbps") || a.flag("sampled") || a.flag("profile-prefill")))
            throw new UsageException("--contexts/--no-cuda-graph/--batch/--bandwidth-gbps/--sampled/--profile-prefill need the cuda backend (this run uses " + backend + ")");
        int[] contexts = counts("--contexts", a.get("contexts", "512,2048"));
        int[] batches = a.has("batch") ? counts("--batch", a.get("batch")) : null;
        int batchCtx = a.getInt("batch-ctx", 384), batchSteps = a.getInt("batch-steps", 64);
        if (batchCtx < 1 || batchSteps < 1) throw new UsageException("--batch-ctx and --batch-steps must be >= 1");
        double bandwidth = bandwidth(a);
        if (a.has("json-schema") && (!cuda || !a.has("model")))
            throw new UsageException("--json-schema needs the cuda backend and --model DIR (its tokenizer compiles the schema)");
        int promptTokens = a.getInt("prompt-tokens", 128), decodeTokens = a.getInt("decode-tokens", cuda ? 128 : 32);
        if (promptTokens < 1 || decodeTokens < 1) throw new UsageException("--prompt-tokens and --decode-tokens must be >= 1");
        Path dir;
        Path tmp = null;
        String shapeName;
        long writeMs = 0;
        if (a.has("model")) {
            dir = Path.of(a.get("model"));
            if (!Files.isRegularFile(dir.resolve("config.json"))) throw new UsageException("--model " + dir + ": no config.json there");
            shapeName = dir.getFileName().toString();
        } else {
            RandomCheckpoint.Shape shape;   // checked before the (possibly multi-GB) write
            try { shape = RandomCheckpoint.Shape.named(a.get("shape", "qwen2.5-0.5b")); }
            catch (IllegalArgumentException e) { throw new UsageException(e.getMessage()); }
            shapeName = shape.name();
            if (a.has("keep-checkpoint")) {   // written there and kept (e.g. for `vlmflux quantize`)
                dir = Path.of(a.get("keep-checkpoint"));
                Files.createDirectories(dir);
            } else {
                tmp = Files.createTempDirectory("vlmflux-bench-llm");
                dir = tmp;
            }
            System.err.println("writing random bf16 checkpoint " + shape + " to " + dir);
            long w0 = System.nanoTime();
            RandomCheckpoint.write(dir, shape, 1);
            writeMs = (System.nanoTime() - w0) / 1_000_000;
        }
        try {
            if (cuda) {
                Path d = dir;
                Decoder dec = a.flag("no-cuda-graph") ? withProperties(Map.of("vlmflux.cuda.graphs", "false"), () -> load(d, "cuda")) : load(d, "cuda");
                try (dec) {
                    if (batches != null) runBatch(dec, dir, shapeName, batches, batchCtx, batchSteps, a.flag("json"), a.flag("sampled") ? SAMPLED : null);
                    else runCuda(dec, shapeName, contexts, decodeTokens, bandwidth, a.flag("json"), constraint(a, dir), a.flag("sampled") ? SAMPLED : null,
                            a.getInt("profile-steps", 0), a.flag("profile-prefill"));
                }
            } else {
                runCpu(dir, backend, shapeName, promptTokens, decodeTokens, writeMs, a.flag("json"));
            }
        } finally {
            if (tmp != null) {
                try (var s = Files.list(tmp)) { for (Path p : s.toList()) Files.deleteIfExists(p); }
                Files.deleteIfExists(tmp);
            }
        }
        return 0;
    }

    static int[] counts(String flag, String s) {
        try {
            int[] c = Arrays.stream(s.split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
            for (int v : c) if (v < 1) throw new UsageException(flag + " values must be >= 1, got " + v);
            if (c.length == 0) throw new UsageException(flag + " is empty");
            return c;
        } catch (NumberFormatException e) {
            throw new UsageException(flag + " must be comma-separated counts, got '" + s + "'");
        }
    }

    private static Decoder load(Path dir, String backend) {
        try {
            return Models.load(dir, backend);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Runs {@code body} with the system properties {@code props} set, restoring the previous values after. */
    private static <T> T withProperties(Map<String, String> props, Supplier<T> body) {
        Map<String, String> old = new LinkedHashMap<>();
        for (var e : props.entrySet()) { old.put(e.getKey(), System.getProperty(e.getKey())); System.setProperty(e.getKey(), e.getValue()); }
        try {
            return body.get();
        } finally {
            for (var e : old.entrySet()) if (e.getValue() == null) System.clearProperty(e.getKey()); else System.setProperty(e.getKey(), e.getValue());
        }
    }

    /**
     * Bytes of weights one decode step reads: everything but the embedding table (one row), plus the lm head (bf16).
     * A 4-bit checkpoint's linears read half a byte a weight plus one fp16 (scale, zero) pair a group (the device layout
     * of {@code Int4Device}); its norms and lm head stay 16-bit.
     */
    static long weightBytesPerToken(ModelConfig c) {
        long H = c.hiddenSize(), L = c.numLayers(), I = c.intermediateSize();
        long qkv = (long) (c.qDim() + 2 * c.kvDim()) * H, o = (long) H * c.qDim(), gateUp = 2L * I * H, down = I * H;
        long linears;
        if (c.quantization() == null) linears = 2 * (qkv + o + gateUp + down);
        else {
            var q = c.quantization();
            linears = int4Bytes(qkv, q.groupSizeFor((int) H)) + int4Bytes(o, q.groupSizeFor(c.qDim()))
                    + int4Bytes(gateUp, q.groupSizeFor((int) H)) + int4Bytes(down, q.groupSizeFor((int) I));
        }
        return L * (linears + 4 * H) + 2 * ((long) c.vocabSize() * H + H);
    }

    private static long int4Bytes(long weights, int groupSize) { return weights / 2 + 4 * (weights / groupSize); }

    /** Bytes of cached K and V one decode step reads with {@code positions} in the cache (16-bit cache). */
    static long kvBytesPerToken(ModelConfig c, long positions) { return 2L * c.numLayers() * c.kvDim() * 2 * positions; }

    /** {@code --bandwidth-gbps} in bytes/s (the device copy figure KernelBench prints, read + write), 0 where not given. */
    static double bandwidth(Args a) {
        if (!a.has("bandwidth-gbps")) return 0;
        double b;
        try { b = Double.parseDouble(a.get("bandwidth-gbps")) * 1e9; } catch (NumberFormatException e) { b = -1; }
        if (!(b > 0) || Double.isInfinite(b)) throw new UsageException("--bandwidth-gbps must be a positive number, got '" + a.get("bandwidth-gbps") + "'");
        return b;
    }

    private static long mb(Object bytes) { return bytes instanceof Number n ? n.longValue() >> 20 : -1; }

    /**
     * Per context C: prefill of C random tokens (median of 3 after a warm-up), then greedy decode of N tokens on top
     * (device token choice; capture + warm-up steps first; tok/s over the N steps, each ending with the id on the host).
     */
    /** The --json-schema constraint compiled with the model folder's tokenizer (EOS ends it), or null. */
    private static io.vlmflux.llm.constrain.Constraint constraint(Args a, Path dir) throws java.io.IOException {
        if (!a.has("json-schema")) return null;
        io.vlmflux.llm.tokenizer.Tokenizer tok = io.vlmflux.llm.tokenizer.Tokenizer.load(dir);
        try {
            return io.vlmflux.llm.constrain.Constraints.compile(
                    io.vlmflux.llm.constrain.ConstraintSpec.jsonSchema(Files.readString(Path.of(a.get("json-schema")))), tok);
        } catch (io.vlmflux.llm.constrain.ConstraintException e) {
            throw new UsageException("--json-schema: " + e.getMessage());
        }
    }

    /**
     * Greedy decode steps under {@code c} with the mask applied by the decoder ({@link Decoder#forwardSampleMasked});
     * an end token restarts the constraint, so the run always makes {@code steps} steps. tok/s.
     */
    private static double constrainedDecode(Decoder d, KvCache cache, int ctx, int firstToken, io.vlmflux.llm.constrain.Constraint c, int steps) {
        SamplingParams greedy = SamplingParams.greedyDecoding();
        int vocab = d.config().vocabSize();
        cache.reset(ctx);
        int state = c.start(), tok = firstToken;
        long t0 = System.nanoTime();
        for (int i = 0; i < steps; i++) {
            tok = d.forwardSampleMasked(cache, ForwardInput.tokens(tok), greedy, c.allowedWords(state, vocab));
            state = c.isEnd(tok) ? c.start() : c.advance(state, tok);
        }
        return steps / ((System.nanoTime() - t0) / 1e9);
    }

    /** The settings {@code --sampled} times: temperature 0.7, top-k 40, top-p 0.9, min-p 0.05 (seed 18). */
    static final SamplingParams SAMPLED = SamplingParams.sample(0.7, 40, 0.9, 0.05, 18);

    /** A {@link Decoder#profileForward} result as a table on stderr: kind, ms, share, pieces. */
    static void printProfile(String title, Map<String, double[]> profile) {
        double total = 0;
        for (double[] v : profile.values()) total += v[0];
        System.err.printf(Locale.ROOT, "  where the time goes: %s, %.2f ms on the device%n", title, total);
        System.err.println("    kind                                   |       ms |  share | pieces");
        for (Map.Entry<String, double[]> e : profile.entrySet())
            System.err.printf(Locale.ROOT, "    %-38s | %8.3f | %5.1f%% | %6d%n", e.getKey(), e.getValue()[0], 100 * e.getValue()[0] / total, (long) e.getValue()[1]);
    }

    private static void runCuda(Decoder d, String name, int[] contexts, int decodeTokens, double bandwidth, boolean json,
                                io.vlmflux.llm.constrain.Constraint constraint, SamplingParams sampled, int profileSteps,
                                boolean profilePrefill) throws Exception {
        if (profileSteps < 0 || profileSteps > decodeTokens)
            throw new UsageException("--profile-steps " + profileSteps + ": expected 0 to --decode-tokens (" + decodeTokens + ")");
        ModelConfig c = d.config();
        for (int ctx : contexts)
            if (ctx + decodeTokens + 8 > c.maxPositionEmbeddings())
                throw new UsageException("context " + ctx + " + " + decodeTokens + " decode tokens exceeds the model's max_position_embeddings " + c.maxPositionEmbeddings());
        SplittableRandom r = new SplittableRandom(7);
        SamplingParams greedy = SamplingParams.greedyDecoding();
        long wb = weightBytesPerToken(c);
        List<Map<String, Object>> rows = new ArrayList<>();
        Map<String, Object> info = d.info();
        for (int ctx : contexts) {
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
                double[] p3 = Arrays.copyOfRange(pre, 1, pre.length);
                Arrays.sort(p3);
                Map<String, double[]> profile = Map.of();
                if (profilePrefill) {
                    cache.reset(0);
                    profile = d.profileForward(cache, ForwardInput.tokens(prompt));
                    printProfile(name + ", prefill of " + ctx + " tokens (median untimed prefill " + round(p3[1], 2) + " ms)", profile);
                }
                for (int i = 0; i < 4; i++) tok = d.forwardSample(cache, ForwardInput.tokens(tok), greedy);   // capture + warm-up
                if (profileSteps > 0) {   // Nsight Compute --profile-from-start off sees these steps only
                    cache.reset(ctx);
                    d.profilerRange(true);
                    for (int i = 0; i < profileSteps; i++) tok = d.forwardSample(cache, ForwardInput.tokens(tok), greedy);
                    d.profilerRange(false);
                }
                cache.reset(ctx);
                long t0 = System.nanoTime();
                for (int i = 0; i < decodeTokens; i++) tok = d.forwardSample(cache, ForwardInput.tokens(tok), greedy);
                double tps = decodeTokens / ((System.nanoTime() - t0) / 1e9);
                double stps = 0;
                if (sampled != null) {   // same context, same number of steps, the token drawn on the device each step
                    cache.reset(ctx);
                    for (int i = 0; i < 4; i++) tok = d.forwardSample(cache, ForwardInput.tokens(tok), sampled);
                    cache.reset(ctx);
                    long s0 = System.nanoTime();
                    for (int i = 0; i < decodeTokens; i++) tok = d.forwardSample(cache, ForwardInput.tokens(tok), sampled);
                    stps = decodeTokens / ((System.nanoTime() - s0) / 1e9);
                }
                double ctps = 0;
                if (constraint != null) {
                    constrainedDecode(d, cache, ctx, tok, constraint, decodeTokens);           // visits (and caches) the states
                    ctps = constrainedDecode(d, cache, ctx, tok, constraint, decodeTokens);
                }
                long kvb = kvBytesPerToken(c, ctx + decodeTokens / 2);
                info = d.info();   // device memory while this cache is allocated
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("what", "vlmflux_llm");
                o.put("backend", d.backend());
                o.put("model", name);
                o.put("device", info.getOrDefault("device", "?"));
                o.put("tuning", info.getOrDefault("tuning", Map.of()));   // knobs off their defaults (the cuda decoder's)
                o.put("ctx", ctx);
                o.put("decode_tokens", decodeTokens);
                o.put("prefill_ms", round(p3[1], 2));
                if (!profile.isEmpty()) {
                    Map<String, Object> pp = new LinkedHashMap<>();
                    profile.forEach((k, v) -> pp.put(k, round(v[0], 3)));
                    o.put("prefill_profile_ms", pp);
                }
                o.put("decode_tok_s", round(tps, 1));
                if (sampled != null) {
                    o.put("sampled_decode_tok_s", round(stps, 1));
                    o.put("sampled_vs_greedy", round(stps / tps, 3));
                }
                if (constraint != null) {
                    o.put("constrained_decode_tok_s", round(ctps, 1));
                    o.put("constrained_vs_plain", round(ctps / tps, 3));
                }
                if (bandwidth > 0) {
                    double roof = bandwidth / (wb + kvb);
                    o.put("roofline_tok_s", round(roof, 1));
                    o.put("frac_of_roofline", round(tps / roof, 3));
                    o.put("bandwidth_GBps", round(bandwidth / 1e9, 1));
                }
                o.put("weight_GB_per_token", round(wb / 1e9, 3));
                o.put("kv_MB_per_token", round(kvb / 1e6, 1));
                o.put("gpu_mem_decoder_MB", mb(info.get("decoder_bytes")));
                o.put("gpu_mem_kv_MB", cache.bytes() >> 20);
                o.put("gpu_mem_device_used_MB", mb(info.get("device_used_bytes")));
                o.put("cuda_graphs", info.getOrDefault("cuda_graphs", false));
                rows.add(o);
            }
        }
        Object changed = info.getOrDefault("tuning", Map.of());
        System.err.printf("backend %s, model %s, %s, CUDA graphs %s%s%s%n", d.backend(), name, info.getOrDefault("device", "?"),
                Boolean.TRUE.equals(info.get("cuda_graphs")) ? "on" : "off",
                bandwidth > 0 ? String.format(Locale.ROOT, ", device copy bandwidth %.0f GB/s (given)", bandwidth / 1e9) : "",
                changed instanceof Map<?, ?> m && !m.isEmpty() ? ", tuning " + changed : "");
        System.err.printf("  weights read per token %.3f GB; GPU memory: decoder (weights + activations) %d MB%n", wb / 1e9, mb(info.get("decoder_bytes")));
        System.err.println("  context | prefill ms | decode tok/s | roofline tok/s | of roofline | KV cache MB | device used MB"
                + (constraint != null ? " | JSON-schema decode tok/s (device mask)" : ""));
        for (Map<String, Object> o : rows)
            System.err.printf(Locale.ROOT, "  %7d | %10.2f | %12.1f | %14s | %11s | %11d | %14d%n", (int) o.get("ctx"), (double) o.get("prefill_ms"),
                    (double) o.get("decode_tok_s"), o.getOrDefault("roofline_tok_s", "-"), o.getOrDefault("frac_of_roofline", "-"),
                    (long) o.get("gpu_mem_kv_MB"), (long) o.get("gpu_mem_device_used_MB"));
        if (sampled != null)
            for (Map<String, Object> o : rows)
                System.err.printf(Locale.ROOT, "  context %d: sampled decode (T 0.7, top-k 40, top-p 0.9, min-p 0.05) %.1f tok/s = %.3f of greedy%n",
                        (int) o.get("ctx"), (double) o.get("sampled_decode_tok_s"), (double) o.get("sampled_vs_greedy"));
        if (constraint != null)
            for (Map<String, Object> o : rows)
                System.err.printf(Locale.ROOT, "  context %d: JSON-schema constrained decode %.1f tok/s = %.3f of unconstrained%n", (int) o.get("ctx"),
                        (double) o.get("constrained_decode_tok_s"), (double) o.get("constrained_vs_plain"));
        if (json) for (Map<String, Object> o : rows) System.out.println(new ObjectMapper().writeValueAsString(o));
    }

    private static double round(double v, int digits) {
        double f = Math.pow(10, digits);
        return Math.round(v * f) / f;
    }

    /**
     * Batched decode steps ({@link Decoder#forwardSampleBatch}) of B sequences at context {@code ctx}: ms per step and
     * tokens/s with {@code fast} (the default path: one graph per batch size, skinny GEMM) and with a second decoder
     * loaded with eager cuBLAS steps ({@code vlmflux.cuda.batchGraphs=false}, {@code vlmflux.cuda.skinnyGemm=false}),
     * median of 3 timed runs of {@code steps} steps each after a warm-up; B = 1 is the single-sequence step. Also how
     * many chosen tokens the two paths agree on (random weights have near-ties; the GEMMs differ in rounding).
     */
    private static void runBatch(Decoder fast, Path dir, String name, int[] batches, int ctx, int steps, boolean json,
                                 SamplingParams sampled) throws Exception {
        ModelConfig c = fast.config();
        if (ctx + steps + 16 > c.maxPositionEmbeddings())
            throw new UsageException("--batch-ctx " + ctx + " + " + steps + " steps exceeds the model's max_position_embeddings " + c.maxPositionEmbeddings());
        try (Decoder slow = withProperties(Map.of("vlmflux.cuda.batchGraphs", "false", "vlmflux.cuda.skinnyGemm", "false"), () -> load(dir, "cuda"))) {
            SplittableRandom r = new SplittableRandom(11);
            System.err.printf("backend %s, model %s, %s: batched decode steps at context %d, %d steps%n", fast.backend(), name,
                    fast.info().getOrDefault("device", "?"), ctx, steps);
            System.err.println("  batch | graph ms/step | eager ms/step | graph tok/s | eager tok/s | tokens equal"
                    + (sampled != null ? " | sampled ms/step | sampled tok/s | sampled/greedy" : ""));
            for (int B : batches) {
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
                    Arrays.fill(ps, SamplingParams.greedyDecoding());
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
                        double[] timed = Arrays.copyOfRange(runs, 1, runs.length);
                        Arrays.sort(timed);
                        ms[d] = timed[1];
                    }
                    double sms = 0;
                    if (sampled != null) {   // the default path with the device sampler on every row
                        SamplingParams[] sp = new SamplingParams[B];
                        for (int i = 0; i < B; i++) sp[i] = sampled.withSeed(sampled.seed() + i);
                        double[] runs = new double[4];
                        for (int rep = 0; rep < runs.length; rep++) {
                            int[] tok = first[0].clone();
                            for (KvCache kc : caches[0]) kc.reset(ctx);
                            long t0 = System.nanoTime();
                            for (int s = 0; s < steps; s++) tok = fast.forwardSampleBatch(caches[0], tok, sp);
                            runs[rep] = (System.nanoTime() - t0) / 1e6 / steps;
                        }
                        double[] timed = Arrays.copyOfRange(runs, 1, runs.length);
                        Arrays.sort(timed);
                        sms = timed[1];
                    }
                    int same = 0;
                    for (int s = 0; s < steps; s++) for (int i = 0; i < B; i++) if (toks[0][s][i] == toks[1][s][i]) same++;
                    Map<String, Object> info = fast.info();
                    Map<String, Object> o = new LinkedHashMap<>();
                    o.put("what", "vlmflux_llm_batch");
                    o.put("model", name);
                    o.put("device", info.getOrDefault("device", "?"));
                    o.put("batch", B);
                    o.put("ctx", ctx);
                    o.put("steps", steps);
                    o.put("graph_ms_per_step", round(ms[0], 3));
                    o.put("eager_ms_per_step", round(ms[1], 3));
                    o.put("graph_tok_s", round(B * 1000 / ms[0], 1));
                    o.put("eager_tok_s", round(B * 1000 / ms[1], 1));
                    o.put("batch_graphs", info.getOrDefault("batch_graphs", false));
                    o.put("batch_graphs_captured", info.getOrDefault("batch_graphs_captured", 0));
                    o.put("tokens_equal", same);
                    o.put("tokens", steps * B);
                    if (sampled != null) {
                        o.put("sampled_ms_per_step", round(sms, 3));
                        o.put("sampled_tok_s", round(B * 1000 / sms, 1));
                        o.put("sampled_vs_greedy", round(ms[0] / sms, 3));
                    }
                    System.err.printf(Locale.ROOT, "  %5d | %13.3f | %13.3f | %11.1f | %11.1f | %d/%d%s%n", B, ms[0], ms[1], B * 1000 / ms[0],
                            B * 1000 / ms[1], same, steps * B, sampled == null ? ""
                                    : String.format(Locale.ROOT, " | %15.3f | %13.1f | %14.3f", sms, B * 1000 / sms, ms[0] / sms));
                    if (json) System.out.println(new ObjectMapper().writeValueAsString(o));
                } finally {
                    for (KvCache[] cs : caches) for (KvCache kc : cs) if (kc != null) kc.close();
                }
            }
        }
    }

    private static void runCpu(Path dir, String backend, String shapeName, int promptTokens, int decodeTokens, long writeMs, boolean json) throws Exception {
        long l0 = System.nanoTime();
        try (Decoder d = Models.load(dir, backend)) {
            long loadMs = (System.nanoTime() - l0) / 1_000_000;
            int vocab = d.config().vocabSize();
            SplittableRandom r = new SplittableRandom(7);
            int[] prompt = new int[promptTokens];
            for (int i = 0; i < prompt.length; i++) prompt[i] = r.nextInt(vocab);
            try (KvCache warm = d.newCache(promptTokens + 8)) {          // JIT warm-up
                d.forward(warm, ForwardInput.tokens(java.util.Arrays.copyOf(prompt, Math.min(16, promptTokens))), false);
                for (int i = 0; i < 3; i++) d.forward(warm, ForwardInput.tokens(1), false);
            }
            try (KvCache cache = d.newCache(promptTokens + decodeTokens + 1)) {
                long p0 = System.nanoTime();
                float[] logits = d.forward(cache, ForwardInput.tokens(prompt), false);
                long prefillNs = System.nanoTime() - p0;
                long d0 = System.nanoTime();
                for (int i = 0; i < decodeTokens; i++) {
                    int next = argmax(logits, vocab);
                    logits = d.forward(cache, ForwardInput.tokens(next), false);
                }
                long decodeNs = System.nanoTime() - d0;
                double prefillTps = promptTokens / (prefillNs / 1e9), decodeTps = decodeTokens / (decodeNs / 1e9);
                long weightBytes = 0;
                try (var s = Files.list(dir)) {
                    for (Path p : s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).toList()) weightBytes += Files.size(p);
                }
                Object threads = d.info().getOrDefault("threads", "?");
                System.err.printf("backend %s, shape %s, threads %s, weights %.1f MB%n", d.backend(), shapeName, threads, weightBytes / 1e6);
                System.err.printf("  load      %8d ms%n", loadMs);
                System.err.printf("  prefill   %8.1f ms  (%d tokens, %.1f tok/s)%n", prefillNs / 1e6, promptTokens, prefillTps);
                System.err.printf("  decode    %8.1f ms  (%d tokens, %.2f tok/s, %.1f ms/token)%n", decodeNs / 1e6, decodeTokens, decodeTps, decodeNs / 1e6 / decodeTokens);
                if (json) {
                    Map<String, Object> o = new LinkedHashMap<>();
                    o.put("backend", d.backend());
                    o.put("shape", shapeName);
                    o.put("threads", threads);
                    o.put("write_ms", writeMs);
                    o.put("load_ms", loadMs);
                    o.put("prompt_tokens", promptTokens);
                    o.put("prefill_ms", prefillNs / 1e6);
                    o.put("prefill_tokens_per_s", prefillTps);
                    o.put("decode_tokens", decodeTokens);
                    o.put("decode_ms", decodeNs / 1e6);
                    o.put("decode_tokens_per_s", decodeTps);
                    System.out.println(new ObjectMapper().writeValueAsString(o));
                }
            }
        }
    }

    /** Index of the largest logit (the lowest on ties). */
    private static int argmax(float[] l, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (l[i] > l[best]) best = i;
        return best;
    }
}
