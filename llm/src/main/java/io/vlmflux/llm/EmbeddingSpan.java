package io.vlmflux.llm;

import io.vlmflux.cuda.gpu.DeviceBuffer;

import java.util.List;

/**
 * Embeddings that replace the input embeddings of {@code length} consecutive prompt positions starting at
 * {@code start} (the {@code <|image_pad|>} slots of one image), as produced by a vision encoder. The rows are
 * {@link SpanRows.Host} (every backend) or {@link SpanRows.Device} (the CUDA decoder splices them on the device).
 *
 * @param rows        the {@code [length, hidden]} rows
 * @param gridT       temporal patches (1 for an image), as in HF {@code image_grid_thw}
 * @param gridH       patch rows before the spatial merge
 * @param gridW       patch columns before the spatial merge
 * @param contentHash identifies the pixels (prefix-cache key); equal hash and grid mean equal embeddings
 * @param secondPerGridT seconds per temporal patch for videos (Qwen2.5-VL), 0 for images
 * @param deepstack   DeepStack rows (Qwen3-VL), each {@code [length, hidden]} on the host: entry k is added to the
 *                    hidden states at this span's positions after decoder layer k; empty for other models
 * @param deviceDeepstack the same rows on the GPU (a GPU vision tower's output, added by the CUDA decoder without a host
 *                    round trip); null when the rows are on the host or absent. At most one of the two is given.
 */
