package io.vlmflux.llm.runtime;

import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.Backend;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static io.vlmflux.llm.runtime.Qwen3VlRuntimeTest.DIR;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link Qwen3VlRuntimeTest}'s golden prompts on the cuda runtime: GPU preprocessing (images) or host video
 * preprocessing, the cuda Qwen3-VL tower, image rows that stay on the device (per-group views for video), DeepStack
 * rows within 2e-2 x max|golden| of the golden features, M-RoPE positions equal to the golden, and greedy tokens equal
 * to the golden up to the first step whose golden top-2 gap is within 2e-2 x max|logit| (the GPU tolerance of
 * {@code Qwen3VlCudaTest}). Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class Qwen3VlRuntimeCudaTest {
    static final Qwen3VlRuntimeTest.Tolerance GPU = new Qwen3VlRuntimeTest.Tolerance(2e-2f, 0f, 2e-2f, true);

    @BeforeAll
    static void gpu() {
        assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"config.json", "config.hub.json"})
    void imagePromptsReproduceTheGoldenOnCuda(String configFile) throws Exception {
        try (VlmRuntime rt = VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CUDA).withConfigFile(configFile))) {
            assertEquals(Backend.CUDA, rt.backend());
            Qwen3VlRuntimeTest.imagePrompts(rt, GPU);
            // the same image again: an encoder-output cache hit that keeps its DeepStack rows
            try (Prompt again = rt.prepareBlocking(rt.promptTemplate(null, "again", 1), List.of(Images.read(DIR.resolve("golden_image_1.png"))));
                 var gt = io.vlmflux.llm.Fixtures.goldenTensors("tiny-qwen3vl")) {
                assertEquals(1, again.cacheHits());
                Qwen3VlRuntimeTest.checkDeepstack("cached image 1", again.input().spans().get(0), gt, "image1", 0, GPU);
            }
        }
    }

    @Test void videoPromptsReproduceTheGoldenOnCuda() throws Exception {
        try (VlmRuntime rt = VlmRuntime.load(DIR, RuntimeOptions.defaults().withBackend(Backend.CUDA))) {
            Qwen3VlRuntimeTest.videoPrompts(rt, GPU);
        }
    }
}
