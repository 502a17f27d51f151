package io.vlmflux.demos;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.GenerationConfig;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.chat.ChatMessage;
import io.vlmflux.llm.chat.ChatTemplate;
import io.vlmflux.llm.constrain.ConstraintException;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.constrain.Constraints;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.llm.runtime.Prompt;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.llm.tokenizer.Tokenizer;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code vlmflux generate}: one prompt (optionally with images) through a model folder, streamed to stdout or
 * reported as one JSON object. Steps: load the {@link VlmRuntime}, build the prompt (chat template unless {@code --raw}),
 * prepare it with the images, generate.
 */
public final class GenerateCommand implements Command {
    private static final System.Logger LOG = System.getLogger("vlmflux.generate");
    private static final Set<String> VALUED = Set.of("model", "prompt", "prompt-file", "image", "max-tokens", "temperature", "top-k",
            "top-p", "min-p", "seed", "repetition-penalty", "stop", "backend", "json-schema", "regex", "choice", "grammar", "logprobs", "video", "video-fps", "video-frames");
    /** Largest --max-tokens (2^24, far beyond any context window; keeps prompt + max tokens inside int). */
    static final int MAX_TOKENS = 1 << 24;
    private static final Set<String> FLAGS = Set.of("raw", "greedy", "ignore-eos", "json", "no-cuda-graph");

    @Override public String summary() { return "generate text from a prompt (and images) with a local model"; }

