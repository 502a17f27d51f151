package io.vlmflux.sources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Direct buffers for frames whose GStreamer buffer cannot stay mapped (the upstream pool is small, e.g. a camera's
 * or a decoder's). Segments are GC-managed ({@link Arena#ofAuto()}), so a frame that outlives its source never
 * points at freed memory; the pool only keeps a few idle ones of the current size for reuse.
 */
final class FramePool {
    private static final int MAX_IDLE = 4;
    private final ConcurrentLinkedDeque<MemorySegment> idle = new ConcurrentLinkedDeque<>();
    private final AtomicInteger idleCount = new AtomicInteger();

    MemorySegment acquire(long size) {
        MemorySegment s;
        while ((s = idle.pollFirst()) != null) {
            idleCount.decrementAndGet();
            if (s.byteSize() == size) return s;
        }
        return Arena.ofAuto().allocate(size, 64);
    }

    void release(MemorySegment s) {
        if (idleCount.incrementAndGet() <= MAX_IDLE) idle.addFirst(s);
        else idleCount.decrementAndGet();
    }
}
