package io.vlmflux.llm.quant;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.cpu.Int4Weights;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reading (and, for fixtures and {@code vlmflux quantize}, writing) one 4-bit linear layer {@code base} (e.g.
 * {@code model.layers.0.mlp.up_proj}) of shape {@code [out, in]} in each checkpoint format. The packing orders, as
 * read in the reference implementations (see {@code docs/quantization.md}):
 * <ul>
 *   <li>AWQ GEMM: {@code qweight [in, out/8]} int32, word {@code [i, p]} holds outputs {@code 8p..8p+7} of input row
 *   {@code i} with output {@code 8p + k} in nibble {@code REVERSE[k]} (= [0,4,1,5,2,6,3,7]; the packer writes
 *   {@code ORDER[n]} = [0,2,4,6,1,3,5,7] into nibble n); {@code qzeros [in/G, out/8]} the same way;
 *   {@code scales [in/G, out]}; {@code w = (q - z) * s}.</li>
 *   <li>GPTQ: {@code qweight [in/8, out]}, word {@code [p, o]} holds input rows {@code 8p + j} in nibble j;
 *   {@code qzeros [groups, out/8]} output {@code 8p + j} in nibble j, stored minus one in the v1 format (read as
 *   {@code (stored + 1) & 15}); {@code scales [groups, out]}; {@code g_idx [in]} the group of each input row
 *   (act-order: not monotone); {@code w = (q - z) * s}.</li>
 *   <li>compressed-tensors pack-quantized: {@code weight_packed [out, in/8]}, word {@code [o, p]} holds inputs
 *   {@code 8p + j} in nibble j as the signed value plus 8; {@code weight_scale [out, groups]};
 *   {@code weight_zero_point [ceil(out/8), groups]} (asymmetric only) packed along the output dimension the same way;
 *   {@code weight_shape [2]} = [out, in]; optional {@code weight_g_idx [in]}; {@code w = (q - zp) * s} in signed terms,
 *   which is {@code (nibble - zero nibble) * s}.</li>
 * </ul>
 * Every tensor is checked (present, dtype, shape against the model config, values in range) before use; errors name
 * the file and tensor.
 */
public final class Int4Formats {
    private Int4Formats() {}

    /** AutoAWQ's packing order: nibble n of a word holds output {@code 8p + ORDER[n]}. */
    static final int[] AWQ_ORDER = {0, 2, 4, 6, 1, 3, 5, 7};
    /** Its inverse: output {@code 8p + k} sits in nibble {@code AWQ_REVERSE[k]}. */
    static final int[] AWQ_REVERSE = {0, 4, 1, 5, 2, 6, 3, 7};

    /** Unpacked 4-bit weights: {@code q [out, in]} in 0..15, the group of each input column, scales and zeros {@code [out, groups]}. */
    public record Unpacked(int out, int in, byte[] q, int[] colGroup, int groups, float[] scales, float[] zeros) {
        public Int4Weights weights(String name) { return Int4Weights.of(name, out, in, q, colGroup, groups, scales, zeros); }

        /** {@code (q - z) * s}, float {@code [out, in]}: the definition every kernel is checked against. */
        public float[] dequantize() {
            float[] w = new float[out * in];
            for (int o = 0; o < out; o++)
                for (int i = 0; i < in; i++) {
                    int g = colGroup[i];
                    w[o * in + i] = (q[o * in + i] - zeros[o * groups + g]) * scales[o * groups + g];
                }
            return w;
        }
    }

    /** The tensor names a quantized linear {@code base} uses in {@code method}. */
    public static List<String> tensorNames(QuantConfig.Method method, String base) {
        return switch (method) {
            case AWQ -> List.of(base + ".qweight", base + ".qzeros", base + ".scales");
            case GPTQ -> List.of(base + ".qweight", base + ".qzeros", base + ".scales", base + ".g_idx");
            case COMPRESSED_TENSORS -> List.of(base + ".weight_packed", base + ".weight_scale", base + ".weight_zero_point",
                    base + ".weight_shape", base + ".weight_g_idx");
        };
    }

