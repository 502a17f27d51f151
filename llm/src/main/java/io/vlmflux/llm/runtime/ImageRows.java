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

    /** Rows on the host (cpu backend). */
    static final class Host extends ImageRows {
        private final SpanRows.Host rows;

        Host(float[] data, int tokens, int hidden, int gridT, int gridH, int gridW, long contentHash) {
            super(tokens, hidden, gridT, gridH, gridW, contentHash);
            this.rows = new SpanRows.Host(data);
        }

        @Override SpanRows spanRows() { return rows; }
        @Override long bytes() { return 4L * tokens * hidden + 64; }
    }
}
