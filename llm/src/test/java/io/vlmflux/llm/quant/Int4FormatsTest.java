package io.vlmflux.llm.quant;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Models;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packing orders pinned by literal words worked out by hand from the reference packers (not by our own writer),
 * the writer checked against the same words, and bad checkpoints refused with errors naming the tensor or field.
 */
class Int4FormatsTest {
    @TempDir Path tmp;

    static final QuantConfig AWQ = new QuantConfig(QuantConfig.Method.AWQ, 4, 8, false, false, false);
    static final QuantConfig GPTQ_V1 = new QuantConfig(QuantConfig.Method.GPTQ, 4, 8, true, false, true);
    static final QuantConfig GPTQ_V2 = new QuantConfig(QuantConfig.Method.GPTQ, 4, 8, false, false, false);
    static final QuantConfig CT_SYM = new QuantConfig(QuantConfig.Method.COMPRESSED_TENSORS, 4, 8, true, false, false);
    static final QuantConfig CT_ASYM = new QuantConfig(QuantConfig.Method.COMPRESSED_TENSORS, 4, 8, false, false, false);

    private WeightStore store(SafetensorsWriter w) throws Exception {
        Path f = tmp.resolve("w" + System.nanoTime() + ".safetensors");
        w.write(f);
        return WeightStore.read(f);
    }

    /** AutoAWQ packs output 8p + ORDER[n] (ORDER = 0,2,4,6,1,3,5,7) into nibble n: outputs 1..8 -> 0x86427531. */
    @Test
    void awqInterleavedOrder() throws Exception {
        SafetensorsWriter w = new SafetensorsWriter();
        long[] qw = new long[8];          // [in 8, out/8 1]
        Arrays.fill(qw, 0x86427531L);
        w.addExact("l.qweight", DType.I32, new long[]{8, 1}, qw);
        w.addExact("l.qzeros", DType.I32, new long[]{1, 1}, new long[]{0x76543210L});  // zero of output k sits in nibble REVERSE[k]
        w.add("l.scales", DType.F16, new long[]{1, 8}, new float[]{1, 1, 1, 1, 1, 1, 1, 1});
        try (WeightStore s = store(w)) {
            Int4Formats.Unpacked u = Int4Formats.read(s, AWQ, "l", 8, 8);
            for (int o = 0; o < 8; o++) assertEquals(o + 1, u.q()[o * 8 + 3], "q of output " + o);
            // nibbles 0..7 hold 0..7; output k reads nibble REVERSE[k] = 0,4,1,5,2,6,3,7
            assertEquals(Arrays.toString(new float[]{0, 4, 1, 5, 2, 6, 3, 7}), Arrays.toString(Arrays.copyOf(zerosOf(u), 8)));
            // round trip through the writer gives the same words
            SafetensorsWriter back = new SafetensorsWriter();
            Int4Formats.write(back, AWQ, "l", u);
            try (WeightStore s2 = store(back)) {
                assertEquals(0x86427531L, s2.tensor("l.qweight").getLong(5) & 0xffffffffL);
                assertEquals(0x76543210L, s2.tensor("l.qzeros").getLong(0) & 0xffffffffL);
            }
        }
    }

    private static float[] zerosOf(Int4Formats.Unpacked u) {
        float[] z = new float[u.out()];
        for (int o = 0; o < u.out(); o++) z[o] = u.zeros()[o * u.groups()];
        return z;
    }

    /** GPTQ packs input rows 8p + j into nibble j (sequential); v1 stores zero - 1 (symmetric 8 -> 0x77777777). */
    @Test
    void gptqSequentialOrderAndZeroOffset() throws Exception {
        SafetensorsWriter w = new SafetensorsWriter();
        long[] qw = new long[8];          // [in/8 1, out 8]
        Arrays.fill(qw, 0x87654321L);
        w.addExact("l.qweight", DType.I32, new long[]{1, 8}, qw);
        w.addExact("l.qzeros", DType.I32, new long[]{1, 1}, new long[]{0x77777777L});
        w.add("l.scales", DType.F16, new long[]{1, 8}, new float[]{0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f});
        w.addExact("l.g_idx", DType.I32, new long[]{8}, new long[8]);
        try (WeightStore s = store(w)) {
            Int4Formats.Unpacked v1 = Int4Formats.read(s, GPTQ_V1, "l", 8, 8);
            for (int i = 0; i < 8; i++) assertEquals(i + 1, v1.q()[2 * 8 + i], "q of input row " + i);
            assertEquals(8f, v1.zeros()[0]);
            assertEquals((1 - 8) * 0.5f, v1.dequantize()[0]);
            Int4Formats.Unpacked v2 = Int4Formats.read(s, GPTQ_V2, "l", 8, 8);
            assertEquals(7f, v2.zeros()[0]);
            SafetensorsWriter back = new SafetensorsWriter();
            Int4Formats.write(back, GPTQ_V1, "l", v1);
            try (WeightStore s2 = store(back)) {
                assertEquals(0x87654321L, s2.tensor("l.qweight").getLong(4) & 0xffffffffL);
                assertEquals(0x77777777L, s2.tensor("l.qzeros").getLong(0) & 0xffffffffL);
            }
        }
    }

