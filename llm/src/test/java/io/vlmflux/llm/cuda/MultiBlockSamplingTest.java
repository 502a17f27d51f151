package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.gpu.CudaGraph;
import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuDevice;
import io.vlmflux.cuda.gpu.GpuOps;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.llm.sampling.Sampler;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The multi-block device sampler ({@link GpuOps#sample(DeviceBuffer, DeviceBuffer, int, float, int, float, float, long,
 * DeviceBuffer, DeviceBuffer)}) against the CPU {@link Sampler}'s masks: the kept set (read back from the workspace's
 * info words) and its renormalised probabilities, draw frequencies (chi-square), determinism for a fixed seed, and
 * graph replay = eager. Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why)")
class MultiBlockSamplingTest {
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
        arena = dev.newArena("sampling test", 256L << 20);
        ops = new GpuOps(st);
    }

    @AfterAll
    static void close() {
        if (ops != null) ops.close();
        if (arena != null) arena.close();
        if (st != null) st.close();
    }

    @BeforeEach void mark() { mark = arena.mark(); }
    @AfterEach void release() { arena.reset(mark); }

    /** The kernels' order-preserving key (sampling.cu vf_key). */
    static long key(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return 0;
        return Integer.toUnsignedLong(u < 0 ? ~u : (u | 0x80000000));
    }

    record Cfg(float t, int k, float p, float minP) {}

    static final Cfg[] CFGS = {
            new Cfg(1f, 0, 1f, 0f), new Cfg(0.7f, 40, 0.9f, 0.05f), new Cfg(0.7f, 0, 0.9f, 0f), new Cfg(1.3f, 0, 0.5f, 0f),
            new Cfg(0.5f, 0, 1f, 0.1f), new Cfg(1f, 50, 1f, 0f), new Cfg(0.8f, 1000, 0.95f, 0f), new Cfg(1f, 0, 0.95f, 0.02f),
            new Cfg(2f, 20, 0.8f, 0.3f), new Cfg(0.6f, 0, 1f, 0.001f), new Cfg(1.5f, 7, 1f, 0.5f), new Cfg(1f, 5000, 0.99f, 0.0001f)};

    /** CPU reference: the Sampler's masks in its order on logits / T; null entries are dropped (-inf). */
    static float[] cpuMasked(float[] l, Cfg c) {
        float[] s = new float[l.length];
        float invT = (float) (1.0 / c.t());
        for (int i = 0; i < l.length; i++) s[i] = l[i] * invT;
        if (c.k() > 0) Sampler.topK(s, c.k());
        if (c.p() < 1f) Sampler.topP(s, c.p());
        if (c.minP() > 0f) Sampler.minP(s, c.minP());
        return s;
    }

    float[] logits(Random r, int n, int shape) {
        float[] l = new float[n];
        for (int i = 0; i < n; i++) l[i] = (float) (r.nextGaussian() * (shape == 0 ? 2.0 : 1.0));
        if (shape == 1) for (int j = 0; j < 10; j++) l[r.nextInt(n)] += 8f;   // a few dominant tokens (peaked)
        if (shape == 2) for (int i = 0; i < n; i += 3) l[i] = Float.NEGATIVE_INFINITY;   // constrained (masked) rows
        return l;
    }

    DeviceBuffer f32(float[] a) { DeviceBuffer b = arena.alloc("logits", 4L * a.length); st.upload(b, a); return b; }

    @Test
    void keptSetAndProbabilitiesEqualTheCpuSampler() {
        Random r = new Random(18);
        int[] sizes = {1000, 4097, 32000, 151_936};
        for (int n : sizes) {
            DeviceBuffer ws = arena.alloc("ws", GpuOps.sampleWorkspaceBytes(n)), id = arena.alloc("id", 4), ctr = arena.alloc("ctr", 8);
            st.upload(ctr, new long[] {0});
            for (int shape = 0; shape < 3; shape++) {
                float[] l = logits(r, n, shape);
                DeviceBuffer lb = f32(l);
                for (Cfg c : CFGS) {
                    String what = "n=" + n + " shape " + shape + " " + c;
                    ops.sample(id, lb, n, c.t(), c.k(), c.p(), c.minP(), 3, ctr, ws);
                    int[] info = st.downloadInts(ws.slice(GpuOps.SAMPLE_INFO_OFFSET, 16, "info"), 4);
                    int tok = st.downloadInts(id, 1)[0];
                    long floor = Integer.toUnsignedLong(info[1]);
                    float mass = Float.intBitsToFloat(info[2]);
                    float[] ref = cpuMasked(l, c);
                    double mx = Double.NEGATIVE_INFINITY;
                    for (float v : l) mx = Math.max(mx, v);
                    // mass strictly above each token (over the top-k set), for the top-p boundary tolerance
                    List<Integer> diff = new ArrayList<>();
                    double refMass = 0;
                    for (int i = 0; i < n; i++) {
                        boolean dk = key(l[i]) >= floor && l[i] != Float.NEGATIVE_INFINITY;
                        boolean ck = ref[i] != Float.NEGATIVE_INFINITY;
                        if (ck) refMass += Math.exp((l[i] - mx) / c.t());
                        if (dk != ck) diff.add(i);
                    }
                    if (!diff.isEmpty()) {
                        // only at the top-p boundary (float rounding of the two sides); each differing token is checked to
                        // lie within 1e-4 of Z of the cut (in double) below
                        assertTrue(c.p() < 1f && diff.size() <= 16, what + ": kept sets differ at " + diff.subList(0, Math.min(10, diff.size())) + " (" + diff.size() + ")");
                        for (int i : diff) assertTrue(atTopPBoundary(l, c, i, mx), what + ": token " + i + " differs but is not at the top-p boundary");
                    }
                    assertTrue(ref[tok] != Float.NEGATIVE_INFINITY || diff.contains(tok), what + ": drew " + tok + " outside the kept set");
                    assertEquals(refMass, mass, 1e-4 * refMass + 1e-6, what + ": kept mass (renormaliser)");
                    // renormalised probabilities: device exp((l - max) / T) / mass against the CPU softmax of the masked row
                    float[] pr = ref.clone();
                    io.vlmflux.cuda.cpu.CpuOps.softmax(pr, 0, n);
                    for (int i = 0; i < n; i += Math.max(1, n / 4000))
                        if (!diff.contains(i) && ref[i] != Float.NEGATIVE_INFINITY)
                            assertEquals(pr[i], Math.exp((l[i] - mx) / c.t()) / mass, 2e-4 * pr[i] + 1e-7, what + ": p[" + i + "]");
                }
            }
        }
    }

    /** True when the mass strictly above token i (over the top-k kept set) is within float tolerance of p * Z. */
    static boolean atTopPBoundary(float[] l, Cfg c, int i, double mx) {
        float[] k = l.clone();
        float invT = (float) (1.0 / c.t());
        for (int j = 0; j < k.length; j++) k[j] *= invT;
        if (c.k() > 0) Sampler.topK(k, c.k());
        double z = 0, above = 0;
        for (int j = 0; j < k.length; j++) if (k[j] != Float.NEGATIVE_INFINITY) {
            double w = Math.exp((l[j] - mx) / c.t());
            z += w;
            if (l[j] > l[i]) above += w;
        }
        return Math.abs(above - c.p() * z) <= 1e-4 * z + Math.exp((l[i] - mx) / c.t());
    }

    @Test
    void drawsFollowTheRenormalisedDistribution() {
        Random r = new Random(7);
        Cfg[] cfgs = {new Cfg(0.7f, 40, 0.9f, 0.05f), new Cfg(1f, 0, 1f, 0f), new Cfg(1f, 0, 0.8f, 0f), new Cfg(0.9f, 0, 1f, 0.02f)};
        int n = 3000, draws = 30000;
        for (Cfg c : cfgs) {
            float[] l = logits(r, n, 0);
            if (c.k() == 0 && c.p() == 1f && c.minP() == 0f) for (int i = 0; i < n; i++) l[i] *= 0.3f;   // flat enough for counts
            DeviceBuffer lb = f32(l), ws = arena.alloc("ws", GpuOps.sampleWorkspaceBytes(n)), ids = arena.alloc("ids", 4L * draws),
                    ctr = arena.alloc("ctr", 8);
            st.upload(ctr, new long[] {0});
            for (int d = 0; d < draws; d++) ops.sample(ids.slice(4L * d, 4, "id"), lb, n, c.t(), c.k(), c.p(), c.minP(), 1234, ctr, ws);
            int[] got = st.downloadInts(ids, draws);
            assertEquals(draws, st.downloadLongs(ctr, 1)[0], "counter incremented once per draw");
            float[] pr = cpuMasked(l, c);
            io.vlmflux.cuda.cpu.CpuOps.softmax(pr, 0, n);
            int[] cnt = new int[n];
            for (int t : got) cnt[t]++;
            // chi-square with bins of expected count < 5 pooled
            double chi = 0, poolE = 0, poolO = 0;
            int df = -1;
            for (int i = 0; i < n; i++) {
                double e = pr[i] * draws;
                if (e == 0) { assertEquals(0, cnt[i], c + ": drew dropped token " + i); continue; }
                if (e < 5) { poolE += e; poolO += cnt[i]; continue; }
                chi += (cnt[i] - e) * (cnt[i] - e) / e;
                df++;
            }
            if (poolE > 0) { chi += (poolO - poolE) * (poolO - poolE) / poolE; df++; }
            assertTrue(df >= 1, c + ": too few bins");
            double h = 2.0 / (9 * df), crit = df * Math.pow(1 - h + 3.29 * Math.sqrt(h), 3);   // p ~ 0.0005
            assertTrue(chi < crit, c + ": chi-square " + chi + " over " + df + " dof exceeds " + crit);
        }
    }

    @Test
    void fixedSeedIsDeterministicAndGraphReplayEqualsEager() {
        int n = 151_936, steps = 40;
        float[] l = logits(new Random(3), n, 0);
        DeviceBuffer lb = f32(l), ws = arena.alloc("ws", GpuOps.sampleWorkspaceBytes(n)), id = arena.alloc("id", 4), ctr = arena.alloc("ctr", 8);
        Cfg[] cfgs = {new Cfg(0.7f, 40, 0.9f, 0.05f), new Cfg(1f, 0, 1f, 0f), new Cfg(1.2f, 0, 0.95f, 0f)};
        for (Cfg c : cfgs) {
            int[][] eager = new int[2][steps];
            for (int rep = 0; rep < 2; rep++) {
                st.upload(ctr, new long[] {0});
                for (int s = 0; s < steps; s++) {
                    ops.sample(id, lb, n, c.t(), c.k(), c.p(), c.minP(), 99, ctr, ws);
                    eager[rep][s] = st.downloadInts(id, 1)[0];
                }
            }
            assertArrayEquals(eager[0], eager[1], c + ": same seed, same draws");
            assertTrue(Arrays.stream(eager[0]).distinct().count() > 1, c + ": draws vary with the counter");
            st.upload(ctr, new long[] {0});
            int[] replay = new int[steps];
            try (CudaGraph g = CudaGraph.capture("sample " + c, st, () -> ops.sample(id, lb, n, c.t(), c.k(), c.p(), c.minP(), 99, ctr, ws))) {
                for (int s = 0; s < steps; s++) {
                    g.launch(st);
                    replay[s] = st.downloadInts(id, 1)[0];
                }
            }
            assertArrayEquals(eager[0], replay, c + ": graph replay = eager");
            st.upload(ctr, new long[] {0});
            int[] other = new int[steps];
            for (int s = 0; s < steps; s++) { ops.sample(id, lb, n, c.t(), c.k(), c.p(), c.minP(), 100, ctr, ws); other[s] = st.downloadInts(id, 1)[0]; }
            assertFalse(Arrays.equals(eager[0], other), c + ": another seed draws differently");
        }
        // greedy settings are the argmax
        int am = 0;
        for (int i = 1; i < n; i++) if (l[i] > l[am]) am = i;
        ops.sample(id, lb, n, 0f, 0, 1f, 0f, 1, ctr, ws);
        assertEquals(am, st.downloadInts(id, 1)[0]);
        ops.sample(id, lb, n, 1f, 1, 1f, 0f, 1, ctr, ws);
        assertEquals(am, st.downloadInts(id, 1)[0]);
    }

    /**
     * GpuOps#selectRows (a batched step's token choice, one launch a stage) = one argmax / sample call per row, in
     * order: the same ids, the same kept set of every sampled row (its workspace's info words), the same counter after.
     * Rows mix greedy, top-k = 1 and sampled settings; vocabularies of 151,936, 1,000 and 5 logits (one part, several,
     * the most), masked rows, 1 to 9 rows, two steps each (the counter carries over).
     */
    @Test
    void selectRowsEqualsOneCallPerRow() {
        Random r = new Random(23);
        for (int n : new int[] {151936, 1000, 5}) {
            for (int rows : new int[] {1, 2, 5, 9}) {
                float[] all = new float[rows * n];
                for (int i = 0; i < rows; i++) System.arraycopy(logits(new Random(40L + 7L * i + n), n, i % 3), 0, all, i * n, n);
                DeviceBuffer lb = f32(all), ids = arena.alloc("ids", 4L * rows), one = arena.alloc("id", 4),
                        ctrRows = arena.alloc("ctr rows", 8), ctrOne = arena.alloc("ctr one", 8),
                        table = arena.alloc("table", (long) GpuOps.SELECT_ROW_BYTES * rows),
                        wsRows = arena.alloc("ws rows", GpuOps.selectRowsWorkspaceBytes(n, rows)),
                        wsOne = arena.alloc("ws one", GpuOps.sampleWorkspaceBytes(n)), amWs = arena.alloc("am ws", GpuOps.argmaxWorkspaceBytes());
                st.upload(ctrRows, new long[] {5});
                st.upload(ctrOne, new long[] {5});
                for (int step = 0; step < 2; step++) {
                    Cfg[] cfg = new Cfg[rows];
                    long[] seeds = new long[rows];
                    java.nio.ByteBuffer t = java.nio.ByteBuffer.allocate(GpuOps.SELECT_ROW_BYTES * rows).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    int draws = 0;
                    for (int i = 0; i < rows; i++) {
                        int kind = r.nextInt(5);   // 0 greedy, 1 top-k 1, else sampled
                        cfg[i] = kind == 0 ? new Cfg(0f, 0, 1f, 0f) : kind == 1 ? new Cfg(0.9f, 1, 1f, 0f) : CFGS[r.nextInt(CFGS.length)];
                        seeds[i] = r.nextLong();
                        if (GpuOps.putSelectRow(t, GpuOps.SELECT_ROW_BYTES * i, cfg[i].t(), cfg[i].k(), cfg[i].p(), cfg[i].minP(), seeds[i], draws)) draws++;
                    }
                    st.upload(table, t.array());
                    ops.selectRows(ids, lb, n, rows, table, draws, ctrRows, wsRows);
                    int[] got = st.downloadInts(ids, rows);
                    for (int i = 0; i < rows; i++) {
                        DeviceBuffer li = lb.slice(4L * i * n, 4L * n, "row " + i);
                        String what = "vocab " + n + ", " + rows + " rows, step " + step + ", row " + i + " " + cfg[i];
                        boolean sampled = cfg[i].t() > 0f && cfg[i].k() != 1;
                        if (sampled) {
                            ops.sample(one, li, n, cfg[i].t(), cfg[i].k(), cfg[i].p(), cfg[i].minP(), seeds[i], ctrOne, wsOne);
                            int[] infoOne = st.downloadInts(wsOne.slice(GpuOps.SAMPLE_INFO_OFFSET, 16, "info"), 4);
                            int[] infoRow = st.downloadInts(wsRows.slice(GpuOps.sampleWorkspaceBytes(n) * i + GpuOps.SAMPLE_INFO_OFFSET, 16, "info"), 4);
                            assertArrayEquals(Arrays.copyOfRange(infoOne, 1, 4), Arrays.copyOfRange(infoRow, 1, 4), what + ": kept set, its mass, candidates");
                        } else {
                            ops.argmax(one, li, n, amWs);
                        }
                        assertEquals(st.downloadInts(one, 1)[0], got[i], what);
                    }
                    assertEquals(st.downloadLongs(ctrOne, 1)[0], st.downloadLongs(ctrRows, 1)[0], "counter after " + rows + " rows, step " + step);
                }
                arena.reset(mark);
            }
        }
    }
}
