package io.vlmflux.llm.quant;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.cpu.CpuMatrix;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.cpu.Int4Weights;
import io.vlmflux.cuda.cpu.Parallel;
import io.vlmflux.cuda.safetensors.TensorView;

import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The CPU W4A16 matmul against bf16 on the same shape ({@code vlmflux bench int4}): random weights, the bf16 matrix
 * holding the int4 matrix's dequantized values; median of 5 timed passes after a warm-up.
 */
public final class Int4MatmulBench {
    private Int4MatmulBench() {}

    /** @param inputs comma-separated input rows per call (1 = decode GEMV) */
    public static void run(int rows, int cols, int gs, boolean actOrder, String inputs, double seconds, PrintStream out) {
        SplittableRandom r = new SplittableRandom(1);
        int groups = cols / gs;
        byte[] q = new byte[rows * cols];
        for (int i = 0; i < q.length; i++) q[i] = (byte) r.nextInt(16);
        float[] s = new float[rows * groups], z = new float[rows * groups];
        for (int i = 0; i < s.length; i++) { s[i] = 0.001f; z[i] = r.nextInt(16); }
        int[] g = new int[cols];
        int[] perm = new int[cols];
        for (int i = 0; i < cols; i++) perm[i] = i;
        if (actOrder) for (int i = cols - 1; i > 0; i--) { int j = r.nextInt(i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        for (int i = 0; i < cols; i++) g[perm[i]] = i / gs;
        Int4Weights w4 = Int4Weights.of("bench", rows, cols, q, g, groups, s, z);
        CpuMatrix m4 = CpuMatrix.of(w4);
        Arena arena = Arena.ofAuto();
        MemorySegment seg = arena.allocate(2L * rows * cols, 64);
        float[] dq = w4.dequantize();
        for (long i = 0; i < (long) rows * cols; i++) seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * i, DType.floatToBf16(dq[(int) i]));
        CpuMatrix mb = CpuMatrix.of(new TensorView("bench", DType.BF16, new long[]{rows, cols}, seg, null));
        out.printf(Locale.ROOT, "int4 bench: [%d, %d] group %d%s, int4 layout lanes %d, threads %d, kernels %s%n", rows, cols, gs,
                actOrder ? " act-order" : "", w4.lanes(), Parallel.threads(), CpuOps.kernels());
        for (String ns : inputs.split(",")) {
            int n = Integer.parseInt(ns.trim());
            float[] x = new float[n * cols];
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            float[] o4 = new float[n * rows], ob = new float[n * rows];
            double t4 = time(() -> CpuOps.matmul(o4, x, n, m4, null), seconds), tb = time(() -> CpuOps.matmul(ob, x, n, mb, null), seconds);
            double diff = 0, mag = 0;
            for (int i = 0; i < o4.length; i++) { diff = Math.max(diff, Math.abs(o4[i] - ob[i])); mag = Math.max(mag, Math.abs(ob[i])); }
            double macs = (double) rows * cols * n;
            out.printf(Locale.ROOT, "  n=%-3d int4 %8.3f ms (%6.2f GB/s packed, %6.2f GMAC/s) | bf16 %8.3f ms (%6.2f GB/s, %6.2f GMAC/s) | int4 speed-up %.2fx | max |diff| %.2g of %.2g%n",
                    n, t4 * 1e3, w4.bytes() / t4 / 1e9, macs / t4 / 1e9, tb * 1e3, 2.0 * rows * cols / tb / 1e9, macs / tb / 1e9, tb / t4, diff, mag);
        }
    }

    /** Median seconds per call over timed passes filling about {@code seconds}, after a warm-up. */
    private static double time(Runnable f, double seconds) {
        long w0 = System.nanoTime();
        int warm = 0;
        while (System.nanoTime() - w0 < seconds * 0.3e9 || warm < 3) { f.run(); warm++; }
        double per = (System.nanoTime() - w0) / 1e9 / warm;
        int reps = (int) Math.max(5, Math.min(1000, seconds / 5 / Math.max(per, 1e-6)));
        double[] t = new double[5];
        for (int k = 0; k < 5; k++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < reps; i++) f.run();
            t[k] = (System.nanoTime() - t0) / 1e9 / reps;
        }
        java.util.Arrays.sort(t);
        return t[2];
    }
}
