package io.vlmflux.vision.cuda;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Arrays;

import static io.vlmflux.vision.cuda.GpuVisionEncoderTest.relMax;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The cuda vision tower on video grids (t = 2 and t = 4; attention segments per temporal slice, Qwen2.5-VL windows
 * per slice) against transformers' golden video embeddings of {@code tiny-qwen2vl-video} / {@code tiny-qwen25vl-video}
 * and against the CPU tower, and one temporal group at a time (the live path) against the whole clip.
 * Tolerance: max |delta| <= 2e-2 x max |reference| (bf16 activations).
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class GpuVideoEncoderTest {
    static final double TOL = 2e-2;

    @BeforeAll
    static void gpu() {
        assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"tiny-qwen2vl-video", "tiny-qwen25vl-video"})
    void videoGridsMatchGoldenAndCpu(String model) throws Exception {
        Path dir = Fixtures.fixture(model);
        JsonNode videos = Fixtures.golden(model).get("videos");
        try (VisionEncoder gpu = VisionEncoders.load(dir, "cuda"); VisionEncoder cpu = VisionEncoders.load(dir, "cpu")) {
            for (int v = 0; v < videos.size(); v++) {
                JsonNode g = videos.get(v).get("grid_thw");
                int[][] shape = new int[1][];
                float[] px = Fixtures.readF32(dir.resolve("golden.safetensors"), "video" + v + ".pixel_values", shape);
                PixelValues pv = PixelValues.of(px, shape[0][1], g.get(0).asInt(), g.get(1).asInt(), g.get(2).asInt());
                float[] want = Fixtures.readF32(dir.resolve("golden.safetensors"), "video" + v + ".embeds", shape);
                ImageEmbeddings e = gpu.encode(pv);
                assertEquals(pv.gridT(), e.gridT());
                double rg = relMax(e.data(), want), rc = relMax(e.data(), cpu.encode(pv).data());
                System.out.printf("GPU %s video%d grid %dx%dx%d: max|d|/max|x| %.2e vs golden, %.2e vs cpu%n", model, v, pv.gridT(), pv.gridH(), pv.gridW(), rg, rc);
                assertTrue(rg <= TOL, model + " video " + v + " vs golden: " + rg);
                assertTrue(rc <= TOL, model + " video " + v + " vs cpu: " + rc);

                // one temporal group at a time equals the group's slice of the whole clip
                int per = pv.gridH() * pv.gridW(), tokens = e.tokens() / pv.gridT();
                for (int t = 0; t < pv.gridT(); t++) {
                    PixelValues one = PixelValues.of(Arrays.copyOfRange(px, t * per * pv.patchDim(), (t + 1) * per * pv.patchDim()), pv.patchDim(), 1, pv.gridH(), pv.gridW());
                    float[] got = gpu.encode(one).data();
                    float[] slice = Arrays.copyOfRange(e.data(), t * tokens * e.hidden(), (t + 1) * tokens * e.hidden());
                    double r = relMax(got, slice);
                    assertTrue(r <= TOL, model + " video " + v + " group " + t + " alone vs in the clip: " + r);
                }
            }
        }
    }
}
