package io.vlmflux.cuda.gpu;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.cpu.Int4Weights;

import java.util.Arrays;

/**
 * A 4-bit weight matrix {@code [rows, cols]} on the device in the layout of {@code int4.cu} (see its header):
 * {@code q} uint32 {@code [rows, cols/8]} (canonical columns, column {@code 8p+j} in bits {@code 4j} of word p: one
 * 16-byte load covers 32 columns of one row, a warp reads 512 contiguous bytes), {@code sz} fp16 pairs
 * {@code [rows, groups]} (scale low, zero high), and for act-order checkpoints {@code perm} int32
 * {@code [permParts, cols]}: one permutation per run of fused rows ({@link Layout#partStarts()}).
 *
 * <p>{@link Layout} is the host side of it (pure Java): built from {@link Int4Weights}' canonical form, several
 * linears sharing their input (q/k/v, gate/up) concatenated along the output rows, each keeping its own act-order
 * permutation (GPTQ stores a g_idx per linear).
 *
 * <p>Tiled ({@link Tuning#int4Tiled()}, matrices the tensor-core GEMV takes with at most one permutation): {@code q}
 * holds the same words as 16-row x 128-column tiles of 1 KB, row block by row block and within one by column block,
 * each tile its 16 rows of 16 words ({@link Layout#tiledIndex}); the rows are padded with zero words to a multiple of
 * 16. A warp of {@code vf_int4_gemv_mma_t} reads one tile as two 512-byte loads; the prefill dequantization reads the
 * same addresses. The fp32 GEMV does not read tiles (a tiled matrix always takes the tensor-core one).
 *
 * @param mmaShape whether the tensor-core decode GEMV ({@code vf_int4_gemv_mma}) takes this matrix:
 *                 {@link Layout#mmaShape()}, decided once at upload
 * @param tiled    whether {@code q} is stored in tiles (then {@code mmaShape} and at most one permutation)
 */
public record Int4Device(Layout layout, DeviceBuffer q, DeviceBuffer sz, DeviceBuffer perm, boolean mmaShape, boolean tiled) {
    /** Most permutation parts one matrix may have (the kernels take the first rows of parts 1..3). */
    public static final int MAX_PERM_PARTS = 4;

    /**
     * Host form of the device layout. Requirements (a clear error naming the tensor otherwise): {@code cols % 32 == 0};
     * groups of one size {@code groupSize} in canonical order with {@code groupSize % 32 == 0}; scales representable in
     * fp16; zero points integers in {@code [-2048, 2048]} (as every format VLMFlux reads writes them; the kernels
     * subtract {@code 2^23 + zero} or {@code 128 + zero} exactly).
     *
     * @param perm       null (no act-order), or {@code [partStarts.length, cols]}: canonical column c of a row of part
     *                   p reads input column {@code perm[p * cols + c]}
     * @param partStarts first row of each permutation part, ascending from 0 ({@code {0}}: one permutation or none)
     */
    public record Layout(String name, int rows, int cols, int groupSize, int[] q, int[] sz, int[] perm, int[] partStarts) {
        public Layout {
            if (partStarts.length < 1 || partStarts[0] != 0) throw new IllegalArgumentException(name + ": part starts must begin at row 0");
            for (int i = 1; i < partStarts.length; i++)
                if (partStarts[i] <= partStarts[i - 1] || partStarts[i] >= rows)
                    throw new IllegalArgumentException(name + ": part starts " + Arrays.toString(partStarts) + " are not ascending inside " + rows + " rows");
            if (perm == null ? partStarts.length != 1 : perm.length != (long) partStarts.length * cols)
                throw new IllegalArgumentException(name + ": " + (perm == null ? 0 : perm.length) + " permutation entries for "
                        + partStarts.length + " parts of " + cols + " columns");
        }

        /** One permutation (or none) for all rows. */
        public Layout(String name, int rows, int cols, int groupSize, int[] q, int[] sz, int[] perm) {
            this(name, rows, cols, groupSize, q, sz, perm, new int[]{0});
        }