public record EmbeddingSpan(int start, int length, int hidden, SpanRows rows, int gridT, int gridH, int gridW,
                            long contentHash, double secondPerGridT, List<float[]> deepstack, DeviceDeepstack deviceDeepstack) {

    /**
     * DeepStack rows on the device, fp32: feature k's {@code [length, hidden]} rows start at byte
     * {@code k * featureStride} of {@code buffer} (a view of a clip's rows keeps the clip's feature stride).
     */
    public record DeviceDeepstack(DeviceBuffer buffer, int features, long featureStride) {
        public DeviceDeepstack {
            if (buffer == null || features <= 0 || featureStride <= 0)
                throw new IllegalArgumentException("device DeepStack rows need a buffer, features > 0 and a stride > 0: " + buffer + ", " + features + ", " + featureStride);
        }

        /** Feature {@code k}'s rows {@code [row0, row0 + count)} of a {@code hidden}-wide span. */
        public DeviceBuffer rows(int k, int row0, int count, int hidden) {
            if (k < 0 || k >= features) throw new IndexOutOfBoundsException("DeepStack feature " + k + " of " + features);
            return buffer.slice(k * featureStride + 4L * row0 * hidden, 4L * count * hidden, "DeepStack " + k + " rows " + row0 + "+" + count);
        }
    }

    public EmbeddingSpan {
        if (start < 0) throw new IllegalArgumentException("span start must be >= 0, got " + start);
        if (length <= 0 || hidden <= 0) throw new IllegalArgumentException("span needs length > 0 and hidden > 0, got " + length + ", " + hidden);
        if (rows == null) throw new IllegalArgumentException("span at position " + start + " has no rows");
        long need = rows.bytesFor(length, hidden);
        switch (rows) {
            case SpanRows.Host h -> {
                if (h.data().length != (long) length * hidden)
                    throw new IllegalArgumentException("span embeddings must hold length*hidden = " + (long) length * hidden + " floats, got " + h.data().length);
            }
            case SpanRows.Device d -> {
                if (d.buffer().bytes() < need)
                    throw new IllegalArgumentException("device rows '" + d.buffer().name() + "' hold " + d.buffer().bytes() + " bytes, span of "
                            + length + "x" + hidden + (d.bf16() ? " bf16" : " fp32") + " needs " + need);
            }
        }
        if (gridT <= 0 || gridH <= 0 || gridW <= 0) throw new IllegalArgumentException("grid t/h/w must be positive: " + gridT + "x" + gridH + "x" + gridW);
        deepstack = deepstack == null ? List.of() : List.copyOf(deepstack);
        for (int k = 0; k < deepstack.size(); k++)
            if (deepstack.get(k).length != (long) length * hidden)
                throw new IllegalArgumentException("span at position " + start + ": DeepStack rows " + k + " hold " + deepstack.get(k).length
                        + " floats, expected length*hidden = " + (long) length * hidden);
        if (deviceDeepstack != null) {
            if (!deepstack.isEmpty())
                throw new IllegalArgumentException("span at position " + start + " has DeepStack rows both on the host and on the device");
            long dsNeed = (deviceDeepstack.features() - 1) * deviceDeepstack.featureStride() + 4L * length * hidden;
            if (deviceDeepstack.buffer().bytes() < dsNeed || deviceDeepstack.featureStride() < 4L * length * hidden)
                throw new IllegalArgumentException("span at position " + start + ": device DeepStack rows '" + deviceDeepstack.buffer().name() + "' hold "
                        + deviceDeepstack.buffer().bytes() + " bytes with a feature stride of " + deviceDeepstack.featureStride() + ", "
                        + deviceDeepstack.features() + " features of " + length + "x" + hidden + " fp32 need " + dsNeed);
        }
    }

    /** A span with its DeepStack rows on the host (or none). */
    public EmbeddingSpan(int start, int length, int hidden, SpanRows rows, int gridT, int gridH, int gridW, long contentHash, double secondPerGridT,
                         List<float[]> deepstack) {
        this(start, length, hidden, rows, gridT, gridH, gridW, contentHash, secondPerGridT, deepstack, null);
    }

    /** A span without DeepStack rows. */
    public EmbeddingSpan(int start, int length, int hidden, SpanRows rows, int gridT, int gridH, int gridW, long contentHash, double secondPerGridT) {
        this(start, length, hidden, rows, gridT, gridH, gridW, contentHash, secondPerGridT, List.of());
    }

    /** A host span. */
    public EmbeddingSpan(int start, int length, int hidden, float[] embeddings, int gridT, int gridH, int gridW, long contentHash, double secondPerGridT) {
        this(start, length, hidden, embeddings == null ? null : new SpanRows.Host(embeddings), gridT, gridH, gridW, contentHash, secondPerGridT);
    }

    /** An image span (grid t = 1). */
    public static EmbeddingSpan image(int start, float[] embeddings, int hidden, int gridH, int gridW, long contentHash) {
        return new EmbeddingSpan(start, embeddings.length / hidden, hidden, embeddings, 1, gridH, gridW, contentHash, 0);
    }

    /** An image span whose rows are on the GPU ({@code [length, hidden]}, bf16 or fp32). */
    public static EmbeddingSpan deviceImage(int start, int length, int hidden, DeviceBuffer rows, boolean bf16, int gridH, int gridW, long contentHash) {
        return new EmbeddingSpan(start, length, hidden, new SpanRows.Device(rows, bf16), 1, gridH, gridW, contentHash, 0);
    }

    /** True when the rows are on the GPU, not on the host. */
    public boolean onDevice() { return rows instanceof SpanRows.Device; }

    /** The host rows; a device span has none and says so (a backend that cannot read device rows ends up here). */
    public float[] embeddings() {
        return switch (rows) {
            case SpanRows.Host h -> h.data();
            case SpanRows.Device d -> throw new IllegalStateException("the embedding span at position " + start + " (" + length + "x" + hidden
                    + ") holds device rows '" + d.buffer().name() + "', not host embeddings: only the cuda backend reads device spans");
        };
    }

    /** The device rows of a device span; a host span says so. */
    public SpanRows.Device deviceRows() {
        if (rows instanceof SpanRows.Device d) return d;
        throw new IllegalStateException("the embedding span at position " + start + " holds host rows, not device rows");
    }

    public int end() { return start + length; }

    /** Whether this span carries DeepStack rows (host or device). */
    public boolean hasDeepstack() { return deepstackFeatures() > 0; }

    /** DeepStack features this span carries, host or device. */
    public int deepstackFeatures() { return deviceDeepstack != null ? deviceDeepstack.features() : deepstack.size(); }

    /** The same span with {@code rows} as its (host) DeepStack rows, replacing any it had. */
    public EmbeddingSpan withDeepstack(List<float[]> rows) {
        return new EmbeddingSpan(start, length, hidden, this.rows, gridT, gridH, gridW, contentHash, secondPerGridT, rows, null);
    }

    /** The same span moved to {@code newStart}. */
    public EmbeddingSpan at(int newStart) {
        return new EmbeddingSpan(newStart, length, hidden, rows, gridT, gridH, gridW, contentHash, secondPerGridT, deepstack, deviceDeepstack);
    }
}
