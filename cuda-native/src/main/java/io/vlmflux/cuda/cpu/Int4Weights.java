package io.vlmflux.cuda.cpu;

import java.util.Arrays;

/**
 * A 4-bit weight matrix {@code [rows, cols]} (an {@code nn.Linear} of shape {@code [out, in]}) in one canonical
 * layout every checkpoint format (AWQ, GPTQ, compressed-tensors) is repacked into at load, dequantized on the fly:
 * {@code w[r, c] = (q[r, c] - zero[r, g(c)]) * scale[r, g(c)]} with {@code q} in {@code 0..15} and {@code g(c)} the
 * group of input column {@code c}.
 *
 * <p>Layout: input columns are reordered so that each group is contiguous ({@link #perm}, null when the checkpoint's
 * order already is: no act-order); {@code packed[r * cols/8 + p]} holds the eight canonical columns
 * {@code 8p .. 8p+7} of row {@code r}, column {@code 8p + j} in bits {@code 4j}. A matmul prepares its input once per
 * call ({@link #prepare}): permuted, and within each block of {@code 8 * lanes} columns interleaved so that lane
 * {@code l} of nibble {@code j} meets column {@code 8l + j} (a vector of {@code lanes} packed ints widens with one
 * shift and one mask per nibble, no shuffles); plus the per-group sums of the input, so that
 * {@code y = sum_g scale * (sum q x - zero * sum x)}.
 */
public final class Int4Weights {
    private final String name;
    private final int rows, cols, groups, lanes;
    final int[] packed;        // [rows, cols/8]
    final float[] scales;      // [rows, groups]
    final float[] zeros;       // [rows, groups]
    final int[] groupStart;    // [groups + 1], canonical columns, multiples of 8
    private final int[] perm;  // canonical column c reads input column perm[c]; null = identity

    private Int4Weights(String name, int rows, int cols, int groups, int lanes, int[] packed, float[] scales, float[] zeros,
                        int[] groupStart, int[] perm) {
        this.name = name;
        this.rows = rows;
        this.cols = cols;
        this.groups = groups;
        this.lanes = lanes;
        this.packed = packed;
        this.scales = scales;
        this.zeros = zeros;
        this.groupStart = groupStart;
        this.perm = perm;
    }

    /**
     * Builds the canonical form from unpacked values.
     *
     * @param q        {@code [rows, cols]} quantized values {@code 0..15}, input columns in checkpoint order
     * @param colGroup {@code [cols]} the group of each input column, {@code 0..groups-1}
     * @param scales   {@code [rows, groups]}
     * @param zeros    {@code [rows, groups]} zero points in units of q (e.g. 8 for symmetric)
     */
    public static Int4Weights of(String name, int rows, int cols, byte[] q, int[] colGroup, int groups, float[] scales, float[] zeros) {
        if (rows <= 0 || cols <= 0) throw new IllegalArgumentException(name + ": shape " + rows + "x" + cols);
        if (cols % 8 != 0) throw new IllegalArgumentException(name + ": in_features " + cols + " is not a multiple of 8 (INT4 packs 8 per int32)");
        if (q.length != (long) rows * cols || colGroup.length != cols || scales.length != (long) rows * groups || zeros.length != (long) rows * groups)
            throw new IllegalArgumentException(name + ": inconsistent sizes (q " + q.length + ", groups of " + colGroup.length + " columns, scales "
                    + scales.length + ", zeros " + zeros.length + ") for " + rows + "x" + cols + " with " + groups + " groups");
        int[] count = new int[groups];
        boolean sorted = true;
        for (int c = 0; c < cols; c++) {
            int g = colGroup[c];
            if (g < 0 || g >= groups) throw new IllegalArgumentException(name + ": input column " + c + " is in group " + g + ", outside 0.." + (groups - 1));
            if (c > 0 && g < colGroup[c - 1]) sorted = false;
            count[g]++;
        }
        int[] start = new int[groups + 1];
        for (int g = 0; g < groups; g++) {
            if (count[g] % 8 != 0)
                throw new IllegalArgumentException(name + ": group " + g + " holds " + count[g] + " input columns; INT4 groups must hold a multiple of 8");
            start[g + 1] = start[g] + count[g];
        }
        int lanes = maxLanes();
        while (lanes >= 4) {   // the widest layout whose blocks (8 * lanes columns) tile every group
            boolean fits = true;
            for (int g = 0; g < groups; g++) fits &= count[g] % (8 * lanes) == 0;
            if (fits) break;
            lanes /= 2;
        }
        if (lanes < 4) lanes = 0;
        int[] perm = null;
        if (!sorted) {
            perm = new int[cols];
            int[] next = Arrays.copyOf(start, groups);
            for (int c = 0; c < cols; c++) perm[next[colGroup[c]]++] = c;   // stable: column order kept within a group
        }
        int per = cols / 8;
        int[] packed = new int[Math.multiplyExact(rows, per)];
        for (int r = 0; r < rows; r++) {
            int qo = r * cols;
            for (int c = 0; c < cols; c++) {
                int v = q[qo + (perm == null ? c : perm[c])];
                if (v < 0 || v > 15) throw new IllegalArgumentException(name + ": value " + v + " at [" + r + ", " + c + "] is not 4-bit");
                packed[r * per + (c >>> 3)] |= v << ((c & 7) * 4);
            }
        }
        for (int i = 0; i < scales.length; i++)
            if (!Float.isFinite(scales[i]) || !Float.isFinite(zeros[i]))
                throw new IllegalArgumentException(name + ": non-finite scale or zero point at [" + i / groups + ", group " + i % groups + "]");
        return new Int4Weights(name, rows, cols, groups, lanes, packed, scales.clone(), zeros.clone(), start, perm);
    }