    /** Whether {@code store} holds {@code base} in the packed form of {@code method}. */
    public static boolean present(WeightStore store, QuantConfig.Method method, String base) {
        return store.has(tensorNames(method, base).get(0));
    }

    /** The names of {@code base}'s quantized tensors that {@code store} holds. */
    public static List<String> presentNames(WeightStore store, QuantConfig.Method method, String base) {
        List<String> l = new ArrayList<>();
        for (String n : tensorNames(method, base)) if (store.has(n)) l.add(n);
        return l;
    }

    /** Reads linear {@code base} {@code [out, in]}, checking every tensor's presence, dtype, shape and values. */
    public static Unpacked read(WeightStore store, QuantConfig c, String base, int out, int in) {
        return read(store, c, base, out, in, false);
    }

    /** Checks presence, dtypes and shapes of {@code base}'s tensors only (no values read). */
    public static void check(WeightStore store, QuantConfig c, String base, int out, int in) {
        read(store, c, base, out, in, true);
    }

    private static Unpacked read(WeightStore store, QuantConfig c, String base, int out, int in, boolean shapesOnly) {
        return switch (c.method()) {
            case AWQ -> readAwq(store, c, base, out, in, shapesOnly);
            case GPTQ -> readGptq(store, c, base, out, in, shapesOnly);
            case COMPRESSED_TENSORS -> readCompressed(store, c, base, out, in, shapesOnly);
        };
    }

    private static TensorView need(WeightStore store, String name, String base, String method) {
        return store.find(name).orElseThrow(() -> new IllegalArgumentException(store.location() + ": tensor '" + name + "' is missing ("
                + method + " layer " + base + " needs it)"));
    }

    private static void shape(TensorView t, long... expect) {
        if (!Arrays.equals(t.shape(), expect))
            throw new IllegalArgumentException(t.where() + ": expected shape " + Arrays.toString(expect) + " for this config but found "
                    + Arrays.toString(t.shape()));
    }

    private static void dtype(TensorView t, String what, DType... ok) {
        for (DType d : ok) if (t.dtype() == d) return;
        throw new IllegalArgumentException(t.where() + ": dtype " + t.dtype() + " is not valid for " + what + " (expected " + Arrays.toString(ok) + ")");
    }

    private static float[] floats(TensorView t) {
        dtype(t, "scales", DType.F16, DType.BF16, DType.F32);
        float[] f = t.toFloatArray();
        for (int i = 0; i < f.length; i++)
            if (!Float.isFinite(f[i])) throw new IllegalArgumentException(t.where() + ": non-finite scale " + f[i] + " at flat index " + i);
        return f;
    }

    private static int word(TensorView t, long i) { return (int) t.getLong(i); }

    private static int groupsFor(QuantConfig c, int in, String where) {
        int gs = c.groupSizeFor(in);
        return (in + gs - 1) / gs;
    }

    private static int[] defaultGroups(int in, int gs) {
        int[] g = new int[in];
        for (int i = 0; i < in; i++) g[i] = i / gs;
        return g;
    }

    /**
     * The stored group index ({@code g_idx} / {@code weight_g_idx}) of packed linear {@code base} when it reorders the
     * input columns (act-order: not in ascending group order, what makes {@link Int4Weights} keep a permutation), else
     * null (absent, or in order). Reads only that small tensor (arena planning before the upload).
     */
    public static int[] actOrderGroups(WeightStore store, QuantConfig c, String base, int in) {
        String name = switch (c.method()) {
            case AWQ -> null;
            case GPTQ -> base + ".g_idx";
            case COMPRESSED_TENSORS -> base + ".weight_g_idx";
        };
        TensorView t = name == null ? null : store.find(name).orElse(null);
        if (t == null) return null;
        int gs = c.groupSizeFor(in);
        int[] g = gIdx(t, in, (in + gs - 1) / gs);
        for (int i = 1; i < in; i++) if (g[i] < g[i - 1]) return g;
        return null;
    }

    private static int[] gIdx(TensorView t, int in, int groups) {
        dtype(t, "g_idx", DType.I32, DType.I64, DType.I16);
        shape(t, in);
        int[] g = new int[in];
        for (int i = 0; i < in; i++) {
            long v = t.getLong(i);
            if (v < 0 || v >= groups) throw new IllegalArgumentException(t.where() + ": group " + v + " of input row " + i + " is outside 0.." + (groups - 1));
            g[i] = (int) v;
        }
        return g;
    }

