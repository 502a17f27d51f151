package io.vlmflux.cuda.safetensors;

import io.vlmflux.cuda.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A borrowed, read-only view of one tensor inside a memory-mapped safetensors file: name, dtype, shape (row-major,
 * last dimension contiguous) and the {@link MemorySegment} holding its bytes (little-endian). The view is valid while
 * its {@link SafetensorsFile} / {@link WeightStore} is open. All indices are {@code long}, so tensors larger than
 * 2 GiB work; {@link #toFloatArray()} is the exception (heap arrays hold at most 2^31-1 floats).
 *
 * <p>Use: {@code store.tensor("model.norm.weight").toFloatArray()} for small tensors; for big weights hand the view to
 * {@link io.vlmflux.cuda.cpu.CpuMatrix} which reads bf16/f16/f32 straight from the mapping.
 */
public final class TensorView {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final String name;
    private final DType dtype;
    private final long[] shape;
    private final MemorySegment data;
    private final Path source;

    public TensorView(String name, DType dtype, long[] shape, MemorySegment data, Path source) {
        this.name = name;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.data = data;
        this.source = source;
        long n = numel(this.shape);
        if (data.byteSize() != n * dtype.byteSize())
            throw new IllegalArgumentException(where() + ": " + data.byteSize() + " bytes for " + n + " " + dtype + " elements");
    }

    public String name() { return name; }
    public DType dtype() { return dtype; }
    public long[] shape() { return shape.clone(); }
    public int rank() { return shape.length; }
    public long dim(int i) { return shape[i]; }
    public long numel() { return numel(shape); }
    public long byteSize() { return data.byteSize(); }
    /** The tensor's bytes (little-endian, row-major). */
    public MemorySegment segment() { return data; }
    /** The file the tensor lives in (null for views not backed by a file). */
    public Path source() { return source; }

    /** "file: tensor 'name'" for error messages. */
    public String where() { return (source == null ? "" : source + ": ") + "tensor '" + name + "'"; }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    /** Element {@code i} (flat row-major index) as float; floating dtypes and integer dtypes alike. */
    public float get(long i) {
        return switch (dtype) {
            case BF16 -> DType.bf16ToFloat(data.get(SHORT, i * 2));
            case F16 -> DType.f16ToFloat(data.get(SHORT, i * 2));
            case F32 -> data.get(FLOAT, i * 4);
            case F64 -> (float) data.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, i * 8);
            case I64 -> data.get(ValueLayout.JAVA_LONG_UNALIGNED, i * 8);
            case I32 -> data.get(ValueLayout.JAVA_INT_UNALIGNED, i * 4);
            case I16 -> data.get(SHORT, i * 2);
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i);
            case U8, BOOL -> data.get(ValueLayout.JAVA_BYTE, i) & 0xff;
        };
    }

    /** Element {@code i} of an integer tensor as long. */
    public long getLong(long i) {
        return switch (dtype) {
            case I64 -> data.get(ValueLayout.JAVA_LONG_UNALIGNED, i * 8);
            case I32 -> data.get(ValueLayout.JAVA_INT_UNALIGNED, i * 4);
            case I16 -> data.get(SHORT, i * 2);
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i);
            case U8, BOOL -> data.get(ValueLayout.JAVA_BYTE, i) & 0xff;
            default -> throw new IllegalStateException(where() + " is " + dtype + ", not an integer tensor");
        };
    }

    /** Copies {@code n} elements starting at flat index {@code from} into {@code dst[dstOff..]} as float. */
    public void copyTo(long from, float[] dst, int dstOff, int n) {
        if (from < 0 || n < 0 || from + n > numel())
            throw new IndexOutOfBoundsException(where() + ": range [" + from + ", " + (from + n) + ") of " + numel());
        switch (dtype) {
            case BF16 -> { for (int i = 0; i < n; i++) dst[dstOff + i] = DType.bf16ToFloat(data.get(SHORT, (from + i) * 2)); }
            case F16 -> { for (int i = 0; i < n; i++) dst[dstOff + i] = DType.f16ToFloat(data.get(SHORT, (from + i) * 2)); }
            case F32 -> MemorySegment.copy(data, FLOAT, from * 4, dst, dstOff, n);
            default -> { for (int i = 0; i < n; i++) dst[dstOff + i] = get(from + i); }
        }
    }

    /** The whole tensor as a float array (any dtype; at most 2^31-1 elements). */
    public float[] toFloatArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) throw new IllegalStateException(where() + " has " + n + " elements, too many for a float[]; use get(long) or CpuMatrix");
        float[] out = new float[(int) n];
        copyTo(0, out, 0, (int) n);
        return out;
    }

    /** The whole tensor as an int array (integer dtypes). */
    public int[] toIntArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) throw new IllegalStateException(where() + " has too many elements for an int[]");
        int[] out = new int[(int) n];
        for (int i = 0; i < n; i++) out[i] = Math.toIntExact(getLong(i));
        return out;
    }

    /** Throws naming the file, tensor, expected and found shape unless the shape equals {@code expected}. */
    public TensorView requireShape(long... expected) {
        if (!Arrays.equals(shape, expected))
            throw new IllegalArgumentException(where() + ": expected shape " + Arrays.toString(expected) + " but found " + Arrays.toString(shape));
        return this;
    }

    @Override public String toString() { return name + " " + dtype + Arrays.toString(shape); }
}
