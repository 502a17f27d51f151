package io.vlmflux.llm.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * llama.cpp's tokenizer vectors ({@code ggml-vocab-*.gguf.inp/.out}) against the real Qwen and Llama 3 vocabularies.
 * Framing, as llama.cpp's convert script writes it: each input is followed by {@code "\n__ggml_vocab_test__\n"}; the
 * .out file has one line per input, the ids each preceded by a space (an empty input gives an empty line).
 */
class LlamaCppVectorsTest {
    static Tokenizer qwen, llama;

    @BeforeAll
    static void load() {
        qwen = Tokenizer.load(RealTokenizers.qwen3());
        llama = Tokenizer.load(RealTokenizers.llama3());
    }

    record Case(String text, int[] ids) {}

    static List<Case> cases(String name) throws Exception {
        Path dir = RealTokenizers.testResources().resolve("tokenizers");
        String inp = Files.readString(dir.resolve(name + ".inp"), StandardCharsets.UTF_8);
        List<String> outs = Files.readAllLines(dir.resolve(name + ".out"), StandardCharsets.UTF_8);
        String sep = "\n__ggml_vocab_test__\n";
        assertTrue(inp.endsWith(sep), name + ".inp must end with the separator");
        List<String> texts = new ArrayList<>(Arrays.asList(inp.substring(0, inp.length() - sep.length()).split(sep, -1)));
        assertEquals(texts.size(), outs.size(), name + ": inputs vs output lines");
        List<Case> r = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            String line = outs.get(i).trim();
            int[] ids = line.isEmpty() ? new int[0] : Arrays.stream(line.split(" +")).mapToInt(Integer::parseInt).toArray();
            r.add(new Case(texts.get(i), ids));
        }
        return r;
    }

    static void check(Tokenizer tok, String name, int expectedCases) throws Exception {
        List<Case> cs = cases(name);
        assertEquals(expectedCases, cs.size(), name + " case count");
        List<String> failures = new ArrayList<>();
        for (Case c : cs) {
            int[] got = tok.encode(c.text());
            if (!Arrays.equals(c.ids(), got))
                failures.add(TokenizerFixtureTest.quote(c.text()) + ": want " + Arrays.toString(c.ids()) + " got " + Arrays.toString(got));
            String back = tok.decode(c.ids());
            if (!back.equals(java.text.Normalizer.normalize(c.text(), java.text.Normalizer.Form.NFC)) && !back.equals(c.text()))
                failures.add("decode " + TokenizerFixtureTest.quote(c.text()) + " -> " + TokenizerFixtureTest.quote(back));
        }
        assertEquals(List.of(), failures, name + ": " + failures.size() + " of " + cs.size() + " failed");
    }

    @Test
    void qwen2Vectors() throws Exception { check(qwen, "ggml-vocab-qwen2.gguf", 46); }

    @Test
    void llama3Vectors() throws Exception { check(llama, "ggml-vocab-llama-bpe.gguf", 46); }

    @Test
    void qwenSpecialTokensAndConfig() {
        assertEquals(OptionalInt.of(151644), qwen.tokenId("<|im_start|>"));
        assertEquals(OptionalInt.of(151645), qwen.eosId());
        assertEquals(OptionalInt.empty(), qwen.bosId());
        assertEquals(151669, qwen.vocabSize());
        assertTrue(qwen.isSpecial(151655));
        assertEquals("<|image_pad|>", qwen.token(151655));
        int[] ids = qwen.encode("<|im_start|>user\nhi<|im_end|>");
        assertEquals(151644, ids[0]);
        assertEquals(151645, ids[ids.length - 1]);
        assertEquals("user\nhi", qwen.decode(ids, true));
        assertEquals("<|im_start|>user\nhi<|im_end|>", qwen.decode(ids));
        // Non-special added tokens are matched too.
        assertEquals(OptionalInt.of(151657), qwen.tokenId("<tool_call>"));
        assertEquals(151657, qwen.encode("<tool_call>")[0]);
        assertEquals(0, qwen.specialPrefix().length);
    }

    @Test
    void llama3IgnoreMergesAndDigits() {
        assertEquals(OptionalInt.of(128000), llama.bosId());
        // \p{N}{1,3}: digits in groups of three.
        assertEquals(List.of("123", "456", "7"), Arrays.stream(llama.encode("1234567")).mapToObj(llama::token).toList());
        assertEquals(128000, llama.encode("<|begin_of_text|>hi")[0]);
    }
}
