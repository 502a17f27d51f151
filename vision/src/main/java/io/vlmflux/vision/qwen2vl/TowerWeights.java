package io.vlmflux.vision.qwen2vl;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.cpu.CpuMatrix;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;

/**
 * The weights of a Qwen-VL vision tower in a checkpoint, as the CPU towers read them: the tensor prefix
 * ({@code model.visual.} of transformers 5 or {@code visual.} of published checkpoints), the parameter count, and
 * whether the tower is kept as float32 copies (towers up to {@link Tuning#visionFp32MaxBytes()}) or read from the bf16
 * mapping on the fly. Shared by the Qwen2/2.5-VL and Qwen3-VL towers.
 */
public final class TowerWeights {
    private final WeightStore store;
    private final String prefix;
    private final long params;
    private final boolean fp32;

    /** @throws IllegalArgumentException naming the checkpoint when it holds no vision tower */
    public TowerWeights(WeightStore store) {
        this.store = store;
        if (store.has("model.visual.patch_embed.proj.weight")) prefix = "model.visual.";
        else if (store.has("visual.patch_embed.proj.weight")) prefix = "visual.";
        else throw new IllegalArgumentException(store.location() + ": no vision tower weights (neither 'model.visual.patch_embed.proj.weight' nor 'visual.patch_embed.proj.weight')");
        long n = 0;
        for (var e : store.tensors().entrySet()) if (e.getKey().startsWith(prefix)) n += e.getValue().numel();
        this.params = n;
        this.fp32 = n * 4 <= Tuning.fromSystemProperties().visionFp32MaxBytes();   // read once, at load
    }

    public String prefix() { return prefix; }
    public long params() { return params; }
    public boolean fp32() { return fp32; }

    /** The tower's tensor {@code name} (without the prefix), checked against {@code shape}. */
    public TensorView tensor(String name, long... shape) { return store.tensor(prefix + name, shape); }

    /** {@code name.weight [rows, cols]} and {@code name.bias [rows]} as a linear layer. */
    public Linear linear(String name, int rows, int cols) {
        TensorView t = tensor(name + ".weight", rows, cols);
        float[] bias = vec(name + ".bias", rows);
        return fp32 ? Linear.transposed(t.toFloatArray(), bias, rows, cols) : Linear.mapped(CpuMatrix.of(t), bias);
    }

    /** A 1-D tensor of {@code len} values as float32. */
    public float[] vec(String name, int len) { return tensor(name, len).toFloatArray(); }

    /** How the weights are held, for logs. */
    public String describe() { return params + " params (" + (fp32 ? "copied to float32" : "memory-mapped, converted on the fly") + ")"; }
}
