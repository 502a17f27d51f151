package io.vlmflux.demos;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.GenerationConfig;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.ImageSlots;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.chat.ChatMessage;
import io.vlmflux.llm.chat.ChatTemplate;
import io.vlmflux.llm.tokenizer.Tokenizer;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.Images;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code vlmflux generate}: one prompt (optionally with images) through a model folder, streamed to stdout or
 * reported as one JSON object. Steps: load tokenizer + decoder, build the prompt (chat template unless {@code --raw}),
 * encode images into embedding spans ({@link #encodeImages}), generate with the {@link Generator}.
 */
public final class GenerateCommand implements Command {
    private static final System.Logger LOG = System.getLogger("vlmflux.generate");
    private static final Set<String> VALUED = Set.of("model", "prompt", "prompt-file", "image", "max-tokens", "temperature", "top-k",
            "top-p", "min-p", "seed", "repetition-penalty", "stop", "backend");
    private static final Set<String> FLAGS = Set.of("raw", "greedy", "ignore-eos", "json", "no-cuda-graph");

    @Override public String summary() { return "generate text from a prompt (and images) with a local model"; }

    @Override public String usage() {
        return """
                vlmflux generate --model DIR (--prompt TEXT | --prompt-file FILE|-) [--raw] [--image FILE]... [--max-tokens N]
                                 [--greedy | --temperature T --top-k K --top-p P --min-p P --seed S] [--repetition-penalty R]
                                 [--stop STRING]... [--ignore-eos] [--backend auto|cpu|cuda] [--no-cuda-graph] [--json]

                  --prompt-file -   read the prompt from stdin
                  --raw             use the prompt verbatim (special tokens honoured) instead of the chat template's user turn;
                                    each <|vision_start|><|image_pad|><|vision_end|> slot takes one --image
                  --max-tokens N    default 256
                  sampling          defaults from generation_config.json (greedy when absent or do_sample=false)
                  --ignore-eos      do not stop on EOS or stop strings
                  --backend B       auto (default: cuda when a usable GPU is present, else cpu; the choice is logged), cpu, cuda
                  --no-cuda-graph   cuda: run every decode step eagerly instead of replaying the captured CUDA graph
                  --json            print one JSON object: input_ids, tokens, text, finish_reason, timings
                """;
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, VALUED, FLAGS);
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        Path dir = Path.of(a.require("model"));
        String promptText = readPrompt(a);
        int maxTokens = a.getInt("max-tokens", 256);
        if (maxTokens < 0) throw new UsageException("--max-tokens must be >= 0");
        String requested = a.get("backend", "auto");
        if (!Set.of("auto", "cpu", "cuda").contains(requested)) throw new UsageException("--backend must be auto, cpu or cuda, got '" + requested + "'");
        if (a.flag("no-cuda-graph")) System.setProperty("vlmflux.cuda.graphs", "false");   // read by the CUDA decoder at load
        if (a.flag("greedy") && (a.has("temperature") || a.has("top-k") || a.has("top-p") || a.has("min-p")))
            throw new UsageException("--greedy cannot be combined with --temperature/--top-k/--top-p/--min-p");
        List<Path> images = a.all("image").stream().map(Path::of).toList();
        for (Path p : images) if (!Files.isRegularFile(p)) throw new UsageException("--image " + p + ": no such file");

        long t0 = System.nanoTime();
        Tokenizer tok = Tokenizer.load(dir);
        GenerationConfig gen = GenerationConfig.load(dir);
        String backend = Models.resolve(requested);
        if (a.flag("no-cuda-graph") && !backend.equals("cuda")) LOG.log(System.Logger.Level.INFO, "--no-cuda-graph has no effect on backend {0}", backend);
        try (Decoder decoder = Models.load(dir, backend)) {
            ModelConfig cfg = decoder.config();
            String text = promptText;
            if (!a.flag("raw")) {
                ChatTemplate tpl = ChatTemplate.load(dir).orElseThrow(() -> new IllegalArgumentException(
                        dir + " has no chat template (tokenizer_config.json chat_template); use --raw"));
                List<ChatMessage.Part> parts = new ArrayList<>();
                for (int i = 0; i < images.size(); i++) parts.add(new ChatMessage.Image());
                parts.add(new ChatMessage.Text(promptText));
                text = tpl.render(List.of(new ChatMessage("user", parts)), true);
            }
            int[] ids = tok.encode(text);
            List<EmbeddingSpan> spans = new ArrayList<>();
            int slots = cfg.imageTokenId() < 0 ? 0 : ImageSlots.countSlots(ids, cfg.imageTokenId());
            if (slots != images.size())
                throw new UsageException("the prompt has " + slots + " image slot(s) but " + images.size() + " --image file(s) were given");
            if (!images.isEmpty()) {
                List<ImageEmbeddings> emb = encodeImages(dir, images, backend);
                int[] counts = emb.stream().mapToInt(ImageEmbeddings::tokens).toArray();
                ImageSlots.Expanded ex = ImageSlots.expand(ids, cfg.imageTokenId(), counts);
                ids = ex.tokens();
                for (int i = 0; i < emb.size(); i++) {
                    ImageEmbeddings e = emb.get(i);
                    spans.add(new EmbeddingSpan(ex.spanStarts()[i], e.tokens(), e.hidden(), e.data(), e.gridT(), e.gridH(), e.gridW(), e.contentHash(), 0));
                }
            }
            MultimodalPrompt prompt = new MultimodalPrompt(ids, spans);
            long loadNs = System.nanoTime() - t0;

            SamplingParams sampling = sampling(a, gen);
            Set<Integer> stopTokens = new LinkedHashSet<>();
            List<String> stopStrings = a.all("stop");
            if (!a.flag("ignore-eos")) {
                stopTokens.addAll(gen.eosTokenIds());
                stopTokens.addAll(cfg.eosTokenIds());
                OptionalInt eos = tok.eosId();
                if (stopTokens.isEmpty() && eos.isPresent()) stopTokens.add(eos.getAsInt());
            } else {
                stopStrings = List.of();
            }
            AtomicLong prefillNs = new AtomicLong();
            GenerateOptions opts = new GenerateOptions(sampling, maxTokens, stopTokens, stopStrings, 0, prefillNs::set);
            LOG.log(System.Logger.Level.INFO, "prompt {0} tokens ({1} image span(s)), sampling {2}, max {3} tokens", ids.length, spans.size(), sampling, maxTokens);

            boolean json = a.flag("json");
            PrintStream out = System.out;
            List<Integer> tokens = new ArrayList<>();
            StringBuilder generated = new StringBuilder();   // the streamed text: stop strings and stop tokens are not part of it
            FinishReason[] finish = {FinishReason.CANCELLED};
            long[] first = {0}, last = {0};
            long start = System.nanoTime();
            // Ctrl-C / SIGTERM: stop at the next step, then let this thread report what was generated before the JVM exits
            AtomicBoolean interrupted = new AtomicBoolean();
            CountDownLatch reported = new CountDownLatch(1);
            Thread hook = new Thread(() -> {
                interrupted.set(true);
                try { reported.await(10, TimeUnit.SECONDS); } catch (InterruptedException ignored) { Thread.currentThread().interrupt(); }
            }, "vlmflux-generate-interrupt");
            Runtime.getRuntime().addShutdownHook(hook);
            try {
            try (Generator g = new Generator(decoder, null, null)) {
                // checked on the generator thread after each step: no interrupt lands inside a running step
                g.generate(prompt, opts, tok::streamingDecoder)
                        .takeWhile(e -> !interrupted.get())
                        .doOnNext(e -> {
                            long now = System.nanoTime();
                            if (e.tokenId() >= 0) tokens.add(e.tokenId());
                            if (first[0] == 0) LOG.log(System.Logger.Level.INFO, "first token after {0} ms", (now - start) / 1_000_000);
                            if (first[0] == 0) first[0] = now;
                            last[0] = now;
                            if (e.finishReason() != null) finish[0] = e.finishReason();
                            generated.append(e.textDelta());
                            if (!json && !e.textDelta().isEmpty()) { out.print(e.textDelta()); out.flush(); }
                        })
                        .blockLast();
                // a cancelled stream frees its KV cache after the step in flight; wait for that before the decoder closes
                for (long w = System.nanoTime(); g.activeSequences() > 0 && System.nanoTime() - w < 10_000_000_000L; ) Thread.sleep(1);
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
            out.println(new ObjectMapper().writeValueAsString(o));
            out.flush();
            return 0;
            } finally {
                reported.countDown();
                try { Runtime.getRuntime().removeShutdownHook(hook); } catch (IllegalStateException shuttingDown) { /* the hook is running */ }
            }
        }
    }

    private static double round(double v) { return Math.round(v * 1000) / 1000.0; }

    /** Image files → embeddings with the model folder's preprocessor and vision encoder (the one vision step). */
    static List<ImageEmbeddings> encodeImages(Path dir, List<Path> files, String backend) {
        ImageProcessor proc = ImageProcessor.load(dir);
        List<ImageEmbeddings> out = new ArrayList<>();
        try (VisionEncoder enc = VisionEncoders.load(dir, backend)) {
            LOG.log(System.Logger.Level.INFO, "vision encoder: {0}", enc.describe());
            for (Path f : files) {
                try (Frame frame = Images.read(f)) {
                    out.add(enc.encode(proc.process(frame)));
                }
            }
        }
        return out;
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
        if (f.equals("-")) return new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        Path p = Path.of(f);
        if (!Files.isRegularFile(p)) throw new UsageException("--prompt-file " + f + ": no such file");
        return Files.readString(p, StandardCharsets.UTF_8);
    }
}
