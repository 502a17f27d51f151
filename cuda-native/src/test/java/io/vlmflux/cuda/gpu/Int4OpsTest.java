package io.vlmflux.cuda.gpu;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.cpu.Int4Weights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static io.vlmflux.cuda.gpu.Ref.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The W4A16 kernels of int4.cu against a straightforward dequantize-to-float product in float64 on the CPU: the
 * GEMV for 1..8 rows (row strides wider than m/k, bias, residual aliasing y), group sizes 32/64/128, symmetric and
 * asymmetric zero points, act-order permutations, widths that are not a multiple of the 16 rows a block serves; and
 * the prefill dequantization to bf16 element by element. Fused matrices (q/k/v, gate/up) whose parts have different
 * act-order permutations (one per GPTQ linear): the per-part gather, the GEMV's row blocks and warps picking their
 * part (part boundaries inside a block and inside a warp's row pair, an unpermuted part, equal neighbours sharing one,
 * four parts) and the per-part dequantization scatter, against each part's own dequantized product. The tensor-core
 * GEMV's persistent form ({@code vlmflux.cuda.int4Persistent}) bit for bit against its one-tile-a-block form; the ring
 * GEMV ({@code vlmflux.cuda.int4Ring}, sm_90+) on every tiled case against the same reference.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class Int4OpsTest {
    static GpuStream st;
    static DeviceArena arena;
    static Int4Ops ops;      // today's defaults: the tensor-core GEMV where the matrix allows it
    static Int4Ops fp32Ops;  // vlmflux.cuda.int4Mma=false: the fp32 GEMV everywhere
    static Int4Ops persistentOps;  // vlmflux.cuda.int4Persistent=true: the tensor-core GEMV's resident-block form
    static Int4Ops ringOps;  // vlmflux.cuda.int4Ring=true: tiled matrices take the ring GEMV where the device has it

    @BeforeAll
    static void open() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        st = Gpu.device().newStream();
        arena = Gpu.device().newArena("int4 test", 1L << 27);
        ops = new Int4Ops(st, 8192, Tuning.defaults());
        fp32Ops = new Int4Ops(st, 8192, Tuning.defaults().with(Tuning.INT4_MMA, "false"));
        persistentOps = new Int4Ops(st, 8192, Tuning.defaults().with(Tuning.INT4_PERSISTENT, "true"));
        ringOps = new Int4Ops(st, 8192, Tuning.defaults().with(Tuning.INT4_RING, "true"));
    }

    @AfterAll
    static void close() {
        if (ops != null) ops.close();
        if (fp32Ops != null) fp32Ops.close();
        if (persistentOps != null) persistentOps.close();
        if (ringOps != null) ringOps.close();
        if (arena != null) arena.close();
        if (st != null) st.close();
    }

    static Int4Weights random(Random rnd, int m, int k, int gs, boolean sym, boolean actOrder) {
        int groups = k / gs;
        byte[] q = new byte[m * k];
        for (int i = 0; i < q.length; i++) q[i] = (byte) rnd.nextInt(16);
        int[] colGroup = new int[k];
        for (int c = 0; c < k; c++) colGroup[c] = c / gs;
        if (actOrder)
            for (int c = k - 1; c > 0; c--) { int j = rnd.nextInt(c + 1); int t = colGroup[c]; colGroup[c] = colGroup[j]; colGroup[j] = t; }
        float[] s = new float[m * groups], z = new float[m * groups];
        for (int i = 0; i < s.length; i++) {
            s[i] = Float.float16ToFloat(Float.floatToFloat16(0.002f + rnd.nextFloat() * 0.03f));
            z[i] = sym ? 8 : rnd.nextInt(16);
        }
        return Int4Weights.of("w", m, k, q, colGroup, groups, s, z);
    }

    /**
     * Both GEMVs on every case: the fp32 one everywhere, the tensor-core one where {@link Int4Device#mmaShape()} takes
     * the matrix (groups of a multiple of 128 columns, here 128, 256 and per-channel; row counts that are not a multiple
     * of its 16-row tiles; 1..8 input rows; act-order through the gathered input), and there also on the same matrix
     * stored in 16 x 128 tiles ({@link Int4Device#tiled()}, {@code vf_int4_gemv_mma_t}), whose prefill dequantization
     * must give the untiled one's matrix.
     */
    @ParameterizedTest(name = "rows {0} m {1} k {2} gs {3} sym {4} actOrder {5} bias {6} residual {7}")
    @CsvSource({"1, 13, 64, 32, true, false, false, false", "1, 300, 1024, 128, false, false, true, true",
            "1, 64, 2048, 64, true, true, true, true", "1, 17, 4096, 128, false, true, false, true",
            "2, 33, 256, 32, false, false, true, false", "3, 100, 384, 128, true, false, false, true",
            "4, 257, 1024, 64, false, true, true, true", "5, 9, 96, 32, true, false, true, false",
            "6, 128, 2048, 128, false, false, false, true", "7, 31, 192, 64, true, true, true, true",
            "8, 1000, 512, 128, false, false, true, true", "8, 40, 3072, 32, false, true, false, false",
            "1, 4099, 1536, 256, false, false, false, true", "2, 24, 640, 640, true, false, true, false",
            "4, 515, 3584, 128, false, false, true, false", "8, 7, 896, 128, true, true, false, true",
            "3, 2053, 8192, 128, false, false, false, false", "5, 160, 1280, 256, true, false, true, true",
            "1, 300, 11008, 128, false, false, true, true", "2, 77, 18944, 128, false, false, false, true",
            "2, 20000, 256, 128, false, false, true, true"})   // 1,250 tiles: more than the persistent GEMV's resident blocks
    void gemvMatchesDequantizedReference(int rows, int m, int k, int gs, boolean sym, boolean actOrder, boolean withBias, boolean withResidual) {
        Random rnd = new Random(rows * 131L + m * 7L + k);
        long mark = arena.mark();
        try {
            Int4Weights w = random(rnd, m, k, gs, sym, actOrder);
            Int4Device dw = Int4Device.upload(st, arena, Int4Device.Layout.of(w));
            assertEquals(k % 128 == 0 && gs % 128 == 0, dw.mmaShape(), "which matrices the tensor-core GEMV takes");
            int ldx = k + 8 * (rows % 2), ldy = m + 3 * (rows % 3);   // strides wider than the rows on some cases
            float[] x = bfRound(randn(rnd, rows * ldx, 1f));
            float[] bias = randn(rnd, m, 1f), y0 = randn(rnd, rows * ldy, 1f);
            float[] wf = w.dequantize();
            Int4Device tw = dw.mmaShape() ? Int4Device.upload(st, arena, dw.layout(), true) : null;
            assertEquals(dw.mmaShape(), tw != null && tw.tiled(), "a matrix the tensor-core GEMV takes is stored in tiles on request");
            boolean ring = ringOps.ring();   // the device has the ring GEMV (sm_90+ native code)
            for (int pi = 0; pi < (dw.mmaShape() ? (ring ? 5 : 3) : 1); pi++) {
                // the fp32 GEMV; the tensor-core one; the tiled one (taken by a tiled matrix whatever the launcher's
                // tuning); the ring one on the tiles, a warp a stripe and K split over a block's warps
                Int4Ops o = pi == 1 ? ops : pi >= 3 ? ringOps : fp32Ops;
                if (pi >= 3) ringOps.ringOnly(pi == 3 ? Int4Ops.RING : Int4Ops.RING_SPLIT);
                String path = new String[]{"fp32 GEMV: ", "tensor-core GEMV: ", "tiled tensor-core GEMV: ", "ring GEMV, a warp a stripe: ",
                        "ring GEMV, K split over a block's warps: "}[pi];
                float[] y = gemvOnDevice(o, pi >= 2 ? tw : dw, x, bias, y0, rows, m, ldx, ldy, withBias, withResidual);
                for (int b = 0; b < rows; b++)
                    for (int j = 0; j < m; j++) {
                        double s = 0, mag = 0;
                        for (int t = 0; t < k; t++) { double p = (double) x[b * ldx + t] * wf[j * k + t]; s += p; mag += Math.abs(p); }
                        if (withResidual) s += y0[b * ldy + j];
                        if (withBias) s += bias[j];
                        assertEquals(s, y[b * ldy + j], 2e-5 * (mag + 1), path + "row " + b + " col " + j);
                    }
                for (int b = 0; b < rows; b++)   // the padding between rows is never written
                    for (int j = m; j < ldy; j++) assertEquals(y0[b * ldy + j], y[b * ldy + j], path + "padding at row " + b + " col " + j);
                if (pi == 1 || pi == 2)   // the resident-block form: the same columns in the same order, so the same bits
                    assertArrayEquals(y, gemvOnDevice(persistentOps, pi == 2 ? tw : dw, x, bias, y0, rows, m, ldx, ldy, withBias, withResidual),
                            "persistent " + path + "y bit for bit");
            }
            if (tw != null) {   // the prefill dequantization of the tiles: the same bf16 matrix
                DeviceBuffer du = arena.alloc("W bf16 untiled", 2L * m * k), dt = arena.alloc("W bf16 tiled", 2L * m * k);
                ops.dequantize(du, dw);
                ops.dequantize(dt, tw);
                short[] whole = st.downloadShorts(du, m * k);
                assertArrayEquals(whole, st.downloadShorts(dt, m * k), "prefill dequantization of the tiles");
                // row slices (int4PrefillChunkKiB): stripes of 16 rows, the last one partial, equal the whole matrix's rows
                DeviceBuffer ds = arena.alloc("W bf16 rows", 2L * 32 * k);
                if (!actOrder)
                    for (Int4Device d : new Int4Device[]{dw, tw})
                        for (int r0 = 0; r0 < m; r0 += 32) {
                            int r1 = Math.min(m, r0 + 32);
                            ops.dequantizeRows(ds, d, r0, r1);
                            assertArrayEquals(java.util.Arrays.copyOfRange(whole, r0 * k, r1 * k), st.downloadShorts(ds, (r1 - r0) * k),
                                    (d.tiled() ? "tiled" : "row-major") + " rows [" + r0 + ", " + r1 + ") dequantized alone");
                        }
            }
        } finally {
            arena.reset(mark);
        }
    }

    /** y = x W^T (+ bias) (+ y0 as the residual) on the device, x bf16 rows of stride ldx, y fp32 rows of stride ldy. */
    private float[] gemvOnDevice(Int4Ops o, Int4Device dw, float[] x, float[] bias, float[] y0, int rows, int m, int ldx, int ldy,
                                 boolean withBias, boolean withResidual) {
        DeviceBuffer dx = arena.alloc("x", 2L * rows * ldx), db = arena.alloc("bias", 4L * m), dy = arena.alloc("y", 4L * rows * ldy);
        st.upload(dx, bf16(x));
        st.upload(db, bias);
        st.upload(dy, y0);
        o.gemv(dy, ldy, dw, dx, ldx, withBias ? db : null, withResidual ? dy : null, rows);
        return st.downloadFloats(dy, rows * ldy);
    }

    @ParameterizedTest(name = "rows {0} parts {1} k {2} gs {3} sym {4}")
    @CsvSource({"1, 64:a/32:a/32:a, 256, 64, true", "3, 13:a/7:a/20:a, 128, 32, false", "8, 300:a/300:a, 1024, 128, false",
            "2, 33:n/17:a/15:a, 192, 64, true", "5, 16:a/16:=/9:a, 96, 32, false", "4, 5:a/6:a/7:a/8:a, 64, 32, true",
            "1, 512:a/128:a/128:a, 2048, 128, true", "6, 384:a/384:a, 128, 32, false", "8, 31:a/1:a/32:n, 64, 32, false"})
    void fusedPartsWithTheirOwnPermutationsMatchEachPart(int rows, String parts, int k, int gs, boolean sym) {
        Random rnd = new Random(parts.hashCode() * 17L + rows * 131L + k);
        long mark = arena.mark();
        try {
            Int4Weights[] w = Int4LayoutTest.parts(rnd, parts, k, gs, sym);
            Int4Device.Layout l = Int4LayoutTest.fused(w);
            assertTrue(l.permParts() > 1, "the case has several permutations: " + parts);
            Int4Device dw = Int4Device.upload(st, arena, l);
            int m = l.rows(), ldx = k + 8 * (rows % 2), ldy = m + 3 * (rows % 3);
            float[] wf = Int4LayoutTest.stacked(w);
            float[] x = bfRound(randn(rnd, rows * ldx, 1f));
            float[] bias = randn(rnd, m, 1f), y0 = randn(rnd, rows * ldy, 1f);
            float[] y = gemvOnDevice(ops, dw, x, bias, y0, rows, m, ldx, ldy, true, true);
            for (int b = 0; b < rows; b++) {
                for (int j = 0; j < m; j++) {
                    double s = y0[b * ldy + j] + bias[j], mag = 0;
                    for (int t = 0; t < k; t++) { double p = (double) x[b * ldx + t] * wf[j * k + t]; s += p; mag += Math.abs(p); }
                    assertEquals(s, y[b * ldy + j], 2e-5 * (mag + 1), "row " + b + " output " + j + " (part " + l.partOf(j) + ")");
                }
                for (int j = m; j < ldy; j++) assertEquals(y0[b * ldy + j], y[b * ldy + j], "padding at row " + b + " col " + j);
            }
            // prefill: the dequantized bf16 matrix, each row through its part's permutation
            DeviceBuffer out = arena.alloc("W bf16", 2L * m * k);
            ops.dequantize(out, dw);
            float[] got = f(st.downloadShorts(out, m * k));
            for (int i = 0; i < wf.length; i++) assertEquals(roundBf16(wf[i]), got[i], "element [" + i / k + ", " + i % k + "]");
        } finally {
            arena.reset(mark);
        }
    }

    @ParameterizedTest(name = "m {0} k {1} gs {2} sym {3} actOrder {4}")
    @CsvSource({"5, 64, 32, true, false", "77, 1024, 128, false, false", "33, 512, 64, false, true", "16, 2048, 128, true, true"})
    void dequantizeMatchesReference(int m, int k, int gs, boolean sym, boolean actOrder) {
        Random rnd = new Random(m * 31L + k);
        long mark = arena.mark();
        try {
            Int4Weights w = random(rnd, m, k, gs, sym, actOrder);
            Int4Device dw = Int4Device.upload(st, arena, Int4Device.Layout.of(w));
            DeviceBuffer out = arena.alloc("W bf16", 2L * m * k);
            ops.dequantize(out, dw);
            float[] got = f(st.downloadShorts(out, m * k));
            float[] ref = w.dequantize();
            for (int i = 0; i < ref.length; i++) assertEquals(roundBf16(ref[i]), got[i], "element [" + i / k + ", " + i % k + "]");
        } finally {
            arena.reset(mark);
        }
    }
}
