package io.vlmflux.cuda.gpu;

import static io.vlmflux.cuda.gpu.Ref.*;
import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@code vlmflux.cuda.gemmTune}: products through cuBLASLt with a timed algorithm choice against a float64 reference
 * and against cuBLAS's own choice, at shapes the models do not have (odd row counts, widths that are not multiples of
 * 64, outputs into a wider row, operands aligned to 4 bytes only), the choice shared by every handle of the process,
 * and a capture replaying the choice bit for bit. Skips without a GPU.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class TunedGemmTest {
    static GpuDevice dev;
    static GpuStream st;
    static DeviceArena arena;
    static Blas plain, tuned, tuned2;
    long mark;
    final Random rnd = new Random(77);

    @BeforeAll
    static void open() {
        Assumptions.assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        dev = Gpu.device();
        st = dev.newStream();
        arena = dev.newArena("tuned gemm test", 1L << 30);
        plain = new Blas(st, arena.alloc("ws plain", 32 << 20));
        tuned = new Blas(st, arena.alloc("ws tuned", 32 << 20), true);
        tuned2 = new Blas(st, arena.alloc("ws tuned 2", 32 << 20), true);
    }

    @AfterAll
    static void close() {
        for (Blas b : new Blas[] {plain, tuned, tuned2}) if (b != null) b.close();
        if (arena != null) arena.close();
        if (st != null) st.close();
    }

    @BeforeEach
    void mark() { mark = arena.mark(); }

    @AfterEach
    void release() { arena.reset(mark); }

    DeviceBuffer f32(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 4L * a.length + 256); st.upload(b, a); return b; }
    DeviceBuffer bf(String n, float[] a) { DeviceBuffer b = arena.alloc(n, 2L * a.length + 256); st.upload(b, bf16(a)); return b; }

    /** The float64 product y0 (+)= x w^T at row stride ldy, columns [0, m) of each row. */
    static double[] reference(float[] x, float[] w, float[] y0, int n, int m, int k, int ldy, boolean accumulate) {
        double[] want = new double[n * m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) {
                double acc = accumulate ? y0[i * ldy + j] : 0;
                for (int t = 0; t < k; t++) acc += (double) x[i * k + t] * w[j * k + t];
                want[i * m + j] = acc;
            }
        return want;
    }

    static float[] columns(float[] y, int n, int m, int ldy) {
        float[] r = new float[n * m];
        for (int i = 0; i < n; i++) System.arraycopy(y, i * ldy, r, i * m, m);
        return r;
    }

    /** fp32 output, plain and accumulating, into rows of y as wide as m or wider, y offset by {@code yOffset} bytes. */
    @ParameterizedTest
    @CsvSource({"64,256,128,256,false,0", "300,1280,1280,1280,false,0", "97,200,136,200,true,0", "130,96,264,160,true,0",
            "77,64,72,64,false,4", "513,48,40,56,true,4"})
    void fp32ProductsMatchTheReferenceAndCublas(int n, int m, int k, int ldy, boolean accumulate, int yOffset) {
        float[] x = bfRound(randn(rnd, n * k, 1f)), w = bfRound(randn(rnd, m * k, 0.1f)), y0 = randn(rnd, n * ldy, 1f);
        DeviceBuffer xb = bf("x", x), wb = bf("w", w);
        DeviceBuffer ya = f32("y plain", y0), yb = arena.alloc("y tuned", 4L * y0.length + 256);
        DeviceBuffer yts = yb.slice(yOffset, yb.bytes() - yOffset, "y tuned");   // aligned to yOffset bytes when not 0
        st.upload(yts, y0);
        plain.matmulNT(ya, ldy, xb, wb, n, m, k, accumulate);
        tuned.matmulNT(yts, ldy, xb, wb, n, m, k, accumulate);
        float[] gotPlain = st.downloadFloats(ya, n * ldy), gotTuned = st.downloadFloats(yts, n * ldy);
        double[] want = reference(x, w, y0, n, m, k, ldy, accumulate);
        assertRel("cuBLAS", columns(gotPlain, n, m, ldy), want, 1e-4);
        assertRel("tuned cuBLASLt", columns(gotTuned, n, m, ldy), want, 1e-4);
        for (int i = 0; i < n; i++)   // the columns past m are not written
            for (int j = m; j < ldy; j++) assertEquals(y0[i * ldy + j], gotTuned[i * ldy + j], "row " + i + " column " + j + " past m");
    }

    /** bf16 output: one rounding of the fp32 sum, so at most one bf16 step from cuBLAS's result. */
    @ParameterizedTest
    @CsvSource({"1024,3840,1280", "256,5120,5120", "391,336,80", "64,64,64"})
    void bf16ProductsMatchCublasWithinOneRounding(int n, int m, int k) {
        float[] x = bfRound(randn(rnd, n * k, 1f)), w = bfRound(randn(rnd, m * k, 0.05f));
        DeviceBuffer xb = bf("x", x), wb = bf("w", w);
        DeviceBuffer ya = arena.alloc("y plain", 2L * n * m), yt = arena.alloc("y tuned", 2L * n * m);
        plain.matmulNTbf16(ya, xb, wb, n, m, k);
        tuned.matmulNTbf16(yt, xb, wb, n, m, k);
        float[] a = f(st.downloadShorts(ya, n * m)), t = f(st.downloadShorts(yt, n * m));
        for (int i = 0; i < a.length; i++) {
            float tol = Math.max(Math.abs(a[i]), Math.abs(t[i])) * 0x1p-7f + 1e-6f;
            assertTrue(Math.abs(a[i] - t[i]) <= tol, "element " + i + ": cuBLAS " + a[i] + ", tuned " + t[i]);
        }
    }

    /**
     * The residual-stream update y += x w^T + bias in one cuBLASLt call (the bias in the epilogue, or none), against the
     * float64 reference; a plain handle, and a tuned one below the row threshold, enqueue nothing and say so.
     */
    @ParameterizedTest
    @CsvSource({"1024,1280,1280,true", "391,1280,3456,true", "100,72,40,false", "64,64,64,true"})
    void accumulateWithBiasInTheEpilogue(int n, int m, int k, boolean withBias) {
        float[] x = bfRound(randn(rnd, n * k, 1f)), w = bfRound(randn(rnd, m * k, 0.05f)), y0 = randn(rnd, n * m, 2f), b = randn(rnd, m, 0.5f);
        DeviceBuffer xb = bf("x", x), wb = bf("w", w), y = f32("y", y0), bias = withBias ? f32("bias", b) : null;
        assertFalse(plain.matmulNTBias(y, xb, wb, bias, n, m, k, true), "a handle that does not tune");
        assertFalse(tuned.matmulNTBias(y, xb, wb, bias, TunedGemm.MIN_ROWS - 1, m, k, true), "fewer rows than the threshold");
        assertArrayEquals(y0, st.downloadFloats(y, n * m), "nothing enqueued where false");
        boolean done = tuned.matmulNTBias(y, xb, wb, bias, n, m, k, true);
        if (m % 64 == 0 && k % 64 == 0) assertTrue(done, "cuBLASLt takes the models' shapes");
        if (!done) {   // an odd shape cuBLASLt has no algorithm for: nothing enqueued, the caller adds it its own way
            assertArrayEquals(y0, st.downloadFloats(y, n * m));
            return;
        }
        double[] want = reference(x, w, y0, n, m, k, m, true);
        if (withBias) for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) want[i * m + j] += b[j];
        assertRel("y += x w^T" + (withBias ? " + bias" : ""), st.downloadFloats(y, n * m), want, 1e-4);
    }

    /**
     * y bf16 = GELU(x w^T + bias) in one cuBLASLt call (the Qwen3-VL tower's MLP: the tanh form), against the float64
     * reference within bf16 rounding; a handle that does not tune enqueues nothing. Whether cuBLASLt takes it (bias fp32
     * with a bf16 output) is printed: where it does not, the encoder keeps its separate bias + GELU kernel.
     */
    @ParameterizedTest
    @CsvSource({"1024,4096,1024", "300,4352,1152", "97,200,136"})
    void biasAndGeluInTheEpilogue(int n, int m, int k) {
        float[] x = bfRound(randn(rnd, n * k, 1f)), w = bfRound(randn(rnd, m * k, 0.05f)), b = randn(rnd, m, 0.5f);
        DeviceBuffer xb = bf("x", x), wb = bf("w", w), bias = f32("bias", b), y = arena.alloc("y", 2L * n * m + 256);
        st.memsetAsync(y, 0, 2L * n * m);
        assertFalse(plain.matmulNTbf16BiasGelu(y, xb, wb, bias, n, m, k));
        boolean done = tuned.matmulNTbf16BiasGelu(y, xb, wb, bias, n, m, k);
        System.err.println("bias + GELU epilogue at " + n + " x " + m + " x " + k + ": " + (done ? "cuBLASLt" : "not taken (cuBLAS + the kernel)"));
        float[] got = f(st.downloadShorts(y, n * m));
        if (!done) {
            for (float v : got) assertEquals(0f, v, "nothing enqueued where false");
            return;
        }
        double[] want = reference(x, w, null, n, m, k, m, false);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) {
                double v = want[i * m + j] + b[j];
                want[i * m + j] = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            }
        assertRel("gelu(x w^T + bias)", got, want, 1e-2);
    }

    /** Below the row threshold the tuned handle is cuBLAS itself: the same bits. */
    @Test
    void fewRowsKeepCublasBits() {
        int n = TunedGemm.MIN_ROWS - 1, m = 192, k = 200;
        float[] x = bfRound(randn(rnd, n * k, 1f)), w = bfRound(randn(rnd, m * k, 0.1f));
        DeviceBuffer xb = bf("x", x), wb = bf("w", w), ya = arena.alloc("y plain", 4L * n * m), yt = arena.alloc("y tuned", 4L * n * m);
        plain.matmulNT(ya, xb, wb, n, m, k, false);
        tuned.matmulNT(yt, xb, wb, n, m, k, false);
        assertArrayEquals(st.downloadFloats(ya, n * m), st.downloadFloats(yt, n * m));
    }

    /**
     * The choice is the process's: a second handle computes the same bits, a row count of the same bucket reuses it
     * (listed once in the report), and a graph captured after the first eager product replays the same bits.
     */
    @Test
    void theChoiceIsSharedAndCapturedGraphsReplayIt() {
        int n = 200, n2 = 180, m = 704, k = 512;
        float[] x = bfRound(randn(rnd, n * k, 1f)), w = bfRound(randn(rnd, m * k, 0.1f));
        DeviceBuffer xb = bf("x", x), wb = bf("w", w);
        DeviceBuffer y1 = arena.alloc("y1", 4L * n * m), y2 = arena.alloc("y2", 4L * n * m), y3 = arena.alloc("y3", 4L * n * m);
        tuned.matmulNT(y1, xb, wb, n, m, k, false);
        tuned2.matmulNT(y2, xb, wb, n, m, k, false);
        float[] a = st.downloadFloats(y1, n * m);
        assertArrayEquals(a, st.downloadFloats(y2, n * m), "a second handle of the process takes the same algorithm");
        st.memsetAsync(y3, 0xff, 4L * n * m);
        try (CudaGraph g = CudaGraph.capture("tuned gemm", st, () -> tuned.matmulNT(y3, xb, wb, n, m, k, false))) {
            g.launch(st);
            assertArrayEquals(a, st.downloadFloats(y3, n * m), "the captured product replays the tuned algorithm");
        }
        tuned.matmulNT(y2, xb, wb, n2, m, k, false);   // same bucket (256), fewer rows
        assertRel("a row count of the same bucket", st.downloadFloats(y2, n2 * m), reference(x, w, null, n2, m, k, m, false), 1e-4);
        List<String> report = Blas.tuningReport();
        String line = "rows<=256 m=" + m + " k=" + k + " fp32: ";
        assertEquals(1, report.stream().filter(l -> l.startsWith(line)).count(), "one tuning for the bucket: " + report);
        System.err.println(String.join("\n", report));
    }
}
