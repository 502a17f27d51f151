package io.vlmflux.demos.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.runtime.Prompt;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;

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
 * {@code vlmflux bench vlm}: a VLM checkpoint (e.g. a random-weight Qwen2.5-VL-3B written by
 * {@code cuda-native/bundle/peer_bench_vlm.py}) through the runtime, as an application uses it: {@code --ttft}: time
 * to first token from a host frame and decode speed; {@code --e2e}: sustained captions/s, frames/s, drops and latency
 * for N live sources through the real pipeline, with and without batched decode ({@link E2eBench}). Tables on stderr,
 * {@code --json} lines on stdout. The per-size vision-encoder table is a test-scope tool
 * ({@code io.vlmflux.vision.cuda.VisionEncoderBench}).
 */
public final class VlmBench implements Command {
    @Override public String summary() { return "TTFT, decode speed and captions/s of a VLM checkpoint through the runtime"; }

    @Override public String usage() {
        return "vlmflux bench vlm --model DIR (--ttft | --e2e)... [--format RGB|NV12|I420] [--iters 20] [--json] [--e2e-backend cuda|cpu]\n"
                + "       [--ttft [--ttft-size 640x480] [--question-tokens 20] [--decode-tokens 32] [--bandwidth-gbps B]]\n"
                + "       [--e2e [--sources 1,4] [--seconds 10] [--max-tokens 32] [--fps 30] [--e2e-size 640x480] [--feed test|push] [--encoder-cache]]\n"
                + "  --model DIR   a Qwen2-VL / Qwen2.5-VL folder (config.json, preprocessor_config.json, tokenizer, safetensors)\n"
                + "  --ttft        time to first token from a host frame through the runtime (prepare: preprocess + encode, image rows\n"
                + "                on the device; generate: prefill of image + question on the cached chat prefix, first token chosen on\n"
                + "                the device) and the greedy decode speed after it; the encoder-output cache is off; with\n"
                + "                --bandwidth-gbps (device copy GB/s, read + write, as KernelBench prints it) also the decode's memory\n"
                + "                roofline: the language model's weights (lm head once, embeddings one row) + the K/V cached at the\n"
                + "                decode's middle position, read once a token at that bandwidth, and the fraction reached\n"
                + "  --e2e         sustained captions through VlmPipeline + the caption stage: N live sources at --fps each,\n"
                + "                --max-tokens per caption, greedy, newest frame wins; captions/s, frames/s, frames dropped, latency\n"
                + "                percentiles (frame out of the source -> caption done), encoder cache counters. --feed test: GStreamer\n"
                + "                videotestsrc ball (default when GStreamer loads), push: synthetic moving frames pushed at --fps\n"
                + "                (PushSource); the encoder-output cache is off unless --encoder-cache (identical test frames would share it)\n"
                + "  --e2e-backend cuda (default) or cpu (to try the harness on a machine without a GPU)";
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, Set.of("model", "format", "iters", "ttft-size", "question-tokens", "decode-tokens", "sources", "seconds", "max-tokens", "fps",
                "e2e-size", "feed", "e2e-backend", "bandwidth-gbps"), Set.of("json", "ttft", "e2e", "encoder-cache"));
        Path dir = Path.of(a.require("model"));
        if (!Files.isRegularFile(dir.resolve("config.json"))) throw new UsageException("--model " + dir + ": no config.json");
        int iters = a.getInt("iters", 20);
        if (iters < 1) throw new UsageException("--iters must be >= 1");
        PixelFormat fmt;
        try { fmt = PixelFormat.valueOf(a.get("format", "RGB").toUpperCase(java.util.Locale.ROOT)); }
        catch (IllegalArgumentException e) { throw new UsageException("--format must be RGB, NV12 or I420"); }
        if (fmt != PixelFormat.RGB && fmt != PixelFormat.NV12 && fmt != PixelFormat.I420) throw new UsageException("--format must be RGB, NV12 or I420");
        ObjectMapper json = new ObjectMapper();
        if (!a.flag("ttft") && !a.flag("e2e")) throw new UsageException("give --ttft and/or --e2e (the per-size encoder table is VisionEncoderBench in the vision test sources, see docs/gpu.md)");
        if (a.flag("ttft")) ttft(a, dir, fmt, json);
        if (a.flag("e2e")) E2eBench.run(a, dir, fmt, json);
        return 0;
    }

    /**
     * Time to first token from a host frame through the runtime, as an application sees it: {@code prepare} (GPU
     * preprocessing, the vision encoder on the runtime's stream, image rows kept on the device) then
     * {@code generate} until the first token event (prefill of image tokens + question on the cached chat prefix, the
     * first token chosen on the device). The encoder-output cache is off (every frame is encoded). Then greedy decode
     * of {@code --decode-tokens} (tokens/s).
     */
    private void ttft(Args a, Path dir, PixelFormat fmt, ObjectMapper json) throws Exception {
        String[] sz = a.get("ttft-size", "640x480").toLowerCase(java.util.Locale.ROOT).split("x");
        int w, h;
        try { w = Integer.parseInt(sz[0]); h = Integer.parseInt(sz[1]); }
        catch (RuntimeException e) { throw new UsageException("--ttft-size: want WxH"); }
        int qTokens = a.getInt("question-tokens", 20), decode = a.getInt("decode-tokens", 32);
        int iters = a.getInt("iters", 20);
        double bandwidth = LlmBench.bandwidth(a);
        RuntimeOptions ro = RuntimeOptions.defaults().withBackend(Backend.parse(a.get("e2e-backend", "cuda"))).withEncoderCacheBytes(0);
        try (VlmRuntime rt = VlmRuntime.load(dir, ro); Frame base = randomFrame(fmt, w, h, 5)) {
            StringBuilder q = new StringBuilder();
            for (int i = 0; i < qTokens; i++) q.append(" q").append(i);
            PromptTemplate t = rt.rawPrompt("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>" + q + "<|im_end|>\n<|im_start|>assistant\n");
            GenerateOptions go = new GenerateOptions(SamplingParams.greedyDecoding(), decode + 1, Set.of(), List.of(), rt.cachedPrefix(t.sharedPrefix()), null);
            double[] ttft = new double[iters], pre = new double[iters], encMs = new double[iters], prefill = new double[iters], tps = new double[iters];
            int promptTokens = 0;
            for (int it = -2; it < iters; it++) {   // 2 warm-ups (the first also fills the prefix cache)
                Frame view = Frame.builder().format(fmt).size(w, h).data(base.data()).releaser(() -> {}).build();
                long[] prefillNs = {0}, firstAt = {0}, lastAt = {0};
                long u0 = System.nanoTime();
                Prompt p = rt.prepareBlocking(t, List.of(view));
                promptTokens = p.length();
                long preNs = p.preprocessNanos(), encNs = p.encodeNanos();
                rt.generate(p, go.withPrefillListener(ns -> prefillNs[0] = ns))
                        .doOnNext(e -> { long now = System.nanoTime(); if (firstAt[0] == 0) firstAt[0] = now; lastAt[0] = now; })
                        .blockLast();
                if (it < 0) continue;
                ttft[it] = (firstAt[0] - u0) / 1e6;
                pre[it] = preNs / 1e6;
                encMs[it] = encNs / 1e6;
                prefill[it] = prefillNs[0] / 1e6;
                tps[it] = decode / ((lastAt[0] - firstAt[0]) / 1e9);
            }
            System.err.printf("time to first token, %dx%d %s frame, prompt of %d tokens (%d question tokens, shared prefix of %d, %d of them from the prefix cache), %s:%n",
                    w, h, fmt, promptTokens, qTokens, t.sharedPrefix(), rt.cachedPrefix(t.sharedPrefix()), rt.describe());
            double decodeTps = median(tps);
            System.err.printf("  TTFT %.2f ms (median of %d; min %.2f); host time in prepare: preprocess %.2f + encode %.2f (asynchronous on the stream), prefill %.2f; decode %.1f tok/s%n",
                    median(ttft), iters, min(ttft), median(pre), median(encMs), median(prefill), decodeTps);
            // the decode's memory roofline: what a step reads (weights once, K/V of the positions cached at mid-decode)
            long bytes = LlmBench.weightBytesPerToken(rt.config()) + LlmBench.kvBytesPerToken(rt.config(), promptTokens + decode / 2);
            double roof = bandwidth > 0 ? bandwidth / bytes : 0;
            if (roof > 0)
                System.err.printf("  decode roofline %.1f tok/s (%.3f GB a token at %.0f GB/s, given): %.3f of it reached%n",
                        roof, bytes / 1e9, bandwidth / 1e9, decodeTps / roof);
            if (a.flag("json")) {
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("what", "vlmflux_ttft");
                o.put("input", w + "x" + h);
                o.put("format", fmt.name());
                o.put("prompt_tokens", promptTokens);
                o.put("question_tokens", qTokens);
                o.put("ttft_ms", median(ttft));
                o.put("ttft_ms_min", min(ttft));
                o.put("preprocess_host_ms", median(pre));
                o.put("encode_host_ms", median(encMs));
                o.put("prefill_ms", median(prefill));
                o.put("decode_tokens_per_s", decodeTps);
                o.put("decode_tokens", decode);
                o.put("bytes_per_token", bytes);
                if (roof > 0) {
                    o.put("bandwidth_GBps", bandwidth / 1e9);
                    o.put("roofline_tok_s", roof);
                    o.put("frac_of_roofline", decodeTps / roof);
                }
                System.out.println(json.writeValueAsString(o));
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
