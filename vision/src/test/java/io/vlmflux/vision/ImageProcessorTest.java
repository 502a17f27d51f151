package io.vlmflux.vision;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.sources.Frame;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class ImageProcessorTest {

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({
            "tiny-qwen2vl, preprocessor_config.json",
            "tiny-qwen2vl, preprocessor_config.hub.json",
            "tiny-qwen25vl, preprocessor_config.json",
            "tiny-qwen25vl, preprocessor_config.hub.json"})
    void matchesGoldenPixelValues(String model, String configFile) throws Exception {
        Path dir = Fixtures.fixture(model);
        ImageProcessor proc = new ImageProcessor(PreprocessorConfig.read(dir.resolve(configFile)));
        assertEquals(3136, proc.config().minPixels());
        assertEquals(50176, proc.config().maxPixels());
        JsonNode images = Fixtures.golden(model).get("images");
        assertEquals(4, images.size());
        for (int i = 0; i < images.size(); i++) {
            JsonNode img = images.get(i);
            PixelValues pv;
            try (Frame f = Images.read(dir.resolve(img.get("file").asText()))) {
                assertEquals(img.get("size_wh").get(0).asInt(), f.width());
                assertEquals(img.get("size_wh").get(1).asInt(), f.height());
                pv = proc.process(f);
                assertEquals(img.get("num_image_tokens").asInt(), proc.numImageTokens(f.width(), f.height()));
            }
            JsonNode g = img.get("grid_thw");
            assertArrayEquals(new int[]{g.get(0).asInt(), g.get(1).asInt(), g.get(2).asInt()},
                    new int[]{pv.gridT(), pv.gridH(), pv.gridW()}, "grid of image " + i);
            int[][] shape = new int[1][];
            float[] gold = Fixtures.readF32(dir.resolve("golden.safetensors"), "image" + i + ".pixel_values", shape);
            assertEquals(shape[0][0], pv.numPatches());
            assertEquals(shape[0][1], pv.patchDim());
            double max = 0, sum = 0;
            for (int k = 0; k < gold.length; k++) {
                double d = Math.abs(gold[k] - pv.data()[k]);
                max = Math.max(max, d);
                sum += d;
            }
            double mean = sum / gold.length;
            System.out.printf("%s %s image%d grid %dx%dx%d: max |d| %.3e, mean |d| %.3e%n", model, configFile, i, pv.gridT(), pv.gridH(), pv.gridW(), max, mean);
            assertTrue(max <= 0.03, "max |delta| " + max + " for image " + i);
            assertTrue(mean <= 0.002, "mean |delta| " + mean + " for image " + i);
            // a faithful port of torch's uint8 resize reproduces the golden to float32 rounding
            assertTrue(max <= 1e-6, "max |delta| " + max + " for image " + i + " (expected float32 rounding)");
        }
    }

    @Test
    void smartResizeFollowsPython() {
        // round half to even: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2
        assertArrayEquals(new int[]{56, 56}, SmartResize.resize(42, 70, 28, 3136, 50176));
        // above max_pixels: floor branch (320x240 camera frame of the demo)
        assertArrayEquals(new int[]{168, 252}, SmartResize.resize(240, 320, 28, 3136, 50176));
        assertArrayEquals(new int[]{168, 252}, SmartResize.resize(480, 640, 28, 3136, 50176));
        // below min_pixels: ceil branch
        assertArrayEquals(new int[]{56, 56}, SmartResize.resize(10, 10, 28, 3136, 50176));
        int[] hw = SmartResize.resize(1080, 1920, 28, 3136, 12845056);
        assertArrayEquals(new int[]{1092, 1932}, hw);
        assertThrows(IllegalArgumentException.class, () -> SmartResize.resize(1, 300, 28, 3136, 50176));
    }

    @Test
    void resizeWeightsMatchTorchPrecisionRule() {
        BicubicResize.Axis up = BicubicResize.axis(10, 20);
        BicubicResize.Axis down = BicubicResize.axis(300, 56);
        for (BicubicResize.Axis a : new BicubicResize.Axis[]{up, down}) {
            for (int i = 0; i < a.first().length; i++) {
                long s = 0;
                for (int j = 0; j < a.count()[i]; j++) s += a.weights()[i * a.taps() + j];
                assertTrue(Math.abs(s - (1L << a.precision())) <= a.count()[i], "weights of output " + i + " sum to " + s);
            }
            assertTrue(a.precision() >= 13 && a.precision() <= 21, "precision " + a.precision());
        }
        // constant image stays constant
        byte[] grey = new byte[37 * 23 * 3];
        java.util.Arrays.fill(grey, (byte) 200);
        byte[] out = BicubicResize.resize(grey, 37, 23, 3, 56, 84);
        for (byte b : out) assertEquals(200, b & 0xFF);
    }

    @Test
    void videoFramesBecomeTemporalPatches() throws Exception {
        Path dir = Fixtures.fixture("tiny-qwen2vl");
        ImageProcessor proc = ImageProcessor.load(dir);
        try (Frame a = Images.read(dir.resolve("golden_image_3.png")); Frame b = Images.read(dir.resolve("golden_image_3.png"))) {
            PixelValues one = proc.process(a);
            PixelValues two = proc.process(java.util.List.of(a, b));
            assertEquals(1, two.gridT());
            assertArrayEquals(one.data(), two.data()); // one frame is repeated to fill the temporal patch
            assertEquals(one.contentHash(), two.contentHash());
            PixelValues three = proc.process(java.util.List.of(a, b, a));
            assertEquals(2, three.gridT());
            assertEquals(2 * one.numPatches(), three.numPatches());
        }
    }

    @Test
    void missingConfigNamesTheFile(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ImageProcessor.load(tmp));
        assertTrue(e.getMessage().contains("preprocessor_config.json"), e.getMessage());
        Files.writeString(tmp.resolve("preprocessor_config.json"), "{\"image_processor_type\": \"CLIPImageProcessor\"}");
        e = assertThrows(IllegalArgumentException.class, () -> ImageProcessor.load(tmp));
        assertTrue(e.getMessage().contains("CLIPImageProcessor"), e.getMessage());
        Files.writeString(tmp.resolve("preprocessor_config.json"), "{\"image_std\": [0.2, 0.3]}");
        e = assertThrows(IllegalArgumentException.class, () -> ImageProcessor.load(tmp));
        assertTrue(e.getMessage().contains("image_std"), e.getMessage());
    }
}
