package io.vlmflux.demos.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.cuda.cpu.Parallel;
import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.RandomCheckpoint;
import io.vlmflux.llm.cuda.CudaLlmBench;
import io.vlmflux.cuda.cpu.CpuOps;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code vlmflux bench llm}: loads a checkpoint ({@code --model DIR}, or a random bf16 one of a named shape written to a
 * temporary folder) on a backend and times batch-1 prefill and greedy decode. {@code cuda} (what {@code auto} picks
 * where a GPU is usable) runs {@link CudaLlmBench}: per context C, prefill of C tokens and decode tok/s with C tokens
 * cached, GPU memory, and the roofline from the measured device bandwidth. {@code cpu}: prefill of
 * {@code --prompt-tokens} and decode steps on top. Table on stderr, {@code --json}: one JSON object per line on stdout.
 */
public final class LlmBench implements Command {
    private static final System.Logger LOG = System.getLogger("vlmflux.bench");

    @Override public String summary() { return "prefill + decode speed of a model (random weights of a named shape by default)"; }

    @Override public String usage() {
        return """
                vlmflux bench llm [--backend auto|cpu|cuda] [--model DIR | --shape qwen2.5-0.5b|tiny] [--json]
                                  cuda: [--contexts 512,2048] [--decode-tokens 128] [--no-cuda-graph]
                                  cpu:  [--prompt-tokens 128] [--decode-tokens 32]
                  --backend      auto (default): cuda when a usable GPU is present, else cpu (the choice is logged)
                  --model DIR    benchmark an existing checkpoint instead of writing a random one
                  --contexts     cuda: cached-token counts; each is prefilled (median of 3) and decoded on top of
                  cuda output    prefill ms, decode tok/s, roofline tok/s (bf16 weights + K/V read per token over the
                                 measured device copy bandwidth) and the fraction reached, GPU memory (decoder, KV cache)
                """;
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, Set.of("backend", "shape", "model", "prompt-tokens", "decode-tokens", "contexts"), Set.of("json", "no-cuda-graph"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        String requested = a.get("backend", "auto");
        if (!Set.of("auto", "cpu", "cuda").contains(requested)) throw new UsageException("--backend must be auto, cpu or cuda, got '" + requested + "'");
        if (a.has("model") && a.has("shape")) throw new UsageException("give --model or --shape, not both");
        String backend = Models.resolve(requested);
        boolean cuda = backend.equals("cuda");
        if (cuda && a.has("prompt-tokens")) throw new UsageException("--prompt-tokens is for the cpu backend; with cuda use --contexts");
        if (!cuda && (a.has("contexts") || a.flag("no-cuda-graph")))
            throw new UsageException("--contexts/--no-cuda-graph need the cuda backend (this run uses " + backend + ")");
        int[] contexts = contexts(a.get("contexts", "512,2048"));
        int promptTokens = a.getInt("prompt-tokens", 128), decodeTokens = a.getInt("decode-tokens", cuda ? 128 : 32);
        if (promptTokens < 1 || decodeTokens < 1) throw new UsageException("--prompt-tokens and --decode-tokens must be >= 1");
        if (cuda && !io.vlmflux.llm.cuda.CudaDecoderBackend.available())
            throw new IllegalStateException("backend 'cuda' cannot run here: " + io.vlmflux.llm.cuda.CudaDecoderBackend.unavailableReason());
        Path dir;
        Path tmp = null;
        String shapeName;
        long writeMs = 0;
        if (a.has("model")) {
            dir = Path.of(a.get("model"));
            if (!Files.isRegularFile(dir.resolve("config.json"))) throw new UsageException("--model " + dir + ": no config.json there");
            shapeName = dir.getFileName().toString();
        } else {
            RandomCheckpoint.Shape shape;
            try { shape = RandomCheckpoint.Shape.named(a.get("shape", "qwen2.5-0.5b")); }
            catch (IllegalArgumentException e) { throw new UsageException(e.getMessage()); }
            shapeName = shape.name();
            tmp = Files.createTempDirectory("vlmflux-bench-llm");
            dir = tmp;
            System.err.println("writing random bf16 checkpoint " + shape + " to " + dir);
            long w0 = System.nanoTime();
            RandomCheckpoint.write(dir, shape, 1);
            writeMs = (System.nanoTime() - w0) / 1_000_000;
        }
        try {
            if (cuda) {
                String old = System.getProperty("vlmflux.cuda.graphs");
                if (a.flag("no-cuda-graph")) System.setProperty("vlmflux.cuda.graphs", "false");
                try {
                    runCuda(dir, shapeName, contexts, decodeTokens, a.flag("json"));
                } finally {
                    if (old == null) System.clearProperty("vlmflux.cuda.graphs"); else System.setProperty("vlmflux.cuda.graphs", old);
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

    static int[] contexts(String s) {
        try {
            int[] c = java.util.Arrays.stream(s.split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
            for (int v : c) if (v < 1) throw new UsageException("--contexts values must be >= 1, got " + v);
            if (c.length == 0) throw new UsageException("--contexts is empty");
            return c;
        } catch (NumberFormatException e) {
            throw new UsageException("--contexts must be comma-separated token counts, got '" + s + "'");
        }
    }

    private static void runCuda(Path dir, String name, int[] contexts, int decodeTokens, boolean json) throws Exception {
        List<CudaLlmBench.Result> rs = CudaLlmBench.run(dir, contexts, decodeTokens);
        CudaLlmBench.Result f = rs.getFirst();
        System.err.printf("backend cuda, model %s, %s, device copy bandwidth %.0f GB/s (read + write), CUDA graphs %s%n", name, f.device(),
                f.bandwidthGBs(), f.graphs() ? "on" : "off");
        System.err.printf("  weights read per token %.3f GB; GPU memory: decoder (weights + activations) %d MB%n",
                f.weightBytesPerToken() / 1e9, f.decoderBytes() >> 20);
        System.err.println("  context | prefill ms | decode tok/s | roofline tok/s | of roofline | KV cache MB | device used MB");
        for (CudaLlmBench.Result r : rs)
            System.err.printf(java.util.Locale.ROOT, "  %7d | %10.2f | %12.1f | %14.1f | %11.2f | %11d | %14d%n", r.context(), r.prefillMs(),
                    r.decodeTokS(), r.rooflineTokS(), r.fracOfRoofline(), r.kvCacheBytes() >> 20, r.deviceUsedBytes() >> 20);
        if (json) for (CudaLlmBench.Result r : rs) System.out.println(r.json());
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
                    int next = CpuOps.argmax(logits, 0, vocab);
                    logits = d.forward(cache, ForwardInput.tokens(next), false);
                }
                long decodeNs = System.nanoTime() - d0;
                double prefillTps = promptTokens / (prefillNs / 1e9), decodeTps = decodeTokens / (decodeNs / 1e9);
                long weightBytes = 0;
                try (var s = Files.list(dir)) {
                    for (Path p : s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).toList()) weightBytes += Files.size(p);
                }
                System.err.printf("backend %s, shape %s, threads %d, weights %.1f MB%n", d.backend(), shapeName, Parallel.threads(), weightBytes / 1e6);
                System.err.printf("  load      %8d ms%n", loadMs);
                System.err.printf("  prefill   %8.1f ms  (%d tokens, %.1f tok/s)%n", prefillNs / 1e6, promptTokens, prefillTps);
                System.err.printf("  decode    %8.1f ms  (%d tokens, %.2f tok/s, %.1f ms/token)%n", decodeNs / 1e6, decodeTokens, decodeTps, decodeNs / 1e6 / decodeTokens);
                if (json) {
                    Map<String, Object> o = new LinkedHashMap<>();
                    o.put("backend", d.backend());
                    o.put("shape", shapeName);
                    o.put("threads", Parallel.threads());
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
}