    /** compressed-tensors: inputs 8p + j in nibble j as signed value + 8; asymmetric zero points packed along outputs. */
    @Test
    void compressedTensorsOffsetAndZeroPointPacking() throws Exception {
        SafetensorsWriter w = new SafetensorsWriter();
        long[] wp = new long[9];          // [out 9, in/8 1]
        Arrays.fill(wp, 0x76543210L);     // signed -8..-1
        w.addExact("l.weight_packed", DType.I32, new long[]{9, 1}, wp);
        float[] sc = new float[9];
        Arrays.fill(sc, 2f);
        w.add("l.weight_scale", DType.BF16, new long[]{9, 1}, sc);
        w.addExact("l.weight_shape", DType.I64, new long[]{2}, new long[]{9, 8});
        // zero points [ceil(9/8) = 2, groups 1]: outputs 0..7 in word 0 nibble j, output 8 in word 1 nibble 0; signed zp = nibble - 8
        w.addExact("l.weight_zero_point", DType.I32, new long[]{2, 1}, new long[]{0x99999999L, 0x7L});
        try (WeightStore s = store(w)) {
            float[] sym = Int4Formats.read(s, CT_SYM, "l", 9, 8).dequantize();
            assertEquals(-16f, sym[0]);          // (-8 - 0) * 2
            assertEquals(-2f, sym[7]);           // (-1 - 0) * 2
            float[] asym = Int4Formats.read(s, CT_ASYM, "l", 9, 8).dequantize();
            assertEquals((-8 - 1) * 2f, asym[0]); // zp nibble 9 -> +1
            assertEquals((-1 - (-1)) * 2f, asym[8 * 8 + 7]); // output 8: zp nibble 7 -> -1
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Int4Formats.read(s, CT_SYM, "l", 10, 8));
            assertTrue(e.getMessage().contains("l.weight_shape") || e.getMessage().contains("l.weight_packed"), e.getMessage());
        }
    }

    // ---- bad checkpoints through Models.load

    private Path fixture(QuantConfig q) throws Exception {
        Path d = tmp.resolve("m" + System.nanoTime());
        QuantFixture.write(QuantFixture.Spec.tiny(q, 5), d, tmp.resolve("r" + System.nanoTime()));
        return d;
    }

    private static String loadError(Path d, String backend) {
        return assertThrows(IllegalArgumentException.class, () -> Models.load(d, backend).close()).getMessage();
    }

    private static void editConfig(Path d, String from, String to) throws Exception {
        String c = Files.readString(d.resolve("config.json"));
        assertTrue(c.contains(from), c);
        Files.writeString(d.resolve("config.json"), c.replace(from, to));
    }

    @Test
    void groupSizeThatDisagreesWithThePackedShapesNamesTheTensor() throws Exception {
        Path d = fixture(new QuantConfig(QuantConfig.Method.AWQ, 4, 128, false, false, false));
        editConfig(d, "\"group_size\":128", "\"group_size\":64");
        String m = loadError(d, "cpu");
        assertTrue(m.contains("model.layers.0.self_attn.q_proj.qzeros") && m.contains("expected shape [2, 16]") && m.contains("[1, 16]"), m);
    }

    @Test
    void missingScaleIsNamed() throws Exception {
        Path d = fixture(new QuantConfig(QuantConfig.Method.GPTQ, 4, 128, true, false, true));
        rewriteWithout(d, "model.layers.1.mlp.down_proj.scales");
        String m = loadError(d, "cpu");
        assertTrue(m.contains("model.layers.1.mlp.down_proj.scales") && m.contains("missing"), m);
    }

    @Test
    void unsupportedBitsAndMethodsAreNamed() throws Exception {
        Path d = fixture(new QuantConfig(QuantConfig.Method.GPTQ, 4, 128, true, false, true));
        editConfig(d, "\"bits\":4", "\"bits\":8");
        String m = loadError(d, "cpu");
        assertTrue(m.contains("config.json") && m.contains("bits 8"), m);
        editConfig(d, "\"quant_method\":\"gptq\"", "\"quant_method\":\"bitsandbytes\"");
        m = loadError(d, "cpu");
        assertTrue(m.contains("quant_method 'bitsandbytes'"), m);
        Path c = fixture(new QuantConfig(QuantConfig.Method.COMPRESSED_TENSORS, 4, 128, true, false, false));
        editConfig(c, "\"input_activations\":null", "\"input_activations\":{\"num_bits\":8,\"type\":\"int\"}");
        m = loadError(c, "cpu");
        assertTrue(m.contains("config_groups.group_0.input_activations"), m);
    }

    @Test
    void packedWeightsWithoutQuantizationConfigSaySo() throws Exception {
        Path d = fixture(new QuantConfig(QuantConfig.Method.AWQ, 4, 128, false, false, false));
        String c = Files.readString(d.resolve("config.json"));
        Files.writeString(d.resolve("config.json"), c.substring(0, c.indexOf(",\n \"quantization_config\"")) + "}\n");
        String m = loadError(d, "cpu");
        assertTrue(m.contains("no quantization_config"), m);
    }

    private static void rewriteWithout(Path d, String drop) throws Exception {
        Path f = d.resolve("model.safetensors");
        SafetensorsWriter w = new SafetensorsWriter();
        try (WeightStore s = WeightStore.read(f)) {
            assertTrue(s.has(drop));
            for (TensorView t : s.tensors().values()) {
                if (t.name().equals(drop)) continue;
                if (t.dtype().isFloating()) w.add(t.name(), t.dtype(), t.shape(), t.toFloatArray());
                else {
                    long[] v = new long[(int) t.numel()];
                    for (int i = 0; i < v.length; i++) v[i] = t.getLong(i);
                    w.addExact(t.name(), t.dtype(), t.shape(), v);
                }
            }
        }
        w.write(f);
    }
}
