package io.vlmflux.llm;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import io.vlmflux.cuda.safetensors.TensorView;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ConfigAndLoadTest {
    @TempDir Path dir;

    @Test void bothLayoutsGiveTheSameConfig() throws Exception {
        for (String m : List.of("tiny-qwen2", "tiny-qwen3", "tiny-llama", "tiny-qwen2vl", "tiny-qwen25vl")) {
            ModelConfig a = ModelConfig.load(Fixtures.dir(m)), b = ModelConfig.load(Fixtures.dir(m), "config.hub.json");
            assertEquals(a, b, m);
        }
        ModelConfig l = ModelConfig.load(Fixtures.dir("tiny-llama"));
        assertEquals("llama3", l.rope().type());
        assertEquals(8.0, l.rope().factor());
        assertEquals(1024, l.rope().originalMaxPositionEmbeddings());
        assertFalse(l.tieWordEmbeddings());
        ModelConfig q3 = ModelConfig.load(Fixtures.dir("tiny-qwen3"));
        assertEquals(32, q3.headDim());
        assertTrue(q3.tieWordEmbeddings());
        ModelConfig vl = ModelConfig.load(Fixtures.dir("tiny-qwen25vl"), "config.hub.json");
        assertArrayEquals(new int[]{2, 3, 3}, vl.rope().mropeSection());
        assertEquals(3012, vl.imageTokenId());
        assertEquals(List.of(3002), vl.eosTokenIds());
        assertEquals(64 / 4, vl.headDim());
    }

    @Test void generationConfigEosListAndSampling() throws Exception {
        Files.writeString(dir.resolve("generation_config.json"),
                "{\"do_sample\":true,\"temperature\":0.7,\"top_k\":20,\"top_p\":0.8,\"repetition_penalty\":1.05,\"eos_token_id\":[1,2]}");
        GenerationConfig g = GenerationConfig.load(dir);
        assertEquals(List.of(1, 2), g.eosTokenIds());
        SamplingParams s = g.toSampling(5);
        assertFalse(s.greedy());
        assertEquals(20, s.topK());
        assertEquals(1.05, s.repetitionPenalty());
        assertTrue(GenerationConfig.load(Fixtures.dir("tiny-qwen2")).toSampling(0).greedy());
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\":7}");
        assertEquals(List.of(7), GenerationConfig.load(dir).eosTokenIds());
    }

    private Path copyFixture(String model, String config) throws Exception {
        Path d = Files.createDirectories(dir.resolve(model + "-" + System.nanoTime()));
        Files.writeString(d.resolve("config.json"), config == null ? Files.readString(Fixtures.dir(model).resolve("config.json")) : config);
        return d;
    }

    /** Rewrites the fixture checkpoint with {@code edit} applied to its tensor list. */
    private void writeEdited(String model, Path d, String drop, String add, String reshape) throws Exception {
        try (SafetensorsFile f = SafetensorsFile.open(Fixtures.dir(model).resolve("model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (TensorView t : f.tensors().values()) {
                if (t.name().equals(drop)) continue;
                long[] shape = t.shape();
                if (t.name().equals(reshape)) shape = new long[]{shape[0] / 2, shape[1] * 2};
                w.add(t.name(), t.dtype(), shape, t::get);
            }
            if (add != null) w.add(add, DType.BF16, new long[]{4}, i -> 1f);
            w.write(d.resolve("model.safetensors"));
        }
    }

    @Test void checkpointErrorsNameTheTensor() throws Exception {
        Path d1 = copyFixture("tiny-qwen2", null);
        writeEdited("tiny-qwen2", d1, "model.layers.1.self_attn.k_proj.bias", null, null);
        var e1 = assertThrows(IllegalArgumentException.class, () -> Models.load(d1, "cpu"));
        assertTrue(e1.getMessage().contains("missing") && e1.getMessage().contains("model.layers.1.self_attn.k_proj.bias"), e1.getMessage());

        Path d2 = copyFixture("tiny-qwen2", null);
        writeEdited("tiny-qwen2", d2, null, "model.layers.0.self_attn.q_norm.weight", null);
        var e2 = assertThrows(IllegalArgumentException.class, () -> Models.load(d2, "cpu"));
        assertTrue(e2.getMessage().contains("unexpected") && e2.getMessage().contains("q_norm"), e2.getMessage());

        Path d3 = copyFixture("tiny-qwen2", null);
        writeEdited("tiny-qwen2", d3, null, null, "model.layers.0.mlp.up_proj.weight");
        var e3 = assertThrows(IllegalArgumentException.class, () -> Models.load(d3, "cpu"));
        assertTrue(e3.getMessage().contains("model.layers.0.mlp.up_proj.weight") && e3.getMessage().contains("[256, 96]"), e3.getMessage());

        Path d4 = copyFixture("tiny-qwen2", Files.readString(Fixtures.dir("tiny-qwen2").resolve("config.json")).replace("Qwen2ForCausalLM", "MambaForCausalLM"));
        var e4 = assertThrows(IllegalArgumentException.class, () -> Models.load(d4, "cpu"));
        assertTrue(e4.getMessage().contains("MambaForCausalLM") && e4.getMessage().contains("Qwen2ForCausalLM"), e4.getMessage());

        Path d5 = copyFixture("tiny-qwen2", Files.readString(Fixtures.dir("tiny-qwen2").resolve("config.json")).replace("\"hidden_size\": 96,", ""));
        var e5 = assertThrows(IllegalArgumentException.class, () -> Models.load(d5, "cpu"));
        assertTrue(e5.getMessage().contains("hidden_size") && e5.getMessage().contains("config.json"), e5.getMessage());

        Path d6 = copyFixture("tiny-qwen2", Files.readString(Fixtures.dir("tiny-qwen2").resolve("config.json")).replace("\"default\"", "\"yarn\""));
        var e6 = assertThrows(IllegalArgumentException.class, () -> Models.load(d6, "cpu"));
        assertTrue(e6.getMessage().contains("yarn"), e6.getMessage());

        Path d7 = copyFixture("tiny-qwen2", null);   // f16 dtype of an unsupported kind
        try (SafetensorsFile f = SafetensorsFile.open(Fixtures.dir("tiny-qwen2").resolve("model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (TensorView t : f.tensors().values())
                w.add(t.name(), t.name().equals("model.norm.weight") ? DType.I32 : t.dtype(), t.shape(), t::get);
            w.write(d7.resolve("model.safetensors"));
        }
        var e7 = assertThrows(IllegalArgumentException.class, () -> Models.load(d7, "cpu"));
        assertTrue(e7.getMessage().contains("model.norm.weight") && e7.getMessage().contains("I32"), e7.getMessage());

        // the cuda backend is in the build: it loads where a GPU exists, and elsewhere fails saying why
        assertEquals("cuda", Models.backend("cuda").name());
        if (io.vlmflux.cuda.gpu.Gpu.isAvailable()) {
            try (Decoder d = Models.load(Fixtures.dir("tiny-qwen2"), "cuda")) { assertEquals("cuda", d.backend()); }
        } else {
            var e8 = assertThrows(IllegalStateException.class, () -> Models.load(Fixtures.dir("tiny-qwen2"), "cuda"));
            assertTrue(e8.getMessage().startsWith("backend 'cuda' cannot run here: ")
                    && e8.getMessage().contains(io.vlmflux.cuda.gpu.Gpu.unavailableReason()), e8.getMessage());
        }
        var e9 = assertThrows(IllegalArgumentException.class, () -> Models.backend("tpu"));
        assertTrue(e9.getMessage().contains("'tpu'") && e9.getMessage().contains("supported: auto, cpu, cuda"), e9.getMessage());
    }

    @Test void transformers5PrefixAndF32AndF16Weights() throws Exception {
        // the VLM fixture with weights renamed to model.language_model.* and stored as F16: still loads, same logits
        Path d = copyFixture("tiny-qwen2vl", null);
        try (SafetensorsFile f = SafetensorsFile.open(Fixtures.dir("tiny-qwen2vl").resolve("model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (TensorView t : f.tensors().values()) {
                String n = t.name().startsWith("model.") ? "model.language_model." + t.name().substring(6)
                        : t.name().startsWith("visual.") ? "model." + t.name() : t.name();
                w.add(n, DType.F32, t.shape(), t::get);
            }
            w.write(d.resolve("model.safetensors"));
        }
        int[] ids = {3001, 84, 576, 198, 51, 68};
        float[] ref, got;
        try (Decoder a = Models.load(Fixtures.dir("tiny-qwen2vl"), "cpu"); KvCache c = a.newCache(16)) { ref = a.forward(c, ForwardInput.tokens(ids), false); }
        try (Decoder b = Models.load(d, "cpu"); KvCache c = b.newCache(16)) { got = b.forward(c, ForwardInput.tokens(ids), false); }
        for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], 1e-5);
    }

    @Test void randomCheckpointLoadsAndRuns() throws Exception {
        RandomCheckpoint.write(dir, RandomCheckpoint.Shape.TINY, 3);
        try (Decoder d = Models.load(dir, "cpu"); KvCache c = d.newCache(32)) {
            float[] l = d.forward(c, ForwardInput.tokens(1, 2, 3), false);
            assertEquals(512, l.length);
            assertEquals(3, c.length());
            c.reset(1);
            assertEquals(1, c.length());
            assertThrows(IllegalArgumentException.class, () -> c.reset(2));
        }
    }

    @Test void imageSlotsExpand() {
        ImageSlots.Expanded e = ImageSlots.expand(new int[]{1, 9, 5, 10, 2, 9, 3}, 9, new int[]{3, 2});
        assertArrayEquals(new int[]{1, 9, 9, 9, 5, 10, 2, 9, 9, 3}, e.tokens());
        assertArrayEquals(new int[]{1, 7}, e.spanStarts());
        assertThrows(IllegalArgumentException.class, () -> ImageSlots.expand(new int[]{9}, 9, new int[]{1, 1}));
    }
}
