package io.vlmflux.vision;

import java.util.List;

/**
 * Output of a vision encoder for one image or clip: one embedding per image token (after the patch merger), plus,
 * for towers with DeepStack (Qwen3-VL), one more {@code [tokens, hidden]} feature per DeepStack layer that the
 * language model adds to its hidden states after its first decoder layers.
 *
 * @param data        {@code [tokens, hidden]} row-major, tokens in raster order of the merged grid
 *                    (t, h/merge, w/merge)
 * @param tokens      image tokens: {@code gridT * gridH * gridW / mergeSize^2}
 * @param hidden      embedding width (the language model's hidden size)
 * @param gridT       temporal patches of the input
 * @param gridH       patch rows of the input (before merging)
 * @param gridW       patch columns of the input (before merging)
 * @param contentHash {@link PixelValues#contentHash()} of the input, the cache key for these embeddings
 * @param deepstack   DeepStack features, each {@code [tokens, hidden]} in the token order of {@code data}, in the order
 *                    the decoder consumes them (entry k goes to decoder layer k); empty for towers without DeepStack
 */
public record ImageEmbeddings(float[] data, int tokens, int hidden, int gridT, int gridH, int gridW, long contentHash,
                              List<float[]> deepstack) {
    public ImageEmbeddings {
        if (data == null || data.length != (long) tokens * hidden)
            throw new IllegalArgumentException("embeddings hold " + (data == null ? "no" : data.length) + " floats, expected " + tokens + "x" + hidden);
        deepstack = deepstack == null ? List.of() : List.copyOf(deepstack);
        for (int k = 0; k < deepstack.size(); k++)
            if (deepstack.get(k).length != (long) tokens * hidden)
                throw new IllegalArgumentException("DeepStack feature " + k + " holds " + deepstack.get(k).length + " floats, expected " + tokens + "x" + hidden);
    }

    /** Embeddings without DeepStack features (Qwen2-VL, Qwen2.5-VL). */
    public ImageEmbeddings(float[] data, int tokens, int hidden, int gridT, int gridH, int gridW, long contentHash) {
        this(data, tokens, hidden, gridT, gridH, gridW, contentHash, List.of());
    }

    @Override
    public String toString() {
        return "ImageEmbeddings[" + tokens + "x" + hidden + ", grid " + gridT + "x" + gridH + "x" + gridW + ", hash " + Long.toHexString(contentHash)
                + (deepstack.isEmpty() ? "" : ", deepstack " + deepstack.size()) + "]";
    }
}