        public int groups() { return cols / groupSize; }

        /** Permutation rows on the device: 0 without act-order, else {@code partStarts().length}. */
        public int permParts() { return perm == null ? 0 : partStarts.length; }

        /** The permutation part of row r (0 when one or none). */
        public int partOf(int r) {
            int p = 0;
            while (p + 1 < partStarts.length && r >= partStarts[p + 1]) p++;
            return p;
        }

        /** Device bytes (q, scale/zero pairs, permutations). */
        public long bytes() { return 4L * q.length + 4L * sz.length + (perm == null ? 0 : 4L * perm.length); }

        /** The layout of {@code w}; {@code name} names it in errors. */
        public static Layout of(Int4Weights w) {
            String name = w.name();
            int rows = w.rows(), cols = w.cols(), groups = w.groups();
            if (cols % 32 != 0)
                throw new IllegalArgumentException(name + ": in_features " + cols + " is not a multiple of 32 (the cuda W4A16 kernels load 32 columns at once); use --backend cpu");
            int[] gs = w.groupStarts();
            int size = cols / groups;
            for (int g = 0; g <= groups; g++)
                if (gs[g] != g * size)
                    throw new IllegalArgumentException(name + ": groups of unequal size (group " + Math.max(0, g - 1) + " spans canonical columns "
                            + gs[Math.max(0, g - 1)] + ".." + gs[Math.min(groups, Math.max(1, g))] + "); the cuda backend needs one group size; use --backend cpu");
            if (size % 32 != 0)
                throw new IllegalArgumentException(name + ": group size " + size + " is not a multiple of 32; the cuda backend does not support it; use --backend cpu");
            float[] sc = w.scaleArray(), ze = w.zeroArray();
            int[] sz = new int[sc.length];
            for (int i = 0; i < sc.length; i++) {
                short hs = Float.floatToFloat16(sc[i]), hz = Float.floatToFloat16(ze[i]);
                if (!Float.isFinite(Float.float16ToFloat(hs)))
                    throw new IllegalArgumentException(name + ": scale " + sc[i] + " at [" + i / groups + ", group " + i % groups + "] overflows fp16 (cuda keeps group scales in fp16)");
                if (ze[i] != Math.rint(ze[i]) || Math.abs(ze[i]) > 2048)
                    throw new IllegalArgumentException(name + ": zero point " + ze[i] + " at [" + i / groups + ", group " + i % groups
                            + "] is not an integer in [-2048, 2048] (the cuda W4A16 kernels subtract zero points as exact fp32/bf16 integers); use --backend cpu");
                sz[i] = (hs & 0xffff) | (hz & 0xffff) << 16;
            }
            int[] perm = w.permutation();
            return new Layout(name, rows, cols, size, w.packedWords().clone(), sz, perm == null ? null : perm.clone());
        }