    @Override public String usage() {
        return """
                vlmflux generate --model DIR (--prompt TEXT | --prompt-file FILE|-) [--raw] [--image FILE]... [--max-tokens N]
                                 [--video PATH [--video-fps F] [--video-frames N]]
                                 [--greedy | --temperature T --top-k K --top-p P --min-p P --seed S] [--repetition-penalty R]
                                 [--stop STRING]... [--ignore-eos] [--backend auto|cpu|cuda] [--no-cuda-graph] [--json]
                                 [--json-schema FILE | --regex RE | --choice A,B,C | --grammar FILE] [--logprobs N]

                  --prompt-file -   read the prompt from stdin
                  --raw             use the prompt verbatim (special tokens honoured) instead of the chat template's user turn;
                                    each <|vision_start|><|image_pad|><|vision_end|> slot takes one --image, and
                                    <|vision_start|><|video_pad|><|vision_end|> stands for the --video
                  --video PATH      one video (Qwen2-VL, Qwen2.5-VL, Qwen3-VL; cpu and cuda): a folder of image files
                                    (every frame in name order, taken at --video-fps), a video file or any source spec
                                    (sampled at --video-fps by timestamp, or --video-frames N evenly; a live source
                                    needs --video-frames). Not combined with --image
                  --video-fps F     frame rate of the clip (default 2): a folder's rate, or the rate a file is sampled at
                  --video-frames N  keep N frames evenly (folder, file), or the first N at --video-fps (both given, live)
                  --max-tokens N    default 256
                  sampling          defaults from generation_config.json (greedy when absent or do_sample=false)
                  --ignore-eos      do not stop on EOS or stop strings
                  --backend B       auto (default: cuda when a usable GPU is present, else cpu; the choice is logged), cpu, cuda
                  --no-cuda-graph   cuda: run every decode step eagerly instead of replaying the captured CUDA graph
                  --json            print one JSON object: input_ids, tokens, text, finish_reason, timings
                                    (and logprobs with --logprobs: per token {token, logprob, top: [{token, logprob}]})
                  --json-schema F   the output is an instance of the JSON Schema in file F (canonical JSON, no whitespace)
                  --regex RE        the output matches RE in full;  --choice A,B,C: the output is one of the options
                  --grammar F       the output is a sentence of the grammar in file F (GBNF, start rule root; *.lark/*.ebnf:
                                    Lark-like EBNF, start rule start)
                                    (constrained decoding runs the sampler on the host; docs/llm.md "Constrained decoding")
                  --logprobs N      log-probabilities of each chosen token and the N most likely (0..100)
                """;
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, VALUED, FLAGS);
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        Path dir = Path.of(a.require("model"));
        String promptText = readPrompt(a);
        int maxTokens = a.getInt("max-tokens", 256);
        if (maxTokens < 0 || maxTokens > MAX_TOKENS)
            throw new UsageException("--max-tokens must be in 0.." + MAX_TOKENS + ", got " + maxTokens + " (generation also stops at the model's context length)");
        Backend requested;
        try {
            requested = Backend.parse(a.get("backend", "auto"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--backend: " + e.getMessage());
        }
        if (a.flag("no-cuda-graph")) System.setProperty("vlmflux.cuda.graphs", "false");   // tuning, read once when the model loads
        if (a.flag("greedy") && (a.has("temperature") || a.has("top-k") || a.has("top-p") || a.has("min-p")))
            throw new UsageException("--greedy cannot be combined with --temperature/--top-k/--top-p/--min-p");
        List<Path> images = a.all("image").stream().map(Path::of).toList();
        for (Path p : images) if (!Files.isRegularFile(p)) throw new UsageException("--image " + p + ": no such file");
        boolean video = a.has("video");
        if (!video && (a.has("video-fps") || a.has("video-frames"))) throw new UsageException("--video-fps and --video-frames need --video");
        if (video && !images.isEmpty()) throw new UsageException("--video cannot be combined with --image (a prompt takes one video, or images)");
        if (video && a.all("video").size() > 1) throw new UsageException("give --video once (a prompt takes one video)");

        long t0 = System.nanoTime();
        // one-shot: nothing to reuse, so no prefix or encoder-output cache
        RuntimeOptions ro = RuntimeOptions.defaults().withBackend(requested).withPrefixCacheBytes(0).withEncoderCacheBytes(0);
        try (VlmRuntime runtime = VlmRuntime.load(dir, ro)) {
            Backend backend = runtime.backend();
            if (a.flag("no-cuda-graph") && backend != Backend.CUDA) LOG.log(System.Logger.Level.INFO, "--no-cuda-graph has no effect on backend {0}", backend.wire());
            Tokenizer tok = runtime.tokenizer();
            GenerationConfig gen = runtime.generationConfig();
            Prompt prompt;
            int mediaCount = images.size();
            if (video) {
                prompt = videoPrompt(a, runtime, promptText, dir);
            } else {
                PromptTemplate template;
                if (a.flag("raw")) {
                    template = runtime.rawPrompt(promptText);
                } else {
                    if (runtime.chatTemplate().isEmpty())
                        throw new IllegalArgumentException(dir + " has no chat template (tokenizer_config.json chat_template); use --raw");
                    template = runtime.promptTemplate(null, promptText, images.size());
                }
                if (template.images() != images.size())
                    throw new UsageException("the prompt has " + template.images() + " image slot(s) but " + images.size() + " --image file(s) were given");
                List<Frame> frames = new ArrayList<>();
                try {
                    for (Path p : images) frames.add(Images.read(p));
                } catch (RuntimeException e) {
                    for (Frame f : frames) f.close();
                    throw e;
                }
                prompt = runtime.prepareBlocking(template, frames);
            }
            int[] ids = prompt.input().tokens();
            long loadNs = System.nanoTime() - t0;

            SamplingParams sampling = sampling(a, gen);
            Set<Integer> stopTokens = a.flag("ignore-eos") ? Set.of() : runtime.eosTokens();
            List<String> stopStrings = a.flag("ignore-eos") ? List.of() : a.all("stop");
            AtomicLong prefillNs = new AtomicLong();
            GenerateOptions opts = new GenerateOptions(sampling, maxTokens, stopTokens, stopStrings, 0, prefillNs::set)
                    .withControls(controls(a, tok, stopTokens));
            LOG.log(System.Logger.Level.INFO, "prompt {0} tokens ({1}), sampling {2}, max {3} tokens", ids.length,
                    video ? "1 video" : mediaCount + " image(s)", sampling, maxTokens);

            boolean json = a.flag("json");
            PrintStream out = System.out;
            List<Integer> tokens = new ArrayList<>();
            List<Map<String, Object>> logprobs = new ArrayList<>();
            StringBuilder generated = new StringBuilder();   // the streamed text: stop strings and stop tokens are not part of it
            FinishReason[] finish = {FinishReason.CANCELLED};
            long[] first = {0}, last = {0};
            long start = System.nanoTime();
            // Ctrl-C / SIGTERM: stop at the next step, then let this thread report what was generated before the JVM exits
            AtomicBoolean interrupted = new AtomicBoolean();
            CountDownLatch reported = new CountDownLatch(1);
            CountDownLatch signalled = new CountDownLatch(1);
            // test hook (GenerateInterruptTest): after this many tokens, wait for the signal, so that it lands mid-generation
            // however loaded the machine is; unset (0) in normal use
            int holdAfter = Integer.getInteger("vlmflux.test.generate.holdForSignalAfterTokens", 0);
            Thread hook = new Thread(() -> {
                interrupted.set(true);
                signalled.countDown();
                try { reported.await(10, TimeUnit.SECONDS); } catch (InterruptedException ignored) { Thread.currentThread().interrupt(); }
            }, "vlmflux-generate-interrupt");
            Runtime.getRuntime().addShutdownHook(hook);
            try {
            {
                // checked on the compute thread after each step: no interrupt lands inside a running step
                runtime.generate(prompt, opts)
                        .takeWhile(e -> !interrupted.get())
                        .doOnNext(e -> {
                            long now = System.nanoTime();
                            if (e.tokenId() >= 0) tokens.add(e.tokenId());
                            if (e.logprobs() != null) logprobs.add(logprobsJson(e));
                            if (first[0] == 0) LOG.log(System.Logger.Level.INFO, "first token after {0} ms", (now - start) / 1_000_000);
                            if (first[0] == 0) first[0] = now;
                            last[0] = now;
                            if (e.finishReason() != null) finish[0] = e.finishReason();
                            generated.append(e.textDelta());
                            if (!json && !e.textDelta().isEmpty()) { out.print(e.textDelta()); out.flush(); }
                            if (holdAfter > 0 && tokens.size() == holdAfter && e.finishReason() == null) {
                                try { signalled.await(120, TimeUnit.SECONDS); } catch (InterruptedException ie) { Thread.currentThread().interrupt(); }
                            }
                        })
                        .blockLast();
                // a cancelled stream frees its KV cache after the step in flight; wait for that before the decoder closes
                for (long w = System.nanoTime(); runtime.activeSequences() > 0 && System.nanoTime() - w < 10_000_000_000L; ) Thread.sleep(1);
                // stderr directly: during shutdown java.util.logging's own hook may already have closed its handlers
                if (finish[0] == FinishReason.CANCELLED) System.err.println("vlmflux: generation cancelled after " + tokens.size() + " token(s)");
            }
            if (!json) { out.println(); out.flush(); return 0; }
            int[] genIds = tokens.stream().mapToInt(Integer::intValue).toArray();
            Map<String, Object> timings = new LinkedHashMap<>();
            double decodeMs = (last[0] - first[0]) / 1e6;
            timings.put("load_ms", round(loadNs / 1e6));
            timings.put("prefill_ms", round(prefillNs.get() / 1e6));
            timings.put("ttft_ms", round(first[0] == 0 ? 0 : (first[0] - start) / 1e6));
            timings.put("decode_ms", round(decodeMs));
            timings.put("tokens_per_s", round(genIds.length > 1 && decodeMs > 0 ? (genIds.length - 1) / (decodeMs / 1000) : 0));
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("input_ids", ids);
            o.put("tokens", genIds);
            o.put("text", generated.toString());
            o.put("finish_reason", finish[0].wire());
            o.put("timings", timings);
            if (a.has("logprobs")) o.put("logprobs", logprobs);
            out.println(new ObjectMapper().writeValueAsString(o));
            out.flush();
            return 0;
            } finally {
                reported.countDown();
                try { Runtime.getRuntime().removeShutdownHook(hook); } catch (IllegalStateException shuttingDown) { /* the hook is running */ }
            }
        }
    }

    /**
     * A prompt with the {@code --video}: {@code --raw} text must hold the one video slot itself; otherwise the chat
     * template renders a user turn of the video then the text. The frames go to the runtime, which owns them from then on.
     */
    private static Prompt videoPrompt(Args a, VlmRuntime runtime, String promptText, Path dir) throws IOException {
        String text;
        if (a.flag("raw")) {
            text = promptText;
        } else {
            ChatTemplate chat = runtime.chatTemplate().orElseThrow(() -> new IllegalArgumentException(dir + " has no chat template (tokenizer_config.json chat_template); use --raw"));
            text = chat.render(List.of(new ChatMessage("user", List.of(new ChatMessage.Video(), new ChatMessage.Text(promptText)))), true);
        }
        Double fps = a.has("video-fps") ? a.getDouble("video-fps", VideoClip.DEFAULT_FPS) : null;
        Integer count = a.has("video-frames") ? a.getInt("video-frames", 0) : null;
        VideoClip clip = VideoClip.read(a.get("video"), fps, count);
        LOG.log(System.Logger.Level.INFO, "video {0}: {1} frame(s) of {2}x{3} at {4} fps", a.get("video"), clip.frames().size(),
                clip.frames().getFirst().width(), clip.frames().getFirst().height(), clip.fps());
        return runtime.prepareVideoBlocking(text, clip.frames(), clip.fps());
    }

    private static double round(double v) { return Math.round(v * 1000) / 1000.0; }

    /**
     * The constraint (at most one of --json-schema, --regex, --choice, --grammar) and --logprobs; the stop tokens end a
     * constrained output only where the constraint accepts. Errors name the flag and the position.
     */
    static TokenControls controls(Args a, Tokenizer tok, Set<Integer> stopTokens) throws IOException {
        TokenControls c = TokenControls.none();
        ConstraintSpec spec = ConstraintFlags.spec(a);
        try {
            if (spec != null) c = TokenControls.constrained(Constraints.compile(spec, tok, stopTokens.stream().mapToInt(Integer::intValue).toArray()));
        } catch (ConstraintException e) {
            throw new UsageException("--" + ConstraintFlags.NAMES.stream().filter(a::has).findFirst().orElseThrow() + ": " + e.getMessage());
        }
        if (a.has("logprobs")) {
            int n = a.getInt("logprobs", 0);
            if (n < 0 || n > TokenControls.MAX_LOGPROBS) throw new UsageException("--logprobs must be in 0.." + TokenControls.MAX_LOGPROBS + ", got " + n);
            c = c.withLogprobs(n);
        }
        return c;
    }

    private static Map<String, Object> logprobsJson(io.vlmflux.llm.TokenEvent e) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("token", e.tokenId());
        m.put("logprob", e.logprobs().chosen());
        List<Map<String, Object>> top = new ArrayList<>();
        for (var t : e.logprobs().top()) {
            Map<String, Object> x = new LinkedHashMap<>();
            x.put("token", t.tokenId());
            x.put("logprob", t.logprob());
            top.add(x);
        }
        m.put("top", top);
        return m;
    }

