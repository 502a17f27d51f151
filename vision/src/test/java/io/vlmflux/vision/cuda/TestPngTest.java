package io.vlmflux.vision.cuda;

import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** The test-only PNG decoder gives ImageIO's pixels for every golden image (runs where java.desktop exists). */
class TestPngTest {
    @Test
    void sameAsImageIo() throws Exception {
        for (int i = 0; i < 4; i++) {
            var p = Fixtures.fixture("tiny-qwen2vl").resolve("golden_image_" + i + ".png");
            try (Frame a = TestPng.read(p); Frame b = Images.read(p)) {
                assertArrayEquals(Images.toRgb(b), Images.toRgb(a), "image " + i);
            }
        }
    }
}
