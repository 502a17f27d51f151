package io.vlmflux.cuda.gpu;

import io.vlmflux.cuda.cpu.Int4Weights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The host side of the cuda 4-bit layout ({@link Int4Device.Layout}, pure Java, no GPU) for fused linears whose
 * act-order permutations differ (each GPTQ linear has its own g_idx): {@link Int4Device.Layout#concat} keeps one
 * permutation per run of rows, and a Java transcription of int4.cu's indexing (the per-part gather
 * {@code vf_int4_gather_rows}, the GEMV's part choice from s1..s3 as {@link Int4Ops} passes them, the prefill
 * dequantization's per-part scatter) reproduces each part's own dequantized product. The GPU runs the same cases in
 * {@link Int4OpsTest}.
 */
class Int4LayoutTest {

    /** The kernels' part of a row (int4_part). */
    static int part(int row, int[] s) { return (row >= s[0] ? 1 : 0) + (row >= s[1] ? 1 : 0) + (row >= s[2] ? 1 : 0); }

    /** The parts {@code spec} describes: "rows:a" act-order with its own permutation, "rows:n" none, "rows:=" the previous one again. */
    static Int4Weights[] parts(Random rnd, String spec, int k, int gs, boolean sym) {
        String[] ps = spec.split("/");
        Int4Weights[] w = new Int4Weights[ps.length];
        for (int i = 0; i < ps.length; i++) {
            String[] f = ps[i].split(":");
            int m = Integer.parseInt(f[0]);
            w[i] = f[1].equals("=") ? w[i - 1] : Int4OpsTest.random(rnd, m, k, gs, sym, f[1].equals("a"));
        }
        return w;
    }

    static Int4Device.Layout fused(Int4Weights... w) {
        Int4Device.Layout[] l = new Int4Device.Layout[w.length];
        for (int i = 0; i < w.length; i++) l[i] = Int4Device.Layout.of(w[i]);
        return Int4Device.Layout.concat("fused", l);
    }

    /** The parts' dequantized weights stacked along the rows [sum m, k], input columns in checkpoint order. */
    static float[] stacked(Int4Weights... w) {
        int rows = 0, k = w[0].cols();
        for (Int4Weights p : w) rows += p.rows();
        float[] out = new float[rows * k];
        int o = 0;
        for (Int4Weights p : w) { float[] d = p.dequantize(); System.arraycopy(d, 0, out, o, d.length); o += d.length; }
        return out;
    }

    @ParameterizedTest(name = "{0} k {1} gs {2} sym {3} rows {4}")
    @CsvSource({"64:a/32:a/32:a, 256, 64, true, 1", "13:a/7:a/20:a, 128, 32, false, 3", "40:a/40:a, 512, 128, false, 8",
            "33:n/17:a/15:a, 192, 64, true, 2", "16:a/16:=/9:a, 96, 32, false, 5", "5:a/6:a/7:a/8:a, 64, 32, true, 4"})
    void kernelIndexingOfPerPartPermutationsGivesEachPartsProduct(String spec, int k, int gs, boolean sym, int rows) {
        Random rnd = new Random(spec.hashCode() * 31L + k);
        Int4Weights[] w = parts(rnd, spec, k, gs, sym);
        Int4Device.Layout l = fused(w);
        int m = l.rows();
        // runs of rows with their own permutation: neighbours alike share one
        int expectParts = 1;
        for (int i = 1; i < w.length; i++) if (w[i] != w[i - 1]) expectParts++;
        assertEquals(expectParts, l.permParts(), Arrays.toString(l.partStarts()));
        assertEquals(expectParts * k, l.perm().length);
        int[] s = Int4Ops.partStarts(l);
        for (int i = 0, row = 0, p = 0; i < w.length; row += w[i].rows(), i++) {
            if (i > 0 && w[i] != w[i - 1]) p++;
            for (int r = row; r < row + w[i].rows(); r++) assertEquals(p, part(r, s), "part of row " + r);
        }

        float[] ref = stacked(w);
        int ldx = k + 8;
        float[] x = new float[rows * ldx];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        // vf_int4_gather_rows: xp [P, rows, K]; the GEMV: row r reads x + part(r) * xps, xps = rows * K (0 for one part)
        int P = l.permParts();
        float[] xp = new float[P * rows * k];
        for (int p = 0; p < P; p++)
            for (int b = 0; b < rows; b++)
                for (int c = 0; c < k; c++) xp[(p * rows + b) * k + c] = x[b * ldx + l.perm()[p * k + c]];
        long xps = P > 1 ? (long) rows * k : 0;
        int[] words = l.q();
        for (int b = 0; b < rows; b++)
            for (int r = 0; r < m; r++) {
                long base = part(r, s) * xps + (long) b * k;
                double acc = 0, want = 0, mag = 0;
                for (int c = 0; c < k; c++) {   // canonical columns
                    int g = c / gs, v = (words[r * (k / 8) + c / 8] >>> (4 * (c % 8))) & 15;
                    acc += (v - l.zero(r, g)) * l.scale(r, g) * xp[(int) (base + c)];
                }
                for (int c = 0; c < k; c++) { double t = (double) ref[r * k + c] * x[b * ldx + c]; want += t; mag += Math.abs(t); }
                assertEquals(want, acc, 1e-6 * (mag + 1), "row " + b + " output " + r);
            }
        // vf_int4_dequant_bf16: W[r, perm[part(r) * K + c]] = dequantized canonical column c
        float[] W = new float[m * k];
        for (int r = 0; r < m; r++)
            for (int c = 0; c < k; c++) {
                int g = c / gs, v = (words[r * (k / 8) + c / 8] >>> (4 * (c % 8))) & 15;
                W[r * k + l.perm()[part(r, s) * k + c]] = (v - l.zero(r, g)) * l.scale(r, g);
            }
        for (int i = 0; i < W.length; i++) assertEquals(ref[i], W[i], 0f, "element [" + i / k + ", " + i % k + "]");
        // the host-side inverse (unpack, groupOf) per row
        for (int r = 0; r < m; r++)
            for (int c = 0; c < k; c += 7) {
                int g = l.groupOf(r, c);
                assertEquals(ref[r * k + c], (l.unpack(r, c) - l.zero(r, g)) * l.scale(r, g), 0f, "unpack [" + r + ", " + c + "]");
            }
        assertEquals(Int4Device.plannedBytes(m, k, gs, P), Int4Device.uploadBytes(l), "the arena plan of this layout");
    }

    @Test
    void equalPermutationsShareOneAndNoneKeepsNone() {
        Random rnd = new Random(5);
        Int4Weights a = Int4OpsTest.random(rnd, 24, 128, 32, true, true), n = Int4OpsTest.random(rnd, 24, 128, 32, true, false);
        Int4Device.Layout aa = fused(a, a, a);
        assertEquals(1, aa.permParts());
        assertArrayEquals(new int[]{0}, aa.partStarts());
        assertArrayEquals(a.permutation(), aa.perm());
        assertEquals(a.groupOf(17), aa.groupOf(17));
        Int4Device.Layout nn = fused(n, n);
        assertNull(nn.perm());
        assertEquals(0, nn.permParts());
        assertArrayEquals(new int[]{72, 72, 72}, Int4Ops.partStarts(fused(n, n, n)));
        assertEquals(Int4Device.plannedBytes(48, 128, 32, 0), Int4Device.uploadBytes(nn));
        // a permuted part beside an unpermuted one: the latter reads the identity
        Int4Device.Layout na = fused(n, a);
        assertEquals(2, na.permParts());
        assertArrayEquals(new int[]{0, 24}, na.partStarts());
        for (int c = 0; c < 128; c++) assertEquals(c, na.perm()[c]);
        assertArrayEquals(new int[]{24, 48, 48}, Int4Ops.partStarts(na));
        assertThrows(IllegalStateException.class, () -> na.groupOf(3), "one group per column only with one permutation");
    }

    @Test
    void moreDistinctPermutationsThanTheKernelsTakeIsAClearError() {
        Random rnd = new Random(9);
        Int4Weights[] w = new Int4Weights[Int4Device.MAX_PERM_PARTS + 1];
        for (int i = 0; i < w.length; i++) w[i] = Int4OpsTest.random(rnd, 8, 64, 32, true, true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fused(w));
        assertTrue(e.getMessage().contains("act-order") && e.getMessage().contains("--backend cpu"), e.getMessage());
        // still fused when neighbours repeat (runs, not linears, count)
        assertEquals(2, fused(w[0], w[0], w[0], w[0], w[1]).permParts());
    }

    @Test
    void differentGroupSizesAreStillRefused() {
        Random rnd = new Random(11);
        Int4Weights a = Int4OpsTest.random(rnd, 8, 128, 32, true, true), b = Int4OpsTest.random(rnd, 8, 128, 64, true, true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fused(a, b));
        assertTrue(e.getMessage().contains("group size"), e.getMessage());
    }

    @Test
    void layoutChecksItsParts() {
        int[] q = new int[16 * 4], sz = new int[16];
        assertThrows(IllegalArgumentException.class, () -> new Int4Device.Layout("x", 16, 32, 32, q, sz, new int[32], new int[]{0, 16}));
        assertThrows(IllegalArgumentException.class, () -> new Int4Device.Layout("x", 16, 32, 32, q, sz, new int[64], new int[]{0, 9, 9}));
        assertThrows(IllegalArgumentException.class, () -> new Int4Device.Layout("x", 16, 32, 32, q, sz, new int[32], new int[]{0, 8}));
        assertThrows(IllegalArgumentException.class, () -> new Int4Device.Layout("x", 16, 32, 32, q, sz, null, new int[]{0, 8}));
        assertEquals(2, new Int4Device.Layout("x", 16, 32, 32, q, sz, new int[64], new int[]{0, 8}).permParts());
    }

    /** Which matrices the tensor-core GEMV takes: whole 128-column blocks per group and integer zero points in [-64, 127]. */
    @Test
    void tensorCoreGemvTakesIntegerZerosInGroupsOfWholeBlocks() {
        Random rnd = new Random(13);
        assertTrue(Int4Device.Layout.of(Int4OpsTest.random(rnd, 8, 256, 128, false, false)).mmaShape());
        assertTrue(Int4Device.Layout.of(Int4OpsTest.random(rnd, 8, 512, 256, true, true)).mmaShape());
        assertTrue(Int4Device.Layout.of(Int4OpsTest.random(rnd, 8, 384, 384, true, false)).mmaShape(), "per-channel");
        assertFalse(Int4Device.Layout.of(Int4OpsTest.random(rnd, 8, 256, 64, false, false)).mmaShape(), "groups of 64");
        assertFalse(Int4Device.Layout.of(Int4OpsTest.random(rnd, 8, 96, 96, false, false)).mmaShape(), "96 columns");
        for (float z : new float[]{128f, -65f})
            assertFalse(Int4Device.Layout.of(withZero(8f, 5, z)).mmaShape(), "zero point " + z);
        assertTrue(Int4Device.Layout.of(withZero(-64f, 0, 127f)).mmaShape(), "the range's ends");
    }

    /** Every cuda kernel subtracts zero points as exact integers: a fractional one is refused, naming tensor and place. */
    /**
     * The tiled form of int4.cu (Int4Device.tiled): every 16-row x 128-column block is 256 consecutive words, its rows
     * one after the other, blocks of a row block consecutive, rows padded with zero words to a multiple of 16; only
     * matrices the tensor-core GEMV takes with one permutation (or none) are tiled; the arena plan covers the padding.
     */
    @Test
    void tilesHoldEachSixteenRowBlockOfACompleteColumnBlockContiguously() {
        Random rnd = new Random(11);
        for (int[] c : new int[][]{{37, 256, 128}, {16, 128, 128}, {5, 384, 384}, {48, 1024, 256}}) {
            int m = c[0], k = c[1], gs = c[2], k8 = k / 8, nb = k / 128;
            Int4Device.Layout l = Int4Device.Layout.of(Int4OpsTest.random(rnd, m, k, gs, false, m == 5));
            assertTrue(l.tileable(), Arrays.toString(c));
            int[] t = l.tiledWords();
            assertEquals((m + 15) / 16 * 16, l.paddedRows());
            assertEquals(l.paddedRows() * k8, t.length);
            for (int rb = 0; rb < l.paddedRows() / 16; rb++)
                for (int cb = 0; cb < nb; cb++)
                    for (int rr = 0; rr < 16; rr++)
                        for (int w = 0; w < 16; w++) {
                            int r = rb * 16 + rr, at = ((rb * nb + cb) * 16 + rr) * 16 + w;
                            assertEquals(at, l.tiledIndex(r, cb * 16 + w));
                            assertEquals(r < m ? l.q()[r * k8 + cb * 16 + w] : 0, t[at], "row " + r + " word " + (cb * 16 + w));
                        }
            assertEquals(Int4Device.plannedBytes(m, k, gs, l.permParts()), Int4Device.uploadBytes(l), "the plan covers the padded rows");
        }
        Int4Device.Layout g64 = Int4Device.Layout.of(Int4OpsTest.random(rnd, 16, 256, 64, false, false));
        assertFalse(g64.tileable(), "groups of 64 take the fp32 GEMV, which reads rows");
        assertThrows(IllegalStateException.class, g64::tiledWords);
        Int4Device.Layout twoPerms = fused(Int4OpsTest.random(rnd, 16, 512, 128, false, true), Int4OpsTest.random(rnd, 16, 512, 128, false, true));
        assertTrue(twoPerms.mmaShape() && twoPerms.permParts() == 2);
        assertFalse(twoPerms.tileable(), "several permutations take the per-part fp32 GEMV");
    }

    @Test
    void fractionalZeroPointsAreAClearError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Int4Device.Layout.of(withZero(8f, 5, 7.5f)));
        assertTrue(e.getMessage().startsWith("w: zero point 7.5 at [5, group 0]") && e.getMessage().contains("--backend cpu"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Int4Device.Layout.of(withZero(8f, 2, 4096f)));
    }

    /** An 8 x 128 matrix "w" of one group, zero point {@code z} everywhere but {@code odd} at row {@code row}. */
    private static Int4Weights withZero(float z, int row, float odd) {
        float[] s = new float[8], zs = new float[8];
        java.util.Arrays.fill(s, 0.01f);
        java.util.Arrays.fill(zs, z);
        zs[row] = odd;
        return Int4Weights.of("w", 8, 128, new byte[8 * 128], new int[128], 1, s, zs);
    }
}