        /**
         * Layouts of linears reading the same input, stacked along the output rows (same cols and group size). Their
         * act-order permutations may differ (each GPTQ linear has its own g_idx): then every run of rows keeps its own
         * (a part without one reads the identity), at most {@link #MAX_PERM_PARTS} runs; equal neighbours share one, and
         * when all are equal (or none is permuted) the result has one permutation (or none) as a single linear.
         */
        public static Layout concat(String label, Layout... parts) {
            if (parts.length == 1) return parts[0];
            Layout a = parts[0];
            int rows = 0;
            for (Layout p : parts) {
                if (p.cols != a.cols || p.groupSize != a.groupSize)
                    throw new IllegalArgumentException(label + ": " + p.name + " (" + p.cols + " columns, group size " + p.groupSize + ") cannot be fused with "
                            + a.name + " (" + a.cols + " columns, group size " + a.groupSize + ") on cuda");
                rows = Math.addExact(rows, p.rows);
            }
            int[] q = new int[Math.multiplyExact(rows, a.cols / 8)];
            int[] sz = new int[Math.multiplyExact(rows, a.groups())];
            int qo = 0, so = 0;
            for (Layout p : parts) {
                System.arraycopy(p.q, 0, q, qo, p.q.length); qo += p.q.length;
                System.arraycopy(p.sz, 0, sz, so, p.sz.length); so += p.sz.length;
            }
            // runs of rows with one permutation each (null: identity), neighbours with equal permutations merged
            java.util.List<Integer> starts = new java.util.ArrayList<>();
            java.util.List<int[]> perms = new java.util.ArrayList<>();
            java.util.List<String> names = new java.util.ArrayList<>();
            int row = 0;
            for (Layout p : parts) {
                for (int i = 0; i < p.partStarts.length; i++) {
                    int[] pi = p.perm == null ? null : Arrays.copyOfRange(p.perm, i * p.cols, (i + 1) * p.cols);
                    if (perms.isEmpty() || !Arrays.equals(perms.getLast(), pi)) {
                        starts.add(row + p.partStarts[i]);
                        perms.add(pi);
                        names.add(p.name);
                    }
                }
                row += p.rows;
            }
            if (perms.size() == 1) return new Layout(label, rows, a.cols, a.groupSize, q, sz, perms.getFirst());
            if (perms.size() > MAX_PERM_PARTS)
                throw new IllegalArgumentException(label + ": " + perms.size() + " different act-order permutations (g_idx) among " + names
                        + "; the cuda kernels take at most " + MAX_PERM_PARTS + " in one fused matrix; use --backend cpu");
            int[] perm = new int[Math.multiplyExact(perms.size(), a.cols)];
            int[] ps = new int[perms.size()];
            for (int i = 0; i < ps.length; i++) {
                ps[i] = starts.get(i);
                int[] pi = perms.get(i);
                for (int c = 0; c < a.cols; c++) perm[i * a.cols + c] = pi == null ? c : pi[c];
            }
            return new Layout(label, rows, a.cols, a.groupSize, q, sz, perm, ps);
        }

        /** Canonical column of input column c (checkpoint order) in row r's permutation part. */
        private int canonical(int r, int c) {
            if (perm == null) return c;
            int base = partOf(r) * cols;
            for (int i = 0; i < cols; i++) if (perm[base + i] == c) return i;
            throw new IllegalArgumentException(name + ": column " + c + " outside the permutation of row " + r);
        }

        /** The 4-bit value at row r, input column c (checkpoint order): the inverse of the packing. */
        public int unpack(int r, int c) {
            int cc = canonical(r, c);
            return (q[r * (cols / 8) + (cc >>> 3)] >>> ((cc & 7) * 4)) & 15;
        }

        /** Group of input column c (checkpoint order) in row r. */
        public int groupOf(int r, int c) { return canonical(r, c) / groupSize; }

        /** Group of input column c (checkpoint order); only for one permutation (or none) for all rows. */
        public int groupOf(int c) {
            if (partStarts.length != 1) throw new IllegalStateException(name + ": " + partStarts.length + " permutation parts; use groupOf(row, column)");
            return groupOf(0, c);
        }

        public float scale(int r, int g) { return Float.float16ToFloat((short) sz[r * groups() + g]); }

        public float zero(int r, int g) { return Float.float16ToFloat((short) (sz[r * groups() + g] >>> 16)); }

        /**
         * Whether the tensor-core decode GEMV of int4.cu takes this matrix: {@code cols % 128 == 0}, groups of a
         * multiple of 128 columns (a 128-column block lies in one group), and every zero point (an integer, see
         * {@link #of}) in {@code [-64, 127]}, so that {@code 128 + zero} is exact in bf16. Groups of 32 or 64 take the
         * fp32 GEMV.
         */
        public boolean mmaShape() {
            if (cols % 128 != 0 || groupSize % 128 != 0) return false;
            for (int v : sz) {
                float z = Float.float16ToFloat((short) (v >>> 16));
                if (z < -64 || z > 127) return false;
            }
            return true;
        }

        /** Whether {@link #tiledWords} may store this matrix: {@link #mmaShape()} and at most one permutation. */
        public boolean tileable() { return partStarts.length == 1 && mmaShape(); }

