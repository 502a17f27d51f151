package io.vlmflux.llm.quant;

import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.SamplingParams;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The cuda W4A16 path end to end: each format's tiny 4-bit checkpoint ({@link QuantFixture}, the formats of
 * {@link QuantizedModelTest}: AWQ, GPTQ v1/v2 sym/asym, desc_act, per-channel, compressed-tensors) on the cuda backend
 * against the cpu int4 backend: prefill logits (dequantize + cuBLAS) and every greedy decode step (W4A16 GEMV, CUDA
 * graphs as configured) within bf16 tolerance, greedy tokens identical unless the cpu's top two are within that
 * tolerance; then a batched greedy step of 3 rows (the rows GEMV) against the single-row steps.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class CudaQuantizedModelTest {
    static final float REL_TOL = 2e-2f;
    @TempDir Path tmp;

    @BeforeAll
    static void gpu() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
    }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> formats() { return QuantizedModelTest.formats(); }

    @ParameterizedTest(name = "{0}")
    @MethodSource("formats")
    void cudaMatchesTheCpuInt4Backend(String label, QuantConfig q, long seed) throws Exception {
        Path qd = tmp.resolve("q"), rd = tmp.resolve("ref");
        QuantFixture.write(QuantFixture.Spec.tiny(q, seed), qd, rd);
        int[] prompt = {3, 17, 250, 99, 4, 311, 42, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 77};   // > 8 rows: the dequantize + GEMM prefill
        // the default tuning, then 4-bit matrices stored in 16 x 128 tiles where the tensor-core GEMV takes them, then the
        // prefill's dequantizations on a second stream one linear ahead: the prefill reads the same bf16 matrices through
        // the same GEMMs, so its logits equal the default's bit for bit; then the ring GEMV for decode (vlmflux.cuda.int4Ring:
        // tiles, streamed through shared memory on sm_90+; elsewhere the tiled tensor-core GEMV); then the prefill's
        // matrices dequantized and multiplied in slices of 16 rows (vlmflux.cuda.int4PrefillChunkKiB; other GEMM shapes:
        // the same products to rounding, checked against the CPU backend like every run)
        io.vlmflux.cuda.Tuning base = io.vlmflux.cuda.Tuning.fromSystemProperties();
        float[] basePrefill = null;
        String name = label;
        for (io.vlmflux.cuda.Tuning tuning : new io.vlmflux.cuda.Tuning[]{base, base.withInt4Tiled(true), base.withInt4PrefillOverlap(true),
                base.with(io.vlmflux.cuda.Tuning.INT4_RING, "true"), base.with(io.vlmflux.cuda.Tuning.INT4_PREFILL_CHUNK_KIB, "1")})
        try (Decoder gpu = Models.load(qd, "config.json", io.vlmflux.llm.Backend.CUDA, null, tuning); Decoder cpu = Models.load(qd, "cpu")) {
            label = name + (tuning.int4Tiled() ? " (tiles)" : "") + (tuning.int4PrefillOverlap() ? " (overlapped prefill)" : "") + (tuning.int4Ring() ? " (ring GEMV)" : "")
                    + (tuning.int4PrefillChunkKiB() > 0 ? " (prefill in row slices)" : "");
            assertEquals("cuda", gpu.backend());
            int V = cpu.config().vocabSize();
            KvCache cg = gpu.newCache(64), cc = cpu.newCache(64);
            float[] lg = gpu.forward(cg, ForwardInput.tokens(prompt), true), lc = cpu.forward(cc, ForwardInput.tokens(prompt), true);
            for (int t = 0; t < prompt.length; t++) check(label + " prefill position " + t, lg, t * V, lc, t * V, V);
            if (basePrefill == null) basePrefill = lg;
            else if (tuning.int4PrefillChunkKiB() == 0) assertArrayEquals(basePrefill, lg, label + ": prefill logits equal the default tuning's bit for bit");
            try (KvCache c2 = gpu.newCache(64)) {   // a second prefill: buffers filled ahead by the first are reused
                assertArrayEquals(lg, gpu.forward(c2, ForwardInput.tokens(prompt), true), label + ": a second prefill gives the same logits");
            }
            float[] lastG = Arrays.copyOfRange(lg, lg.length - V, lg.length), lastC = Arrays.copyOfRange(lc, lc.length - V, lc.length);
            for (int s = 0; s < 10; s++) {
                int tok = argmax(lastC, 0, V);
                if (gap(lastC, V) > REL_TOL * maxAbs(lastC, 0, V)) assertEquals(tok, argmax(lastG, 0, V), label + " greedy token at step " + s);
                lastG = gpu.forward(cg, ForwardInput.tokens(tok), false);
                lastC = cpu.forward(cc, ForwardInput.tokens(tok), false);
                check(label + " decode step " + s, lastG, 0, lastC, 0, V);
            }
            // batched decode (rows GEMV) of three sequences against their single-row greedy steps
            int[] starts = {5, 6, 7}, toks = new int[3], expect = new int[3];
            KvCache[] b = new KvCache[3];
            for (int i = 0; i < 3; i++) {
                int[] p = Arrays.copyOf(prompt, starts[i]);
                b[i] = gpu.newCache(64);
                toks[i] = argmax(gpu.forward(b[i], ForwardInput.tokens(p), false), 0, V);
                try (KvCache one = gpu.newCache(64)) {
                    gpu.forward(one, ForwardInput.tokens(p), false);
                    float[] l2 = gpu.forward(one, ForwardInput.tokens(toks[i]), false);
                    expect[i] = gap(l2, V) > REL_TOL * maxAbs(l2, 0, V) ? argmax(l2, 0, V) : -1;
                }
            }
            SamplingParams g = SamplingParams.greedyDecoding();
            int[] got = gpu.forwardSampleBatch(b, toks, new SamplingParams[]{g, g, g});
            for (int i = 0; i < 3; i++) if (expect[i] >= 0) assertEquals(expect[i], got[i], label + " batched row " + i);
            for (KvCache k : b) k.close();
            cg.close();
            cc.close();
        }
    }

    static void check(String what, float[] got, int gOff, float[] ref, int off, int V) {
        float tol = REL_TOL * maxAbs(ref, off, V) + 1e-4f;
        float d = 0;
        for (int i = 0; i < V; i++) d = Math.max(d, Math.abs(got[gOff + i] - ref[off + i]));
        assertTrue(d <= tol, what + ": max |diff| " + d + " > " + tol);
    }

    static float maxAbs(float[] a, int off, int n) {
        float m = 0;
        for (int i = 0; i < n; i++) m = Math.max(m, Math.abs(a[off + i]));
        return m;
    }

    static int argmax(float[] a, int off, int n) {
        int b = 0;
        for (int i = 1; i < n; i++) if (a[off + i] > a[off + b]) b = i;
        return b;
    }

    /** Top-1 minus top-2 of the first n values. */
    static float gap(float[] a, int n) {
        float m1 = Float.NEGATIVE_INFINITY, m2 = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) { float v = a[i]; if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) m2 = v; }
        return m1 - m2;
    }
}
