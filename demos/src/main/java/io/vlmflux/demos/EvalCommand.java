package io.vlmflux.demos;

import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.quant.Evaluator;
import io.vlmflux.llm.quant.TextSet;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code vlmflux eval}: the accuracy harness (docs/quantization.md): perplexity over a text, and with a reference
 * model the top-1 agreement and KL divergence of every next-token distribution (4-bit vs 16-bit, cuda vs cpu).
 */
public final class EvalCommand implements Command {
    @Override public String summary() { return "accuracy of a model vs a reference: top-1 agreement, KL divergence, perplexity"; }

    @Override public String usage() {
        return """
                vlmflux eval --model DIR [--reference DIR] [--data FILE] [--backend cpu|cuda|auto]
                             [--reference-backend cpu|cuda|auto] [--window 128] [--windows 8] [--json]
                  --model DIR          the model to judge (e.g. a 4-bit folder)
                  --reference DIR      the model it should match (e.g. the 16-bit original; the same folder with
                                       another --reference-backend compares backends)
                  --data FILE          UTF-8 text (default: a built-in sample), tokenized with --model's tokenizer and
                                       split into windows of --window tokens, at most --windows of them
                  --json               one JSON object on stdout
                Reports over every position: top-1 agreement and KL(reference || model) in nats of the next-token
                distributions, and each model's perplexity on the text. Random-weight models show no real accuracy loss.""";
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("model", "reference", "data", "backend", "reference-backend", "window", "windows"), Set.of("json"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        Path model = Path.of(a.require("model"));
        if (!Files.isDirectory(model)) throw new UsageException("--model " + model + ": no such folder");
        Path ref = a.has("reference") ? Path.of(a.get("reference")) : null;
        if (ref != null && !Files.isDirectory(ref)) throw new UsageException("--reference " + ref + ": no such folder");
        Path data = a.has("data") ? Path.of(a.get("data")) : null;
        if (data != null && !Files.isRegularFile(data)) throw new UsageException("--data " + data + ": no such file");
        int window = a.getInt("window", 128), windows = a.getInt("windows", 8);
        if (window < 2) throw new UsageException("--window must be at least 2");
        try (Decoder m = Models.load(model, a.get("backend", "cpu"));
             Decoder r = ref == null ? null : Models.load(ref, a.get("reference-backend", "cpu"))) {
            TextSet t = TextSet.load(model, data, window, windows, m.config().vocabSize());
            Evaluator.Result e = Evaluator.run(m, r, t.windows());
            if (a.flag("json")) {
                System.out.printf(Locale.ROOT, "{\"model\":\"%s\",\"reference\":%s,\"data\":\"%s\",\"sequences\":%d,\"positions\":%d,"
                                + "\"top1\":%s,\"kl_mean\":%s,\"kl_max\":%s,\"perplexity\":%s,\"reference_perplexity\":%s}%n",
                        esc(model.toString()), ref == null ? "null" : "\"" + esc(ref.toString()) + "\"", esc(t.source()), e.sequences(), e.positions(),
                        num(e.top1()), num(e.meanKl()), num(e.maxKl()), num(e.perplexity()), num(e.referencePerplexity()));
            } else {
                System.out.printf(Locale.ROOT, "model %s (%s) on %s: %d sequence(s), %d position(s)%n", model, m.backend(), t.source(), e.sequences(), e.positions());
                System.out.printf(Locale.ROOT, "  perplexity            %.4f%n", e.perplexity());
                if (r != null) {
                    System.out.printf(Locale.ROOT, "  reference %s (%s) perplexity %.4f%n", ref, r.backend(), e.referencePerplexity());
                    System.out.printf(Locale.ROOT, "  top-1 agreement       %.4f%n", e.top1());
                    System.out.printf(Locale.ROOT, "  KL(ref || model) mean %.6f nats, max %.6f%n", e.meanKl(), e.maxKl());
                }
            }
        }
        return 0;
    }

    private static String num(double v) { return Double.isNaN(v) ? "null" : String.format(Locale.ROOT, "%.6g", v); }

    private static String esc(String s) { return s.replace("\\", "\\\\").replace("\"", "\\\""); }
}
