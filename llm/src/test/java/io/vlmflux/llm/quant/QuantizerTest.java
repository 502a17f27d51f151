package io.vlmflux.llm.quant;

import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.RandomCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code vlmflux quantize} (RTN and AWQ) on a random 16-bit checkpoint, and the accuracy harness around it. */
class QuantizerTest {
    @TempDir Path tmp;

    // no GQA (o_proj's inputs are v_proj's rows: the v -> o fold runs too), untied lm_head, q/k/v biases
    static final RandomCheckpoint.Shape SHAPE = new RandomCheckpoint.Shape("t", 64, 2, 4, 4, 16, 128, 512, false, true, 2048);

    @Test
    void rtnWritesAutoAwqRoundToNearestExactlyAndLoads() throws Exception {
        Path src = tmp.resolve("src"), out = tmp.resolve("rtn");
        RandomCheckpoint.write(src, SHAPE, 3);
        Files.writeString(src.resolve("tokenizer_config.json"), "{}");
        Quantizer.Report r = Quantizer.quantize(src, out, new Quantizer.Options(32, Quantizer.Method.RTN, List.of()));
        assertEquals(2 * 7, r.packed());
        assertTrue(Files.exists(out.resolve("tokenizer_config.json")));
        ModelConfig c = ModelConfig.load(out);
        assertEquals(new QuantConfig(QuantConfig.Method.AWQ, 4, 32, false, false, false), c.quantization());
        try (WeightStore a = WeightStore.read(src); WeightStore b = WeightStore.read(out)) {
            String n = "model.layers.1.mlp.down_proj";
            float[] w = a.tensor(n + ".weight").toFloatArray();
            Int4Formats.Unpacked want = Quantizer.rtn(w, 64, 128, 32), got = Int4Formats.read(b, c.quantization(), n, 64, 128);
            assertArrayEquals(want.q(), got.q());
            assertArrayEquals(want.zeros(), got.zeros());
            assertArrayEquals(want.scales(), got.scales());
            // RTN error bound: half a step, plus the f16 rounding of the step over the 15 steps of a group's range
            // (the clamp at 15 can cost 0.5 + 15 * 2^-11 steps)
            float[] dq = got.dequantize();
            for (int i = 0; i < w.length; i++) assertTrue(Math.abs(w[i] - dq[i]) <= got.scales()[(i / 128) * 4 + (i % 128) / 32] * 0.51f, "element " + i);
            assertArrayEquals(a.tensor("lm_head.weight").toFloatArray(), b.tensor("lm_head.weight").toFloatArray());
        }
        assertThrows(IllegalArgumentException.class, () -> Quantizer.quantize(out, tmp.resolve("again"), new Quantizer.Options(32, Quantizer.Method.RTN, List.of())));
    }

    @Test
    void awqKeepsTheFunctionAndIsNoWorseThanRtnOnItsCalibration() throws Exception {
        Path src = tmp.resolve("src"), rtn = tmp.resolve("rtn"), awq = tmp.resolve("awq");
        RandomCheckpoint.write(src, SHAPE, 4);
        TextSet calib = TextSet.load(src, null, 64, 6, SHAPE.vocab());
        Quantizer.quantize(src, rtn, new Quantizer.Options(32, Quantizer.Method.RTN, List.of()));
        Quantizer.Report r = Quantizer.quantize(src, awq, new Quantizer.Options(32, Quantizer.Method.AWQ, calib.windows()));
        assertEquals(2 * 4, r.alphas().size(), r.alphas().toString());
        try (Decoder ref = Models.load(src, "cpu"); Decoder qr = Models.load(rtn, "cpu"); Decoder qa = Models.load(awq, "cpu")) {
            Evaluator.Result self = Evaluator.run(ref, ref, calib.windows());
            assertEquals(1.0, self.top1());
            assertEquals(0.0, self.meanKl(), 1e-12);
            Evaluator.Result er = Evaluator.run(qr, ref, calib.windows()), ea = Evaluator.run(qa, ref, calib.windows());
            System.out.printf("rtn: top1 %.4f kl %.3g ppl %.3f | awq: top1 %.4f kl %.3g ppl %.3f | 16-bit ppl %.3f | alphas %s%n",
                    er.top1(), er.meanKl(), er.perplexity(), ea.top1(), ea.meanKl(), ea.perplexity(), er.referencePerplexity(), r.alphas());
            assertTrue(er.meanKl() > 0 && Double.isFinite(er.perplexity()));
            // a wrong fold (1/s applied to the wrong tensor) changes the function by far more than 4-bit rounding does
            assertTrue(ea.meanKl() < 2 * er.meanKl() + 1e-6, "awq KL " + ea.meanKl() + " vs rtn " + er.meanKl());
        }
    }
}
