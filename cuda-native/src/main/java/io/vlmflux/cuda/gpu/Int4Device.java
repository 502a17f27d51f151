package io.vlmflux.cuda.gpu;

import io.vlmflux.cuda.cpu.Int4Weights;

import java.util.Arrays;

/**
 * A 4-bit weight matrix {@code [rows, cols]} on the device in the layout of {@code int4.cu} (see its header):
 * {@code q} uint32 {@code [rows, cols/8]} (canonical columns, column {@code 8p+j} in bits {@code 4j} of word p: one
 * 16-byte load covers 32 columns of one row, a warp reads 512 contiguous bytes), {@code sz} fp16 pairs
 * {@code [rows, groups]} (scale low, zero high), and for act-order checkpoints {@code perm} int32 {@code [cols]}.
 *
 * <p>{@link Layout} is the host side of it (pure Java): built from {@link Int4Weights}' canonical form, several
 * linears sharing their input (q/k/v, gate/up) concatenated along the output rows.
 */
public record Int4Device(Layout layout, DeviceBuffer q, DeviceBuffer sz, DeviceBuffer perm) {

    /**
     * Host form of the device layout. Requirements (a clear error naming the tensor otherwise): {@code cols % 32 == 0};
     * groups of one size {@code groupSize} in canonical order with {@code groupSize % 32 == 0}; scales and zero points representable in fp16 (zero points exactly).
     */
    public record Layout(String name, int rows, int cols, int groupSize, int[] q, int[] sz, int[] perm) {
        public int groups() { return cols / groupSize; }

        /** Device bytes (q, scale/zero pairs, permutation). */
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
                if (Float.float16ToFloat(hz) != ze[i])
                    throw new IllegalArgumentException(name + ": zero point " + ze[i] + " at [" + i / groups + ", group " + i % groups + "] is not exact in fp16");
                sz[i] = (hs & 0xffff) | (hz & 0xffff) << 16;
            }
            int[] perm = w.permutation();
            return new Layout(name, rows, cols, size, w.packedWords().clone(), sz, perm == null ? null : perm.clone());
        }

        /** Layouts of linears reading the same input, stacked along the output rows (same cols, group size and permutation). */
        public static Layout concat(String label, Layout... parts) {
            if (parts.length == 1) return parts[0];
            Layout a = parts[0];
            int rows = 0;
            for (Layout p : parts) {
                if (p.cols != a.cols || p.groupSize != a.groupSize)
                    throw new IllegalArgumentException(label + ": " + p.name + " (" + p.cols + " columns, group size " + p.groupSize + ") cannot be fused with "
                            + a.name + " (" + a.cols + " columns, group size " + a.groupSize + ") on cuda");
                if (!Arrays.equals(p.perm, a.perm))
                    throw new IllegalArgumentException(label + ": " + p.name + " and " + a.name
                            + " have different act-order permutations (g_idx); the cuda backend fuses them and needs one; use --backend cpu");
                rows = Math.addExact(rows, p.rows);
            }
            int[] q = new int[Math.multiplyExact(rows, a.cols / 8)];
            int[] sz = new int[Math.multiplyExact(rows, a.groups())];
            int qo = 0, so = 0;
            for (Layout p : parts) {
                System.arraycopy(p.q, 0, q, qo, p.q.length); qo += p.q.length;
                System.arraycopy(p.sz, 0, sz, so, p.sz.length); so += p.sz.length;
            }
            return new Layout(label, rows, a.cols, a.groupSize, q, sz, a.perm);
        }

        /** The 4-bit value at row r, input column c (checkpoint order): the inverse of the packing. */
        public int unpack(int r, int c) {
            int cc = c;
            if (perm != null) {
                cc = -1;
                for (int i = 0; i < cols; i++) if (perm[i] == c) { cc = i; break; }
            }
            return (q[r * (cols / 8) + (cc >>> 3)] >>> ((cc & 7) * 4)) & 15;
        }

        /** Group of input column c (checkpoint order). */
        public int groupOf(int c) {
            if (perm == null) return c / groupSize;
            for (int i = 0; i < cols; i++) if (perm[i] == c) return i / groupSize;
            throw new IllegalArgumentException(name + ": column " + c + " outside the permutation");
        }

        public float scale(int r, int g) { return Float.float16ToFloat((short) sz[r * groups() + g]); }

        public float zero(int r, int g) { return Float.float16ToFloat((short) (sz[r * groups() + g] >>> 16)); }
    }

    /** Uploads {@code l} into buffers of {@code arena} on {@code stream}. */
    public static Int4Device upload(GpuStream stream, DeviceArena arena, Layout l) {
        DeviceBuffer q = arena.alloc(l.name + " int4 q uint32 [" + l.rows + ", " + l.cols / 8 + "]", 4L * l.q.length);
        DeviceBuffer sz = arena.alloc(l.name + " int4 scale/zero fp16x2 [" + l.rows + ", " + l.groups() + "]", 4L * l.sz.length);
        DeviceBuffer perm = l.perm == null ? null : arena.alloc(l.name + " int4 act-order permutation int32 [" + l.cols + "]", 4L * l.cols);
        stream.upload(q, l.q);
        stream.upload(sz, l.sz);
        if (perm != null) stream.upload(perm, l.perm);
        return new Int4Device(l, q, sz, perm);
    }

    public int rows() { return layout.rows(); }

    public int cols() { return layout.cols(); }

    /** Bytes an upload of a {@code rows x cols} matrix in groups of {@code groupSize} takes (arena planning, 256-byte rounded). */
    public static long plannedBytes(int rows, int cols, int groupSize, boolean actOrder) {
        return r(4L * rows * (cols / 8)) + r(4L * rows * (cols / Math.max(1, groupSize))) + (actOrder ? r(4L * cols) : 0);
    }

    private static long r(long b) { return (b + 255) / 256 * 256; }
}
