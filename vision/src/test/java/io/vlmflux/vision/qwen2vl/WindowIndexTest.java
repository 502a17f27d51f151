package io.vlmflux.vision.qwen2vl;

import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoders;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class WindowIndexTest {
    @Test
    void windowsFollowGetWindowIndex() {
        try (var enc = (CpuVisionEncoder) VisionEncoders.load(Fixtures.fixture("tiny-qwen25vl"))) {
            // grid 6x8 patches = 3x4 merged units; window 56 px = 2x2 units; grid padded to 4x6 units
            PixelValues a = PixelValues.of(new float[48 * 1176], 1176, 1, 6, 8);
            List<int[]> w = enc.windowIndex(List.of(a));
            assertArrayEquals(new int[]{0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 10, 11}, w.get(0));
            assertArrayEquals(new int[]{0, 16, 32, 40, 48}, w.get(1)); // empty (all-padding) windows dropped
            // a second image continues the unit numbering and the boundaries
            PixelValues b = PixelValues.of(new float[16 * 1176], 1176, 1, 4, 4);
            List<int[]> w2 = enc.windowIndex(List.of(a, b));
            assertArrayEquals(new int[]{0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, w2.get(0));
            assertArrayEquals(new int[]{0, 16, 32, 40, 48, 64}, w2.get(1));
        }
    }

    @Test
    void memoryMappedBf16PathMatchesFloat32Copy() throws Exception {
        var dir = Fixtures.fixture("tiny-qwen25vl");
        int[][] shape = new int[1][];
        float[] px = Fixtures.readF32(dir.resolve("golden.safetensors"), "image1.pixel_values", shape);
        float[] want = Fixtures.readF32(dir.resolve("golden.safetensors"), "image1.embeds", null);
        System.setProperty("vlmflux.vision.fp32MaxBytes", "0");
        try (var enc = VisionEncoders.load(dir)) {
            ImageEmbeddings e = enc.encode(PixelValues.of(px, 1176, 1, 16, 10));
            double max = 0;
            for (int i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - e.data()[i]));
            assertTrue(max <= 1e-3, "mapped path max |delta| " + max);
            assertTrue(enc.describe().contains("qwen2_5_vl"));
        } finally {
            System.clearProperty("vlmflux.vision.fp32MaxBytes");
        }
    }
}
