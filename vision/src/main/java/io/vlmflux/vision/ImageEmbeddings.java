package io.vlmflux.vision;

/**
 * Output of a vision encoder for one image or clip: one embedding per image token (after the patch merger).
 *
 * @param data        {@code [tokens, hidden]} row-major, tokens in raster order of the merged grid
 *                    (t, h/merge, w/merge)
 * @param tokens      image tokens: {@code gridT * gridH * gridW / mergeSize^2}
 * @param hidden      embedding width (the language model's hidden size)
 * @param gridT       temporal patches of the input
 * @param gridH       patch rows of the input (before merging)
 * @param gridW       patch columns of the input (before merging)
 * @param contentHash {@link PixelValues#contentHash()} of the input, the cache key for these embeddings
 */
public record ImageEmbeddings(float[] data, int tokens, int hidden, int gridT, int gridH, int gridW, long contentHash) {
    public ImageEmbeddings {
        if (data == null || data.length != (long) tokens * hidden)
            throw new IllegalArgumentException("embeddings hold " + (data == null ? "no" : data.length) + " floats, expected " + tokens + "x" + hidden);
    }

    @Override
    public String toString() {
        return "ImageEmbeddings[" + tokens + "x" + hidden + ", grid " + gridT + "x" + gridH + "x" + gridW + ", hash " + Long.toHexString(contentHash) + "]";
    }
}
