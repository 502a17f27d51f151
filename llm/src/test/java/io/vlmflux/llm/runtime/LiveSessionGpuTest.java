package io.vlmflux.llm.runtime;

import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Live sessions on the cuda backend against the cpu backend (bf16 tolerance: 2e-2 x max|logit|): incremental group
 * prefill with device image rows, SLIDE compaction of the device cache, REPREFILL, rollback after a question, a
 * stream far longer than the window in flat KV bytes, and close freeing the cache.
 */
@Tag("gpu")
class LiveSessionGpuTest {
    @BeforeAll static void gpu() { Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason()); }

    static void assertNear(float[] want, float[] got, String what) {
        double max = 0, scale = 0;
        for (float x : want) scale = Math.max(scale, Math.abs(x));
        for (int i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - got[i]));
        System.out.println(what + ": max |Δ| " + max + " (max |logit| " + scale + ")");
        assertTrue(max <= 2e-2 * scale, what + ": max |Δ| " + max + " > 2e-2 x " + scale);
    }

    /** Several sessions' appends in one GPU tower pass (each group's rows and DeepStack copied out of the batch). */
    @org.junit.jupiter.api.Test void concurrentAppendsShareOneTowerPassOnCuda() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CUDA))) {
            LiveSessionBatchTest.checkBatchedAppends(rt, dir, false);
        }
    }

    /** Answers of four cuda sessions decode in shared batched steps (CudaDecoder.forwardSampleBatch) and equal their solo answers. */
    @org.junit.jupiter.api.Test void concurrentAnswersBatchOnCuda() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CUDA))) {
            LiveSessionBatchTest.checkConcurrent(rt, dir);
        }
    }

    /**
     * {@code vlmflux.live.devicePreprocess}: groups resized, normalised and patchified on the GPU give the logits the
     * host video processor's groups give (the GPU preprocessing is bit-exact with the host's), alone and with several
     * sessions' groups side by side in one tower pass; their frames are all closed.
     */
    @ParameterizedTest @ValueSource(strings = {"tiny-qwen2vl-video", "tiny-qwen25vl-video"})
    void groupsPreprocessedOnTheDeviceMatchTheHostPath(String model) {
        Path dir = Fixtures.dir(model);
        LiveSession.Options o = LiveSession.Options.defaults().withFps(LiveSessionTest.FPS).withWindow(Duration.ofSeconds(1));
        float[] host;
        try (VlmRuntime rt = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CUDA))) {
            host = run(rt, dir, o);
        }
        RuntimeOptions dev = RuntimeOptions.defaults().withBackend(Backend.CUDA)
                .withTuning(io.vlmflux.cuda.Tuning.fromSystemProperties().withLiveDevicePreprocess(true));
        try (VlmRuntime rt = VlmRuntime.load(dir, dev)) {
            assertTrue(rt.visionPath().preprocessesGroups(io.vlmflux.vision.VideoProcessor.loadQwen2VL(dir).config()), "the device path takes the groups");
            float[] device = run(rt, dir, o);
            double max = 0, scale = 0;
            for (int i = 0; i < host.length; i++) { max = Math.max(max, Math.abs(host[i] - device[i])); scale = Math.max(scale, Math.abs(host[i])); }
            assertTrue(max <= 1e-3 * scale, model + ": device-preprocessed groups vs host: max |Δ| " + max + " of " + scale);
        }
        try (VlmRuntime rt = VlmRuntime.load(dir, dev)) {
            LiveSessionBatchTest.checkBatchedAppends(rt, dir, false);   // several sessions' device groups in one pass
        }
    }

    static float[] run(VlmRuntime rt, Path dir, LiveSession.Options o) {
        LiveSession s = LiveSession.open(rt, o);
        try {
            for (List<Frame> g : LiveSessionTest.groups(dir)) s.appendBlocking(g);
            return s.questionLogits(LiveSessionTest.Q).block();
        } finally {
            s.close();
        }
    }

    @ParameterizedTest @ValueSource(strings = {"tiny-qwen2vl-video", "tiny-qwen25vl-video", "tiny-qwen3vl"})
    void cudaSessionsMatchCpu(String model) {
        Path dir = Fixtures.dir(model);
        LiveSession.Options base = LiveSession.Options.defaults().withFps(LiveSessionTest.FPS);
        List<LiveSession.Options> variants = List.of(base.withWindow(Duration.ofHours(1)), base.withWindow(Duration.ofSeconds(1)),
                base.withWindow(Duration.ofSeconds(1)).withEviction(LiveSession.Eviction.REPREFILL));
        float[][] cpu = new float[3][];
        try (VlmRuntime rt = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CPU))) {
            for (int i = 0; i < 3; i++) cpu[i] = run(rt, dir, variants.get(i));
        }
        try (VlmRuntime rt = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(Backend.CUDA))) {
            String[] names = {"no eviction", "SLIDE", "REPREFILL"};
            for (int i = 0; i < 3; i++) assertNear(cpu[i], run(rt, dir, variants.get(i)), model + " cuda vs cpu, " + names[i]);

            // rollback after an answer, flat KV bytes over a stream 20x the window, close frees the cache
            LiveSession s = LiveSession.open(rt, base.withWindow(Duration.ofSeconds(1)));
            long kvFull = -1;
            for (int rep = 0; rep < 20; rep++) {
                final long shift = (long) (rep * 2e9);
                for (List<Frame> g : LiveSessionTest.groups(dir)) {
                    List<Frame> shifted = g.stream().map(f -> { try (f) { return LiveSessionTest.withPts(f, f.ptsNanos() + shift); } }).toList();
                    LiveSession.Appended a = s.appendBlocking(shifted);
                    if (rep == 2 && kvFull < 0) kvFull = a.kvBytes();
                    if (rep > 2) assertEquals(kvFull, a.kvBytes(), "KV bytes flat once the window is full");
                }
            }
            float[] before = s.questionLogits(LiveSessionTest.Q).block();
            List<TokenEvent> ev = s.ask(LiveSessionTest.Q, 6).collectList().block();
            assertTrue(ev.getLast().isLast());
            float[] after = s.questionLogits(LiveSessionTest.Q).block();
            assertNear(before, after, model + " cuda after an answer");
            s.close();
            assertEquals(0, s.window().kvBytes());
        }
    }
}
