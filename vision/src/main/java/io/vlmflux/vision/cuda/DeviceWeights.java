package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Uploads the checkpoint tensors of a vision tower into one device arena: matrices as bf16 (converted when stored
 * otherwise), vectors as fp32. Names are relative to the tower's prefix ({@code model.visual.} or {@code visual.});
 * missing or mis-shaped tensors fail with the store's message (file, tensor, expected shape). Used during a load only.
 */
final class DeviceWeights {
    private final WeightStore store;
    private final String prefix;
    private final DeviceArena arena;
    private final GpuStream stream;

    DeviceWeights(WeightStore store, String prefix, DeviceArena arena, GpuStream stream) {
        this.store = store;
        this.prefix = prefix;
        this.arena = arena;
        this.stream = stream;
    }

    /** The tower prefix of a checkpoint ({@code model.visual.} in transformers 5 layouts, {@code visual.} in older ones). */
    static String prefix(WeightStore store) {
        if (store.has("model.visual.patch_embed.proj.weight")) return "model.visual.";
        if (store.has("visual.patch_embed.proj.weight")) return "visual.";
        throw new IllegalArgumentException(store.location() + ": no vision tower weights (neither 'model.visual.patch_embed.proj.weight' nor 'visual.patch_embed.proj.weight')");
    }

    boolean has(String name) { return store.has(prefix + name); }

    DeviceBuffer matrix(String name, long[] shape) {
        TensorView t = store.tensor(prefix + name, shape);
        DeviceBuffer b = arena.alloc(prefix + name, 2L * t.numel());
        upload(b, 0, t);
        return b;
    }

    void matrixInto(DeviceBuffer dst, long offset, String name, long rows, long cols) {
        upload(dst, offset, store.tensor(prefix + name, rows, cols));
    }

    private void upload(DeviceBuffer dst, long offset, TensorView t) {
        DeviceBuffer target = dst.slice(offset, 2L * t.numel(), t.name());
        if (t.dtype() == DType.BF16) {
            stream.uploadFromAddress(target, t.segment().address(), 2L * t.numel());
        } else {
            if (t.numel() > Integer.MAX_VALUE) throw new IllegalArgumentException(t.where() + " is too large to convert to bf16");
            float[] v = t.toFloatArray();
            short[] s = new short[v.length];
            for (int i = 0; i < v.length; i++) s[i] = DType.floatToBf16(v[i]);
            stream.upload(target, s);
        }
    }

    /** A tensor of {@code shape} as fp32 (vectors, and tables read by kernels in fp32). */
    DeviceBuffer fp32(String name, long... shape) {
        TensorView t = store.tensor(prefix + name, shape);
        if (t.numel() > Integer.MAX_VALUE) throw new IllegalArgumentException(t.where() + " is too large for an fp32 copy");
        DeviceBuffer b = arena.alloc(prefix + name, 4L * t.numel());
        stream.upload(b, t.toFloatArray());
        return b;
    }

    DeviceBuffer vector(String name, int len) { return fp32(name, len); }

    DeviceBuffer optVector(String name, int len) {
        return has(name) ? vector(name, len) : null;
    }

    /** Biases of {@code names} (each [len], absent = zeros) at offsets 0, pad, 2*pad.. of one fp32 vector. */
    DeviceBuffer paddedBias(String[] names, int len, int pad) {
        boolean any = false;
        float[] v = new float[names.length * pad];
        for (int i = 0; i < names.length; i++) {
            if (!has(names[i])) continue;
            any = true;
            System.arraycopy(store.tensor(prefix + names[i], len).toFloatArray(), 0, v, i * pad, len);
        }
        if (!any) return null;
        DeviceBuffer b = arena.alloc(prefix + names[0] + " (padded)", 4L * v.length);
        stream.upload(b, v);
        return b;
    }

    /** A [rows, cols] matrix as bf16 [rows, colsPad], the extra columns zero. */
    DeviceBuffer paddedColumns(String name, int rows, int cols, int colsPad) {
        TensorView t = store.tensor(prefix + name, rows, cols);
        short[] out = new short[Math.multiplyExact(rows, colsPad)];
        if (t.dtype() == DType.BF16) {
            for (int r = 0; r < rows; r++)
                MemorySegment.copy(t.segment(), ValueLayout.JAVA_SHORT_UNALIGNED, 2L * r * cols, out, r * colsPad, cols);
        } else {
            float[] v = t.toFloatArray();
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) out[r * colsPad + c] = DType.floatToBf16(v[r * cols + c]);
        }
        DeviceBuffer b = arena.alloc(prefix + name + " (padded)", 2L * out.length);
        stream.upload(b, out);
        return b;
    }
}
