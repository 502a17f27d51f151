package io.vlmflux.sources;

import org.junit.jupiter.api.Test;
import reactor.test.StepVerifier;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class TestPatternSourceTest {

    @Test
    void redPatternHasRedPixelsSizeFormatAndMonotonicPts() {
        FrameSource src = Sources.parse("test:red?live=false&width=64&height=48&num-buffers=10");
        assertFalse(src.isLive());
        List<long[]> seen = new ArrayList<>();
        StepVerifier.create(src.frames(), 0)
                .thenRequest(10)
                .thenConsumeWhile(f -> true, f -> {
                    try (f) {
                        assertEquals(64, f.width());
                        assertEquals(48, f.height());
                        assertEquals(PixelFormat.RGB, f.format());
                        assertTrue(f.stride(0) >= 64 * 3);
                        for (int y = 0; y < 48; y += 7)
                            for (int x = 0; x < 64; x += 5)
                                Media.assertNear(new int[] {255, 0, 0}, Media.rgb(f, x, y), 0, "pixel " + x + "," + y);
                        seen.add(new long[] {f.sequence(), f.ptsNanos()});
                        assertEquals("test:red?live=false&width=64&height=48&num-buffers=10", f.sourceId());
                    }
                })
                .expectComplete()
                .verify(Duration.ofSeconds(20));
        assertEquals(10, seen.size());
        for (int i = 0; i < seen.size(); i++) {
            assertEquals(i, seen.get(i)[0]);
            if (i > 0) assertTrue(seen.get(i)[1] > seen.get(i - 1)[1], "pts must increase");
        }
        assertEquals(10, src.stats().emitted());
        assertEquals(0, src.stats().dropped());
    }

    @Test
    void smpteBarsHaveKnownColours() {
        // SMPTE bars as videotestsrc renders them in RGB (full intensity), left to right: white, yellow, cyan, green, magenta, red, blue.
        int[][] bars = {{255, 255, 255}, {255, 255, 0}, {0, 255, 255}, {0, 255, 0}, {255, 0, 255}, {255, 0, 0}, {0, 0, 255}};
        StepVerifier.create(Sources.parse("test:smpte?live=false&width=280&height=210&num-buffers=1").frames())
                .assertNext(f -> {
                    try (f) {
                        for (int b = 0; b < 7; b++)
                            Media.assertNear(bars[b], Media.rgb(f, b * 40 + 20, 50), 3, "bar " + b);
                    }
                })
                .verifyComplete();
    }

    @Test
    void otherFormatsHaveExpectedPlanes() {
        for (PixelFormat pf : PixelFormat.values()) {
            StepVerifier.create(Sources.parse("test:white?live=false&num-buffers=1&width=33&height=17&format=" + pf.gstName()).frames())
                    .assertNext(f -> {
                        try (f) {
                            assertEquals(pf, f.format());
                            assertEquals(33, f.width());
                            assertEquals(pf.planeCount(), f.planeCount());
                            for (int p = 0; p < pf.planeCount(); p++) assertTrue(f.stride(p) >= pf.minStride(p, 33), pf + " plane " + p);
                            int first = Byte.toUnsignedInt(f.plane(0).get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
                            assertTrue(first >= 235, pf + " white luma/red " + first);
                            if (pf == PixelFormat.RGB || pf == PixelFormat.BGR) assertNotNull(f.colorimetry());
                        }
                    })
                    .verifyComplete();
        }
    }
}
