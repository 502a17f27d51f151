package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/** Hostile or wrong model files: every one is refused quickly with the file, the field and the value named. */
@Timeout(60)
class ModelFileHardeningTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @TempDir Path dir;

    /** A copy of a fixture folder with {@code file} edited by {@code edit}. */
    private Path copy(String fixture, String file, Consumer<ObjectNode> edit) throws IOException {
        Path src = Fixtures.dir(fixture);
        Path d = Files.createTempDirectory(dir, fixture);
        try (var s = Files.list(src)) {
            for (Path p : s.toList()) if (!p.getFileName().toString().startsWith("golden")) Files.copy(p, d.resolve(p.getFileName()));
        }
        if (file != null) {
            ObjectNode n = (ObjectNode) JSON.readTree(d.resolve(file).toFile());
            edit.accept(n);
            Files.writeString(d.resolve(file), JSON.writeValueAsString(n));
        }
        return d;
    }

    private static void assertNames(Throwable e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage() != null && e.getMessage().contains(p), "'" + p + "' missing in: " + e.getMessage());
    }

    @Test void billionLayersFailFastNamingTheFieldAndTheLayersPresent() throws IOException {
        Path d = copy("tiny-qwen2", "config.json", n -> n.put("num_hidden_layers", 1_000_000_000));
        long t0 = System.nanoTime();
        var e = assertThrows(IllegalArgumentException.class, () -> Models.load(d, "cpu").close());
        assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "took " + (System.nanoTime() - t0) / 1e9 + " s");
        assertNames(e, "config.json", "num_hidden_layers", "1000000000");
    }

    @Test void layerCountMustMatchTheCheckpoint() throws IOException {
        Path d = copy("tiny-qwen2", "config.json", n -> n.put("num_hidden_layers", 1));
        var e = assertThrows(IllegalArgumentException.class, () -> Models.load(d, "cpu").close());
        assertNames(e, "num_hidden_layers", "1", "2 layer");
    }

    @Test void vocabMustMatchEmbeddingRows() throws IOException {
        Path d = copy("tiny-qwen2", "config.json", n -> n.put("vocab_size", 4000));
        var e = assertThrows(IllegalArgumentException.class, () -> Models.load(d, "cpu").close());
        assertNames(e, "vocab_size", "4000", "3014", "embed_tokens");
    }

    @Test void oversizedKvHeadCountIsNotTruncated() {
        var e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.load(copy("tiny-qwen2", "config.json",
                n -> n.put("num_key_value_heads", BigInteger.valueOf((1L << 32) + 2)))));
        assertNames(e, "config.json", "num_key_value_heads", "4294967298");
    }

    @Test void absurdSizesAreRejectedBeforeAnythingIsAllocated() {
        var e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.load(copy("tiny-qwen2", "config.json",
                n -> n.put("hidden_size", 1 << 30))));
        assertNames(e, "config.json", "hidden_size", String.valueOf(1 << 30));
    }

    @Test void headGeometryMustMatchTheTensors() throws IOException {
        Path d = copy("tiny-qwen2", "config.json", n -> n.put("head_dim", 8));
        var e = assertThrows(IllegalArgumentException.class, () -> Models.load(d, "cpu").close());
        assertNames(e, "num_attention_heads", "head_dim", "q_proj");
    }

    @Test void eosTokenThatIsNotANumberIsRejected() {
        var e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.load(copy("tiny-qwen2", "config.json",
                n -> n.put("eos_token_id", "eos"))));
        assertNames(e, "config.json", "eos_token_id", "eos");
        var e2 = assertThrows(IllegalArgumentException.class, () -> ModelConfig.load(copy("tiny-qwen2", "config.json",
                n -> n.putArray("eos_token_id").add("eos"))));
        assertNames(e2, "eos_token_id", "eos");
    }

    @Test void eosTokenOutsideTheVocabIsRejected() throws IOException {
        var e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.load(copy("tiny-qwen2", "config.json",
                n -> n.put("eos_token_id", 99999))));
        assertNames(e, "eos_token_id", "99999", "vocab_size");
    }

    @Test void generationConfigEosMustBeIntegers() throws IOException {
        Path d = copy("tiny-qwen2", "generation_config.json", n -> n.put("eos_token_id", "eos"));
        var e = assertThrows(IllegalArgumentException.class, () -> GenerationConfig.load(d));
        assertNames(e, "generation_config.json", "eos_token_id", "eos");
    }

    @Test void generationConfigTopKMustBeAnInteger() throws IOException {
        Path d = copy("tiny-qwen2", "generation_config.json", n -> n.put("top_k", 1e12));
        var e = assertThrows(IllegalArgumentException.class, () -> GenerationConfig.load(d));
        assertNames(e, "generation_config.json", "top_k");
    }

    @Test void hugeTokenIdIsRejectedNamingTheTokenAndFile() throws IOException {
        Path d = copy("tiny-qwen2", "tokenizer.json", n -> ((ObjectNode) n.get("model").get("vocab")).put("Ġhuge", Integer.MAX_VALUE));
        var e = assertThrows(RuntimeException.class, () -> Tokenizer.load(d));
        assertNames(e, "tokenizer.json", "Ġhuge", String.valueOf(Integer.MAX_VALUE));
    }

    @Test void emptyVocabIsRejected() throws IOException {
        Path d = copy("tiny-qwen2", "tokenizer.json", n -> {
            ((ObjectNode) n.get("model")).putObject("vocab");
            ((ObjectNode) n.get("model")).putArray("merges");
            n.putArray("added_tokens");
        });
        var e = assertThrows(RuntimeException.class, () -> Tokenizer.load(d));
        assertNames(e, "tokenizer.json", "vocab", "empty");
    }

    @Test void tinyTemperatureIsGreedy() {
        SamplingParams p = new SamplingParams(false, 1e-38, 0, 1.0, 0.0, 1.0, 7);
        assertTrue(p.greedy(), "temperature 1e-38 must decode greedily: " + p);
        assertFalse(new SamplingParams(false, 0.01, 0, 1.0, 0.0, 1.0, 7).greedy());
    }

    @Test void hugeMaxTokensDoesNotOverflowTheContextCheck() throws IOException {
        try (Decoder d = Models.load(Fixtures.dir("tiny-qwen2"), "cpu"); Generator gen = new Generator(d, null, null)) {
            var opts = GenerateOptions.greedy(Integer.MAX_VALUE, Set.of()).withStopStrings(List.of());
            // must start (and be cut short by us), not fail with "prompt of 3 tokens exceeds the model's context"
            var it = gen.generate(new MultimodalPrompt(new int[]{1, 2, 3}, List.of()), opts, null).take(2).collectList().block();
            assertEquals(2, it.size());
        }
    }
}
