package io.vlmflux.llm;

import io.vlmflux.cuda.gpu.DeviceBuffer;

/**
 * Embeddings that replace the input embeddings of {@code length} consecutive prompt positions starting at
 * {@code start} (the {@code <|image_pad|>} slots of one image), as produced by a vision encoder.
 *
 * <p>The rows live either on the host ({@link #embeddings()}, every backend) or on the GPU ({@link #deviceRows()},
 * e.g. a GPU vision encoder's output: the CUDA decoder splices them into its embedding buffer without a host round
 * trip). A device span is only valid on the stream/device that wrote the rows and until its owner reuses them
 * (the caller keeps them alive until the prefill that reads them was enqueued); backends without device support
 * reject it with an error naming the span.
 *
 * @param embeddings  row-major {@code [length, hidden]} fp32 on the host, or null for a device span
 * @param gridT       temporal patches (1 for an image), as in HF {@code image_grid_thw}
 * @param gridH       patch rows before the spatial merge
 * @param gridW       patch columns before the spatial merge
 * @param contentHash identifies the pixels (prefix-cache key); equal hash and grid mean equal embeddings
 * @param secondPerGridT seconds per temporal patch for videos (Qwen2.5-VL), 0 for images
 * @param deviceRows  device rows {@code [length, hidden]} (bf16 when {@code deviceBf16}, else fp32), or null
 * @param deviceBf16  element type of {@code deviceRows}
 */
public record EmbeddingSpan(int start, int length, int hidden, float[] embeddings, int gridT, int gridH, int gridW,
                            long contentHash, double secondPerGridT, DeviceBuffer deviceRows, boolean deviceBf16) {
    public EmbeddingSpan {
        if (start < 0) throw new IllegalArgumentException("span start must be >= 0, got " + start);
        if (length <= 0 || hidden <= 0) throw new IllegalArgumentException("span needs length > 0 and hidden > 0, got " + length + ", " + hidden);
        if (deviceRows == null) {
            if (embeddings == null || embeddings.length != (long) length * hidden)
                throw new IllegalArgumentException("span embeddings must hold length*hidden = " + (long) length * hidden + " floats, got "
                        + (embeddings == null ? "null" : embeddings.length));
        } else {
            if (embeddings != null) throw new IllegalArgumentException("a span holds host embeddings or device rows, not both");
            long need = (deviceBf16 ? 2L : 4L) * length * hidden;
            if (deviceRows.bytes() < need)
                throw new IllegalArgumentException("device rows '" + deviceRows.name() + "' hold " + deviceRows.bytes() + " bytes, span of "
                        + length + "x" + hidden + (deviceBf16 ? " bf16" : " fp32") + " needs " + need);
        }
        if (gridT <= 0 || gridH <= 0 || gridW <= 0) throw new IllegalArgumentException("grid t/h/w must be positive: " + gridT + "x" + gridH + "x" + gridW);
    }

    /** A host span. */
    public EmbeddingSpan(int start, int length, int hidden, float[] embeddings, int gridT, int gridH, int gridW, long contentHash, double secondPerGridT) {
        this(start, length, hidden, embeddings, gridT, gridH, gridW, contentHash, secondPerGridT, null, false);
    }

    /** An image span (grid t = 1). */
    public static EmbeddingSpan image(int start, float[] embeddings, int hidden, int gridH, int gridW, long contentHash) {
        return new EmbeddingSpan(start, embeddings.length / hidden, hidden, embeddings, 1, gridH, gridW, contentHash, 0);
    }

    /** An image span whose rows are on the GPU ({@code [length, hidden]}, bf16 or fp32). */
    public static EmbeddingSpan deviceImage(int start, int length, int hidden, DeviceBuffer rows, boolean bf16, int gridH, int gridW, long contentHash) {
        return new EmbeddingSpan(start, length, hidden, null, 1, gridH, gridW, contentHash, 0, rows, bf16);
    }

    /** True when the rows are on the GPU ({@link #deviceRows()}), not on the host. */
    public boolean onDevice() { return deviceRows != null; }

    /** The host rows; a device span has none and says so (a backend that cannot read device rows ends up here). */
    @Override public float[] embeddings() {
        if (embeddings == null)
            throw new IllegalStateException("the embedding span at position " + start + " (" + length + "x" + hidden + ") holds device rows '"
                    + deviceRows.name() + "', not host embeddings: only the cuda backend reads device spans");
        return embeddings;
    }

    public int end() { return start + length; }

    /** The same span moved to {@code newStart}. */
    public EmbeddingSpan at(int newStart) {
        return new EmbeddingSpan(newStart, length, hidden, embeddings, gridT, gridH, gridW, contentHash, secondPerGridT, deviceRows, deviceBf16);
    }
}
