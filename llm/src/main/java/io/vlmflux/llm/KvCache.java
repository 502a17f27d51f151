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

    /**
     * Removes the committed positions {@code [from, from + count)} and moves the later ones down by {@code count}
     * (a live session's window: the sink before {@code from} stays, the oldest video after it leaves). Keys keep the
     * rotary position they were written with, so retained tokens attend exactly as before; the {@link #positionDelta()}
     * grows by {@code count} so that a decode step continues at the rotary position it would have had without the
     * eviction. Storage is kept (a window that stays full allocates nothing more).
     */
    void evict(int from, int count);

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
