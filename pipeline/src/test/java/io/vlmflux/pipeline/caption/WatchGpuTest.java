package io.vlmflux.pipeline.caption;

import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.EncoderCacheStats;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.pipeline.watch.WatchPolicy;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

import java.time.Duration;
import java.util.List;

import static io.vlmflux.pipeline.caption.CaptionTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Alerts on the cuda path (several questions per frame prefilled on one device encoding; with batched decode their
 * answers run together) give the same events as on the CPU reference: shapes-vl's greedy answers are token-identical
 * across backends (CaptionGpuTest).
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class WatchGpuTest {
    static VlmRuntime cpu, gpu;

    @BeforeAll static void load() {
        assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        cpu = VlmRuntime.load(SHAPES, RuntimeOptions.defaults().withBackend(Backend.CPU));
        gpu = VlmRuntime.load(SHAPES, RuntimeOptions.defaults().withBackend(Backend.CUDA));
    }

    @AfterAll static void close() {
        if (gpu != null) gpu.close();
        if (cpu != null) cpu.close();
    }

    static List<String> events(VlmRuntime m) {
        List<Alert> alerts = List.of(
                WatchStageTest.WHERE, WatchStageTest.CIRCLE,
                new Alert("free", "Describe the image.", null, WatchPolicy.DEFAULT.withAgree(1), 16));
        EncoderCacheStats before = m.encoderCacheStats();
        List<Event> ev = Sources.parse("test:ball?live=false&num-buffers=120", new SourceOptions(WatchStageTest.W, WatchStageTest.H, PixelFormat.RGB)).frames()
                .transform(Stages.sample("6f"))
                .transform(Stages.watch(m, alerts, CaptionOptions.Backpressure.LOSSLESS))
                .collectList().block(Duration.ofSeconds(120));
        EncoderCacheStats after = m.encoderCacheStats();
        assertEquals(20, (after.hits() + after.misses()) - (before.hits() + before.misses()), m + ": one encoding per frame for three alerts");
        return ev.stream().map(e -> e.watch() + " " + e.kind().wire() + " " + e.answer() + " " + e.evidence().stream().map(Event.Evidence::sequence).toList()).toList();
    }

    @Test void gpuEventsEqualCpuEvents() {
        List<String> c = events(cpu), g = events(gpu);
        System.out.println(String.join("\n", g));
        assertFalse(c.isEmpty());
        assertEquals(c, g);
    }
}
