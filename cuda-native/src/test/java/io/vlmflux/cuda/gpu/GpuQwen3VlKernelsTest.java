package io.vlmflux.cuda.gpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static io.vlmflux.cuda.gpu.Ref.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The Qwen3-VL decoder kernels against CPU references: interleaved M-RoPE in {@code vf_rope_qkv} (transformers'
 * {@code apply_interleaved_mrope}: frequency j uses h when {@code j%3==1 && j<3*h}, w when {@code j%3==2 && j<3*w},
 * t otherwise; the reference here computes that rule itself) over head dims, sections and positions, and the DeepStack
 * row add {@code vf_add_rows_f32}. Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class GpuQwen3VlKernelsTest {
    static GpuDevice dev;
    static GpuStream st;
    static DeviceArena arena;
    static GpuOps ops;
    long mark;

    @BeforeAll
    static void open() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        dev = Gpu.device();
        st = dev.newStream();
        arena = dev.newArena("qwen3-vl kernels test", 256L << 20);
        ops = new GpuOps(st);
        System.err.println("GPU " + dev + ", kernels: " + ops.kernelOrigin());
    }

    @AfterAll
    static void close() {
        if (ops != null) ops.close();
        if (arena != null) arena.close();
        if (st != null) st.close();
    }

    @BeforeEach void mark() { mark = arena.mark(); }
    @AfterEach void release() { arena.reset(mark); }

    DeviceBuffer f32(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 4L * a.length); st.upload(b, a); return b; }
    DeviceBuffer bf(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 2L * a.length); st.upload(b, bf16(a)); return b; }
    DeviceBuffer i32(String n, int... a) { DeviceBuffer b = arena.alloc(n, 4L * a.length); st.upload(b, a); return b; }
    DeviceBuffer out(String n, long bytes) { DeviceBuffer b = arena.alloc(n, bytes); st.memsetAsync(b, 0xff, bytes); return b; }

    /** transformers' apply_interleaved_mrope, written out. */
    static int axis(int j, int[] section) {
        if (j % 3 == 1 && j < 3 * section[1]) return 1;
        if (j % 3 == 2 && j < 3 * section[2]) return 2;
        return 0;
    }

    /** nq, nkv, hd, section t/h/w, qk norm, seed: positions random per axis, cache written at an offset. */
    @ParameterizedTest(name = "nq {0} nkv {1} hd {2} sections {3}/{4}/{5} norm {6}")
    @CsvSource({"4,2,128,24,20,20,true,1", "2,1,24,4,4,4,true,2", "8,2,64,12,10,10,false,3", "4,4,80,14,13,13,true,4",
            "2,2,256,48,40,40,false,5", "3,1,32,8,4,4,true,6", "4,2,128,16,24,24,false,7", "2,1,64,32,0,0,true,8"})
    void interleavedMropeMatchesCpu(int nq, int nkv, int hd, int st0, int sh, int sw, boolean norm, long seed) {
        Random rnd = new Random(seed);
        int n = 3 + rnd.nextInt(9), maxSeq = 64, start = rnd.nextInt(20);
        int[] section = {st0, sh, sw};
        int[] enc = GpuOps.interleavedSections(section);
        GpuOps.AttnShape s = new GpuOps.AttnShape(nq, nkv, hd, maxSeq);
        int qs = (nq + 2 * nkv) * hd;
        float[] qkv = randn(rnd, n * qs, 1f);
        float[] qn = bfRound(randn(rnd, hd, 1f)), kn = bfRound(randn(rnd, hd, 1f));
        int[] pos = new int[3 * n];
        for (int i = 0; i < pos.length; i++) pos[i] = rnd.nextInt(300);
        float[] inv = Rope.invFreq(hd, 5_000_000);
        DeviceBuffer qkvB = f32("qkv", qkv);
        DeviceBuffer qOut = out("qOut", 4L * n * nq * hd);
        DeviceBuffer kc = out("kc", s.cacheBytes()), vc = out("vc", s.cacheBytes());
        float eps = 1e-6f;
        ops.ropeQkv(qOut, kc, vc, qkvB, qs, qkvB.slice(4L * nq * hd, qkvB.bytes() - 4L * nq * hd, "k"), qs,
                qkvB.slice(4L * (nq + nkv) * hd, qkvB.bytes() - 4L * (nq + nkv) * hd, "v"), qs,
                i32("pos", pos), n, enc[0], enc[1], f32("inv", inv), i32("start", start), n, s,
                norm ? bf("qn", qn) : null, norm ? bf("kn", kn) : null, eps);
        float[] gq = st.downloadFloats(qOut, n * nq * hd);
        float[] gk = f(st.downloadShorts(kc, nkv * maxSeq * hd));
        double[][] want = Ref.ropeQk(qkv, n, nq, nkv, hd, norm ? qn : null, norm ? kn : null, eps, pos, j -> axis(j, section), inv);
        double[] wq = want[0], wk = want[1];
        float[] gkSel = Ref.cacheRows(gk, n, nkv, hd, maxSeq, start);
        assertRel("interleaved rope q (sections " + st0 + "/" + sh + "/" + sw + ", hd " + hd + ")", gq, wq, 2e-5);
        assertRel("interleaved rope k, bf16 cache (sections " + st0 + "/" + sh + "/" + sw + ", hd " + hd + ")", gkSel, wk, 4e-3);
        if (start > 0) assertTrue(Float.isNaN(gk[(start - 1) * hd]), "cache slot before start untouched");
    }

    /** rows, hidden, row0 (in a chunk of rows + row0 + 2) : dst rows [row0, row0+rows) get src added, the others stay. */
    @ParameterizedTest(name = "rows {0} hidden {1} row0 {2}")
    @CsvSource({"1,8,0", "7,64,3", "16,1000,0", "33,2048,5", "5,13,1"})
    void addRowsAddsOnlyTheSpan(int rows, int hidden, int row0) {
        Random rnd = new Random(rows * 31L + hidden);
        int total = rows + row0 + 2;
        float[] x = randn(rnd, total * hidden, 1f), add = randn(rnd, rows * hidden, 1f);
        DeviceBuffer xb = f32("x", x);
        ops.addRows(xb, total, f32("add", add), row0, rows, hidden);
        float[] got = st.downloadFloats(xb, total * hidden);
        for (int r = 0; r < total; r++)
            for (int i = 0; i < hidden; i++) {
                boolean in = r >= row0 && r < row0 + rows;
                float want = in ? x[r * hidden + i] + add[(r - row0) * hidden + i] : x[r * hidden + i];
                assertEquals(want, got[r * hidden + i], 0f, "row " + r + " col " + i + (in ? " (span)" : " (outside the span)"));
            }
        assertThrows(IllegalArgumentException.class, () -> ops.addRows(xb, total, xb, total - rows + 1, rows, hidden), "rows past the end");
    }
}