    private static SamplingParams sampling(Args a, GenerationConfig gen) {
        long seed = a.getLong("seed", 0);
        double rep = a.getDouble("repetition-penalty", gen.repetitionPenalty());
        if (a.flag("greedy")) return SamplingParams.greedyDecoding().withRepetitionPenalty(rep);
        boolean explicit = a.has("temperature") || a.has("top-k") || a.has("top-p") || a.has("min-p");
        if (!explicit) return gen.toSampling(seed).withRepetitionPenalty(rep);
        double t = a.getDouble("temperature", gen.doSample() ? gen.temperature() : 1.0);
        if (t == 0) return SamplingParams.greedyDecoding().withRepetitionPenalty(rep);
        try {
            return new SamplingParams(false, t, a.getInt("top-k", gen.doSample() ? gen.topK() : 0), a.getDouble("top-p", gen.doSample() ? gen.topP() : 1.0),
                    a.getDouble("min-p", gen.doSample() ? gen.minP() : 0.0), rep, seed);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
    }

    private static String readPrompt(Args a) throws IOException {
        if (a.has("prompt") == a.has("prompt-file")) throw new UsageException("give exactly one of --prompt or --prompt-file");
        if (a.has("prompt")) return a.get("prompt");
        String f = a.get("prompt-file");
        if (f.equals("-")) return utf8(System.in.readAllBytes(), "--prompt-file - (stdin)");
        Path p = Path.of(f);
        if (!Files.isRegularFile(p)) throw new UsageException("--prompt-file " + f + ": no such file");
        return utf8(Files.readAllBytes(p), "--prompt-file " + f);
    }

    /** Strict UTF-8 decoding; malformed input is a usage error naming the source and the byte offset. */
    static String utf8(byte[] bytes, String what) {
        var dec = StandardCharsets.UTF_8.newDecoder().onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT);
        java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(bytes);
        java.nio.CharBuffer out = java.nio.CharBuffer.allocate(bytes.length + 1);
        var r = dec.decode(in, out, true);
        if (r.isError())
            throw new UsageException(what + ": not valid UTF-8 (malformed byte sequence at byte offset " + in.position() + ")");
        dec.flush(out);
        return out.flip().toString();
    }
}