        /** Rows of the tiled form: {@code rows} rounded up to 16. */
        public int paddedRows() { return (rows + 15) / 16 * 16; }

        /**
         * Index in the tiled form of word {@code p} ({@code 0 <= p < cols / 8}) of row {@code r}: tile
         * {@code (r / 16) * (cols / 128) + p / 16}, then row {@code r % 16} of it, then word {@code p % 16}.
         */
        public long tiledIndex(int r, int p) {
            return (((long) (r >>> 4) * (cols >>> 7) + (p >>> 4)) * 16 + (r & 15)) * 16 + (p & 15);
        }

        /** {@link #q} in tiles ({@link #tiledIndex}), {@link #paddedRows()} rows (the padding zero). */
        public int[] tiledWords() {
            if (!tileable()) throw new IllegalStateException(name + ": not tileable (groups of whole 128-column blocks, integer zero points in [-64, 127], one permutation)");
            int k8 = cols / 8;
            int[] t = new int[Math.multiplyExact(paddedRows(), k8)];
            for (int r = 0; r < rows; r++)
                for (int p = 0; p < k8; p++) t[Math.toIntExact(tiledIndex(r, p))] = q[r * k8 + p];
            return t;
        }
    }

    /** {@link #upload(GpuStream, DeviceArena, Layout, boolean)} untiled. */
    public static Int4Device upload(GpuStream stream, DeviceArena arena, Layout l) { return upload(stream, arena, l, false); }

    /**
     * Uploads {@code l} into buffers of {@code arena} on {@code stream}, in tiles when {@code tile} and
     * {@link Layout#tileable()}; takes {@link #uploadBytes(Layout)} of it either way.
     */
    public static Int4Device upload(GpuStream stream, DeviceArena arena, Layout l, boolean tile) {
        boolean tiled = tile && l.tileable();
        DeviceBuffer q = arena.alloc(l.name + " int4 q uint32 [" + l.rows + ", " + l.cols / 8 + "]" + (tiled ? " in 16x128 tiles" : ""),
                4L * l.paddedRows() * (l.cols / 8));
        DeviceBuffer sz = arena.alloc(l.name + " int4 scale/zero fp16x2 [" + l.rows + ", " + l.groups() + "]", 4L * l.sz.length);
        DeviceBuffer perm = l.perm == null ? null
                : arena.alloc(l.name + " int4 act-order permutations int32 [" + l.permParts() + ", " + l.cols + "]", 4L * l.perm.length);
        stream.upload(q, tiled ? l.tiledWords() : l.q);
        stream.upload(sz, l.sz);
        if (perm != null) stream.upload(perm, l.perm);
        return new Int4Device(l, q, sz, perm, l.mmaShape(), tiled);
    }

    /**
     * Arena bytes {@link #upload} takes for {@code l} (256-byte rounded buffers; q for {@link Layout#paddedRows()}
     * rows, tiled or not, so that the plan does not depend on the zero points).
     */
    public static long uploadBytes(Layout l) {
        return r(4L * l.paddedRows() * (l.cols / 8)) + r(4L * l.sz.length) + (l.perm == null ? 0 : r(4L * l.perm.length));
    }

    public int rows() { return layout.rows(); }

    public int cols() { return layout.cols(); }

    /**
     * Bytes an upload of a {@code rows x cols} matrix in groups of {@code groupSize} with {@code permParts} act-order
     * permutations ({@link Layout#permParts()}: 0 without act-order) takes (arena planning, 256-byte rounded): equal
     * to {@link #uploadBytes} of such a layout.
     */
    public static long plannedBytes(int rows, int cols, int groupSize, int permParts) {
        return r(4L * ((rows + 15) / 16 * 16) * (cols / 8)) + r(4L * rows * (cols / Math.max(1, groupSize)))
                + (permParts > 0 ? r(4L * permParts * cols) : 0);
    }

    private static long r(long b) { return (b + 255) / 256 * 256; }
}