    private static void divisible(WeightStore store, String base, String what, int n, int by) {
        if (n % by != 0) throw new IllegalArgumentException(store.location() + ": layer " + base + ": " + what + " " + n + " is not a multiple of " + by);
    }

    private static Unpacked readAwq(WeightStore store, QuantConfig c, String base, int out, int in, boolean shapesOnly) {
        divisible(store, base, "out_features", out, 8);
        int gs = c.groupSizeFor(in);
        divisible(store, base, "in_features", in, gs);
        int groups = in / gs, po = out / 8;
        TensorView qw = need(store, base + ".qweight", base, "AWQ"), qz = need(store, base + ".qzeros", base, "AWQ"),
                sc = need(store, base + ".scales", base, "AWQ");
        dtype(qw, "qweight", DType.I32);
        dtype(qz, "qzeros", DType.I32);
        shape(qw, in, po);
        shape(qz, groups, po);
        shape(sc, groups, out);
        if (shapesOnly) return null;
        float[] s = floats(sc);
        byte[] q = new byte[out * in];
        float[] scales = new float[out * groups], zeros = new float[out * groups];
        for (int i = 0; i < in; i++)
            for (int p = 0; p < po; p++) {
                int v = word(qw, (long) i * po + p);
                for (int k = 0; k < 8; k++) q[(8 * p + k) * in + i] = (byte) ((v >>> (4 * AWQ_REVERSE[k])) & 15);
            }
        for (int g = 0; g < groups; g++)
            for (int p = 0; p < po; p++) {
                int v = word(qz, (long) g * po + p);
                for (int k = 0; k < 8; k++) {
                    int o = 8 * p + k;
                    zeros[o * groups + g] = (v >>> (4 * AWQ_REVERSE[k])) & 15;
                    scales[o * groups + g] = s[g * out + o];
                }
            }
        return new Unpacked(out, in, q, defaultGroups(in, gs), groups, scales, zeros);
    }

    private static Unpacked readGptq(WeightStore store, QuantConfig c, String base, int out, int in, boolean shapesOnly) {
        divisible(store, base, "in_features", in, 8);
        divisible(store, base, "out_features", out, 8);
        int gs = c.groupSizeFor(in), groups = (in + gs - 1) / gs, po = out / 8;
        TensorView qw = need(store, base + ".qweight", base, "GPTQ"), qz = need(store, base + ".qzeros", base, "GPTQ"),
                sc = need(store, base + ".scales", base, "GPTQ");
        dtype(qw, "qweight", DType.I32);
        dtype(qz, "qzeros", DType.I32);
        shape(qw, in / 8, out);
        shape(qz, groups, po);
        shape(sc, groups, out);
        TensorView gi = store.find(base + ".g_idx").orElse(null);
        if (gi != null) { dtype(gi, "g_idx", DType.I32, DType.I64, DType.I16); shape(gi, in); }
        if (shapesOnly && (gi != null || !c.descAct())) return null;
        int[] colGroup;
        if (gi != null) colGroup = gIdx(gi, in, groups);
        else if (c.descAct()) throw new IllegalArgumentException(store.location() + ": tensor '" + base + ".g_idx' is missing (config desc_act is true)");
        else colGroup = defaultGroups(in, gs);
        float[] s = floats(sc);
        byte[] q = new byte[out * in];
        for (int p = 0; p < in / 8; p++)
            for (int o = 0; o < out; o++) {
                int v = word(qw, (long) p * out + o);
                for (int j = 0; j < 8; j++) q[o * in + 8 * p + j] = (byte) ((v >>> (4 * j)) & 15);
            }
        float[] scales = new float[out * groups], zeros = new float[out * groups];
        for (int g = 0; g < groups; g++)
            for (int p = 0; p < po; p++) {
                int v = word(qz, (long) g * po + p);
                for (int j = 0; j < 8; j++) {
                    int o = 8 * p + j, z = (v >>> (4 * j)) & 15;
                    zeros[o * groups + g] = c.gptqZeroOffset() ? (z + 1) & 15 : z;
                    scales[o * groups + g] = s[g * out + o];
                }
            }
        return new Unpacked(out, in, q, colGroup, groups, scales, zeros);
    }

