package io.vlmflux.llm.runtime;

import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/**
 * Caption agreement of a vision-language model with a reference over a set of images — the image half of
 * {@code vlmflux eval} (4-bit vs 16-bit, cuda vs cpu): each image is captioned greedily by both with the same prompt,
 * and the pair is scored by exact match of the texts, by the common prefix of the token ids (the step where the two
 * greedy decodes part, over the longer length) and by word F1 (bag of lower-case words: a caption that says the same in
 * other words still scores). Both models must share the tokenizer for the prefix score to mean anything (a quantized
 * folder and its original do).
 */
public final class CaptionAgreement {
    private CaptionAgreement() {}

    /** One image's two captions and scores. */
    public record Item(String image, String caption, String reference, int tokens, int referenceTokens, int commonPrefix,
                       boolean exact, double prefixAgreement, double wordF1) {}

    /** Every item, and the means over them (NaN without items). */
    public record Result(List<Item> items, double exact, double prefixAgreement, double wordF1) {
        static Result of(List<Item> items) {
            double e = 0, p = 0, f = 0;
            for (Item it : items) {
                e += it.exact() ? 1 : 0;
                p += it.prefixAgreement();
                f += it.wordF1();
            }
            int n = items.size();
            return new Result(List.copyOf(items), n == 0 ? Double.NaN : e / n, n == 0 ? Double.NaN : p / n, n == 0 ? Double.NaN : f / n);
        }
    }

    /**
     * Captions each of {@code images} with {@code model} and {@code reference} ({@code prompt} as the user turn with one
     * image, greedy, at most {@code maxTokens}, ending at each model's end-of-turn tokens). {@code read} opens an image
     * as a new frame, once per image; each runtime owns (closes) the frame it is given (the reference a copy).
     */
    public static Result run(VlmRuntime model, VlmRuntime reference, List<Path> images, Function<Path, Frame> read, String prompt, int maxTokens) {
        if (!model.hasVision()) throw new IllegalArgumentException(model.dir() + " is a text-only model: caption agreement needs a vision-language model");
        if (!reference.hasVision()) throw new IllegalArgumentException(reference.dir() + " is a text-only model: caption agreement needs a vision-language model");
        if (maxTokens <= 0) throw new IllegalArgumentException("max tokens must be positive, got " + maxTokens);
        List<Item> items = new ArrayList<>();
        for (Path image : images) {
            Frame f = read.apply(image);   // decoded once: the reference gets a copy (each runtime closes what it is given)
            Frame copy;
            try {
                copy = f.copy();
            } catch (RuntimeException | Error e) {
                f.close();
                throw e;
            }
            Caption m, r;
            try {
                m = caption(model, f, prompt, maxTokens);
            } catch (RuntimeException | Error e) {
                copy.close();
                throw e;
            }
            r = caption(reference, copy, prompt, maxTokens);
            int common = 0;
            while (common < m.ids().size() && common < r.ids().size() && m.ids().get(common).equals(r.ids().get(common))) common++;
            int longer = Math.max(m.ids().size(), r.ids().size());
            items.add(new Item(image.getFileName().toString(), m.text(), r.text(), m.ids().size(), r.ids().size(), common,
                    m.text().equals(r.text()), longer == 0 ? 1 : (double) common / longer, wordF1(m.text(), r.text())));
        }
        return Result.of(items);
    }

    private record Caption(String text, List<Integer> ids) {}

    /** Captions {@code frame} (owned: closed by the runtime's prepare, or here when the model cannot caption). */
    private static Caption caption(VlmRuntime rt, Frame frame, String prompt, int maxTokens) {
        if (rt.chatTemplate().isEmpty()) {
            frame.close();
            throw new IllegalArgumentException(rt.dir() + " has no chat template (tokenizer_config.json chat_template): captions need one");
        }
        Prompt p = rt.prepareBlocking(rt.promptTemplate(null, prompt, 1), List.of(frame));
        StringBuilder text = new StringBuilder();
        List<Integer> ids = new ArrayList<>();
        GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), maxTokens, rt.eosTokens(), List.of(), 0, null);
        for (TokenEvent e : rt.generate(p, o).toIterable()) {
            if (e.tokenId() >= 0 && !rt.eosTokens().contains(e.tokenId())) ids.add(e.tokenId());
            text.append(e.textDelta());
        }
        return new Caption(text.toString().strip(), ids);
    }

    /** F1 of the two texts' lower-case word multisets (1 when both are empty). */
    static double wordF1(String a, String b) {
        Map<String, Integer> wa = words(a), wb = words(b);
        int na = wa.values().stream().mapToInt(Integer::intValue).sum(), nb = wb.values().stream().mapToInt(Integer::intValue).sum();
        if (na == 0 && nb == 0) return 1;
        if (na == 0 || nb == 0) return 0;
        int both = 0;
        for (Map.Entry<String, Integer> e : wa.entrySet()) both += Math.min(e.getValue(), wb.getOrDefault(e.getKey(), 0));
        return 2.0 * both / (na + nb);
    }

    private static Map<String, Integer> words(String s) {
        Map<String, Integer> m = new HashMap<>();
        for (String w : s.toLowerCase(Locale.ROOT).split("[^\\p{L}\\p{N}]+")) if (!w.isEmpty()) m.merge(w, 1, Integer::sum);
        return m;
    }
}
