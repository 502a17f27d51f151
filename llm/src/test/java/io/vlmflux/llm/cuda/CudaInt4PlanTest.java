package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.gpu.Int4Device;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.TextModelSpec;
import io.vlmflux.llm.quant.QuantConfig;
import io.vlmflux.llm.quant.QuantFixture;
import io.vlmflux.llm.quant.QuantizedLinears;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The cuda decoder's arena plan for the linears of a 4-bit checkpoint (pure Java, no GPU): {@link CudaDecoder#linearsBytes}
 * equals, byte for byte, what its uploader takes, i.e. {@link Int4Device#uploadBytes} of the fused layouts
 * ({@link Int4Device.Layout#concat} of each part's layout), act-order included, where every q/k/v and gate/up linear
 * has its own permutation (and compressed-tensors' config does not say act-order: the g_idx tensors do).
 */
class CudaInt4PlanTest {
    @TempDir Path tmp;

    @ParameterizedTest(name = "{0} gs {1} sym {2} act-order {3}")
    @CsvSource({"GPTQ, 32, true, true, true", "GPTQ, 64, false, true, false", "GPTQ, 128, true, false, true",
            "COMPRESSED_TENSORS, 64, true, true, false", "COMPRESSED_TENSORS, 32, false, false, false", "AWQ, 128, false, false, false"})
    void planEqualsWhatTheUploaderTakes(QuantConfig.Method method, int gs, boolean sym, boolean descAct, boolean v1) throws Exception {
        QuantConfig q = new QuantConfig(method, 4, gs, sym, descAct, v1);
        Path qd = tmp.resolve("q"), rd = tmp.resolve("ref");
        QuantFixture.write(QuantFixture.Spec.tiny(q, 40 + gs), qd, rd);
        ModelConfig c = ModelConfig.load(qd);
        try (WeightStore store = WeightStore.open(qd)) {
            TextModelSpec spec = Models.family(c).spec(c, store.names());
            long uploaded = 0;
            for (int i = 0; i < c.numLayers(); i++)
                for (CudaDecoder.Fused f : CudaDecoder.fusedLinears(c, spec, i)) {
                    Int4Device.Layout[] parts = new Int4Device.Layout[f.names().length];
                    for (int j = 0; j < parts.length; j++)
                        parts[j] = Int4Device.Layout.of(QuantizedLinears.load(c, store, f.names()[j], new long[]{f.outs()[j], f.in()}));
                    Int4Device.Layout l = Int4Device.Layout.concat(f.label(), parts);
                    // the fixture draws every linear's act-order permutation anew: one per fused part
                    assertEquals(descAct ? f.names().length : 0, l.permParts(), f.label());
                    assertEquals(l.permParts(), QuantizedLinears.permParts(c, store, f.in(), f.names()), f.label());
                    uploaded += Int4Device.uploadBytes(l);
                }
            assertEquals(uploaded, CudaDecoder.linearsBytes(c, spec, store));
        }
    }
}
