package io.vlmflux.llm.quant;

import io.vlmflux.cuda.gpu.Int4Device;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import io.vlmflux.cuda.safetensors.WeightStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The cuda device layout ({@link Int4Device.Layout}, pure Java, runs in CI) for every checkpoint format: packed
 * tensors written in the format, read back through {@link Int4Formats} into the canonical form, repacked, then
 * unpacked: the original 4-bit values, groups, scales (fp16) and zero points come back for every element, with and
 * without act-order, and through the q/k/v concatenation.
 */
class Int4DeviceLayoutTest {
    @TempDir Path tmp;

    @ParameterizedTest(name = "{0} gs {1} sym {2} descAct {3}")
    @CsvSource({"AWQ, 32, false, false", "AWQ, 128, false, false", "GPTQ, 64, true, false", "GPTQ, 128, false, false",
            "GPTQ, 32, true, true", "GPTQ, 64, false, true", "COMPRESSED_TENSORS, 32, true, false",
            "COMPRESSED_TENSORS, 128, false, false", "COMPRESSED_TENSORS, 64, true, true"})
    void repackThenUnpackGivesTheOriginalValues(QuantConfig.Method method, int gs, boolean sym, boolean descAct) throws Exception {
        Random rnd = new Random(method.ordinal() * 1000L + gs + (sym ? 7 : 0) + (descAct ? 13 : 0));
        int out = 24, in = 4 * gs;
        QuantConfig qc = new QuantConfig(method, 4, gs, sym, descAct, method == QuantConfig.Method.GPTQ && sym);
        Int4Formats.Unpacked u = random(rnd, out, in, gs, sym, descAct);
        SafetensorsWriter w = new SafetensorsWriter();
        Int4Formats.write(w, qc, "l", u);
        Path f = tmp.resolve("w.safetensors");
        w.write(f);
        try (WeightStore s = WeightStore.read(f)) {
            Int4Formats.Unpacked back = Int4Formats.read(s, qc, "l", out, in);
            Int4Device.Layout l = Int4Device.Layout.of(back.weights("l.weight"));
            assertEquals(descAct, l.perm() != null, "act-order keeps a permutation");
            assertEquals(gs, l.groupSize());
            check(u, back, l, 0);
            // q/k/v-style concatenation keeps each part's rows
            Int4Device.Layout cat = Int4Device.Layout.concat("qkv", l, l);
            assertEquals(2 * out, cat.rows());
            check(u, back, cat, 0);
            check(u, back, cat, out);
        }
    }

    /** q, groups and zero points as written; scales as the format stores them (compressed-tensors: bf16), then fp16. */
    private static void check(Int4Formats.Unpacked u, Int4Formats.Unpacked read, Int4Device.Layout l, int rowOff) {
        int out = u.out(), in = u.in();
        for (int r = 0; r < out; r++)
            for (int c = 0; c < in; c++) {
                assertEquals(u.q()[r * in + c], l.unpack(rowOff + r, c), "q at [" + r + ", " + c + "]");
                int g = u.colGroup()[c];
                int lg = l.groupOf(rowOff + r, c);
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(read.scales()[r * u.groups() + g])), l.scale(rowOff + r, lg), "scale at [" + r + ", " + c + "]");
                assertEquals(u.zeros()[r * u.groups() + g], l.zero(rowOff + r, lg), "zero at [" + r + ", " + c + "]");
            }
    }

    private static Int4Formats.Unpacked random(Random rnd, int out, int in, int gs, boolean sym, boolean descAct) {
        int groups = in / gs;
        byte[] q = new byte[out * in];
        for (int i = 0; i < q.length; i++) q[i] = (byte) rnd.nextInt(16);
        int[] colGroup = new int[in];
        for (int c = 0; c < in; c++) colGroup[c] = c / gs;
        if (descAct)   // act-order: groups in a shuffled column order, each still gs columns
            for (int c = in - 1; c > 0; c--) { int j = rnd.nextInt(c + 1); int t = colGroup[c]; colGroup[c] = colGroup[j]; colGroup[j] = t; }
        float[] scales = new float[out * groups], zeros = new float[out * groups];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = Float.float16ToFloat(Float.floatToFloat16(0.001f + rnd.nextFloat() * 0.05f));
            zeros[i] = sym ? 8 : rnd.nextInt(16);
        }
        return new Int4Formats.Unpacked(out, in, q, colGroup, groups, scales, zeros);
    }

    @Test
    void unsupportedShapesNameTheTensor() {
        Random rnd = new Random(3);
        Int4Formats.Unpacked u = random(rnd, 8, 48, 16, true, false);   // group size 16: not a multiple of 32
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Int4Device.Layout.of(u.weights("model.layers.0.mlp.up_proj.weight")));
        assertTrue(e.getMessage().contains("model.layers.0.mlp.up_proj.weight"), e.getMessage());
        Int4Formats.Unpacked v = random(rnd, 8, 80, 80, true, false);   // 80 columns: not a multiple of 32
        e = assertThrows(IllegalArgumentException.class, () -> Int4Device.Layout.of(v.weights("model.layers.1.self_attn.o_proj.weight")));
        assertTrue(e.getMessage().contains("model.layers.1.self_attn.o_proj.weight") && e.getMessage().contains("80"), e.getMessage());
    }
}
