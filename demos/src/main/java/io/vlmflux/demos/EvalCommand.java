package io.vlmflux.demos;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.quant.Evaluator;
import io.vlmflux.llm.quant.TextSet;
import io.vlmflux.llm.runtime.CaptionAgreement;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.vision.Images;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code vlmflux eval}: the accuracy harness (docs/quantization.md): perplexity over a text, and with a reference
 * model the top-1 agreement and KL divergence of every next-token distribution (4-bit vs 16-bit, cuda vs cpu), and
 * with {@code --images} the caption agreement of two vision-language models over a folder of images or frames.
 */
public final class EvalCommand implements Command {
    @Override public String summary() { return "accuracy of a model vs a reference: top-1 agreement, KL divergence, perplexity"; }

    @Override public String usage() {
        return """
                vlmflux eval --model DIR [--reference DIR] [--data FILE] [--backend cpu|cuda|auto]
                             [--reference-backend cpu|cuda|auto] [--window 128] [--windows 8] [--json]
                             [--images DIR [--prompt TEXT] [--max-tokens 32] [--max-images 32]]
                  --model DIR          the model to judge (e.g. a 4-bit folder)
                  --reference DIR      the model it should match (e.g. the 16-bit original; the same folder with
                                       another --reference-backend compares backends)
                  --data FILE          UTF-8 text (default: a built-in sample), tokenized with --model's tokenizer and
                                       split into windows of --window tokens, at most --windows of them
                  --images DIR         also caption every image of DIR (png, jpg, jpeg, bmp, gif; name order; at most
                                       --max-images) with both models (greedy, --prompt, default "Describe the image.")
                                       and report caption agreement: exact match, common token prefix, word F1
                                       (needs --reference; both vision-language models)
                  --json               one JSON object on stdout
                Reports over every position: top-1 agreement and KL(reference || model) in nats of the next-token
                distributions, and each model's perplexity on the text. Random-weight models show no real accuracy loss.""";
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("model", "reference", "data", "backend", "reference-backend", "window", "windows", "images", "prompt",
                "max-tokens", "max-images"), Set.of("json"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        Path model = Path.of(a.require("model"));
        if (!Files.isDirectory(model)) throw new UsageException("--model " + model + ": no such folder");
        Path ref = a.has("reference") ? Path.of(a.get("reference")) : null;
        if (ref != null && !Files.isDirectory(ref)) throw new UsageException("--reference " + ref + ": no such folder");
        Path data = a.has("data") ? Path.of(a.get("data")) : null;
        if (data != null && !Files.isRegularFile(data)) throw new UsageException("--data " + data + ": no such file");
        int window = a.getInt("window", 128), windows = a.getInt("windows", 8);
        if (window < 2) throw new UsageException("--window must be at least 2");
        List<Path> images = a.has("images") ? images(Path.of(a.get("images")), a.getInt("max-images", 32)) : null;
        if (images != null && ref == null) throw new UsageException("--images needs --reference: caption agreement compares two models");
        String prompt = a.get("prompt", "Describe the image.");
        int maxTokens = a.getInt("max-tokens", 32);
        if (maxTokens < 1) throw new UsageException("--max-tokens must be at least 1");
        ObjectNode json = JSON.createObjectNode();
        try (Decoder m = Models.load(model, a.get("backend", "cpu"));
             Decoder r = ref == null ? null : Models.load(ref, a.get("reference-backend", "cpu"))) {
            TextSet t = TextSet.load(model, data, window, windows, m.config().vocabSize());
            Evaluator.Result e = Evaluator.run(m, r, t.windows());
            json.put("model", model.toString()).put("reference", ref == null ? null : ref.toString()).put("data", t.source())
                    .put("sequences", e.sequences()).put("positions", e.positions());
            num(json, "top1", e.top1());
            num(json, "kl_mean", e.meanKl());
            num(json, "kl_max", e.maxKl());
            num(json, "perplexity", e.perplexity());
            num(json, "reference_perplexity", e.referencePerplexity());
            if (!a.flag("json")) {
                System.out.printf(Locale.ROOT, "model %s (%s) on %s: %d sequence(s), %d position(s)%n", model, m.backend(), t.source(), e.sequences(), e.positions());
                System.out.printf(Locale.ROOT, "  perplexity            %.4f%n", e.perplexity());
                if (r != null) {
                    System.out.printf(Locale.ROOT, "  reference %s (%s) perplexity %.4f%n", ref, r.backend(), e.referencePerplexity());
                    System.out.printf(Locale.ROOT, "  top-1 agreement       %.4f%n", e.top1());
                    System.out.printf(Locale.ROOT, "  KL(ref || model) mean %.6f nats, max %.6f%n", e.meanKl(), e.maxKl());
                }
            }
        }
        if (images != null) json.set("captions", captions(a, model, ref, images, prompt, maxTokens));
        if (a.flag("json")) System.out.println(JSON.writeValueAsString(json));
        return 0;
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Caption agreement over {@code images} (after the text evaluation: one model pair in memory at a time); prints it
     * unless --json, and returns it as JSON.
     */
    private static ObjectNode captions(Args a, Path model, Path ref, List<Path> images, String prompt, int maxTokens) {
        RuntimeOptions base = RuntimeOptions.defaults().withPrefixCacheBytes(0).withEncoderCacheBytes(0);
        try (VlmRuntime m = VlmRuntime.load(model, base.withBackend(Backend.parse(a.get("backend", "cpu"))));
             VlmRuntime r = VlmRuntime.load(ref, base.withBackend(Backend.parse(a.get("reference-backend", "cpu"))))) {
            CaptionAgreement.Result c = CaptionAgreement.run(m, r, images, Images::read, prompt, maxTokens);
            ObjectNode o = JSON.createObjectNode().put("images", c.items().size()).put("prompt", prompt).put("max_tokens", maxTokens);
            num(o, "exact", c.exact());
            num(o, "prefix_agreement", c.prefixAgreement());
            num(o, "word_f1", c.wordF1());
            ArrayNode items = o.putArray("items");
            for (CaptionAgreement.Item it : c.items())
                items.addObject().put("image", it.image()).put("caption", it.caption()).put("reference", it.reference()).put("exact", it.exact())
                        .put("common_prefix", it.commonPrefix()).put("tokens", it.tokens()).put("reference_tokens", it.referenceTokens())
                        .put("word_f1", it.wordF1());
            if (!a.flag("json")) {
                System.out.printf(Locale.ROOT, "captions of %d image(s), \"%s\", greedy, at most %d tokens: %s (%s) vs reference %s (%s)%n",
                        c.items().size(), prompt, maxTokens, model, m.backend().wire(), ref, r.backend().wire());
                System.out.printf(Locale.ROOT, "  exact match           %.4f%n", c.exact());
                System.out.printf(Locale.ROOT, "  common token prefix   %.4f (of the longer caption)%n", c.prefixAgreement());
                System.out.printf(Locale.ROOT, "  word F1               %.4f%n", c.wordF1());
                for (CaptionAgreement.Item it : c.items())
                    if (!it.exact()) System.out.printf(Locale.ROOT, "  %s: \"%s\" vs \"%s\"%n", it.image(), it.caption(), it.reference());
            }
            return o;
        }
    }

    private static void num(ObjectNode o, String field, double v) {
        if (Double.isNaN(v)) o.putNull(field);
        else o.put(field, v);
    }

    /** The image files of {@code dir} in name order (at most {@code max}); a clear error when there are none. */
    static List<Path> images(Path dir, int max) {
        if (!Files.isDirectory(dir)) throw new UsageException("--images " + dir + ": no such folder");
        if (max < 1) throw new UsageException("--max-images must be at least 1");
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> list = s.filter(Files::isRegularFile)
                    .filter(p -> p.getFileName().toString().toLowerCase(Locale.ROOT).matches(".*\\.(png|jpe?g|bmp|gif)"))
                    .sorted().limit(max).toList();
            if (list.isEmpty()) throw new UsageException("--images " + dir + ": no png, jpg, jpeg, bmp or gif files");
            return list;
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }
}
