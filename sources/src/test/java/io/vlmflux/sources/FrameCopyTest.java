package io.vlmflux.sources;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

class FrameCopyTest {

    /** An NV12 frame with padded strides and a gap between the planes, so layout errors in a copy would show. */
    private static Frame nv12(Arena arena, AtomicInteger released) {
        int w = 6, h = 4, stride = 8;
        long uvOffset = stride * h + 16;
        MemorySegment seg = arena.allocate(uvOffset + (long) stride * (h / 2));
        for (long i = 0; i < seg.byteSize(); i++) seg.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 7 + 3));
        return Frame.builder().format(PixelFormat.NV12).size(w, h).strides(new int[]{stride, stride}).planeOffsets(new long[]{0, uvOffset})
                .data(seg).pts(1_000).sequence(42).sourceId("cam").colorimetry("bt709").label("a.png")
                .releaser(released::incrementAndGet).build();
    }

    @Test
    void aCopyOwnsItsBytesKeepsLayoutAndIdentityAndTakesANewTimestamp() {
        AtomicInteger released = new AtomicInteger();
        try (Arena arena = Arena.ofConfined()) {
            Frame f = nv12(arena, released);
            byte[] before = f.data().toArray(ValueLayout.JAVA_BYTE);
            Frame same = f.copy(), later = f.copy(9_000);
            f.close();
            assertEquals(1, released.get(), "the original's releaser runs once, on its own close");
            for (Frame c : new Frame[]{same, later}) {
                assertArrayEquals(before, c.data().toArray(ValueLayout.JAVA_BYTE));
                assertEquals(PixelFormat.NV12, c.format());
                assertEquals(8, c.stride(1));
                assertEquals(f.planeOffset(1), c.planeOffset(1));
                assertEquals(42, c.sequence());
                assertEquals("cam", c.sourceId());
                assertEquals("bt709", c.colorimetry());
                assertEquals("a.png", c.label());
            }
            assertEquals(1_000, same.ptsNanos());
            assertEquals(9_000, later.ptsNanos());
            same.close();
            assertThrows(IllegalStateException.class, same::data);
            assertArrayEquals(before, later.data().toArray(ValueLayout.JAVA_BYTE), "closing one copy leaves the other");
            later.close();
            assertEquals(1, released.get(), "copies never run the original's releaser");
            assertThrows(IllegalStateException.class, f::copy, "a closed frame cannot be copied");
        }
    }
}
