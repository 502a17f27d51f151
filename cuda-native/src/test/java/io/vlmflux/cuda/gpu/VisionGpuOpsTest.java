package io.vlmflux.cuda.gpu;

import org.junit.jupiter.api.condition.EnabledIf;
import static io.vlmflux.cuda.gpu.Ref.*;
import static org.junit.jupiter.api.Assertions.*;

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
 * The vision kernels against float64 CPU references on random bf16-rounded inputs: segment attention (tensor
 * cores; head dims with and without padding to 16, segments shorter and longer than a tile, empty segments), the
 * norms with fused residual add, the gated / plain activations, and Qwen3-VL's position-embedding blend. Outputs are poisoned with NaN before launch.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class VisionGpuOpsTest {
    static GpuStream st;
    static DeviceArena arena;
    static VisionGpuOps vops;
    static VisionGpuOps fast;   // vlmflux.vision.fastElementwise
    long mark;
    final Random rnd = new Random(99);

    @BeforeAll
    static void open() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        st = Gpu.device().newStream();
        arena = Gpu.device().newArena("vision test", 1L << 28);
        vops = new VisionGpuOps(st);
        fast = new VisionGpuOps(st, true);
    }

    @AfterAll
    static void close() {
        if (vops != null) vops.close();
        if (fast != null) fast.close();
        if (arena != null) arena.close();
        if (st != null) st.close();
    }

    @BeforeEach void mark() { mark = arena.mark(); }
    @AfterEach void release() { arena.reset(mark); }

    DeviceBuffer bfBuf(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 2L * a.length); st.upload(b, bf16(a)); return b; }
    DeviceBuffer f32(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 4L * a.length); st.upload(b, a); return b; }
    DeviceBuffer out(String n, long bytes) { DeviceBuffer b = arena.alloc(n, bytes); st.memsetAsync(b, 0xff, bytes); return b; }

    @ParameterizedTest(name = "heads {0} hd {1}")
    @CsvSource({"2, 80", "3, 24", "1, 64", "2, 128", "1, 20", "1, 200"})
    void segmentAttentionMatchesReference(int heads, int hd) {
        int[] cu = {0, 7, 7, 71, 200, 264, 265};
        int n = cu[cu.length - 1], d = heads * hd;
        float[] q = bfRound(randn(rnd, n * d, 1.5f)), k = bfRound(randn(rnd, n * d, 1.5f)), v = bfRound(randn(rnd, n * d, 1f));
        int[] tiles = VisionGpuOps.attentionTiles(cu);
        DeviceBuffer dt = arena.alloc("tiles", 4L * tiles.length);
        st.upload(dt, tiles);
        DeviceBuffer o = out("out", 2L * n * d);
        float scale = (float) (1 / Math.sqrt(hd));
        vops.attention(o, bfBuf("q", q), bfBuf("k", k), bfBuf("v", v), dt, tiles.length / 4, n, heads, hd, scale);
        float[] got = f(st.downloadShorts(o, n * d));
        double[] want = new double[n * d];
        for (int s = 0; s + 1 < cu.length; s++)
            for (int i = cu[s]; i < cu[s + 1]; i++)
                for (int h = 0; h < heads; h++) {
                    int len = cu[s + 1] - cu[s];
                    double[] p = new double[len];
                    double mx = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j < len; j++) {
                        double dot = 0;
                        for (int c = 0; c < hd; c++) dot += (double) q[i * d + h * hd + c] * k[(cu[s] + j) * d + h * hd + c];
                        p[j] = dot * scale;
                        mx = Math.max(mx, p[j]);
                    }
                    for (int j = 0; j < len; j++) { p[j] = Math.exp(p[j] - mx); sum += p[j]; }
                    for (int c = 0; c < hd; c++) {
                        double acc = 0;
                        for (int j = 0; j < len; j++) acc += p[j] / sum * v[(cu[s] + j) * d + h * hd + c];
                        want[i * d + h * hd + c] = acc;
                    }
                }
        // bf16 probabilities and output: ~1e-2 of max|v|
        assertRel("attention heads " + heads + " hd " + hd, got, want, 2e-2);
    }

    @Test
    void normsAndActivations() {
        int rows = 5, hidden = 96;
        float[] x = randn(rnd, rows * hidden, 2f), delta = randn(rnd, rows * hidden, 1f), db = randn(rnd, hidden, 0.5f);
        float[] w = randn(rnd, hidden, 1f), b = randn(rnd, hidden, 0.3f);
        for (boolean rms : new boolean[] {true, false}) {
            DeviceBuffer dx = f32("x", x), o = out("o", 2L * rows * hidden);
            vops.norm(o, dx, f32("delta", delta), f32("db", db), f32("w", w), rms ? null : f32("b", b), rows, hidden, 1e-6f, rms);
            float[] got = f(st.downloadShorts(o, rows * hidden));
            float[] xs = st.downloadFloats(dx, rows * hidden);
            double[] want = new double[rows * hidden];
            for (int r = 0; r < rows; r++) {
                double mean = 0, ss = 0;
                double[] v = new double[hidden];
                for (int i = 0; i < hidden; i++) { v[i] = x[r * hidden + i] + delta[r * hidden + i] + db[i]; mean += v[i]; }
                mean /= hidden;
                for (int i = 0; i < hidden; i++) {
                    assertEquals(v[i], xs[r * hidden + i], 1e-5, "residual written back");
                    ss += rms ? v[i] * v[i] : (v[i] - mean) * (v[i] - mean);
                }
                double inv = 1 / Math.sqrt(ss / hidden + 1e-6);
                for (int i = 0; i < hidden; i++)
                    want[r * hidden + i] = rms ? v[i] * inv * w[i] : (v[i] - mean) * inv * w[i] + b[i];
            }
            assertRel((rms ? "rms" : "layer") + " norm", got, want, 8e-3);
        }
        int cols = 37, stride = 80;
        float[] in = randn(rnd, rows * stride, 2f), bias = randn(rnd, 2 * cols, 0.5f);
        for (VisionGpuOps.Act act : VisionGpuOps.Act.values()) {
            for (boolean gated : new boolean[] {true, false}) {
                DeviceBuffer o = out("act", 2L * rows * cols);
                vops.biasAct(o, f32("in", in), f32("bias", bias), rows, cols, stride, act, gated);
                float[] got = f(st.downloadShorts(o, rows * cols));
                double[] want = new double[rows * cols];
                for (int r = 0; r < rows; r++)
                    for (int i = 0; i < cols; i++) {
                        double g = in[r * stride + i] + bias[i];
                        double a = switch (act) {
                            case SILU -> g / (1 + Math.exp(-g));
                            case QUICK_GELU -> g / (1 + Math.exp(-1.702 * g));
                            case GELU -> 0.5 * g * (1 + io.vlmflux.cuda.cpu.CpuOps.erf(g / Math.sqrt(2)));
                            case GELU_TANH -> 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g)));
                        };
                        if (gated) a *= in[r * stride + cols + i] + bias[cols + i];
                        want[r * cols + i] = a;
                    }
                assertRel(act + (gated ? " gated" : ""), got, want, 8e-3);
            }
        }
        // bf16 input (a GEMM with bf16 output): the 8-wide vector kernel (cols % 8 == 0) and the scalar one
        for (int c2 : new int[] {40, 37}) {
            int st2 = 96;
            float[] inB = bfRound(randn(rnd, rows * st2, 2f)), bias2 = randn(rnd, 2 * c2, 0.5f);
            for (boolean gated : new boolean[] {true, false}) {
                DeviceBuffer o = out("act bf16", 2L * rows * c2);
                vops.biasAct(o, bfBuf("in bf16", inB), true, f32("bias", bias2), rows, c2, st2, VisionGpuOps.Act.SILU, gated);
                float[] got = f(st.downloadShorts(o, rows * c2));
                double[] want = new double[rows * c2];
                for (int r = 0; r < rows; r++)
                    for (int i = 0; i < c2; i++) {
                        double g = inB[r * st2 + i] + bias2[i];
                        double a = g / (1 + Math.exp(-g));
                        if (gated) a *= inB[r * st2 + c2 + i] + bias2[c2 + i];
                        want[r * c2 + i] = a;
                    }
                assertRel("bf16 in, cols " + c2 + (gated ? " gated" : ""), got, want, 8e-3);
            }
        }
    }

    /**
     * The one-warp norms ({@code fastElementwise}) at widths of each instance (96 and 1,024: 8 vectors a lane, 1,152 and
     * 1,280: 10, 1,536: 12, 2,048: 16) and row counts that leave a block partly empty: the residual written back bit for
     * bit as the first kernel's, the output within one bf16 step of it and within the reference's tolerance; 2,052 values
     * (wider than the warp form) take the first kernel.
     */
    @ParameterizedTest(name = "rows {0} hidden {1}")
    @CsvSource({"5, 96", "37, 1024", "9, 1152", "16, 1280", "3, 1536", "11, 2048", "4, 2052"})
    void fastNormsMatchTheFirstKernel(int rows, int hidden) {
        assertEquals(hidden <= VisionGpuOps.NORM_WARP_MAX, VisionGpuOps.normWarpKernel(hidden) != null);
        float[] x = randn(rnd, rows * hidden, 2f), delta = randn(rnd, rows * hidden, 1f), db = randn(rnd, hidden, 0.5f);
        float[] w = randn(rnd, hidden, 1f), b = randn(rnd, hidden, 0.3f);
        for (boolean rms : new boolean[] {true, false}) {
            for (boolean withDelta : new boolean[] {true, false}) {
                DeviceBuffer x1 = f32("x first", x), x2 = f32("x fast", x), o1 = out("o first", 2L * rows * hidden), o2 = out("o fast", 2L * rows * hidden);
                DeviceBuffer dd = withDelta ? f32("delta", delta) : null, ddb = withDelta ? f32("db", db) : null, dw = f32("w", w), bb = rms ? null : f32("b", b);
                vops.norm(o1, x1, dd, ddb, dw, bb, rows, hidden, 1e-6f, rms);
                fast.norm(o2, x2, dd, ddb, dw, bb, rows, hidden, 1e-6f, rms);
                String what = (rms ? "rms" : "layer") + " norm, rows " + rows + " hidden " + hidden + (withDelta ? " + residual" : "");
                assertArrayEquals(st.downloadFloats(x1, rows * hidden), st.downloadFloats(x2, rows * hidden), what + ": residual");
                float[] first = f(st.downloadShorts(o1, rows * hidden)), got = f(st.downloadShorts(o2, rows * hidden));
                double[] want = new double[rows * hidden];
                for (int r = 0; r < rows; r++) {
                    double mean = 0, ss = 0;
                    double[] v = new double[hidden];
                    for (int i = 0; i < hidden; i++) {
                        v[i] = withDelta ? x[r * hidden + i] + delta[r * hidden + i] + db[i] : x[r * hidden + i];
                        mean += v[i];
                    }
                    mean /= hidden;
                    for (int i = 0; i < hidden; i++) ss += rms ? v[i] * v[i] : (v[i] - mean) * (v[i] - mean);
                    double inv = 1 / Math.sqrt(ss / hidden + 1e-6);
                    for (int i = 0; i < hidden; i++) want[r * hidden + i] = rms ? v[i] * inv * w[i] : (v[i] - mean) * inv * w[i] + b[i];
                }
                assertRel(what, got, want, 8e-3);
                for (int i = 0; i < got.length; i++) {
                    float tol = Math.max(Math.abs(first[i]), Math.abs(got[i])) * 0x1p-7f + 1e-5f;   // one bf16 step, or a sum-order difference near 0
                    assertTrue(Math.abs(first[i] - got[i]) <= tol, what + ", element " + i + ": first kernel " + first[i] + ", fast " + got[i]);
                }
            }
        }
    }

    /** The 16-byte rotary split gives the first kernel's bits (with and without bias; 136 = not a multiple of 16: the first kernel). */
    @ParameterizedTest(name = "n {0} heads {1} hd {2}")
    @CsvSource({"7, 2, 80", "64, 16, 80", "5, 3, 64", "3, 1, 128", "4, 2, 256", "6, 1, 136", "2, 5, 16"})
    void fastRopeSplitGivesTheFirstKernelsBits(int n, int heads, int hd) {
        int d = heads * hd;
        float[] qkv = bfRound(randn(rnd, n * 3 * d, 2f)), bias = randn(rnd, 3 * d, 0.5f), inv = new float[hd / 4];
        for (int i = 0; i < inv.length; i++) inv[i] = (float) Math.pow(10000, -4.0 * i / hd);
        int[] pos = new int[2 * n];
        for (int i = 0; i < pos.length; i++) pos[i] = rnd.nextInt(60);
        DeviceBuffer dq = bfBuf("qkv bf16", qkv), dp = arena.alloc("pos", 8L * n), di = f32("inv freq", inv), db = f32("bias", bias);
        st.upload(dp, pos);
        for (boolean withBias : new boolean[] {true, false}) {
            DeviceBuffer[] first = {out("q1", 2L * n * d), out("k1", 2L * n * d), out("v1", 2L * n * d)};
            DeviceBuffer[] got = {out("q2", 2L * n * d), out("k2", 2L * n * d), out("v2", 2L * n * d)};
            vops.ropeSplit(first[0], first[1], first[2], dq, true, withBias ? db : null, dp, di, n, heads, hd);
            fast.ropeSplit(got[0], got[1], got[2], dq, true, withBias ? db : null, dp, di, n, heads, hd);
            for (int j = 0; j < 3; j++)
                assertArrayEquals(st.downloadShorts(first[j], n * d), st.downloadShorts(got[j], n * d),
                        "qkv".charAt(j) + " of n " + n + " heads " + heads + " hd " + hd + (withBias ? " with bias" : ""));
        }
    }

    /** Qwen3-VL position blend: hidden not a multiple of 256 (two column blocks, a partial one), rows with and without bias. */
    @Test
    void positionEmbeddingBlendMatchesReference() {
        int rows = 37, hidden = 300, positions = 49;
        float[] h = randn(rnd, rows * hidden, 2f), bias = randn(rnd, hidden, 0.5f), table = randn(rnd, positions * hidden, 1f);
        int[] index = new int[4 * rows];
        float[] weight = new float[4 * rows];
        for (int i = 0; i < index.length; i++) { index[i] = rnd.nextInt(positions); weight[i] = rnd.nextFloat(); }
        DeviceBuffer dIndex = arena.alloc("index", 16L * rows);
        st.upload(dIndex, index);
        for (boolean withBias : new boolean[] {true, false}) {
            DeviceBuffer dh = f32("h", h);
            vops.posEmbedAdd(dh, withBias ? f32("bias", bias) : null, f32("table", table), positions, dIndex, f32("weight", weight), rows, hidden);
            float[] got = st.downloadFloats(dh, rows * hidden);
            double[] want = new double[rows * hidden];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < hidden; c++) {
                    double v = h[r * hidden + c] + (withBias ? bias[c] : 0);
                    for (int j = 0; j < 4; j++) v += (double) table[index[4 * r + j] * hidden + c] * weight[4 * r + j];
                    want[r * hidden + c] = v;
                }
            assertRel("position blend" + (withBias ? " + bias" : ""), got, want, 1e-5);
        }
        DeviceBuffer small = arena.alloc("small index", 16);
        var e = assertThrows(IllegalArgumentException.class,
                () -> vops.posEmbedAdd(f32("h", h), null, f32("table", table), positions, small, f32("weight", weight), rows, hidden));
        assertTrue(e.getMessage().contains("posEmbedAdd") && e.getMessage().contains("small index"), e.getMessage());
    }

    @Test
    void clearErrors() {
        DeviceBuffer small = arena.alloc("small", 64);
        var e = assertThrows(IllegalArgumentException.class, () -> vops.attention(small, small, small, small, small, 1, 8, 2, 80, 1f));
        assertTrue(e.getMessage().contains("vision attention") && e.getMessage().contains("small"), e.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class, () -> vops.attention(small, small, small, small, small, 1, 1, 1, 22, 1f));
        assertTrue(e2.getMessage().contains("head dim 22"), e2.getMessage());
        assertThrows(IllegalArgumentException.class, () -> VisionGpuOps.attentionTiles(new int[] {0, 5, 3}));
        assertArrayEquals(new int[] {0, 0, 70, 0, 64, 0, 70, 0, 70, 70, 71, 0}, VisionGpuOps.attentionTiles(new int[] {0, 70, 70, 71}));
    }
}