    private static Unpacked readCompressed(WeightStore store, QuantConfig c, String base, int out, int in, boolean shapesOnly) {
        divisible(store, base, "in_features", in, 8);
        int gs = c.groupSizeFor(in), groups = (in + gs - 1) / gs, pi = in / 8;
        TensorView wp = need(store, base + ".weight_packed", base, "compressed-tensors"),
                sc = need(store, base + ".weight_scale", base, "compressed-tensors");
        TensorView ws = store.find(base + ".weight_shape").orElse(null);
        if (ws != null) {
            dtype(ws, "weight_shape", DType.I64, DType.I32);
            shape(ws, 2);
            if (ws.getLong(0) != out || ws.getLong(1) != in)
                throw new IllegalArgumentException(ws.where() + ": holds [" + ws.getLong(0) + ", " + ws.getLong(1) + "] but the config gives [" + out + ", " + in + "]");
        }
        dtype(wp, "weight_packed", DType.I32);
        shape(wp, out, pi);
        shape(sc, out, groups);
        if (!c.symmetric()) {
            TensorView zp = need(store, base + ".weight_zero_point", base, "compressed-tensors (asymmetric)");
            dtype(zp, "weight_zero_point", DType.I32);
            shape(zp, (out + 7) / 8, groups);
        }
        if (shapesOnly) return null;
        float[] s = floats(sc);
        int[] colGroup;
        TensorView gi = store.find(base + ".weight_g_idx").orElse(null);
        colGroup = gi != null ? gIdx(gi, in, groups) : defaultGroups(in, gs);
        byte[] q = new byte[out * in];
        for (int o = 0; o < out; o++)
            for (int p = 0; p < pi; p++) {
                int v = word(wp, (long) o * pi + p);
                for (int j = 0; j < 8; j++) q[o * in + 8 * p + j] = (byte) ((v >>> (4 * j)) & 15);
            }
        float[] zeros = new float[out * groups];
        if (c.symmetric()) Arrays.fill(zeros, 8f);
        else {
            TensorView zp = need(store, base + ".weight_zero_point", base, "compressed-tensors (asymmetric)");
            dtype(zp, "weight_zero_point", DType.I32);
            int pr = (out + 7) / 8;
            shape(zp, pr, groups);
            for (int p = 0; p < pr; p++)
                for (int g = 0; g < groups; g++) {
                    int v = word(zp, (long) p * groups + g);
                    for (int j = 0; j < 8 && 8 * p + j < out; j++) zeros[(8 * p + j) * groups + g] = (v >>> (4 * j)) & 15;
                }
        }
        return new Unpacked(out, in, q, colGroup, groups, s, zeros);
    }

    // ---- writing (fixtures, vlmflux quantize)

