package io.vlmflux.llm.runtime;

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
