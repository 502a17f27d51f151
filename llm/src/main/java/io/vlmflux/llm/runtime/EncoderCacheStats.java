package io.vlmflux.llm.runtime;

/**
 * Counters of a runtime's encoder-output cache (static scenes and repeated frames skip the vision encoder).
 *
 * @param entries      images cached now
 * @param bytes        bytes they hold (embeddings + the inputs kept to confirm a hit)
 * @param maxBytes     the bound (0: caching off)
 * @param allocations  device row buffers allocated so far (GPU path; a steady stream reuses them: stays small)
 */
public record EncoderCacheStats(long hits, long misses, long evictions, int entries, long bytes, long maxBytes, long allocations) {
    public static final EncoderCacheStats NONE = new EncoderCacheStats(0, 0, 0, 0, 0, 0, 0);
}
