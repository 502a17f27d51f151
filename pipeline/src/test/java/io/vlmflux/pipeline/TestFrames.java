package io.vlmflux.pipeline;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Real off-heap frames for tests: each frame owns a shared {@link Arena}; its releaser closes the arena and counts.
 * {@link #leaked()} is the number of frames built but not closed.
 */
final class TestFrames {
    final AtomicLong created = new AtomicLong();
    final AtomicLong released = new AtomicLong();

    long leaked() { return created.get() - released.get(); }

    /**
     * Waits until every frame built so far is closed, or {@code timeout} passed; returns {@link #leaked()}. A live
     * source's tick that was already running when the subscriber cancelled still builds its frame, which the
     * operator it reaches closes on that thread a moment later: this waits for that event instead of a fixed sleep.
     */
    long awaitAllClosed(java.time.Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (leaked() != 0 && System.nanoTime() < deadline) java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
        return leaked();
    }

    /** A GRAY8 frame whose every pixel is {@code value}. */
    Frame gray(String source, long seq, long ptsNanos, int value) {
        return solid(PixelFormat.GRAY8, 8, 8, 0, source, seq, ptsNanos, value, -1);
    }

    /**
     * A frame of {@code format} filled with one colour (RGB components, or luma for YUV/GRAY), with {@code pad}
     * extra bytes per row, and a square of luma/colour {@code squareValue} over the top-left quarter when
     * {@code squareValue >= 0}.
     */
    Frame solid(PixelFormat format, int w, int h, int pad, String source, long seq, long ptsNanos, int value, int squareValue) {
        int planes = format.planeCount();
        int[] strides = new int[planes];
        long[] offsets = new long[planes];
        long size = 0;
        for (int p = 0; p < planes; p++) {
            strides[p] = format.minStride(p, w) + pad;
            offsets[p] = size;
            size += (long) strides[p] * format.planeHeight(p, h);
        }
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(size);
        for (int p = 0; p < planes; p++) {
            int ph = format.planeHeight(p, h);
            for (int y = 0; y < ph; y++) {
                for (int x = 0; x < format.minStride(p, w); x++) {
                    int v;
                    if (p > 0) v = 128;                                      // neutral chroma
                    else {
                        int px = x / format.bytesPerPixel(), c = x % format.bytesPerPixel();
                        boolean inSquare = squareValue >= 0 && px < w / 2 && y < h / 2;
                        int base = inSquare ? squareValue : value;
                        v = (format == PixelFormat.RGBA || format == PixelFormat.BGRA) && c == 3 ? 255 : base;
                    }
                    seg.set(ValueLayout.JAVA_BYTE, offsets[p] + (long) y * strides[p] + x, (byte) v);
                }
            }
        }
        created.incrementAndGet();
        return Frame.builder().format(format).size(w, h).strides(strides).planeOffsets(offsets).data(seg)
                .pts(ptsNanos).sequence(seq).sourceId(source)
                .releaser(() -> { arena.close(); released.incrementAndGet(); })
                .build();
    }
}
