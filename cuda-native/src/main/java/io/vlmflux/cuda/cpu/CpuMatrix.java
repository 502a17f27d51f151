package io.vlmflux.cuda.cpu;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.TensorView;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A 2-D weight matrix {@code [rows, cols]} (row-major, like a PyTorch {@code nn.Linear.weight} of shape
 * {@code [out, in]}) read straight from its memory mapping in BF16, F16 or F32 and converted to float on the fly, so a
 * bf16 checkpoint costs its file size, not twice that. All offsets are long: matrices beyond 2 GiB work.
 *
 * <p>Use: {@code CpuMatrix w = CpuMatrix.of(store.tensor("...q_proj.weight"));} then {@link #dot} for one row, or
 * {@link CpuOps#matmul} for {@code y = x W^T + b} over many rows in parallel.
 */
public final class CpuMatrix {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final String name;
    private final DType dtype;
    private final MemorySegment data;
    private final float[] heap;     // the F32 values when built from a heap array (vector loads read arrays directly), else null
    private final int rows, cols;
    private final Int4Weights int4;  // 4-bit weights (then data and heap are null), else null

    private CpuMatrix(String name, DType dtype, MemorySegment data, float[] heap, int rows, int cols) {
        this(name, dtype, data, heap, rows, cols, null);
    }

    private CpuMatrix(String name, DType dtype, MemorySegment data, float[] heap, int rows, int cols, Int4Weights int4) {
        if (dtype != DType.BF16 && dtype != DType.F16 && dtype != DType.F32)
            throw new IllegalArgumentException("tensor '" + name + "': dtype " + dtype + " not supported for CPU matmul (BF16, F16, F32)");
        this.name = name;
        this.dtype = dtype;
        this.data = data;
        this.heap = heap;
        this.rows = rows;
        this.cols = cols;
        this.int4 = int4;
    }

    /** A matrix over a rank-2 tensor. */
    public static CpuMatrix of(TensorView t) {
        if (t.rank() != 2) throw new IllegalArgumentException(t.where() + ": expected a 2-D weight but shape is " + java.util.Arrays.toString(t.shape()));
        return new CpuMatrix(t.name(), t.dtype(), t.segment(), null, Math.toIntExact(t.dim(0)), Math.toIntExact(t.dim(1)));
    }

    /** A matrix over a heap float array (tests, converted weights). */
    public static CpuMatrix of(String name, float[] values, int rows, int cols) {
        if ((long) rows * cols != values.length) throw new IllegalArgumentException(name + ": " + values.length + " values for " + rows + "x" + cols);
        return new CpuMatrix(name, DType.F32, MemorySegment.ofArray(values), values, rows, cols);
    }

    /**
     * A matrix over 4-bit weights (W4A16: the activations stay float). {@link #dtype()} reports F32, the compute type;
     * {@link #int4()} tells it apart.
     */
    public static CpuMatrix of(Int4Weights w) {
        return new CpuMatrix(w.name(), DType.F32, null, null, w.rows(), w.cols(), w);
    }

    /** The 4-bit weights of a quantized matrix, else null. */
    public Int4Weights int4() { return int4; }

    public String name() { return name; }
    public DType dtype() { return dtype; }
    public int rows() { return rows; }
    public int cols() { return cols; }

    MemorySegment segment() { return data; }

    float[] heap() { return heap; }

    /**
     * Row {@code r} dotted with {@code x[xOff, xOff + cols)}, through the same kernels as {@link CpuOps#matmul} (the
     * Vector API path where present); F16, which the kernels do not cover, is converted per element. For many rows use
     * {@link CpuOps#matmul}: this one-row form copies {@code x} when the kernels need it prepared.
     */
    public float dot(int r, float[] x, int xOff) {
        if (r < 0 || r >= rows) throw new IndexOutOfBoundsException("tensor '" + name + "': row " + r + " of " + rows);
        if ((long) xOff + cols > x.length) throw new IndexOutOfBoundsException("tensor '" + name + "': x needs " + cols + " floats from " + xOff + ", has " + x.length);
        if (int4 != null) {
            float[] w = new float[cols];
            int4.dequantizeRow(r, w, 0);
            return CpuOps.dot(w, 0, x, xOff, cols);
        }
        if (dtype == DType.F16) return dotF16((long) r * cols * 2, x, xOff);
        CpuKernels k = CpuKernels.INSTANCE;
        float[] out = new float[1];
        float[] xs = x;
        if (dtype == DType.BF16) {
            if (xOff != 0 || k.bf16Block() != 0) { xs = new float[cols]; k.prepareBf16(x, xOff, xs, 0, cols); }
            k.rowsBf16(data, cols, r, r + 1, xs, 1, out, 0, -r, null);
        } else {
            if (xOff != 0) xs = java.util.Arrays.copyOfRange(x, xOff, xOff + cols);
            if (heap != null) k.rowsF32(heap, cols, r, r + 1, xs, 1, out, 0, -r, null);
            else k.rowsF32(data, cols, r, r + 1, xs, 1, out, 0, -r, null);
        }
        return out[0];
    }

    private float dotF16(long off, float[] x, int xOff) {
        float s = 0;
        for (int i = 0; i < cols; i++) s += Float.float16ToFloat(data.get(SHORT, off + 2L * i)) * x[xOff + i];
        return s;
    }

    /** Copies row {@code r} as floats into {@code dst[dstOff..]} (embedding lookup). */
    public void row(int r, float[] dst, int dstOff) {
        if (r < 0 || r >= rows) throw new IndexOutOfBoundsException("tensor '" + name + "': row " + r + " of " + rows);
        if (int4 != null) { int4.dequantizeRow(r, dst, dstOff); return; }
        long base = (long) r * cols;
        switch (dtype) {
            case BF16 -> { for (int i = 0; i < cols; i++) dst[dstOff + i] = Float.intBitsToFloat(data.get(SHORT, (base + i) * 2) << 16); }
            case F16 -> { for (int i = 0; i < cols; i++) dst[dstOff + i] = Float.float16ToFloat(data.get(SHORT, (base + i) * 2)); }
            default -> MemorySegment.copy(data, FLOAT, base * 4, dst, dstOff, cols);
        }
    }
}
