package io.vlmflux.llm.quant;

import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The oracle of the 4-bit loaders and kernels: each format's tiny checkpoint, packed from known integers, must give
 * the logits of the same model with its linears dequantized to float32 and run through the existing (validated) CPU
 * decoder: within 1e-3 for a prefill and each greedy step, and identical greedy tokens.
 */
class QuantizedModelTest {
    @TempDir Path tmp;

    static Stream<Arguments> formats() {
        return Stream.of(
                Arguments.of("awq g128", new QuantConfig(QuantConfig.Method.AWQ, 4, 128, false, false, false), 11L),
                Arguments.of("awq g32", new QuantConfig(QuantConfig.Method.AWQ, 4, 32, false, false, false), 12L),
                Arguments.of("gptq v1 sym g128", new QuantConfig(QuantConfig.Method.GPTQ, 4, 128, true, false, true), 13L),
                Arguments.of("gptq v1 asym g64", new QuantConfig(QuantConfig.Method.GPTQ, 4, 64, false, false, true), 14L),
                Arguments.of("gptq v1 sym desc_act g32", new QuantConfig(QuantConfig.Method.GPTQ, 4, 32, true, true, true), 15L),
                Arguments.of("gptq v2 asym desc_act g64", new QuantConfig(QuantConfig.Method.GPTQ, 4, 64, false, true, false), 16L),
                Arguments.of("gptq v1 per-channel", new QuantConfig(QuantConfig.Method.GPTQ, 4, -1, true, false, true), 17L),
                Arguments.of("compressed-tensors sym g128", new QuantConfig(QuantConfig.Method.COMPRESSED_TENSORS, 4, 128, true, false, false), 18L),
                Arguments.of("compressed-tensors asym g32", new QuantConfig(QuantConfig.Method.COMPRESSED_TENSORS, 4, 32, false, false, false), 19L),
                Arguments.of("compressed-tensors sym actorder g64", new QuantConfig(QuantConfig.Method.COMPRESSED_TENSORS, 4, 64, true, true, false), 20L),
                Arguments.of("compressed-tensors channel", new QuantConfig(QuantConfig.Method.COMPRESSED_TENSORS, 4, -1, true, false, false), 21L));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("formats")
    void matchesTheDequantizedModel(String label, QuantConfig q, long seed) throws Exception {
        Path qd = tmp.resolve("q"), rd = tmp.resolve("ref");
        QuantFixture.write(QuantFixture.Spec.tiny(q, seed), qd, rd);
        int[] prompt = {3, 17, 250, 99, 4, 311, 42};
        try (Decoder dq = Models.load(qd, "cpu"); Decoder dr = Models.load(rd, "cpu")) {
            assertTrue(String.valueOf(dq.info().get("weights")).startsWith("int4 " + q.method().wire()), dq.info().toString());
            KvCache cq = dq.newCache(64), cr = dr.newCache(64);
            float[] lq = dq.forward(cq, ForwardInput.tokens(prompt), true), lr = dr.forward(cr, ForwardInput.tokens(prompt), true);
            assertClose(lr, lq, label + " prefill");
            int[] tq = new int[10], tr = new int[10];
            int vocab = dq.config().vocabSize();
            float[] lastQ = Arrays.copyOfRange(lq, lq.length - vocab, lq.length), lastR = Arrays.copyOfRange(lr, lr.length - vocab, lr.length);
            for (int s = 0; s < tq.length; s++) {
                tq[s] = argmax(lastQ);
                tr[s] = argmax(lastR);
                lastQ = dq.forward(cq, ForwardInput.tokens(tq[s]), false);
                lastR = dr.forward(cr, ForwardInput.tokens(tr[s]), false);
                assertClose(lastR, lastQ, label + " step " + s);
            }
            assertArrayEquals(tr, tq, label + ": greedy tokens");
        }
    }

    static void assertClose(float[] ref, float[] got, String what) {
        assertTrue(ref.length == got.length, what + ": lengths");
        double max = 0, spread = 0;
        for (int i = 0; i < ref.length; i++) {
            max = Math.max(max, Math.abs(ref[i] - got[i]));
            spread = Math.max(spread, Math.abs(ref[i]));
        }
        assertTrue(spread > 0.1, what + ": logits degenerate (max |logit| " + spread + ")");
        assertTrue(max < 1e-3, what + ": max |logit diff| " + max);
    }

    static int argmax(float[] v) {
        int b = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
        return b;
    }
}
