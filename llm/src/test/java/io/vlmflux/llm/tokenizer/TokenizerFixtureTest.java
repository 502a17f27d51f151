package io.vlmflux.llm.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Every {@code tokenizer} case of each fixture's golden.json: ids (plain encode), decode, streaming decode. */
class TokenizerFixtureTest {
    static Stream<String> fixtures() {
        return Stream.of("tiny-qwen2", "tiny-qwen3", "tiny-qwen2vl", "tiny-qwen25vl", "tiny-llama");
    }

    @ParameterizedTest
    @MethodSource("fixtures")
    void goldenTokenizerCases(String fixture) throws Exception {
        Path dir = RealTokenizers.testResources().resolve("fixtures").resolve(fixture);
        Tokenizer tok = Tokenizer.load(dir);
        JsonNode golden = new ObjectMapper().readTree(dir.resolve("golden.json").toFile());
        List<String> failures = new ArrayList<>();
        int n = 0;
        for (JsonNode c : golden.path("tokenizer")) {
            n++;
            String text = c.path("text").asText();
            int[] want = ints(c.path("ids"));
            int[] got = tok.encode(text);
            if (!java.util.Arrays.equals(want, got))
                failures.add("encode " + quote(text) + ": want " + java.util.Arrays.toString(want) + " got " + java.util.Arrays.toString(got));
            String decoded = tok.decode(want);
            if (!decoded.equals(c.path("decoded").asText()))
                failures.add("decode " + quote(text) + ": want " + quote(c.path("decoded").asText()) + " got " + quote(decoded));
            StreamingDecoder sd = tok.streamingDecoder();
            StringBuilder sb = new StringBuilder();
            for (int id : want) sb.append(sd.push(id));
            sb.append(sd.flush());
            if (!sb.toString().equals(decoded)) failures.add("streaming decode " + quote(text) + " got " + quote(sb.toString()));
        }
        assertFalse(n == 0, "no tokenizer cases in " + dir);
        assertEquals(List.of(), failures, fixture + ": " + failures.size() + " of " + n + " cases failed");
    }

    @ParameterizedTest
    @MethodSource("fixtures")
    void goldenPromptsAndGreedyText(String fixture) throws Exception {
        Path dir = RealTokenizers.testResources().resolve("fixtures").resolve(fixture);
        Tokenizer tok = Tokenizer.load(dir);
        JsonNode golden = new ObjectMapper().readTree(dir.resolve("golden.json").toFile());
        for (JsonNode p : golden.path("prompts")) {
            // Greedy text is the decode of the generated ids (invalid UTF-8 -> U+FFFD).
            int[] gen = ints(p.path("greedy_new_tokens"));
            assertEquals(p.path("greedy_text").asText(), tok.decode(gen), fixture + " greedy_text");
            StreamingDecoder sd = tok.streamingDecoder();
            StringBuilder sb = new StringBuilder();
            for (int id : gen) {
                String piece = sd.push(id);
                if (!piece.isEmpty()) assertFalse(Character.isHighSurrogate(piece.charAt(piece.length() - 1)), "half a char");
                sb.append(piece);
            }
            assertEquals(p.path("greedy_text").asText(), sb.append(sd.flush()).toString(), fixture + " streamed greedy_text");
            if (!p.has("image") || p.path("image").isNull()) {
                // Text prompts (and text-only VLM prompts) tokenize to input_ids exactly.
                assertArrayEquals(ints(p.path("input_ids")), tok.encode(p.path("prompt_text").asText()),
                        fixture + " prompt " + quote(p.path("prompt_text").asText()));
            }
        }
    }

    static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) r[i] = a.get(i).asInt();
        return r;
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + "\"";
    }
}
