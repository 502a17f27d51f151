package io.vlmflux.llm.quant;

import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;

import java.util.List;

/**
 * The accuracy harness behind {@code vlmflux eval}: runs token sequences through a model and, optionally, a reference
 * (e.g. 4-bit vs 16-bit, or cuda vs cpu) and reports, over every position, the top-1 agreement of the next-token
 * distributions, their KL divergence {@code KL(reference || model)} (nats), and each model's perplexity on the
 * sequences themselves (next-token negative log-likelihood).
 */
public final class Evaluator {
    private Evaluator() {}

    /**
     * @param positions  next-token distributions compared (all positions of all sequences)
     * @param top1       fraction where both argmaxes agree (NaN without a reference)
     * @param meanKl     mean KL(reference || model) in nats (NaN without a reference)
     * @param maxKl      largest KL at any position
     * @param perplexity the model's perplexity over the sequences' next tokens
     * @param referencePerplexity the reference's (NaN without one)
     */
    public record Result(int sequences, int positions, double top1, double meanKl, double maxKl, double perplexity, double referencePerplexity) {}

    public static Result run(Decoder model, Decoder reference, List<int[]> sequences) {
        int positions = 0, agree = 0, predicted = 0, seqs = 0;
        double klSum = 0, klMax = 0, nll = 0, refNll = 0;
        int vocab = model.config().vocabSize();
        if (reference != null && reference.config().vocabSize() != vocab)
            throw new IllegalArgumentException("model vocab " + vocab + " differs from the reference's " + reference.config().vocabSize());
        for (int[] s : sequences) {
            if (s.length == 0) continue;
            seqs++;
            float[] lm = logits(model, s), lr = reference == null ? null : logits(reference, s);
            for (int t = 0; t < s.length; t++) {
                double[] pm = logSoftmax(lm, t * vocab, vocab);
                positions++;
                if (t + 1 < s.length) { nll -= pm[s[t + 1]]; predicted++; }
                if (lr == null) continue;
                double[] pr = logSoftmax(lr, t * vocab, vocab);
                if (t + 1 < s.length) refNll -= pr[s[t + 1]];
                if (argmax(pm) == argmax(pr)) agree++;
                double kl = 0;
                for (int i = 0; i < vocab; i++) kl += Math.exp(pr[i]) * (pr[i] - pm[i]);
                kl = Math.max(0, kl);
                klSum += kl;
                klMax = Math.max(klMax, kl);
            }
        }
        if (positions == 0) throw new IllegalArgumentException("no tokens to evaluate");
        boolean ref = reference != null;
        return new Result(seqs, positions, ref ? (double) agree / positions : Double.NaN, ref ? klSum / positions : Double.NaN,
                ref ? klMax : Double.NaN, predicted == 0 ? Double.NaN : Math.exp(nll / predicted),
                ref && predicted > 0 ? Math.exp(refNll / predicted) : Double.NaN);
    }

    private static float[] logits(Decoder d, int[] s) {
        KvCache kv = d.newCache(s.length);
        return d.forward(kv, ForwardInput.tokens(s), true);
    }

    static double[] logSoftmax(float[] l, int off, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, l[off + i]);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.exp(l[off + i] - max);
        double lse = max + Math.log(sum);
        double[] out = new double[n];
        for (int i = 0; i < n; i++) out[i] = l[off + i] - lse;
        return out;
    }

    private static int argmax(double[] v) {
        int b = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
        return b;
    }

    /** Splits {@code tokens} into windows of at most {@code window} tokens (at most {@code max} of them; 0: all). */
    public static List<int[]> windows(int[] tokens, int window, int max) {
        List<int[]> l = new java.util.ArrayList<>();
        for (int i = 0; i < tokens.length && (max <= 0 || l.size() < max); i += window)
            l.add(java.util.Arrays.copyOfRange(tokens, i, Math.min(tokens.length, i + window)));
        return l;
    }
}
