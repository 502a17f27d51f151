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
import io.vlmflux.cuda.cpu.CpuOps;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code vlmflux bench llm}: writes a random bf16 checkpoint of a named shape (default Qwen2.5-0.5B), loads it on a
 * backend and times prefill of a random prompt and greedy decode steps. Table on stderr, {@code --json} on stdout.
 */
public final class LlmBench implements Command {
    @Override public String summary() { return "prefill + decode speed of a random-weight model (default shape qwen2.5-0.5b)"; }

    @Override public String usage() {
        return "vlmflux bench llm [--backend cpu|cuda] [--shape qwen2.5-0.5b|tiny] [--model DIR] [--prompt-tokens 128] [--decode-tokens 32] [--json]\n"
                + "  --model DIR   benchmark an existing checkpoint instead of writing a random one";
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, Set.of("backend", "shape", "model", "prompt-tokens", "decode-tokens"), Set.of("json"));
        String backend = a.get("backend", "cpu");
        int promptTokens = a.getInt("prompt-tokens", 128), decodeTokens = a.getInt("decode-tokens", 32);
        if (promptTokens < 1 || decodeTokens < 1) throw new UsageException("--prompt-tokens and --decode-tokens must be >= 1");
        Path dir;
        Path tmp = null;
        String shapeName;
        long writeMs = 0;
        if (a.has("model")) {
            dir = Path.of(a.get("model"));
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
                    System.err.printf("backend %s, shape %s, threads %d, weights %.1f MB%n", d.backend(), shapeName, Parallel.threads(),
                            Files.size(dir.resolve("model.safetensors")) / 1e6);
                    System.err.printf("  load      %8d ms%n", loadMs);
                    System.err.printf("  prefill   %8.1f ms  (%d tokens, %.1f tok/s)%n", prefillNs / 1e6, promptTokens, prefillTps);
                    System.err.printf("  decode    %8.1f ms  (%d tokens, %.2f tok/s, %.1f ms/token)%n", decodeNs / 1e6, decodeTokens, decodeTps, decodeNs / 1e6 / decodeTokens);
                    if (a.flag("json")) {
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
        } finally {
            if (tmp != null) {
                try (var s = Files.list(tmp)) { for (Path p : s.toList()) Files.deleteIfExists(p); }
                Files.deleteIfExists(tmp);
            }
        }
        return 0;
    }
}
