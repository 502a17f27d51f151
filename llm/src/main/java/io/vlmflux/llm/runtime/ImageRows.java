package io.vlmflux.llm.runtime;

import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.SpanRows;

/**
 * The image-token rows of one encoded image, {@code [tokens, hidden]}, shared by the prompts that read them and the
 * encoder-output cache. Reference counted by the {@link VisionPath} that made them (its lock guards {@link #refs});
 * freed (device memory back to the pool) when the last holder lets go.
 */
abstract class ImageRows {
    final int tokens, hidden, gridT, gridH, gridW;
    final long contentHash;
    int refs = 1;   // guarded by the owning VisionPath

    ImageRows(int tokens, int hidden, int gridT, int gridH, int gridW, long contentHash) {
        this.tokens = tokens;
        this.hidden = hidden;
        this.gridT = gridT;
        this.gridH = gridH;
        this.gridW = gridW;
        this.contentHash = contentHash;
    }

    /** The rows as an embedding span reads them. */
    abstract SpanRows spanRows();

    /** Memory held (for the cache bound). */
    abstract long bytes();

    /** DeepStack rows (Qwen3-VL), each {@code [tokens, hidden]} on the host; empty for other towers. */
    java.util.List<float[]> deepstack() { return java.util.List.of(); }

    /** Rows {@code [row0, row0 + count)} as an embedding span reads them: a host copy, or a view of the device rows. */
    final SpanRows spanRows(int row0, int count) {
        if (row0 < 0 || count <= 0 || row0 + count > tokens) throw new IndexOutOfBoundsException("rows [" + row0 + ", " + (row0 + count) + ") of " + tokens);
        return switch (spanRows()) {
            case SpanRows.Host h -> new SpanRows.Host(java.util.Arrays.copyOfRange(h.data(), row0 * hidden, (row0 + count) * hidden));
            case SpanRows.Device d -> {
                long es = d.bf16() ? 2 : 4;
                yield new SpanRows.Device(d.buffer().slice(row0 * es * hidden, count * es * hidden, d.buffer().name() + " rows " + row0 + "+" + count), d.bf16());
            }
        };
    }

    /** DeepStack rows {@code [row0, row0 + count)} of every feature (host copies). */
    final java.util.List<float[]> deepstack(int row0, int count) {
        if (row0 == 0 && count == tokens) return deepstack();
        return deepstack().stream().map(f -> java.util.Arrays.copyOfRange(f, row0 * hidden, (row0 + count) * hidden)).toList();
    }

    /** DeepStack rows kept on the device (all features, fp32 {@code [features, tokens, hidden]}); null when none are. */
    io.vlmflux.cuda.gpu.DeviceBuffer deviceDeepstack() { return null; }

    /** DeepStack features held, host or device. */
    int deepstackFeatures() { return deepstack().size(); }

    /**
     * An embedding span at prompt position {@code start} over rows {@code [row0, row0 + count)}: the rows and DeepStack
     * rows as views (device) or copies (host) of these.
     */
    final EmbeddingSpan span(int start, int row0, int count, int gridT, long contentHash, double secondPerGridT) {
        SpanRows r = row0 == 0 && count == tokens ? spanRows() : spanRows(row0, count);
        io.vlmflux.cuda.gpu.DeviceBuffer dd = deviceDeepstack();
        if (dd == null)
            return new EmbeddingSpan(start, count, hidden, r, gridT, gridH, gridW, contentHash, secondPerGridT, deepstack(row0, count));
        long stride = 4L * tokens * hidden;
        EmbeddingSpan.DeviceDeepstack view = new EmbeddingSpan.DeviceDeepstack(
                dd.slice(4L * row0 * hidden, (deepstackFeatures() - 1) * stride + 4L * count * hidden, dd.name() + " rows " + row0 + "+" + count),
                deepstackFeatures(), stride);
        return new EmbeddingSpan(start, count, hidden, r, gridT, gridH, gridW, contentHash, secondPerGridT, java.util.List.of(), view);
    }

    /** Rows on the host (cpu backend). */
    static final class Host extends ImageRows {
        private final SpanRows.Host rows;
        private final java.util.List<float[]> deepstack;

        Host(float[] data, int tokens, int hidden, int gridT, int gridH, int gridW, long contentHash, java.util.List<float[]> deepstack) {
            super(tokens, hidden, gridT, gridH, gridW, contentHash);
            this.rows = new SpanRows.Host(data);
            this.deepstack = java.util.List.copyOf(deepstack);
        }

        @Override SpanRows spanRows() { return rows; }
        @Override java.util.List<float[]> deepstack() { return deepstack; }
        @Override long bytes() { return 4L * tokens * hidden * (1 + deepstack.size()) + 64; }
    }
}
