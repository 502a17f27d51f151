package io.vlmflux.cuda.gpu;

import org.junit.jupiter.api.condition.EnabledIf;
import static io.vlmflux.cuda.gpu.Ref.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Every kernel against a CPU reference with per-dtype tolerances: fp32 outputs from bf16 inputs ~1e-5..1e-4
 * relative (accumulation order), bf16 outputs ~4e-3 (one rounding). Skips without a GPU. Inputs are fresh random
 * values; outputs are poisoned (0xFF bytes = NaN) before each launch so unwritten elements fail.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class GpuKernelsTest {
    static GpuDevice dev;
    static GpuStream st;
    static DeviceArena arena;
    static GpuOps ops;
    static GpuOps pipelined;   // the pipelined tensor-core prefill attention (vlmflux.cuda.prefillPipelined)
    static GpuOps vec;         // the 16-byte-load decode attention (vlmflux.cuda.decodeVecAttention)
    static GpuOps fused;       // ... with the combine in the split pass (vlmflux.cuda.decodeFusedCombine)
    static GpuOps fusedRope;   // ... with RoPE + q/k norm + KV write in the split pass (vlmflux.cuda.decodeFusedRope)
    static GpuOps fusedBoth;   // both
    static GpuOps gemvPf;      // the GEMVs that prefetch their first row tile before the PDL wait (vlmflux.cuda.gemvPrefetch)
    static Blas blas;
    long mark;
    final Random rnd = new Random(1234);

    @BeforeAll
    static void open() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        dev = Gpu.device();
        st = dev.newStream();
        arena = dev.newArena("test", 1L << 30);
        ops = new GpuOps(st);
        pipelined = new GpuOps(st, io.vlmflux.cuda.Tuning.fromSystemProperties().withPrefillPipelined(true));
        vec = new GpuOps(st, io.vlmflux.cuda.Tuning.fromSystemProperties().withDecodeVecAttention(true));
        fused = new GpuOps(st, io.vlmflux.cuda.Tuning.fromSystemProperties().withDecodeVecAttention(true)
                .with(io.vlmflux.cuda.Tuning.DECODE_FUSED_COMBINE, "true"));
        fusedRope = new GpuOps(st, io.vlmflux.cuda.Tuning.fromSystemProperties().withDecodeVecAttention(true)
                .with(io.vlmflux.cuda.Tuning.DECODE_FUSED_COMBINE, "false").with(io.vlmflux.cuda.Tuning.DECODE_FUSED_ROPE, "true"));
        fusedBoth = new GpuOps(st, io.vlmflux.cuda.Tuning.fromSystemProperties().withDecodeVecAttention(true)
                .with(io.vlmflux.cuda.Tuning.DECODE_FUSED_COMBINE, "true").with(io.vlmflux.cuda.Tuning.DECODE_FUSED_ROPE, "true"));
        gemvPf = new GpuOps(st, io.vlmflux.cuda.Tuning.fromSystemProperties().withPdl(true).with(io.vlmflux.cuda.Tuning.GEMV_PREFETCH, "true"));
        blas = new Blas(st, arena.alloc("cublas workspace", 32 << 20));
        System.err.println("GPU " + dev + ", kernels: " + ops.kernelOrigin());
    }

    @AfterAll
    static void close() {
        if (blas != null) blas.close();
        if (ops != null) ops.close();
        if (pipelined != null) pipelined.close();
        if (vec != null) vec.close();
        if (fused != null) fused.close();
        if (fusedRope != null) fusedRope.close();
        if (fusedBoth != null) fusedBoth.close();
        if (gemvPf != null) gemvPf.close();
        if (arena != null) arena.close();
        if (st != null) st.close();
    }

    @BeforeEach
    void mark() { mark = arena.mark(); }

    @AfterEach
    void release() { arena.reset(mark); }

    DeviceBuffer f32(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 4L * a.length); st.upload(b, a); return b; }
    DeviceBuffer bf(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 2L * a.length); st.upload(b, bf16(a)); return b; }
    DeviceBuffer i32(String n, int... a) { DeviceBuffer b = arena.alloc(n, 4L * a.length); st.upload(b, a); return b; }
    DeviceBuffer out(String n, long bytes) { DeviceBuffer b = arena.alloc(n, bytes); st.memsetAsync(b, 0xff, bytes); return b; }

    @Test
    void embeddingGatherAndSplice() {
        int vocab = 50, hidden = 72, n = 6;
        float[] table = bfRound(randn(rnd, vocab * hidden, 1f));
        DeviceBuffer t = bf("table", table);
        int[] ids = {3, 0, 49, 7, 7, 12};
        DeviceBuffer o = out("out", 4L * n * hidden);
        ops.embedGather(o, t, i32("ids", ids), n, hidden, vocab);
        float[] img = randn(rnd, 2 * hidden, 1f);
        ops.spliceRows(o, n, f32("img", img), false, 2, 2, hidden);
        float[] got = st.downloadFloats(o, n * hidden);
        for (int r = 0; r < n; r++)
            for (int i = 0; i < hidden; i++) {
                float want = r == 2 || r == 3 ? img[(r - 2) * hidden + i] : table[ids[r] * hidden + i];
                assertEquals(want, got[r * hidden + i], 0f, "row " + r + " col " + i);
            }
        // hidden not a multiple of 8 (scalar path), bf16 splice source, out-of-range id -> NaN
        int h2 = 13;
        float[] t2 = bfRound(randn(rnd, 4 * h2, 1f));
        DeviceBuffer o2 = out("out2", 4L * 3 * h2);
        ops.embedGather(o2, bf("t2", t2), i32("ids2", 1, 4, 2), 3, h2, 4);
        float[] img2 = bfRound(randn(rnd, h2, 1f));
        ops.spliceRows(o2, 3, bf("img2", img2), true, 2, 1, h2);
        float[] g2 = st.downloadFloats(o2, 3 * h2);
        for (int i = 0; i < h2; i++) {
            assertEquals(t2[h2 + i], g2[i]);
            assertTrue(Float.isNaN(g2[h2 + i]), "id 4 >= vocab 4 gives NaN");
            assertEquals(img2[i], g2[2 * h2 + i]);
        }
    }

    @Test
    void rmsNormWithAndWithoutResidual() {
        for (int hidden : new int[] {64, 1000, 3584}) {
            int rows = 3;
            float eps = 1e-6f;
            float[] x = randn(rnd, rows * hidden, 2f), dl = randn(rnd, rows * hidden, 1f);
            float[] w = bfRound(randn(rnd, hidden, 1f));
            DeviceBuffer xb = f32("x", x), wb = bf("w", w), ob = out("o", 2L * rows * hidden);
            ops.rmsNorm(ob, xb, f32("d", dl), wb, rows, hidden, eps);
            DeviceBuffer of = out("of", 4L * rows * hidden);
            ops.rmsNormF32(of, xb, wb, rows, hidden, eps);
            float[] got = f(st.downloadShorts(ob, rows * hidden));
            float[] gotF = st.downloadFloats(of, rows * hidden);
            float[] xNew = st.downloadFloats(xb, rows * hidden);
            double[] want = new double[rows * hidden];
            for (int r = 0; r < rows; r++) {
                double ss = 0;
                for (int i = 0; i < hidden; i++) { double v = (double) x[r * hidden + i] + dl[r * hidden + i]; ss += v * v; }
                double s = 1 / Math.sqrt(ss / hidden + eps);
                for (int i = 0; i < hidden; i++) {
                    double v = (double) x[r * hidden + i] + dl[r * hidden + i];
                    assertEquals(v, xNew[r * hidden + i], 1e-5 * Math.abs(v) + 1e-6, "residual written back");
                    want[r * hidden + i] = v * s * w[i];
                }
            }
            assertRel("rmsNorm bf16 hidden=" + hidden, got, want, 4e-3);
            assertRel("rmsNorm fp32 hidden=" + hidden, gotF, want, 1e-5);
        }
    }

    @Test
    void siluMulAddAndCasts() {
        int rows = 2, inter = 300;
        float[] gu = randn(rnd, rows * 2 * inter, 3f);
        DeviceBuffer g = f32("gu", gu);
        DeviceBuffer o = out("o", 2L * rows * inter);
        ops.siluMul(o, g, 2 * inter, g.slice(4L * inter, g.bytes() - 4L * inter, "up"), 2 * inter, rows, inter);
        float[] got = f(st.downloadShorts(o, rows * inter));
        double[] want = new double[rows * inter];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < inter; i++) {
                double a = gu[r * 2 * inter + i], u = gu[r * 2 * inter + inter + i];
                want[r * inter + i] = a / (1 + Math.exp(-a)) * u;
            }
        assertRel("siluMul", got, want, 4e-3);

        int n = 100_003;
        float[] x = randn(rnd, n, 1f), y = randn(rnd, n, 1f);
        DeviceBuffer xb = f32("x", x);
        ops.add(xb, f32("y", y), n);
        float[] s = st.downloadFloats(xb, n);
        for (int i = 0; i < n; i++) assertEquals(x[i] + y[i], s[i], 0f);
        DeviceBuffer b16 = out("b16", 2L * n), back = out("back", 4L * n);
        ops.toBf16(b16, xb, n);
        ops.toF32(back, b16, n);
        float[] r = st.downloadFloats(back, n);
        for (int i = 0; i < n; i++) assertEquals(roundBf16(s[i]), r[i], 0f, "bf16 round trip " + i);
    }

    @ParameterizedTest
    @CsvSource({"37,64", "1000,1024", "3,4104", "151,18944"})
    void gemvMatchesCpu(int m, int k) {
        float[] w = bfRound(randn(rnd, m * k, 0.05f)), x = bfRound(randn(rnd, k, 1f));
        float[] bias = randn(rnd, m, 1f), res = randn(rnd, m, 1f);
        DeviceBuffer wb = bf("W", w), xb = bf("x", x), y = out("y", 4L * m);
        ops.gemv(y, wb, xb, null, null, m, k);
        float[] got = st.downloadFloats(y, m);
        DeviceBuffer y2 = f32("res", res);
        ops.gemv(y2, wb, xb, f32("bias", bias), y2, m, k);
        float[] got2 = st.downloadFloats(y2, m);
        double[] want = new double[m], want2 = new double[m];
        for (int r = 0; r < m; r++) {
            double acc = 0;
            for (int i = 0; i < k; i++) acc += (double) w[r * k + i] * x[i];
            want[r] = acc;
            want2[r] = acc + bias[r] + res[r];
        }
        assertRel("gemv " + m + "x" + k, got, want, 2e-5);
        assertRel("gemv+bias+residual " + m + "x" + k, got2, want2, 2e-5);
    }

    /**
     * Split-K GEMV (several blocks per row tile, the last one to finish adds the partials) against the CPU reference
     * and the unsplit kernels: m and k off the tile sizes, a chunk of one 16-byte group, bias + residual aliasing y,
     * bitwise-identical repeats (deterministic reduction, tickets reset), RMSNorm and SiLU-gate prologues.
     * splits -1: chosen by shape.
     */
    @ParameterizedTest
    @CsvSource({"37,264,2", "1,1024,4", "2560,2048,4", "2049,11008,-1", "1000,1032,3", "5,3584,32", "131,7000,7",
            "16,512,2", "4096,1024,-1", "2048,2048,-1", "300,24000,5"})
    void splitKGemvMatchesCpuAndUnsplitKernels(int m, int k, int splits) {
        if (splits >= 2 && m <= ops.gemvSplitMaxRows())
            assertTrue(ops.gemvSplitCount(m, k, splits) >= 2, "split path taken for " + m + "x" + k);
        float[] w = bfRound(randn(rnd, m * k, 0.05f)), x = bfRound(randn(rnd, k, 1f));
        float[] bias = randn(rnd, m, 1f), res = randn(rnd, m, 1f);
        DeviceBuffer wb = bf("W", w), xb = bf("x", x), bb = f32("bias", bias);
        DeviceBuffer y = out("y", 4L * m), again = out("again", 4L * m), plain = out("plain", 4L * m), acc = f32("acc", res);
        ops.gemv(y, wb, xb, null, null, m, k, splits);
        ops.gemv(again, wb, xb, null, null, m, k, splits);
        ops.gemv(plain, wb, xb, null, null, m, k, 0);
        ops.gemv(acc, wb, xb, bb, acc, m, k, splits);
        float[] got = st.downloadFloats(y, m), got2 = st.downloadFloats(again, m), gotPlain = st.downloadFloats(plain, m);
        float[] gotAcc = st.downloadFloats(acc, m);
        double[] want = new double[m], wantAcc = new double[m], plainD = new double[m];
        for (int r = 0; r < m; r++) {
            double s = 0;
            for (int i = 0; i < k; i++) s += (double) w[r * k + i] * x[i];
            want[r] = s;
            wantAcc[r] = s + bias[r] + res[r];
            plainD[r] = gotPlain[r];
        }
        String shape = m + "x" + k + " splits " + ops.gemvSplitCount(m, k, splits);
        assertRel("split-K gemv " + shape, got, want, 2e-5);
        assertRel("split-K gemv = unsplit " + shape, got, plainD, 2e-5);
        assertRel("split-K gemv+bias+residual(=y) " + shape, gotAcc, wantAcc, 2e-5);
        for (int r = 0; r < m; r++) assertEquals(Float.floatToRawIntBits(got[r]), Float.floatToRawIntBits(got2[r]), "repeat differs, row " + r + " " + shape);

        float[] xf = randn(rnd, k, 3f), nw = bfRound(randn(rnd, k, 1f)), gu = randn(rnd, 2 * k + 8, 2f);
        DeviceBuffer xfb = f32("xf", xf), nwb = bf("norm", nw), gub = f32("gu", gu);
        DeviceBuffer nSplit = f32("nSplit", res), nPlain = f32("nPlain", res), sSplit = out("sSplit", 4L * m), sPlain = out("sPlain", 4L * m);
        ops.gemvRmsNorm(nSplit, wb, xfb, nwb, 1e-6f, bb, nSplit, m, k, splits);
        ops.gemvRmsNorm(nPlain, wb, xfb, nwb, 1e-6f, bb, nPlain, m, k, 0);
        int up = k + 8;
        ops.gemvSiluMul(sSplit, wb, gub, up, bb, null, m, k, splits);
        ops.gemvSiluMul(sPlain, wb, gub, up, bb, null, m, k, 0);
        float[] a = st.downloadFloats(nSplit, m), b = st.downloadFloats(nPlain, m);
        float[] c = st.downloadFloats(sSplit, m), d = st.downloadFloats(sPlain, m);
        double[] bd = new double[m], dd = new double[m];
        for (int i = 0; i < m; i++) { bd[i] = b[i]; dd[i] = d[i]; }
        assertRel("split-K gemvRmsNorm " + shape, a, bd, 1e-3);   // sum of squares in another order: rare bf16 ties flip
        assertRel("split-K gemvSiluMul " + shape, c, dd, 2e-5);
    }

    /**
     * The weight-prefetching GEMVs ({@code vlmflux.cuda.gemvPrefetch}: each block's first row tile into L2 before the
     * PDL wait) give the same bits as the plain ones — unsplit, split-K (chunks ending inside and at K), RMSNorm and
     * SiLU-gate prologues, row counts off the 16-row tile — also replayed in a graph; and an L2 prefetch of a whole
     * buffer (vf_l2_prefetch, the decode step's side stream) changes none of its bytes.
     */
    @ParameterizedTest
    @CsvSource({"37,264,0", "2560,2048,0", "1000,1032,3", "131,7000,7", "4096,1024,-1", "2049,11008,-1", "300,24000,5"})
    void prefetchingGemvsEqualThePlainOnes(int m, int k, int splits) {
        Assumptions.assumeTrue(dev.kernels().pdlCapable(), "the prefetching GEMVs launch only with PDL (sm_90+ native code): nothing to compare");
        float[] w = bfRound(randn(rnd, m * k, 0.05f)), x = bfRound(randn(rnd, k, 1f)), xf = randn(rnd, k, 3f);
        float[] nw = bfRound(randn(rnd, k, 1f)), gu = randn(rnd, 2 * k + 8, 2f), bias = randn(rnd, m, 1f), res = randn(rnd, m, 1f);
        DeviceBuffer wb = bf("W", w), xb = bf("x", x), xfb = f32("xf", xf), nwb = bf("norm", nw), gub = f32("gu", gu), bb = f32("bias", bias);
        int up = k + 8;
        String shape = m + "x" + k + " splits " + ops.gemvSplitCount(m, k, splits);
        for (GpuOps o : new GpuOps[] {ops, gemvPf}) assertEquals(ops.gemvSplitCount(m, k, splits), o.gemvSplitCount(m, k, splits));
        float[][] got = new float[2][];
        for (int v = 0; v < 2; v++) {
            GpuOps o = v == 0 ? ops : gemvPf;
            DeviceBuffer y1 = f32("y1", res), y2 = f32("y2", res), y3 = out("y3", 4L * m), y4 = f32("y4", res);
            Runnable body = () -> {
                o.gemv(y1, wb, xb, bb, y1, m, k, splits);
                o.gemvRmsNorm(y2, wb, xfb, nwb, 1e-6f, bb, y2, m, k, splits);
                o.gemvSiluMul(y3, wb, gub, up, bb, null, m, k, splits);
            };
            body.run();
            try (CudaGraph g = CudaGraph.capture("gemvs " + shape, st, () -> o.gemv(y4, wb, xb, null, y4, m, k, splits))) {
                g.launch(st);
                g.launch(st);
            }
            float[] all = new float[4 * m];
            System.arraycopy(st.downloadFloats(y1, m), 0, all, 0, m);
            System.arraycopy(st.downloadFloats(y2, m), 0, all, m, m);
            System.arraycopy(st.downloadFloats(y3, m), 0, all, 2 * m, m);
            System.arraycopy(st.downloadFloats(y4, m), 0, all, 3 * m, m);
            got[v] = all;
        }
        for (int i = 0; i < 4 * m; i++)
            assertEquals(Float.floatToRawIntBits(got[0][i]), Float.floatToRawIntBits(got[1][i]),
                    new String[] {"gemv", "gemvRmsNorm", "gemvSiluMul", "gemv graph x2"}[i / m] + " " + shape + " row " + i % m + ": prefetching form differs");
        short[] before = st.downloadShorts(wb, m * k);
        gemvPf.prefetchL2(wb, 0, 2L * m * k);
        gemvPf.prefetchL2(wb, 16, 2L * m * k - 16);
        assertArrayEquals(before, st.downloadShorts(wb, m * k), "an L2 prefetch changes no byte");
        assertThrows(IllegalArgumentException.class, () -> gemvPf.prefetchL2(wb, 8, 64));
        assertThrows(IllegalArgumentException.class, () -> gemvPf.prefetchL2(wb, 0, 2L * m * k + 16));
    }

    /** A captured split-K GEMV replays correctly: the per-tile tickets are reset by the kernel, not by the host. */
    @Test
    void splitKGemvReplaysInAGraph() {
        int m = 300, k = 1000;
        assertTrue(ops.gemvSplitCount(m, k, 3) >= 2);
        float[] w = bfRound(randn(rnd, m * k, 0.05f)), x = bfRound(randn(rnd, k, 1f)), bias = randn(rnd, m, 1f), res = randn(rnd, m, 1f);
        DeviceBuffer wb = bf("W", w), xb = bf("x", x), bb = f32("bias", bias), y = f32("y", res);
        int replays = 3;
        try (CudaGraph g = CudaGraph.capture("split-K gemv", st, () -> ops.gemv(y, wb, xb, bb, y, m, k, 3))) {
            for (int i = 0; i < replays; i++) g.launch(st);
            st.synchronize();
        }
        float[] got = st.downloadFloats(y, m);
        double[] want = new double[m];
        for (int r = 0; r < m; r++) {
            double s = 0;
            for (int i = 0; i < k; i++) s += (double) w[r * k + i] * x[i];
            want[r] = res[r] + replays * (s + bias[r]);
        }
        assertRel("split-K gemv, 3 graph replays accumulating into y", got, want, 5e-5);
    }

    /** The fused decode GEMVs equal the separate ops they replace (rmsNorm -> gemv, siluMul -> gemv), bias and residual too. */
    @ParameterizedTest
    @CsvSource({"37,64", "2560,2048", "300,1000", "5,3584", "2048,11008"})
    void fusedGemvEqualsSeparateOps(int m, int k) {
        float[] w = bfRound(randn(rnd, m * k, 0.05f)), x = randn(rnd, k, 3f), nw = bfRound(randn(rnd, k, 1f));
        float[] gu = randn(rnd, 2 * k + 8, 2f), bias = randn(rnd, m, 1f), res = randn(rnd, m, 1f);
        DeviceBuffer wb = bf("W", w), xf = f32("x", x), nwb = bf("norm", nw), gub = f32("gu", gu), bb = f32("bias", bias);
        DeviceBuffer xn = out("xn", 2L * k), want = f32("want", res), got = f32("got", res);
        ops.rmsNorm(xn, xf, null, nwb, 1, k, 1e-6f);
        ops.gemv(want, wb, xn, bb, want, m, k);
        ops.gemvRmsNorm(got, wb, xf, nwb, 1e-6f, bb, got, m, k);
        float[] a = st.downloadFloats(want, m), b = st.downloadFloats(got, m);
        double[] ad = new double[m];
        for (int i = 0; i < m; i++) ad[i] = a[i];
        assertRel("gemvRmsNorm " + m + "x" + k, b, ad, 1e-3);   // sum of squares in another order: rare bf16 ties flip
        int up = k + 8;
        DeviceBuffer act = out("act", 2L * k), want2 = out("want2", 4L * m), got2 = out("got2", 4L * m);
        ops.siluMul(act, gub, up, gub.slice(4L * up, 4L * k, "up"), up, 1, k);
        ops.gemv(want2, wb, act, null, null, m, k);
        ops.gemvSiluMul(got2, wb, gub, up, null, null, m, k);
        float[] c = st.downloadFloats(want2, m), d = st.downloadFloats(got2, m);
        for (int i = 0; i < m; i++) assertEquals(c[i], d[i], 1e-5f * (1 + Math.abs(c[i])), "gemvSiluMul " + m + "x" + k + " row " + i);
        assertThrows(IllegalArgumentException.class, () -> ops.gemvRmsNorm(xf, wb, xf, nwb, 1e-6f, null, null, Math.min(m, k), k));
    }

    @Test
    void cublasMatmulMatchesCpu() {
        int n = 5, m = 96, k = 264;
        float[] x = bfRound(randn(rnd, n * k, 1f)), w = bfRound(randn(rnd, m * k, 0.1f)), y0 = randn(rnd, n * m, 1f);
        DeviceBuffer y = f32("y", y0);
        blas.matmulNT(y, bf("x", x), bf("w", w), n, m, k, true);
        float[] got = st.downloadFloats(y, n * m);
        double[] want = new double[n * m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) {
                double acc = y0[i * m + j];
                for (int t = 0; t < k; t++) acc += (double) x[i * k + t] * w[j * k + t];
                want[i * m + j] = acc;
            }
        assertRel("cublas bf16 matmulNT", got, want, 1e-4);
    }

    /** plain RoPE, Qwen3 q/k norm, M-RoPE sections, llama3 table; cache written at an offset. */
    @ParameterizedTest
    @CsvSource({"4,2,64,false,false", "8,2,128,true,false", "4,4,128,false,true", "2,1,256,true,true", "6,3,80,false,false"})
    void ropeQkvWritesRotatedQAndCache(int nq, int nkv, int hd, boolean norm, boolean mrope) {
        int n = 5, maxSeq = 32, start = 7;
        GpuOps.AttnShape s = new GpuOps.AttnShape(nq, nkv, hd, maxSeq);
        int qs = (nq + 2 * nkv) * hd;  // fused qkv rows
        float[] qkv = randn(rnd, n * qs, 1f);
        float[] qn = bfRound(randn(rnd, hd, 1f)), kn = bfRound(randn(rnd, hd, 1f));
        int half = hd / 2;
        int sec1 = mrope ? half / 4 : half, sec2 = mrope ? half * 5 / 8 : half;
        int[] pos = new int[3 * n];
        for (int c = 0; c < 3; c++) for (int t = 0; t < n; t++) pos[c * n + t] = mrope ? 100 + 3 * t + 17 * c : 100 + t;
        float[] inv = hd == 64 ? Rope.llama3InvFreq(hd, 500000, 8, 1, 4, 8192) : Rope.invFreq(hd, 1_000_000);
        DeviceBuffer qkvB = f32("qkv", qkv);
        DeviceBuffer qOut = out("qOut", 4L * n * nq * hd);
        DeviceBuffer kc = out("kc", s.cacheBytes()), vc = out("vc", s.cacheBytes());
        float eps = 1e-6f;
        ops.ropeQkv(qOut, kc, vc, qkvB, qs, qkvB.slice(4L * nq * hd, qkvB.bytes() - 4L * nq * hd, "k"), qs,
                qkvB.slice(4L * (nq + nkv) * hd, qkvB.bytes() - 4L * (nq + nkv) * hd, "v"), qs,
                i32("pos", pos), mrope ? n : 0, sec1, sec2, f32("inv", inv), i32("start", start), n, s,
                norm ? bf("qn", qn) : null, norm ? bf("kn", kn) : null, eps);
        float[] gq = st.downloadFloats(qOut, n * nq * hd);
        float[] gk = f(st.downloadShorts(kc, nkv * maxSeq * hd));
        float[] gv = f(st.downloadShorts(vc, nkv * maxSeq * hd));
        double[][] want = Ref.ropeQk(qkv, n, nq, nkv, hd, norm ? qn : null, norm ? kn : null, eps, pos,
                j -> !mrope ? 0 : j < sec1 ? 0 : j < sec2 ? 1 : 2, inv);
        double[] wq = want[0], wk = want[1];
        float[] gkSel = Ref.cacheRows(gk, n, nkv, hd, maxSeq, start);
        for (int t = 0; t < n; t++)
            for (int hk = 0; hk < nkv; hk++)
                for (int d = 0; d < hd; d++)
                    assertEquals(roundBf16(qkv[t * qs + (nq + nkv + hk) * hd + d]), gv[(hk * maxSeq + start + t) * hd + d], 0f, "V cache");
        assertRel("rope q", gq, wq, 2e-5);
        assertRel("rope k (bf16 cache)", gkSel, wk, 4e-3);
        assertTrue(Float.isNaN(gk[(start - 1) * hd]), "cache slot before start untouched");
    }

    @ParameterizedTest
    @CsvSource({"37,0,8,2,64", "20,5,4,4,128", "50,13,4,1,256", "9,0,6,2,96", "70,40,16,2,128", "3,0,2,2,32",
            "200,70,8,2,128", "130,0,4,4,64", "33,2,6,2,16", "40,0,8,4,8"})
    void prefillAttentionMatchesCpu(int n, int start, int nq, int nkv, int hd) {
        int maxSeq = start + n + 3;
        GpuOps.AttnShape s = new GpuOps.AttnShape(nq, nkv, hd, maxSeq);
        float[] q = randn(rnd, n * nq * hd, 1f);
        float[] kc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f)), vc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f));
        float scale = (float) (1 / Math.sqrt(hd));
        DeviceBuffer qb = f32("q", q), kb = bf("kc", kc), vb = bf("vc", vc), sb = i32("start", start);
        double[] want = Ref.attention(q, kc, vc, n, nq, nkv, hd, maxSeq, start, scale);
        for (GpuOps kernels : new GpuOps[] {ops, pipelined}) {   // hd 64/128: the single-stage and the pipelined tensor-core kernel
            DeviceBuffer o = out("o", 2L * n * nq * hd);
            kernels.attentionPrefill(o, qb, kb, vb, sb, n, s, scale);
            float[] got = f(st.downloadShorts(o, n * nq * hd));
            // hd 64/128 run on the tensor cores with Q and P rounded to bf16 (as FlashAttention-2): 1e-2; CUDA-core path 5e-3
            assertRel("prefill n=" + n + " start=" + start + " hd=" + hd + (kernels == pipelined ? " (pipelined)" : ""), got, want,
                    hd == 64 || hd == 128 ? 1e-2 : 5e-3);
        }
    }

    @ParameterizedTest
    @CsvSource({"3,2,100,5,37,40,64", "2,4,300,3,1,290,128", "4,1,50,0,49,1,256", "1,3,1000,7,300,600,80", "2,2,64,2,60,2,16"})
    void kvShiftMovesEveryHeadsTailDownAsMemmove(int nbuf, int heads, int stride, int from, int count, int tail, int rowBytes) {
        long headStride = (long) stride * rowBytes, bufStride = heads * headStride + 512;   // a gap between buffers, as an arena may leave
        int bytes = (int) (nbuf * bufStride);
        byte[] init = new byte[bytes];
        rnd.nextBytes(init);
        DeviceBuffer region = arena.alloc("region", bytes);
        st.upload(region, init);
        ops.kvShift(region, nbuf, bufStride, heads, headStride, rowBytes, from, count, tail);
        byte[] want = init.clone();
        for (int b = 0; b < nbuf; b++)
            for (int h = 0; h < heads; h++) {
                int head = (int) (b * bufStride + h * headStride);
                System.arraycopy(init, head + (from + count) * rowBytes, want, head + from * rowBytes, tail * rowBytes);   // memmove semantics
            }
        short[] got = st.downloadShorts(region, bytes / 2);
        for (int i = 0; i < bytes / 2; i++) {
            short w = (short) ((want[2 * i] & 0xff) | (want[2 * i + 1] << 8));
            if (got[i] != w) fail("byte " + 2 * i + " (buffer " + (2 * i / bufStride) + "): got " + got[i] + ", want " + w);
        }
    }

    @ParameterizedTest
    @CsvSource({"20,7700,16,2,128,17", "256,7000,16,2,128,4", "5,300,8,8,64,7", "1,0,4,2,128,2", "70,129,14,2,64,5",
            "64,1000,2,1,128,64", "3,4000,12,2,128,0", "130,90,6,3,64,0"})
    void splitKeyPrefillAttentionMatchesCpuAndTheOnePassKernel(int n, int start, int nq, int nkv, int hd, int splitsOverride) {
        int maxSeq = start + n + 5;
        GpuOps.AttnShape s = new GpuOps.AttnShape(nq, nkv, hd, maxSeq);
        float[] q = randn(rnd, n * nq * hd, 1f);
        float[] kc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f)), vc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f));
        float scale = (float) (1 / Math.sqrt(hd));
        long wsBytes = GpuOps.prefillWorkspaceBytes(s, n, GpuOps.MAX_PREFILL_SPLITS);
        int splits = splitsOverride > 0 ? splitsOverride : ops.prefillSplits(s, n, start, wsBytes);
        if (splitsOverride == 0) assertTrue(splits > 1, "a prefill of " + n + " rows after " + start + " keys at " + nq + " heads splits, got " + splits);
        DeviceBuffer ws = arena.alloc("ws", wsBytes);
        DeviceBuffer qb = f32("q", q), kb = bf("kc", kc), vb = bf("vc", vc), st0 = i32("start", start);
        double[] want = Ref.attention(q, kc, vc, n, nq, nkv, hd, maxSeq, start, scale);
        for (GpuOps kernels : new GpuOps[] {ops, pipelined}) {
            DeviceBuffer o1 = out("o1", 2L * n * nq * hd), os = out("os", 2L * n * nq * hd);
            kernels.attentionPrefill(o1, qb, kb, vb, st0, n, s, scale);
            kernels.attentionPrefill(os, qb, kb, vb, st0, n, s, scale, splits, ws);
            float[] one = f(st.downloadShorts(o1, n * nq * hd)), split = f(st.downloadShorts(os, n * nq * hd));
            String what = "prefill n=" + n + " start=" + start + " nq=" + nq + " nkv=" + nkv + " hd=" + hd + " splits=" + splits
                    + (kernels == pipelined ? " (pipelined)" : "");
            assertRel(what, split, want, 1e-2);
            double[] oneD = new double[one.length];
            for (int i = 0; i < one.length; i++) oneD[i] = one[i];
            assertRel(what + " vs one pass", split, oneD, 8e-3);   // same tiles and P rounding; only the merge order differs
        }
    }

    @ParameterizedTest
    @CsvSource({"1,8,2,64,0", "100,28,4,128,0", "3000,16,8,128,0", "777,32,2,128,5", "2049,4,4,256,0", "64,12,2,96,1", "50,6,2,16,0", "90,8,4,8,3", "33,8,2,128,200", "1,16,8,128,132", "1000,16,2,128,1024",
            "2048,16,8,128,0", "517,14,2,64,0", "19,40,4,128,2", "4100,64,4,128,0", "7,2,2,64,1"})
    void decodeAttentionMatchesCpu(int len, int nq, int nkv, int hd, int splitsOverride) {
        int maxSeq = len + 17;
        GpuOps.AttnShape s = new GpuOps.AttnShape(nq, nkv, hd, maxSeq);
        float[] q = randn(rnd, nq * hd, 1f);
        float[] kc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f)), vc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f));
        float scale = (float) (1 / Math.sqrt(hd));
        int splits = splitsOverride > 0 ? splitsOverride : ops.decodeSplits(s);
        DeviceBuffer ws = arena.alloc("ws", GpuOps.decodeWorkspaceBytes(s, splits));
        DeviceBuffer qb = f32("q", q), kb = bf("kc", kc), vb = bf("vc", vc), lb = i32("len", len);
        double[] want = Ref.attention(q, kc, vc, 1, nq, nkv, hd, maxSeq, len - 1, scale);
        short[] vecOut = null;
        for (GpuOps kernels : new GpuOps[] {ops, vec}) {   // hd 64/128 also through the 16-byte-load kernel
            DeviceBuffer o = out("o", 2L * nq * hd);
            kernels.attentionDecode(o, qb, kb, vb, lb, s, splits, ws, scale);
            float[] got = f(st.downloadShorts(o, nq * hd));
            assertRel("decode len=" + len + " nq=" + nq + " nkv=" + nkv + " hd=" + hd + " splits=" + splits + (kernels == vec ? " (16-byte loads)" : ""),
                    got, want, 5e-3);
            if (kernels == vec) vecOut = st.downloadShorts(o, nq * hd);
        }
        if (hd == 64 || hd == 128) {   // the combine fused into the split pass: bit-equal, and again (the tickets reset themselves)
            for (int launch = 0; launch < 3; launch++) {
                DeviceBuffer o = out("o", 2L * nq * hd);
                fused.attentionDecode(o, qb, kb, vb, lb, s, splits, ws, scale);
                assertArrayEquals(vecOut, st.downloadShorts(o, nq * hd), "decode len=" + len + " nq=" + nq + " nkv=" + nkv + " hd=" + hd
                        + " splits=" + splits + ": fused combine, launch " + launch);
            }
        }
    }

    /**
     * vlmflux.cuda.decodeFusedRope: RoPE (plain, contiguous and interleaved M-RoPE), the optional q/k norm and the KV
     * write inside the decode attention's split pass give the same bits as {@code ropeQkv} then {@code attentionDecode}
     * — the output and the written cache row — from a first token (one key) to lengths where the new key falls in a
     * later split, with several head groups, alone and with the fused combine.
     */
    @ParameterizedTest
    @CsvSource({"1,16,2,128,true,0", "2,8,8,128,false,1", "300,16,2,128,true,2", "2048,16,8,128,true,0", "17,8,2,64,false,2",
            "1000,32,2,64,true,1", "4100,14,2,64,false,0", "65,40,4,128,false,2"})
    void fusedRopeDecodeEqualsRopeThenAttention(int len, int nq, int nkv, int hd, boolean norm, int mrope) {
        int maxSeq = len + 9, slot = len - 1;
        GpuOps.AttnShape s = new GpuOps.AttnShape(nq, nkv, hd, maxSeq);
        int qs = (nq + 2 * nkv) * hd;
        float[] qkv = randn(rnd, qs, 1f);
        float[] qn = bfRound(randn(rnd, hd, 1f)), kn = bfRound(randn(rnd, hd, 1f));
        int half = hd / 2;
        int[] sec = switch (mrope) {
            case 1 -> new int[] {half / 4, half * 5 / 8};                              // contiguous sections
            case 2 -> GpuOps.interleavedSections(new int[] {half - 2 * (half / 3), half / 3, half / 3});   // Qwen3-VL
            default -> new int[] {half, half};
        };
        int[] pos = mrope == 0 ? new int[] {slot, slot, slot} : new int[] {slot + 3, slot / 2 + 1, slot % 7 + 2};
        float[] inv = Rope.invFreq(hd, 1_000_000);
        float[] cache = bfRound(randn(rnd, nkv * maxSeq * hd, 1f)), vcache = bfRound(randn(rnd, nkv * maxSeq * hd, 1f));
        float scale = (float) (1 / Math.sqrt(hd));
        int splits = vec.decodeSplits(s);
        DeviceBuffer qkvB = f32("qkv", qkv), posB = i32("pos", pos), invB = f32("inv", inv), lenB = i32("len", len), startB = i32("start", slot);
        DeviceBuffer kB = qkvB.slice(4L * nq * hd, 4L * nkv * hd, "k"), vB = qkvB.slice(4L * (nq + nkv) * hd, 4L * nkv * hd, "v");
        DeviceBuffer qnB = norm ? bf("qn", qn) : null, knB = norm ? bf("kn", kn) : null;
        DeviceBuffer ws = arena.alloc("ws", GpuOps.decodeWorkspaceBytes(s, splits)), qOut = arena.alloc("qOut", 4L * nq * hd);
        // the reference: rope into its own caches, then the unfused 16-byte attention
        DeviceBuffer kc = bf("kc", cache), vc = bf("vc", vcache), o = out("o", 2L * nq * hd);
        vec.ropeQkv(qOut, kc, vc, qkvB, qs, kB, qs, vB, qs, posB, 1, sec[0], sec[1], invB, startB, 1, s, qnB, knB, 1e-6f);
        vec.attentionDecode(o, qOut, kc, vc, lenB, s, splits, ws, scale);
        short[] want = st.downloadShorts(o, nq * hd), wantK = st.downloadShorts(kc, nkv * maxSeq * hd), wantV = st.downloadShorts(vc, nkv * maxSeq * hd);
        for (GpuOps kernels : new GpuOps[] {fusedRope, fusedBoth}) {
            assertTrue(kernels.canFuseRope(s));
            DeviceBuffer kc2 = bf("kc2", cache), vc2 = bf("vc2", vcache), o2 = out("o2", 2L * nq * hd);
            kernels.attentionDecodeRope(o2, qkvB, kB, vB, posB, 1, sec[0], sec[1], invB, qnB, knB, 1e-6f, kc2, vc2, lenB, s, splits, ws, scale);
            String at = "len=" + len + " nq=" + nq + " nkv=" + nkv + " hd=" + hd + " norm=" + norm + " mrope=" + mrope
                    + (kernels == fusedBoth ? " (+ fused combine)" : "");
            assertArrayEquals(want, st.downloadShorts(o2, nq * hd), at + ": attention output");
            assertArrayEquals(wantK, st.downloadShorts(kc2, nkv * maxSeq * hd), at + ": K cache (the new row, nothing else)");
            assertArrayEquals(wantV, st.downloadShorts(vc2, nkv * maxSeq * hd), at + ": V cache");
        }
        assertFalse(vec.canFuseRope(s), "off unless vlmflux.cuda.decodeFusedRope");
    }

    /** The fused-combine decode attention replayed in a graph while the kv length (device memory) changes. */
    @Test
    void fusedCombineDecodeReplaysInAGraph() {
        int nq = 16, nkv = 2, hd = 128, maxSeq = 3000;
        GpuOps.AttnShape s = new GpuOps.AttnShape(nq, nkv, hd, maxSeq);
        float[] kc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f)), vc = bfRound(randn(rnd, nkv * maxSeq * hd, 1f));
        int splits = fused.decodeSplits(s);
        float scale = (float) (1 / Math.sqrt(hd));
        DeviceBuffer ws = arena.alloc("ws", GpuOps.decodeWorkspaceBytes(s, splits)), kb = bf("kc", kc), vb = bf("vc", vc);
        DeviceBuffer qb = arena.alloc("q", 4L * nq * hd), lb = arena.alloc("len", 4), o = out("o", 2L * nq * hd), o2 = out("o2", 2L * nq * hd);
        try (CudaGraph g = CudaGraph.capture("fused decode attention", st, () -> fused.attentionDecode(o, qb, kb, vb, lb, s, splits, ws, scale))) {
            for (int len : new int[] {1, 17, 2999, 600, 3000, 40}) {
                st.upload(qb, randn(rnd, nq * hd, 1f));
                st.upload(lb, new int[] {len});
                g.launch(st);
                vec.attentionDecode(o2, qb, kb, vb, lb, s, splits, ws, scale);
                st.synchronize();
                assertArrayEquals(st.downloadShorts(o2, nq * hd), st.downloadShorts(o, nq * hd), "graph replay at kv length " + len);
            }
        }
    }

    @Test
    void argmaxFindsLowestIndexOfMax() {
        int n = 151_936;
        float[] l = randn(rnd, n, 3f);
        l[98_765] = 50f;
        l[120_000] = 50f;
        DeviceBuffer id = out("id", 4);
        ops.argmax(id, f32("logits", l), n);
        assertEquals(98_765, st.downloadInts(id, 1)[0]);
        float[] small = {-1f, -0.5f, -3f};
        ops.argmax(id, f32("small", small), 3);
        assertEquals(1, st.downloadInts(id, 1)[0]);
    }

    @Test
    void samplingHonoursTemperatureTopKTopP() {
        int n = 151_936;
        float[] l = randn(rnd, n, 2f);
        DeviceBuffer lb = f32("logits", l), id = out("id", 4), ctr = arena.alloc("ctr", 8);
        st.upload(ctr, new long[] {0});
        int am = 0;
        for (int i = 1; i < n; i++) if (l[i] > l[am]) am = i;
        ops.sample(id, lb, n, 0f, 0, 1f, 7, ctr);
        assertEquals(am, st.downloadInts(id, 1)[0], "temperature 0 is argmax");
        ops.sample(id, lb, n, 1f, 1, 1f, 7, ctr);
        assertEquals(am, st.downloadInts(id, 1)[0], "top-k 1 is argmax");
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Float.compare(l[b], l[a]));
        java.util.Set<Integer> top5 = new java.util.HashSet<>(Arrays.asList(order).subList(0, 5));
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = 0; i < 200; i++) {
            ops.sample(id, lb, n, 1.5f, 5, 1f, 42, ctr);
            int t = st.downloadInts(id, 1)[0];
            assertTrue(top5.contains(t), "top-k 5 drew " + t);
            seen.add(t);
        }
        assertTrue(seen.size() >= 3, "top-k 5 at T=1.5 draws several tokens: " + seen);
        // top-p: nucleus from the reference (smallest top set with mass >= p), with a small slack at the boundary.
        float temp = 0.7f, p = 0.6f;
        double mx = l[order[0]];
        double z = 0;
        for (float v : l) z += Math.exp((v - mx) / temp);
        java.util.Set<Integer> nucleus = new java.util.HashSet<>();
        double cum = 0;
        for (int i = 0; i < n && cum < (p + 1e-3) * z; i++) { nucleus.add(order[i]); cum += Math.exp((l[order[i]] - mx) / temp); }
        for (int i = 0; i < 200; i++) {
            ops.sample(id, lb, n, temp, 0, p, 42, ctr);
            int t = st.downloadInts(id, 1)[0];
            assertTrue(nucleus.contains(t), "top-p drew " + t + " outside the nucleus of " + nucleus.size());
        }
        assertEquals(402L, st.downloadLongs(ctr, 1)[0], "counter incremented once per call");
    }

    @Test
    void samplingFrequenciesFollowSoftmax() {
        float[] l = {0.5f, 1.5f, -1f, 2f, 0f, 1f, -0.5f, 0.2f};
        int n = l.length, draws = 4000;
        float temp = 1.3f;
        DeviceBuffer lb = f32("logits", l), ids = out("ids", 4L * draws), ctr = arena.alloc("ctr", 8);
        st.upload(ctr, new long[] {0});
        for (int i = 0; i < draws; i++) ops.sample(ids.slice(4L * i, 4, "id"), lb, n, temp, 0, 1f, 99, ctr);
        int[] got = st.downloadInts(ids, draws);
        double z = 0;
        for (float v : l) z += Math.exp(v / temp);
        int[] cnt = new int[n];
        for (int t : got) cnt[t]++;
        for (int i = 0; i < n; i++) {
            double pr = Math.exp(l[i] / temp) / z;
            assertEquals(pr, cnt[i] / (double) draws, 0.03, "frequency of token " + i);
        }
        // top-k 3 + top-p 0.9 together renormalize over the kept set
        DeviceBuffer ids2 = out("ids2", 4L * draws);
        for (int i = 0; i < draws; i++) ops.sample(ids2.slice(4L * i, 4, "id"), lb, n, 1f, 3, 0.9f, 5, ctr);
        for (int t : st.downloadInts(ids2, draws)) assertTrue(t == 3 || t == 1 || t == 5, "top-3 drew " + t);
    }

    @Test
    void graphReplayReadsStateFromDeviceMemory() {
        int m = 300, k = 256;
        float[] w = bfRound(randn(rnd, m * k, 0.1f));
        DeviceBuffer wb = bf("W", w), xb = arena.alloc("x", 2L * k), y = out("y", 4L * m), id = out("id", 4);
        try (PinnedBuffer host = new PinnedBuffer(4);
             CudaGraph g = CudaGraph.capture("gemv+argmax", st, () -> {
                 ops.gemv(y, wb, xb, null, null, m, k);
                 ops.argmax(id, y, m);
                 st.copyAsync(host, 0, id, 4);
             })) {
            for (int step = 0; step < 3; step++) {
                float[] x = bfRound(randn(rnd, k, 1f));
                st.upload(xb, bf16(x));
                g.launch(st);
                st.synchronize();
                int want = 0;
                double best = Double.NEGATIVE_INFINITY;
                for (int r = 0; r < m; r++) {
                    double acc = 0;
                    for (int i = 0; i < k; i++) acc += (double) w[r * k + i] * x[i];
                    if (acc > best) { best = acc; want = r; }
                }
                assertEquals(want, host.buffer().getInt(0), "graph replay " + step);
            }
        }
    }

    @Test
    void arenaAccountingAndErrorsNameTheCall() {
        long before = arena.bytesInUse();
        DeviceBuffer b = arena.alloc("a", 1000);
        assertEquals(before + 1024, arena.bytesInUse());
        assertTrue(arena.peakBytes() >= arena.bytesInUse());
        assertEquals(0, b.address() % 256);
        CudaException e = assertThrows(CudaException.class, () -> arena.alloc("model.layers.0.mlp.up_proj.weight", 1L << 40));
        assertTrue(e.getMessage().contains("model.layers.0.mlp.up_proj.weight"), e.getMessage());
        CudaException f = assertThrows(CudaException.class, () -> dev.kernels().function("vf_no_such_kernel"));
        assertTrue(f.getMessage().contains("cuModuleGetFunction(vf_no_such_kernel)"), f.getMessage());
        IllegalArgumentException g = assertThrows(IllegalArgumentException.class, () -> ops.gemv(b, b, b, null, null, 10, 12));
        assertTrue(g.getMessage().contains("gemv"), g.getMessage());
        try (DeviceArena big = dev.newArena("huge", 1L << 50)) {
            fail("a 1 PiB arena cannot exist");
        } catch (CudaException ex) {
            assertTrue(ex.getMessage().contains("cudaMalloc"), ex.getMessage());
        }
    }

    @Test
    void nvrtcModuleRunsTheSameKernels() {
        KernelModule mod = KernelModule.load(dev, true);   // as -Dvlmflux.cuda.nvrtc=true
        assertTrue(mod.origin().startsWith("NVRTC"), mod.origin());
        try (GpuOps nv = new GpuOps(st, mod)) {
            int m = 64, k = 128;
            float[] w = bfRound(randn(rnd, m * k, 0.1f)), x = bfRound(randn(rnd, k, 1f));
            DeviceBuffer wb = bf("W", w), xb = bf("x", x), y1 = out("y1", 4L * m), y2 = out("y2", 4L * m);
            nv.gemv(y1, wb, xb, null, null, m, k);
            ops.gemv(y2, wb, xb, null, null, m, k);
            assertArrayEquals(st.downloadFloats(y2, m), st.downloadFloats(y1, m), 1e-6f);
        }
    }
}
