package io.vlmflux.vision.qwen2vl;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.Images;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import io.vlmflux.sources.Frame;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class VisionEncoderTest {
    @TempDir Path tmp;

    /** The fixture folder, or a copy whose config.json is the flat hub layout. */
    Path modelDir(String model, String configFile) throws Exception {
        Path src = Fixtures.fixture(model);
        if (configFile.equals("config.json")) return src;
        Path dir = tmp.resolve(model + "-hub");
        Files.createDirectories(dir);
        Files.copy(src.resolve(configFile), dir.resolve("config.json"));
        Files.createSymbolicLink(dir.resolve("model.safetensors"), src.resolve("model.safetensors"));
        return dir;
    }

    static PixelValues golden(String model, int i, int[] grid) throws Exception {
        int[][] shape = new int[1][];
        float[] v = Fixtures.readF32(Fixtures.fixture(model).resolve("golden.safetensors"), "image" + i + ".pixel_values", shape);
        return PixelValues.of(v, shape[0][1], grid[0], grid[1], grid[2]);
    }

    static int[] grid(String model, int i) throws Exception {
        var g = Fixtures.golden(model).get("images").get(i).get("grid_thw");
        return new int[]{g.get(0).asInt(), g.get(1).asInt(), g.get(2).asInt()};
    }

    static double maxDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length);
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"tiny-qwen2vl, config.json", "tiny-qwen2vl, config.hub.json",
                "tiny-qwen25vl, config.json", "tiny-qwen25vl, config.hub.json"})
    void embeddingsMatchGolden(String model, String configFile) throws Exception {
        try (VisionEncoder enc = VisionEncoders.load(modelDir(model, configFile))) {
            assertEquals(64, enc.outHidden());
            List<PixelValues> all = new ArrayList<>();
            List<float[]> want = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                PixelValues pv = golden(model, i, grid(model, i));
                all.add(pv);
                int[][] shape = new int[1][];
                want.add(Fixtures.readF32(Fixtures.fixture(model).resolve("golden.safetensors"), "image" + i + ".embeds", shape));
                ImageEmbeddings e = enc.encode(pv);
                assertEquals(shape[0][0], e.tokens());
                assertEquals(shape[0][1], e.hidden());
                assertEquals(pv.contentHash(), e.contentHash());
                double d = maxDiff(want.get(i), e.data());
                System.out.printf("%s %s image%d: %d tokens, max |d| %.3e%n", model, configFile, i, e.tokens(), d);
                assertTrue(d <= 1e-3, model + " image " + i + ": max |delta| " + d);
            }
            // several images in one call: same results, each attends only within itself
            List<ImageEmbeddings> batch = enc.encode(all);
            for (int i = 0; i < 4; i++) {
                double d = maxDiff(want.get(i), batch.get(i).data());
                assertTrue(d <= 1e-3, "batched image " + i + ": " + d);
            }
        }
    }

    @Test
    void fromPngThroughProcessorAndEncoder() throws Exception {
        Path dir = Fixtures.fixture("tiny-qwen25vl");
        ImageProcessor proc = ImageProcessor.load(dir);
        try (VisionEncoder enc = VisionEncoders.load(dir); Frame f = Images.read(dir.resolve("golden_image_1.png"))) {
            ImageEmbeddings e = enc.encode(proc.process(f));
            int[][] shape = new int[1][];
            float[] want = Fixtures.readF32(dir.resolve("golden.safetensors"), "image1.embeds", shape);
            assertTrue(maxDiff(want, e.data()) <= 1e-3);
        }
    }

    @Test
    void videoClipAttendsPerFrame() throws Exception {
        // two temporal patches of one clip = the same as the two frames encoded as separate images
        Path dir = Fixtures.fixture("tiny-qwen25vl");
        try (VisionEncoder enc = VisionEncoders.load(dir)) {
            int[] g = grid("tiny-qwen25vl", 0);
            PixelValues a = golden("tiny-qwen25vl", 0, g);
            float[] b = a.data().clone();
            for (int i = 0; i < b.length; i++) b[i] = -b[i] * 0.5f;
            float[] both = new float[a.data().length * 2];
            System.arraycopy(a.data(), 0, both, 0, a.data().length);
            System.arraycopy(b, 0, both, a.data().length, b.length);
            ImageEmbeddings clip = enc.encode(PixelValues.of(both, a.patchDim(), 2, g[1], g[2]));
            ImageEmbeddings ea = enc.encode(a), eb = enc.encode(PixelValues.of(b, a.patchDim(), 1, g[1], g[2]));
            assertEquals(ea.tokens() * 2, clip.tokens());
            float[] cat = new float[clip.data().length];
            System.arraycopy(ea.data(), 0, cat, 0, ea.data().length);
            System.arraycopy(eb.data(), 0, cat, ea.data().length, eb.data().length);
            assertTrue(maxDiff(cat, clip.data()) < 1e-5);
        }
    }

    @Test
    void clearErrors() throws Exception {
        Path dir = Fixtures.fixture("tiny-qwen2vl");
        try (VisionEncoder enc = VisionEncoders.load(dir)) {
            var e = assertThrows(IllegalArgumentException.class, () -> enc.encode(PixelValues.of(new float[4 * 10], 10, 1, 2, 2)));
            assertTrue(e.getMessage().contains("1176"), e.getMessage());
            var e2 = assertThrows(IllegalArgumentException.class, () -> enc.encode(PixelValues.of(new float[3 * 1176], 1176, 1, 1, 3)));
            assertTrue(e2.getMessage().contains("spatial_merge_size"), e2.getMessage());
        }
        // unsupported model type
        Path text = Fixtures.fixture("tiny-qwen2");
        var e3 = assertThrows(IllegalArgumentException.class, () -> VisionEncoders.load(text));
        assertTrue(e3.getMessage().contains("qwen2") && e3.getMessage().contains("unsupported model_type"), e3.getMessage());
        // wrong tensor shape names the tensor
        Path bad = tmp.resolve("bad");
        Files.createDirectories(bad);
        Files.copy(dir.resolve("config.json"), bad.resolve("config.json"));
        new SafetensorsWriter().add("visual.patch_embed.proj.weight", DType.BF16, new long[]{96, 3, 2, 14, 13}, new float[96 * 3 * 2 * 14 * 13])
                .write(bad.resolve("model.safetensors"));
        var e4 = assertThrows(IllegalArgumentException.class, () -> VisionEncoders.load(bad));
        assertTrue(e4.getMessage().contains("visual.patch_embed.proj.weight") && e4.getMessage().contains("14, 13"), e4.getMessage());
        // missing tower
        Files.delete(bad.resolve("model.safetensors"));
        new SafetensorsWriter().add("model.embed_tokens.weight", DType.F32, new long[]{2, 2}, new float[4]).write(bad.resolve("model.safetensors"));
        var e5 = assertThrows(IllegalArgumentException.class, () -> VisionEncoders.load(bad));
        assertTrue(e5.getMessage().contains("vision tower"), e5.getMessage());
    }
}
