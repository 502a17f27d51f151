package io.vlmflux.llm;

/**
 * Embeddings that replace the input embeddings of {@code length} consecutive prompt positions starting at
 * {@code start} (the {@code <|image_pad|>} slots of one image), as produced by a vision encoder.
 *
 * @param embeddings  row-major {@code [length, hidden]}
 * @param gridT       temporal patches (1 for an image), as in HF {@code image_grid_thw}
 * @param gridH       patch rows before the spatial merge
 * @param gridW       patch columns before the spatial merge
 * @param contentHash identifies the pixels (prefix-cache key); equal hash and grid mean equal embeddings
 * @param secondPerGridT seconds per temporal patch for videos (Qwen2.5-VL), 0 for images
 */
public record EmbeddingSpan(int start, int length, int hidden, float[] embeddings, int gridT, int gridH, int gridW,
                            long contentHash, double secondPerGridT) {
    public EmbeddingSpan {
        if (start < 0) throw new IllegalArgumentException("span start must be >= 0, got " + start);
        if (length <= 0 || hidden <= 0) throw new IllegalArgumentException("span needs length > 0 and hidden > 0, got " + length + ", " + hidden);
        if (embeddings == null || embeddings.length != (long) length * hidden)
            throw new IllegalArgumentException("span embeddings must hold length*hidden = " + (long) length * hidden + " floats, got "
                    + (embeddings == null ? "null" : embeddings.length));
        if (gridT <= 0 || gridH <= 0 || gridW <= 0) throw new IllegalArgumentException("grid t/h/w must be positive: " + gridT + "x" + gridH + "x" + gridW);
    }

    /** An image span (grid t = 1). */
    public static EmbeddingSpan image(int start, float[] embeddings, int hidden, int gridH, int gridW, long contentHash) {
        return new EmbeddingSpan(start, embeddings.length / hidden, hidden, embeddings, 1, gridH, gridW, contentHash, 0);
    }

    public int end() { return start + length; }

    /** The same span moved to {@code newStart}. */
    public EmbeddingSpan at(int newStart) {
        return new EmbeddingSpan(newStart, length, hidden, embeddings, gridT, gridH, gridW, contentHash, secondPerGridT);
    }
}