    public String name() { return name; }
    public int rows() { return rows; }
    public int cols() { return cols; }
    public int groups() { return groups; }

    /** The widest layout the kernels run fast here (16 with 512-bit vectors, else 8; scalar kernels: 8). */
    public static int maxLanes() { return CpuKernels.INSTANCE.int4Lanes(); }

    /**
     * Vector lanes of the prepared layout: the widest of 16, 8, 4 (at most {@link #maxLanes()}) whose blocks of
     * {@code 8 * lanes} columns tile every group; 0 when none does (plain layout, scalar kernel).
     */
    public int lanes() { return lanes; }

    /** The canonical packed words {@code [rows, cols/8]} (see the class comment); shared, read-only (device repacking). */
    public int[] packedWords() { return packed; }

    /** Scales {@code [rows, groups]}; shared, read-only. */
    public float[] scaleArray() { return scales; }

    /** Zero points {@code [rows, groups]} in units of q; shared, read-only. */
    public float[] zeroArray() { return zeros; }

    /** First canonical column of each group, {@code [groups + 1]}; shared, read-only. */
    public int[] groupStarts() { return groupStart; }

    /** Canonical column c reads input column {@code permutation()[c]}; null when not act-order. Shared, read-only. */
    public int[] permutation() { return perm; }

    /** Whether the input columns are reordered (act-order checkpoints). */
    public boolean permuted() { return perm != null; }

    /** Bytes held (packed values, scales, zeros). */
    public long bytes() { return 4L * packed.length + 8L * scales.length + (perm == null ? 0 : 4L * cols); }

    /** The group of input column {@code c} (checkpoint order). */
    public int groupOf(int c) {
        int cc = canonical(c);
        int g = Arrays.binarySearch(groupStart, cc);
        if (g >= 0) { while (g + 1 < groupStart.length && groupStart[g + 1] == cc) g++; return g; }
        return -g - 2;
    }

    private int[] inverse;

    private int canonical(int c) {
        if (perm == null) return c;
        int[] inv = inverse;
        if (inv == null) {
            inv = new int[cols];
            for (int i = 0; i < cols; i++) inv[perm[i]] = i;
            inverse = inv;
        }
        return inv[c];
    }

    /** The quantized value at row {@code r}, input column {@code c} (checkpoint order). */
    public int q(int r, int c) {
        int cc = canonical(c);
        return (packed[r * (cols / 8) + (cc >>> 3)] >>> ((cc & 7) * 4)) & 15;
    }

    public float scale(int r, int g) { return scales[r * groups + g]; }

    public float zero(int r, int g) { return zeros[r * groups + g]; }

    /** Row {@code r} dequantized into {@code dst[off..off+cols)}, checkpoint column order: the reference definition. */
    public void dequantizeRow(int r, float[] dst, int off) {
        for (int c = 0; c < cols; c++) {
            int g = groupOf(c);
            dst[off + c] = (q(r, c) - zero(r, g)) * scale(r, g);
        }
    }

    /** The whole matrix dequantized to float {@code [rows, cols]} (reference, tests, {@code quantize}). */
    public float[] dequantize() {
        float[] w = new float[Math.multiplyExact(rows, cols)];
        for (int r = 0; r < rows; r++) dequantizeRow(r, w, r * cols);
        return w;
    }

    /**
     * Prepares {@code n} inputs {@code x [n, cols]} for the kernels: {@code xp [n, cols]} in the canonical, interleaved
     * order and {@code xsum [n, groups]}.
     */
    void prepare(float[] x, int n, float[] xp, float[] xsum) {
        int blk = 8 * lanes;
        for (int t = 0; t < n; t++) {
            int xo = t * cols;
            for (int g = 0; g < groups; g++) {
                float s = 0;
                for (int c = groupStart[g]; c < groupStart[g + 1]; c++) s += x[xo + (perm == null ? c : perm[c])];
                xsum[t * groups + g] = s;
            }
            if (lanes == 0) {
                if (perm == null) System.arraycopy(x, xo, xp, xo, cols);
                else for (int c = 0; c < cols; c++) xp[xo + c] = x[xo + perm[c]];
            } else {
                for (int b = 0; b < cols; b += blk)
                    for (int w = 0; w < blk; w++) {
                        int c = b + w;
                        xp[xo + b + (w & 7) * lanes + (w >>> 3)] = x[xo + (perm == null ? c : perm[c])];
                    }
            }
        }
    }

    @Override public String toString() {
        return name + " int4[" + rows + ", " + cols + "] " + groups + " groups" + (perm != null ? ", act-order" : "");
    }
}