    /**
     * Adds linear {@code base} in {@code c}'s format to {@code w}. Scales are written as F16 (AWQ, GPTQ) or BF16
     * (compressed-tensors), like the reference tools; {@code u.scales} should already be representable (see
     * {@link #roundScales}) for the written checkpoint to equal {@code u} exactly.
     */
    public static void write(SafetensorsWriter w, QuantConfig c, String base, Unpacked u) {
        int out = u.out(), in = u.in(), groups = u.groups();
        switch (c.method()) {
            case AWQ -> {
                int po = out / 8;
                long[] qw = new long[in * po], qz = new long[groups * po];
                float[] sc = new float[groups * out];
                for (int i = 0; i < in; i++)
                    for (int p = 0; p < po; p++) {
                        int v = 0;
                        for (int n = 0; n < 8; n++) v |= (u.q()[(8 * p + AWQ_ORDER[n]) * in + i] & 15) << (4 * n);
                        qw[i * po + p] = v;
                    }
                for (int g = 0; g < groups; g++)
                    for (int p = 0; p < po; p++) {
                        int v = 0;
                        for (int n = 0; n < 8; n++) v |= ((int) u.zeros()[(8 * p + AWQ_ORDER[n]) * groups + g] & 15) << (4 * n);
                        qz[g * po + p] = v;
                    }
                for (int o = 0; o < out; o++) for (int g = 0; g < groups; g++) sc[g * out + o] = u.scales()[o * groups + g];
                w.addExact(base + ".qweight", DType.I32, new long[]{in, po}, qw);
                w.addExact(base + ".qzeros", DType.I32, new long[]{groups, po}, qz);
                w.add(base + ".scales", DType.F16, new long[]{groups, out}, sc);
            }
            case GPTQ -> {
                int po = out / 8;
                long[] qw = new long[in / 8 * out], qz = new long[groups * po], gi = new long[in];
                float[] sc = new float[groups * out];
                for (int p = 0; p < in / 8; p++)
                    for (int o = 0; o < out; o++) {
                        int v = 0;
                        for (int j = 0; j < 8; j++) v |= (u.q()[o * in + 8 * p + j] & 15) << (4 * j);
                        qw[p * out + o] = v;
                    }
                for (int g = 0; g < groups; g++)
                    for (int p = 0; p < po; p++) {
                        int v = 0;
                        for (int j = 0; j < 8; j++) {
                            int z = (int) u.zeros()[(8 * p + j) * groups + g];
                            v |= ((c.gptqZeroOffset() ? z - 1 : z) & 15) << (4 * j);
                        }
                        qz[g * po + p] = v;
                    }
                for (int o = 0; o < out; o++) for (int g = 0; g < groups; g++) sc[g * out + o] = u.scales()[o * groups + g];
                for (int i = 0; i < in; i++) gi[i] = u.colGroup()[i];
                w.addExact(base + ".qweight", DType.I32, new long[]{in / 8, out}, qw);
                w.addExact(base + ".qzeros", DType.I32, new long[]{groups, po}, qz);
                w.add(base + ".scales", DType.F16, new long[]{groups, out}, sc);
                w.addExact(base + ".g_idx", DType.I32, new long[]{in}, gi);
            }
            case COMPRESSED_TENSORS -> {
                int pi = in / 8;
                long[] wp = new long[out * pi];
                for (int o = 0; o < out; o++)
                    for (int p = 0; p < pi; p++) {
                        int v = 0;
                        for (int j = 0; j < 8; j++) v |= (u.q()[o * in + 8 * p + j] & 15) << (4 * j);
                        wp[o * pi + p] = v;
                    }
                w.addExact(base + ".weight_packed", DType.I32, new long[]{out, pi}, wp);
                w.add(base + ".weight_scale", DType.BF16, new long[]{out, groups}, u.scales());
                w.addExact(base + ".weight_shape", DType.I64, new long[]{2}, new long[]{out, in});
                if (!c.symmetric()) {
                    int pr = (out + 7) / 8;
                    long[] zp = new long[pr * groups];
                    for (int p = 0; p < pr; p++)
                        for (int g = 0; g < groups; g++) {
                            int v = 0;
                            for (int j = 0; j < 8 && 8 * p + j < out; j++) v |= ((int) u.zeros()[(8 * p + j) * groups + g] & 15) << (4 * j);
                            zp[p * groups + g] = v;
                        }
                    w.addExact(base + ".weight_zero_point", DType.I32, new long[]{pr, groups}, zp);
                }
                boolean identity = true;
                int gs = c.groupSizeFor(in);
                for (int i = 0; i < in; i++) identity &= u.colGroup()[i] == i / gs;
                if (!identity) {
                    long[] gi = new long[in];
                    for (int i = 0; i < in; i++) gi[i] = u.colGroup()[i];
                    w.addExact(base + ".weight_g_idx", DType.I32, new long[]{in}, gi);
                }
            }
        }
    }

    /** Rounds scales in place to what {@link #write} stores for {@code method} (F16, or BF16 for compressed-tensors). */
    public static void roundScales(QuantConfig.Method method, float[] scales) {
        for (int i = 0; i < scales.length; i++)
            scales[i] = method == QuantConfig.Method.COMPRESSED_TENSORS ? DType.bf16ToFloat(DType.floatToBf16(scales[i]))
                    : DType.f16ToFloat(DType.floatToF16(scales[i]));
    }
}
