package io.vlmflux.vision.qwen3vl;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.Images;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.PreprocessorConfig;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Qwen3-VL preprocessing and vision tower (with DeepStack) against transformers 5.17 goldens of tiny-qwen3vl. */
class Qwen3VLVisionTest {
    static final String MODEL = "tiny-qwen3vl";
    @TempDir Path tmp;

    static Path dir() { return Fixtures.fixture(MODEL); }

    static float[] golden(String tensor, int[][] shape) throws Exception {
        return Fixtures.readF32(dir().resolve("golden.safetensors"), tensor, shape);
    }

    static int[] grid(JsonNode media) {
        JsonNode g = media.get("grid_thw");
        return new int[]{g.get(0).asInt(), g.get(1).asInt(), g.get(2).asInt()};
    }

    /** max |a-b| / max |b|. */
    static double relErr(float[] want, float[] got) {
        assertEquals(want.length, got.length);
        double m = 0, scale = 0;
        for (int i = 0; i < want.length; i++) {
            m = Math.max(m, Math.abs(want[i] - got[i]));
            scale = Math.max(scale, Math.abs(want[i]));
        }
        return m / scale;
    }

    /** The fixture with config.json replaced by {@code configFile} (and optionally a preprocessor config). */
    Path withConfig(String configFile) throws Exception {
        if (configFile.equals("config.json")) return dir();
        Path d = tmp.resolve("model-" + configFile);
        Files.createDirectories(d);
        Files.copy(dir().resolve(configFile), d.resolve("config.json"));
        Files.createSymbolicLink(d.resolve("model.safetensors"), dir().resolve("model.safetensors"));
        Files.copy(dir().resolve("preprocessor_config.json"), d.resolve("preprocessor_config.json"));
        return d;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"size", "min_max_pixels"})
    void pixelValuesMatchGolden(String spelling) throws Exception {
        Path cfgFile = dir().resolve("preprocessor_config.json");
        if (spelling.equals("min_max_pixels")) {
            ObjectNode n = (ObjectNode) new ObjectMapper().readTree(cfgFile.toFile());
            JsonNode size = n.remove("size");
            n.put("min_pixels", size.get("shortest_edge").asLong());
            n.put("max_pixels", size.get("longest_edge").asLong());
            cfgFile = tmp.resolve("preprocessor_config.json");
            new ObjectMapper().writeValue(cfgFile.toFile(), n);
        }
        PreprocessorConfig pc = PreprocessorConfig.read(cfgFile);
        assertEquals(16, pc.patchSize());
        assertEquals(32, pc.factor());
        assertEquals(4096, pc.minPixels());
        assertEquals(65536, pc.maxPixels());
        assertArrayEquals(new double[]{0.5, 0.5, 0.5}, pc.imageMean());
        assertArrayEquals(new double[]{0.5, 0.5, 0.5}, pc.imageStd());
        ImageProcessor proc = new ImageProcessor(pc);
        JsonNode images = Fixtures.golden(MODEL).get("images");
        assertEquals(3, images.size());
        for (int i = 0; i < images.size(); i++) {
            JsonNode img = images.get(i);
            PixelValues pv;
            try (Frame f = Images.read(dir().resolve(img.get("file").asText()))) {
                assertEquals(img.get("size_wh").get(0).asInt(), f.width());
                assertEquals(img.get("size_wh").get(1).asInt(), f.height());
                pv = proc.process(f);
                assertEquals(img.get("num_image_tokens").asInt(), proc.numImageTokens(f.width(), f.height()));
            }
            assertArrayEquals(grid(img), new int[]{pv.gridT(), pv.gridH(), pv.gridW()}, "grid of image " + i);
            assertEquals(img.get("num_patches").asInt(), pv.numPatches());
            int[][] shape = new int[1][];
            float[] gold = golden("image" + i + ".pixel_values", shape);
            assertArrayEquals(new int[]{pv.numPatches(), 1536}, shape[0]);
            assertEquals(1536, pv.patchDim());
            double max = 0;
            for (int k = 0; k < gold.length; k++) max = Math.max(max, Math.abs(gold[k] - pv.data()[k]));
            System.out.printf("qwen3vl %s image%d grid %dx%dx%d: pixel max |d| %.3e%n", spelling, i, pv.gridT(), pv.gridH(), pv.gridW(), max);
            assertEquals(0.0, max, "pixel values of image " + i + " differ from transformers'");
        }
    }

    /** The published checkpoints' preprocessor file (pixel bound at the 4096x4096 cap) loads; HD frames get 32-px grids. */
    @Test
    void publishedPreprocessorConfigLoads() throws Exception {
        Path f = tmp.resolve("preprocessor_config.json");
        Files.writeString(f, """
                {"size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16, "temporal_patch_size": 2,
                 "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                 "processor_class": "Qwen3VLProcessor", "image_processor_type": "Qwen2VLImageProcessorFast"}
                """);
        ImageProcessor proc = new ImageProcessor(PreprocessorConfig.read(f));
        assertEquals(16777216, proc.config().maxPixels());
        assertArrayEquals(new int[]{1, 68, 120}, proc.grid(1920, 1080));   // 1080/32 = 33.75 -> 34 -> 1088 rows
        assertEquals(2040, proc.numImageTokens(1920, 1080));
        assertArrayEquals(new int[]{1, 16, 16}, proc.grid(100, 100));      // below shortest_edge: scaled up to 256x256
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"config.json", "config.hub.json"})
    void embeddingsAndDeepStackMatchGolden(String configFile) throws Exception {
        JsonNode g = Fixtures.golden(MODEL);
        List<PixelValues> all = new ArrayList<>();
        List<String> names = new ArrayList<>();
        try (VisionEncoder enc = VisionEncoders.load(withConfig(configFile))) {
            assertEquals(64, enc.outHidden());
            assertEquals(2, enc.mergeSize());
            assertEquals(2, enc.deepstackLayers());
            assertTrue(enc.describe().contains("qwen3_vl"), enc.describe());
            for (String kind : new String[]{"image", "video"}) {
                JsonNode media = g.get(kind + "s");
                for (int i = 0; i < media.size(); i++) {
                    int[] gr = grid(media.get(i));
                    int[][] shape = new int[1][];
                    float[] px = golden(kind + i + ".pixel_values", shape);
                    PixelValues pv = PixelValues.of(px, shape[0][1], gr[0], gr[1], gr[2]);
                    all.add(pv);
                    names.add(kind + i);
                    ImageEmbeddings e = enc.encode(pv);
                    check(kind + i, e, pv, configFile);
                    if (kind.equals("image")) assertEquals(media.get(i).get("num_image_tokens").asInt(), e.tokens());
                }
            }
            // all inputs in one call: the same results (attention stays within each frame)
            List<ImageEmbeddings> batch = enc.encode(all);
            for (int i = 0; i < all.size(); i++) check(names.get(i) + " (batched)", batch.get(i), all.get(i), configFile);
        }
    }

    private static void check(String name, ImageEmbeddings e, PixelValues pv, String configFile) throws Exception {
        int[][] shape = new int[1][];
        float[] want = golden(name.split(" ")[0] + ".embeds", shape);
        assertEquals(shape[0][0], e.tokens(), name);
        assertEquals(pv.numPatches() / 4, e.tokens(), name);
        assertEquals(shape[0][1], e.hidden(), name);
        assertEquals(pv.contentHash(), e.contentHash());
        assertArrayEquals(new int[]{pv.gridT(), pv.gridH(), pv.gridW()}, new int[]{e.gridT(), e.gridH(), e.gridW()});
        double r = relErr(want, e.data());
        assertEquals(2, e.deepstack().size(), name);
        double[] rd = new double[2];
        for (int k = 0; k < 2; k++) {
            int[][] s = new int[1][];
            float[] wk = golden(name.split(" ")[0] + ".deepstack" + k, s);
            assertArrayEquals(new int[]{e.tokens(), e.hidden()}, s[0]);
            rd[k] = relErr(wk, e.deepstack().get(k));
        }
        System.out.printf("qwen3vl %s %s: %d tokens, rel err embeds %.2e, deepstack %.2e %.2e%n", configFile, name, e.tokens(), r, rd[0], rd[1]);
        assertTrue(r <= 1e-3, name + ": embeddings rel err " + r);
        for (int k = 0; k < 2; k++) assertTrue(rd[k] <= 1e-3, name + ": deepstack " + k + " rel err " + rd[k]);
    }

    @Test
    void towersWithoutDeepStackReportNoneAndFeaturesAreValidated() throws Exception {
        try (VisionEncoder enc = VisionEncoders.load(Fixtures.fixture("tiny-qwen2vl"))) {
            assertEquals(0, enc.deepstackLayers());
            ImageEmbeddings e = enc.encode(PixelValues.of(new float[4 * 1176], 1176, 1, 2, 2));
            assertEquals(List.of(), e.deepstack());
        }
        var e = assertThrows(IllegalArgumentException.class,
                () -> new ImageEmbeddings(new float[8], 2, 4, 1, 2, 4, 0L, List.of(new float[8], new float[7])));
        assertTrue(e.getMessage().contains("DeepStack feature 1"), e.getMessage());
    }

    /** Towers above vlmflux.vision.fp32MaxBytes keep the bf16 weights mapped: same results as the float32 copy. */
    @Test
    void memoryMappedBf16PathMatchesGolden() throws Exception {
        int[][] shape = new int[1][];
        float[] px = golden("image1.pixel_values", shape);
        System.setProperty("vlmflux.vision.fp32MaxBytes", "0");
        try (VisionEncoder enc = VisionEncoders.load(dir())) {
            ImageEmbeddings e = enc.encode(PixelValues.of(px, 1536, 1, 14, 10));
            assertTrue(relErr(golden("image1.embeds", null), e.data()) <= 1e-3);
            for (int k = 0; k < 2; k++) assertTrue(relErr(golden("image1.deepstack" + k, null), e.deepstack().get(k)) <= 1e-3, "deepstack " + k);
        } finally {
            System.clearProperty("vlmflux.vision.fp32MaxBytes");
        }
    }

    @Test
    void otherGridsAndFramesEncode() throws Exception {
        ImageProcessor proc = ImageProcessor.load(dir());
        try (VisionEncoder enc = VisionEncoders.load(dir()); Frame f = Images.read(dir().resolve("golden_image_2.png"))) {
            // a grid larger than the 8x8 position table in one direction, smaller in the other, and a 3-frame clip
            Random rnd = new Random(7);
            for (int[] gr : new int[][]{{1, 2, 2}, {1, 2, 30}, {1, 20, 4}, {3, 6, 10}}) {
                float[] px = new float[gr[0] * gr[1] * gr[2] * 1536];
                for (int i = 0; i < px.length; i++) px[i] = rnd.nextFloat() * 2 - 1;
                ImageEmbeddings e = enc.encode(PixelValues.of(px, 1536, gr[0], gr[1], gr[2]));
                assertEquals(gr[0] * gr[1] * gr[2] / 4, e.tokens());
                assertFinite(e);
            }
            PixelValues clip = proc.process(List.of(f, f, f));
            assertEquals(2, clip.gridT());
            ImageEmbeddings e = enc.encode(clip);
            assertEquals(clip.numPatches() / 4, e.tokens());
            assertFinite(e);
            // two equal frames give equal tokens in both temporal patches
            int per = e.tokens() / 2 * e.hidden();
            for (int i = 0; i < per; i++) assertEquals(e.data()[i], e.data()[per + i], 1e-5f);
            // the wrong patch size fails, naming what is expected
            var bad = assertThrows(IllegalArgumentException.class, () -> enc.encode(PixelValues.of(new float[4 * 1176], 1176, 1, 2, 2)));
            assertTrue(bad.getMessage().contains("1536"), bad.getMessage());
            var odd = assertThrows(IllegalArgumentException.class, () -> enc.encode(PixelValues.of(new float[3 * 4 * 1536], 1536, 1, 3, 4)));
            assertTrue(odd.getMessage().contains("spatial_merge_size"), odd.getMessage());
        }
    }

    private static void assertFinite(ImageEmbeddings e) {
        for (float v : e.data()) assertTrue(Float.isFinite(v));
        assertEquals(2, e.deepstack().size());
        for (float[] f : e.deepstack()) for (float v : f) assertTrue(Float.isFinite(v));
    }

    @Test
    void linspaceHasExactEnds() {
        assertArrayEquals(new float[]{0f}, Qwen3VLPositions.linspace(7f, 1));
        float[] l = Qwen3VLPositions.linspace(47f, 30);
        assertEquals(0f, l[0]);
        assertEquals(47f, l[29]);
        for (int i = 1; i < l.length; i++) assertTrue(l[i] > l[i - 1]);
        assertArrayEquals(new float[]{0f, 3.5f, 7f}, Qwen3VLPositions.linspace(7f, 3));
    }

    /**
     * A second random checkpoint of another shape (depth 3, width 48, 3 heads, 16x16 position table, {@code visual.*}
     * names, output width 40) runs on a grid larger than its table. DeepStack order follows transformers: listing
     * the blocks as [2, 0] gives the features of block 0 (through {@code deepstack_merger_list.1}) first, so the
     * same checkpoint listed as [0, 2] with the two mergers' tensors swapped gives identical features (that one
     * as {@code qwen3_vl_moe}, whose tower is the same).
     */
    @Test
    void anotherCheckpointShapeRunsWithDeepStackInBlockOrder() throws Exception {
        Path a = randomCheckpoint("a", "qwen3_vl", "[2, 0]", false), b = randomCheckpoint("b", "qwen3_vl_moe", "[0, 2]", true);
        Random rnd = new Random(3);
        float[] px = new float[6 * 36 * 1536];
        for (int i = 0; i < px.length; i++) px[i] = rnd.nextFloat() * 2 - 1;
        PixelValues pv = PixelValues.of(px, 1536, 1, 6, 36);
        try (VisionEncoder ea = VisionEncoders.load(a); VisionEncoder eb = VisionEncoders.load(b)) {
            assertEquals(40, ea.outHidden());
            ImageEmbeddings x = ea.encode(pv), y = eb.encode(pv);
            assertEquals(54, x.tokens());
            assertEquals(40, x.hidden());
            assertEquals(2, x.deepstack().size());
            assertFinite(x);
            assertArrayEquals(x.data(), y.data());
            assertArrayEquals(x.deepstack().get(0), y.deepstack().get(0));
            assertArrayEquals(x.deepstack().get(1), y.deepstack().get(1));
            assertFalse(java.util.Arrays.equals(x.deepstack().get(0), x.deepstack().get(1)));
        }
        // a block the checkpoint lacks is named
        Files.writeString(a.resolve("config.json"), Files.readString(a.resolve("config.json")).replace("\"depth\": 3", "\"depth\": 4"));
        var ex = assertThrows(RuntimeException.class, () -> VisionEncoders.load(a));
        assertTrue(ex.getMessage().contains("blocks.3."), ex.getMessage());
    }

    /** The random tower of {@link #anotherCheckpointShapeRunsWithDeepStackInBlockOrder}: depth 3, width 48, 3 heads, 16x16 table. */
    private Path randomCheckpoint(String name, String modelType, String deepstack, boolean swapMergers) throws Exception {
        return new RandomQwen3VLTower(modelType, "visual.", 3, 48, 3, 96, 40, 16, deepstack).write(tmp.resolve("random-qwen3vl-" + name), swapMergers);
    }

    @Test
    void badConfigsNameFileAndField() throws Exception {
        String good = Files.readString(dir().resolve("config.json"));
        String[][] cases = {
                {"\"num_position_embeddings\": 64", "\"num_position_embeddings\": 60", "num_position_embeddings"},
                {"\"deepstack_visual_indexes\": [\n      1,\n      2\n    ]", "\"deepstack_visual_indexes\": [1, 9]", "deepstack_visual_indexes"},
                {"\"deepstack_visual_indexes\": [\n      1,\n      2\n    ]", "\"deepstack_visual_indexes\": [1, 1]", "twice"},
                {"\"deepstack_visual_indexes\": [\n      1,\n      2\n    ]", "\"deepstack_visual_indexes\": \"1,2\"", "deepstack_visual_indexes"},
                {"\"num_heads\": 4", "\"num_heads\": 5", "num_heads"},
                {"\"hidden_act\": \"gelu_pytorch_tanh\"", "\"hidden_act\": \"relu6\"", "hidden_act"},
                {"\"depth\": 4", "\"depth\": \"4\"", "depth"},
        };
        for (String[] c : cases) {
            assertTrue(good.contains(c[0]), "fixture lacks " + c[0]);
            Path d = tmp.resolve("bad" + Math.abs(c[1].hashCode()));
            Files.createDirectories(d);
            Files.writeString(d.resolve("config.json"), good.replace(c[0], c[1]));
            Files.createSymbolicLink(d.resolve("model.safetensors"), dir().resolve("model.safetensors"));
            var e = assertThrows(IllegalArgumentException.class, () -> VisionEncoders.load(d), c[1]);
            assertTrue(e.getMessage().contains(d.resolve("config.json").toString()) && e.getMessage().contains(c[2]), e.getMessage());
        }
        // fewer DeepStack indexes than the checkpoint's mergers: refused rather than silently dropping a feature
        Path few = tmp.resolve("fewdeep");
        Files.createDirectories(few);
        Files.writeString(few.resolve("config.json"), good.replace("\"deepstack_visual_indexes\": [\n      1,\n      2\n    ]", "\"deepstack_visual_indexes\": [1]"));
        Files.createSymbolicLink(few.resolve("model.safetensors"), dir().resolve("model.safetensors"));
        var fe = assertThrows(IllegalArgumentException.class, () -> VisionEncoders.load(few));
        assertTrue(fe.getMessage().contains("deepstack_visual_indexes") && fe.getMessage().contains("more DeepStack mergers"), fe.getMessage());
        // no vision_config
        Path d = tmp.resolve("novision");
        Files.createDirectories(d);
        Files.writeString(d.resolve("config.json"), "{\"model_type\": \"qwen3_vl\"}");
        var e = assertThrows(IllegalArgumentException.class, () -> VisionEncoders.load(d));
        assertTrue(e.getMessage().contains("vision_config") && e.getMessage().contains("config.json"), e.getMessage());
        // cuda loads the tower where a GPU exists (Qwen3VLGpuEncoderTest); without one the error says so, naming the folder
        if (!io.vlmflux.cuda.gpu.Gpu.isAvailable()) {
            var c = assertThrows(IllegalStateException.class, () -> VisionEncoders.load(dir(), "cuda"));
            assertTrue(c.getMessage().contains("no GPU") && c.getMessage().contains(dir().toString()), c.getMessage());
        }
    }
}
