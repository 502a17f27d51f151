package io.vlmflux.demos;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code vlmflux tokenize} through {@link Main#run}, on a folder that holds only a tokenizer. */
class TokenizeCommandTest {
    static Path fixtureTokenizer() {
        return Path.of(System.getProperty("vlmflux.root", ".."), "llm/src/test/resources/fixtures/tiny-qwen2/tokenizer.json");
    }

    record Result(int code, String out, String err) {}

    static synchronized Result run(String... argv) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(argv);
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void printsIdsPlainAndJson(@TempDir Path dir) throws Exception {
        Files.copy(fixtureTokenizer(), dir.resolve("tokenizer.json"));
        Result r = run("tokenize", "--model", dir.toString(), "--text", "Hello world");
        assertEquals(0, r.code(), r.err());
        assertEquals("1626 75 336 327 271 640\n", r.out().replace(System.lineSeparator(), "\n"));
        r = run("tokenize", "--model", dir.toString(), "--text", "<|im_start|>Hello world", "--json");
        assertEquals("{\"ids\":[3001,1626,75,336,327,271,640]}", r.out().strip());
        // --text is literal: a backslash-n is two characters, not a newline.
        String escaped = run("tokenize", "--model", dir.toString(), "--text", "a\\nb").out().strip();
        String newline = run("tokenize", "--model", dir.toString(), "--text", "a\nb").out().strip();
        assertTrue(!escaped.equals(newline), escaped + " vs " + newline);
    }

    @Test
    void textFileAndAddSpecial(@TempDir Path dir) throws Exception {
        // A Llama 3 style post-processor: BOS (here <|endoftext|>, id 3000) only with --add-special.
        String json = Files.readString(fixtureTokenizer()).replace("\"post_processor\": null",
                "\"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\", \"add_prefix_space\": true,"
                + " \"trim_offsets\": false, \"use_regex\": true}, {\"type\": \"TemplateProcessing\", \"single\": ["
                + "{\"SpecialToken\": {\"id\": \"<|endoftext|>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
                + " \"pair\": [], \"special_tokens\": {\"<|endoftext|>\": {\"id\": \"<|endoftext|>\", \"ids\": [3000],"
                + " \"tokens\": [\"<|endoftext|>\"]}}}]}");
        assertTrue(json.contains("TemplateProcessing"), "fixture layout changed");
        Files.writeString(dir.resolve("tokenizer.json"), json);
        Path text = dir.resolve("in.txt");
        Files.writeString(text, "Hello world");
        assertEquals("1626 75 336 327 271 640", run("tokenize", "--model", dir.toString(), "--text-file", text.toString()).out().strip());
        assertEquals("3000 1626 75 336 327 271 640",
                run("tokenize", "--model", dir.toString(), "--text-file", text.toString(), "--add-special").out().strip());
    }

    @Test
    void errors(@TempDir Path dir) {
        Result r = run("tokenize", "--model", dir.toString(), "--text", "x");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("tokenizer.json not found"), r.err());
        r = run("tokenize", "--model", dir.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--text"), r.err());
        r = run("tokenize", "--model", dir.toString(), "--text", "a", "--text-file", "b");
        assertEquals(2, r.code());
    }
}
