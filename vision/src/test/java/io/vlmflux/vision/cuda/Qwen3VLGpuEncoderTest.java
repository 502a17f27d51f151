package io.vlmflux.vision.cuda;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import io.vlmflux.vision.qwen3vl.RandomQwen3VLTower;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static io.vlmflux.vision.cuda.GpuVisionEncoderTest.relMax;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The Qwen3-VL tower on the GPU: embeddings and every DeepStack feature against transformers' goldens of
 * {@code tiny-qwen3vl} (images and videos, one call each and all in one call, both config layouts) and against the
 * CPU tower; one temporal group at a time against the clip; the device chain from PNGs (GPU preprocessing,
 * {@code encodeToDevice}, device DeepStack buffer) against the CPU chain; and random towers of other shapes (width,
 * heads, depth, MLP width, DeepStack blocks in any order or none, position tables smaller and larger than the grids,
 * non-square grids and clips in one call) against the CPU tower with the same bf16 weights from a real safetensors
 * file. GPU tolerance: max |delta| <= 2e-2 x max |reference| (bf16 activations).
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class Qwen3VLGpuEncoderTest {
    static final double TOL = 2e-2;
    static final String MODEL = "tiny-qwen3vl";
    @TempDir Path tmp;

    @BeforeAll
    static void gpu() {
        assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    static float[] golden(String tensor, int[][] shape) throws Exception {
        return Fixtures.readF32(Fixtures.fixture(MODEL).resolve("golden.safetensors"), tensor, shape);
    }

    /** The fixture folder, or a copy whose config.json is the flat hub layout. */
    Path folder(String configFile) throws Exception {
        Path dir = Fixtures.fixture(MODEL);
        if (configFile.equals("config.json")) return dir;
        Path d = tmp.resolve("hub");
        Files.createDirectories(d);
        Files.copy(dir.resolve(configFile), d.resolve("config.json"));
        Files.createSymbolicLink(d.resolve("model.safetensors"), dir.resolve("model.safetensors"));
        return d;
    }

    /** Embeddings and DeepStack features of {@code got} within TOL of {@code want}; returns the worst relative error. */
    static double compare(String what, ImageEmbeddings got, float[] want, List<float[]> wantDeep) {
        assertEquals(want.length, got.data().length, what);
        double worst = relMax(got.data(), want);
        assertTrue(worst <= TOL, what + " embeddings: " + worst);
        assertEquals(wantDeep.size(), got.deepstack().size(), what + " DeepStack features");
        for (int k = 0; k < wantDeep.size(); k++) {
            double r = relMax(got.deepstack().get(k), wantDeep.get(k));
            assertTrue(r <= TOL, what + " DeepStack " + k + ": " + r);
            worst = Math.max(worst, r);
        }
        return worst;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"config.json", "config.hub.json"})
    void imagesAndVideosMatchGoldenAndCpu(String configFile) throws Exception {
        JsonNode g = Fixtures.golden(MODEL);
        Path dir = folder(configFile);
        List<PixelValues> all = new ArrayList<>();
        List<String> names = new ArrayList<>();
        try (VisionEncoder gpu = VisionEncoders.load(dir, "cuda"); VisionEncoder cpu = VisionEncoders.load(dir, "cpu")) {
            assertTrue(gpu.describe().startsWith("cuda") && gpu.describe().contains("qwen3_vl"), gpu.describe());
            assertEquals(2, gpu.deepstackLayers());
            assertEquals(64, gpu.outHidden());
            for (String kind : new String[] {"image", "video"}) {
                JsonNode media = g.get(kind + "s");
                for (int i = 0; i < media.size(); i++) {
                    JsonNode gr = media.get(i).get("grid_thw");
                    int[][] shape = new int[1][];
                    float[] px = golden(kind + i + ".pixel_values", shape);
                    PixelValues pv = PixelValues.of(px, shape[0][1], gr.get(0).asInt(), gr.get(1).asInt(), gr.get(2).asInt());
                    String name = kind + i;
                    all.add(pv);
                    names.add(name);
                    ImageEmbeddings e = gpu.encode(pv);
                    assertEquals(pv.numPatches() / 4, e.tokens(), name);
                    assertEquals(pv.contentHash(), e.contentHash());
                    assertArrayEquals(new int[] {pv.gridT(), pv.gridH(), pv.gridW()}, new int[] {e.gridT(), e.gridH(), e.gridW()});
                    double rg = compare(name + " vs golden", e, golden(name + ".embeds", null),
                            List.of(golden(name + ".deepstack0", null), golden(name + ".deepstack1", null)));
                    ImageEmbeddings c = cpu.encode(pv);
                    double rc = compare(name + " vs cpu", e, c.data(), c.deepstack());
                    System.out.printf("GPU qwen3vl %s %s grid %dx%dx%d: worst max|d|/max|x| %.2e vs golden, %.2e vs cpu%n",
                            configFile, name, pv.gridT(), pv.gridH(), pv.gridW(), rg, rc);
                    if (kind.equals("video")) {   // one temporal group at a time (the live path) equals its slice of the clip
                        int per = pv.gridH() * pv.gridW(), tokens = e.tokens() / pv.gridT(), o = e.hidden();
                        for (int t = 0; t < pv.gridT(); t++) {
                            PixelValues one = PixelValues.of(Arrays.copyOfRange(px, t * per * pv.patchDim(), (t + 1) * per * pv.patchDim()),
                                    pv.patchDim(), 1, pv.gridH(), pv.gridW());
                            int from = t * tokens * o, to = (t + 1) * tokens * o;
                            compare(name + " group " + t + " alone", gpu.encode(one), Arrays.copyOfRange(e.data(), from, to),
                                    e.deepstack().stream().map(f -> Arrays.copyOfRange(f, from, to)).toList());
                        }
                    }
                }
            }
            // every input in one call: the same results (attention and the position blend stay per input and frame)
            List<ImageEmbeddings> batch = gpu.encode(all);
            for (int i = 0; i < all.size(); i++) {
                String name = names.get(i);
                compare(name + " (batched) vs golden", batch.get(i), golden(name + ".embeds", null),
                        List.of(golden(name + ".deepstack0", null), golden(name + ".deepstack1", null)));
            }
        }
    }

    /** PNG -> GPU preprocessing -> encodeToDevice (DeepStack features in a device buffer) equals the CPU chain. */
    @Test
    void deviceChainFromPngMatchesCpuChain() throws Exception {
        Path dir = Fixtures.fixture(MODEL);
        ImageProcessor cpuProc = ImageProcessor.load(dir);
        try (GpuVisionEncoder enc = GpuVisionEncoder.load(dir);
             GpuImageProcessor proc = GpuImageProcessor.load(dir, enc.stream());
             VisionEncoder cpu = VisionEncoders.load(dir, "cpu")) {
            for (int i = 0; i < 3; i++) {
                try (Frame f = TestPng.read(dir.resolve("golden_image_" + i + ".png"))) {
                    DeviceEmbeddings de = enc.encodeToDevice(proc.process(f));
                    assertEquals(2, de.deepstackLayers());
                    assertTrue(de.deepstack().bytes() >= 2L * 4 * de.tokens() * de.hidden(), "DeepStack buffer holds [2, tokens, hidden] fp32");
                    ImageEmbeddings got = enc.toHost(de);
                    ImageEmbeddings want = cpu.encode(cpuProc.process(f));
                    double r = compare("PNG " + i + " device chain vs cpu chain", got, want.data(), want.deepstack());
                    assertEquals(got.deepstack().size(), enc.deepstackToHost(de).size());
                    System.out.printf("PNG %d -> GPU preprocess -> GPU qwen3vl tower vs CPU chain: %.2e (%d tokens)%n", i, r, got.tokens());
                }
            }
        }
    }

    static Path randomTower(Path dir, String prefix, int depth, int width, int heads, int inter, int out, int side, String deepstack) throws Exception {
        return new RandomQwen3VLTower("qwen3_vl", prefix, depth, width, heads, inter, out, side, deepstack).write(dir, false);
    }

    static PixelValues randomPixels(Random r, int t, int gh, int gw) {
        float[] v = new float[t * gh * gw * 1536];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        return PixelValues.of(v, 1536, t, gh, gw);
    }

    @ParameterizedTest(name = "width {0} heads {1} depth {2} mlp {3} side {4} deepstack {5}")
    @CsvSource(delimiter = ';', value = {
            "160; 2; 3; 224; 16; [0, 2]; model.visual.",   // head dim 80 as the real towers, table larger than most grids
            "96; 3; 4; 200; 5; [3, 1]; visual.",            // head dim 32, MLP padded to 256, DeepStack listed out of block order
            "72; 1; 2; 64; 8; []; visual."})                // head dim 72 (attention padding), no DeepStack at all
    void randomTowersMatchCpu(int width, int heads, int depth, int inter, int side, String deepstack, String prefix) throws Exception {
        Path dir = randomTower(tmp.resolve("tower"), prefix, depth, width, heads, inter, 48, side, deepstack);
        Random r = new Random(5);
        // non-square grids, one smaller than the 2x2 merge window's multiple, a clip, several inputs in one call
        List<PixelValues> imgs = List.of(randomPixels(r, 1, 6, 36), randomPixels(r, 2, 10, 8), randomPixels(r, 1, 2, 2),
                randomPixels(r, 1, 34, 14), randomPixels(r, 3, 4, 6));
        try (VisionEncoder cpu = VisionEncoders.load(dir, "cpu"); VisionEncoder gpu = VisionEncoders.load(dir, "cuda")) {
            assertEquals(cpu.deepstackLayers(), gpu.deepstackLayers());
            List<ImageEmbeddings> want = cpu.encode(imgs);
            List<ImageEmbeddings> got = gpu.encode(imgs);
            for (int i = 0; i < imgs.size(); i++) {
                assertEquals(want.get(i).tokens(), got.get(i).tokens());
                double rel = compare("random tower image " + i + " (" + imgs.get(i) + ")", got.get(i), want.get(i).data(), want.get(i).deepstack());
                System.out.printf("random qwen3vl tower width %d heads %d deepstack %s input %d grid %dx%dx%d: worst %.2e%n",
                        width, heads, deepstack, i, imgs.get(i).gridT(), imgs.get(i).gridH(), imgs.get(i).gridW(), rel);
            }
            // one input alone equals its part of the batch
            compare("random tower input 3 alone", gpu.encode(imgs.get(3)), got.get(3).data(), got.get(3).deepstack());
        }
    }

    @Test
    void badInputAndCheckpointsAreNamed() throws Exception {
        try (VisionEncoder enc = VisionEncoders.load(Fixtures.fixture(MODEL), "cuda")) {
            var e = assertThrows(IllegalArgumentException.class, () -> enc.encode(PixelValues.of(new float[4 * 1176], 1176, 1, 2, 2)));
            assertTrue(e.getMessage().contains("1536") && e.getMessage().contains("qwen3_vl"), e.getMessage());
            var odd = assertThrows(IllegalArgumentException.class, () -> enc.encode(PixelValues.of(new float[3 * 4 * 1536], 1536, 1, 3, 4)));
            assertTrue(odd.getMessage().contains("spatial_merge_size"), odd.getMessage());
        }
        // more DeepStack mergers in the checkpoint than deepstack_visual_indexes entries
        Path dir = randomTower(tmp.resolve("extra"), "visual.", 2, 64, 2, 64, 32, 4, "[0, 1]");
        Files.writeString(dir.resolve("config.json"), Files.readString(dir.resolve("config.json")).replace("[0, 1]", "[1]"));
        var e = assertThrows(IllegalArgumentException.class, () -> VisionEncoders.load(dir, "cuda"));
        assertTrue(e.getMessage().contains("more DeepStack mergers"), e.getMessage());
    }
}
