package io.vlmflux.llm;

/**
 * Keys and values of one sequence for every layer, owned by one decoder backend. Positions {@code [0, length)} are
 * committed; a forward pass writes positions {@code [length, length + n)} and then {@link #commit}s them. Backends
 * keep the storage private (host arrays for the CPU, device memory for CUDA); only the same backend's decoder reads
 * or writes it. {@link #close()} frees the storage and is idempotent.
 */
public interface KvCache extends AutoCloseable {
    /** Committed positions. */
    int length();

    /** Most positions this cache can hold. */
    int capacity();

    /** Drops everything after the first {@code reuseLength} positions (0 clears the cache). */
    void reset(int reuseLength);

    /** Marks {@code n} more positions, written by the last forward pass, as committed. */
    void commit(int n);

    /**
     * M-RoPE offset: a decode step at cache position {@code p} uses rotary position {@code p + positionDelta()} on all
     * three axes (HF {@code rope_deltas}); 0 for plain RoPE.
     */
    int positionDelta();

    void positionDelta(int delta);

    /** Bytes of storage held now. */
    long bytes();

    /** A new cache of the same backend holding a copy of the first {@code length} positions (and the delta). */
    KvCache snapshot(int length);

    /** Replaces this cache's content with the first {@code length} positions of {@code source} (same backend). */
    void copyFrom(KvCache source, int length);

    boolean isClosed();

    @Override void close();
}
