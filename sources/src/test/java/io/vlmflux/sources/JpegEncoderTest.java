package io.vlmflux.sources;

import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;

import static org.junit.jupiter.api.Assertions.*;

/** {@link JpegEncoder}: real GStreamer jpegenc; the JPEGs decode (ImageIO) to the image that went in. */
class JpegEncoderTest {
    /** Left half red, right half blue, with a white square in the top-left quarter. */
    static byte[] image(int w, int h) {
        byte[] rgb = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int o = (y * w + x) * 3;
                boolean white = x < w / 4 && y < h / 4;
                rgb[o] = (byte) (white || x < w / 2 ? 255 : 0);
                rgb[o + 1] = (byte) (white ? 255 : 0);
                rgb[o + 2] = (byte) (white || x >= w / 2 ? 255 : 0);
            }
        return rgb;
    }

    static void assertNear(int expected, int actual, String what) {
        assertTrue(Math.abs(expected - actual) < 40, what + ": expected about " + expected + ", got " + actual);
    }

    @Test void encodesImagesThatDecodeToWhatWentIn() throws Exception {
        int before = GstNative.livePipelines();
        try (JpegEncoder enc = JpegEncoder.open(320, 240, 640, 85)) {
            for (int round = 0; round < 3; round++) {   // the pipeline is reused
                byte[] jpeg = enc.encode(image(320, 240));
                assertEquals((byte) 0xFF, jpeg[0]);
                assertEquals((byte) 0xD8, jpeg[1]);
                BufferedImage img = ImageIO.read(new ByteArrayInputStream(jpeg));
                assertEquals(320, img.getWidth());
                assertEquals(240, img.getHeight());
                int red = img.getRGB(120, 200), blue = img.getRGB(250, 120), white = img.getRGB(30, 30);
                assertNear(255, red >> 16 & 255, "red's R"); assertNear(0, red & 255, "red's B");
                assertNear(0, blue >> 16 & 255, "blue's R"); assertNear(255, blue & 255, "blue's B");
                assertNear(255, white >> 8 & 255, "white's G");
            }
            assertThrows(IllegalArgumentException.class, () -> enc.encode(new byte[10]));
        }
        long end = System.nanoTime() + 5_000_000_000L;
        while (GstNative.livePipelines() > before && System.nanoTime() < end) Thread.sleep(10);
        assertEquals(before, GstNative.livePipelines(), "the encoder's pipeline was destroyed");
    }

    @Test void widerImagesAreScaledDown() throws Exception {
        try (JpegEncoder enc = JpegEncoder.open(1280, 720, 640, 80)) {
            assertEquals(640, enc.outWidth());
            assertEquals(360, enc.outHeight());
            BufferedImage img = ImageIO.read(new ByteArrayInputStream(enc.encode(image(1280, 720))));
            assertEquals(640, img.getWidth());
            assertEquals(360, img.getHeight());
        }
    }

    @Test void badArgumentsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> JpegEncoder.open(0, 10, 640, 80));
        assertThrows(IllegalArgumentException.class, () -> JpegEncoder.open(10, 10, 640, 0));
        assertThrows(IllegalArgumentException.class, () -> JpegEncoder.open(10, 10, 8, 80));
    }
}
