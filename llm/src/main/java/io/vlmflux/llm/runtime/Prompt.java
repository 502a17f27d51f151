package io.vlmflux.llm.runtime;

import io.vlmflux.llm.MultimodalPrompt;

import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A prompt ready for {@link VlmRuntime#generate}: tokens with the image slots expanded, and the image rows (host or
 * device, see {@link io.vlmflux.llm.SpanRows}) that fill them. Holds the rows until the prefill that reads them has
 * been enqueued; {@link VlmRuntime#generate} lets go of them then and {@link #close()} (idempotent) at the latest.
 * Single use: generate it once.
 */
public final class Prompt implements AutoCloseable {
    private final MultimodalPrompt input;
    private final VisionPath<?> vision;   // null when the prompt holds no rows
    private final List<ImageRows> rows;
    private final long preprocessNanos, encodeNanos;
    private final int cacheHits;
    private final AtomicBoolean released = new AtomicBoolean(), claimed = new AtomicBoolean();

    Prompt(MultimodalPrompt input, VisionPath<?> vision, List<ImageRows> rows, long preprocessNanos, long encodeNanos, int cacheHits) {
        this.input = input;
        this.vision = vision;
        this.rows = List.copyOf(rows);
        this.preprocessNanos = preprocessNanos;
        this.encodeNanos = encodeNanos;
        this.cacheHits = cacheHits;
    }

    /** The tokens and embedding spans the language model consumes. */
    public MultimodalPrompt input() { return input; }

    /** Prompt length in tokens (image slots expanded). */
    public int length() { return input.length(); }

    /** Time spent preprocessing the images (host time; on cuda the work is asynchronous on the stream). */
    public long preprocessNanos() { return preprocessNanos; }

    /** Time spent encoding the images (host time; a cache hit costs almost nothing). */
    public long encodeNanos() { return encodeNanos; }

    /** Images served from the encoder-output cache. */
    public int cacheHits() { return cacheHits; }

    /** Marks the prompt as generated; a second generation fails naming it (its rows may already be reused). */
    void claim() {
        if (!claimed.compareAndSet(false, true))
            throw new IllegalStateException(this + " was already generated (a prompt is single use: prepare it again)");
        if (released.get()) throw new IllegalStateException(this + " was closed before generation");
    }

    /** Lets go of the image rows; idempotent. */
    @Override public void close() {
        if (!released.compareAndSet(false, true)) return;
        for (ImageRows r : rows) vision.release(r);
    }

    @Override public String toString() { return "Prompt[" + input.length() + " tokens, " + rows.size() + " image(s)]"; }
}
