package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux generate --json} against the fixtures' golden greedy output. */
class GenerateCommandTest {
    @TempDir Path tmp;

    static Path fixture(String m) {
        return Path.of(System.getProperty("vlmflux.root", "..")).resolve("llm/src/test/resources/fixtures").resolve(m);
    }

    static synchronized JsonNode run(List<String> args) throws Exception {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, new GenerateCommand().run(args));
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8).trim();
        assertFalse(out.contains("\n"), "stdout must be exactly one JSON object: " + out);
        return new ObjectMapper().readTree(out);
    }

    @ParameterizedTest @ValueSource(strings = {"tiny-qwen2", "tiny-qwen3", "tiny-llama"})
    void rawPromptReproducesGolden(String m) throws Exception {
        JsonNode p = new ObjectMapper().readTree(fixture(m).resolve("golden.json").toFile()).get("prompts").get(0);
        Path f = tmp.resolve("prompt.txt");
        Files.writeString(f, p.get("prompt_text").asText());
        JsonNode o = run(List.of("--model", fixture(m).toString(), "--prompt-file", f.toString(), "--raw", "--greedy",
                "--max-tokens", String.valueOf(p.get("greedy_new_tokens").size()), "--ignore-eos", "--json"));
        assertEquals(p.get("input_ids"), o.get("input_ids"));
        assertEquals(p.get("greedy_new_tokens"), o.get("tokens"));
        assertEquals(p.get("greedy_text").asText(), o.get("text").asText());
        assertEquals("length", o.get("finish_reason").asText());
        for (String k : List.of("load_ms", "prefill_ms", "ttft_ms", "decode_ms", "tokens_per_s")) assertTrue(o.get("timings").has(k), k);
    }

    @Test void imageThroughChatTemplateMatchesGoldenTokens() throws Exception {
        JsonNode g = new ObjectMapper().readTree(fixture("tiny-qwen2vl").resolve("golden.json").toFile());
        JsonNode p = g.get("prompts").get(0);
        Path img = fixture("tiny-qwen2vl").resolve(g.get("images").get(p.get("image").asInt()).get("file").asText());
        JsonNode o = run(List.of("--model", fixture("tiny-qwen2vl").toString(), "--prompt", p.get("question").asText(), "--image", img.toString(),
                "--greedy", "--max-tokens", "24", "--ignore-eos", "--json"));
        assertEquals(p.get("input_ids"), o.get("input_ids"));
        assertEquals(p.get("greedy_new_tokens"), o.get("tokens"));
    }

    /** The CLI contract is exact: other tools parse these keys and no others (the backend choice is logged on stderr). */
    @Test void backendDefaultsToAutoAndJsonKeepsTheContractKeys() throws Exception {
        JsonNode o = run(List.of("--model", fixture("tiny-qwen3").toString(), "--prompt", "hi", "--greedy", "--max-tokens", "3",
                "--ignore-eos", "--no-cuda-graph", "--json"));
        List<String> keys = new ArrayList<>();
        o.fieldNames().forEachRemaining(keys::add);
        assertEquals(List.of("input_ids", "tokens", "text", "finish_reason", "timings"), keys);
        List<String> timings = new ArrayList<>();
        o.get("timings").fieldNames().forEachRemaining(timings::add);
        assertEquals(List.of("load_ms", "prefill_ms", "ttft_ms", "decode_ms", "tokens_per_s"), timings);
        assertEquals(3, o.get("tokens").size());
        System.clearProperty("vlmflux.cuda.graphs");
    }

    @Test void usageErrors() {
        assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", "x")));
        assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", fixture("tiny-qwen2").toString(), "--prompt", "a", "--greedy", "--temperature", "1")));
        assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", fixture("tiny-qwen2").toString(), "--prompt", "a", "--image", "nope.png")));
        assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", fixture("tiny-qwen2").toString(), "--prompt", "a", "--backend", "tpu")));
        if (!io.vlmflux.cuda.gpu.Gpu.isAvailable()) {
            var e = assertThrows(IllegalStateException.class, () -> new GenerateCommand().run(List.of("--model", fixture("tiny-qwen2").toString(), "--prompt", "a", "--backend", "cuda")));
            assertTrue(e.getMessage().startsWith("backend 'cuda' cannot run here: "), e.getMessage());
        }
        List<String> two = new ArrayList<>(List.of("--model", fixture("tiny-qwen2vl").toString(), "--raw", "--prompt", "<|vision_start|><|image_pad|><|vision_end|>hi"));
        assertThrows(UsageException.class, () -> new GenerateCommand().run(two));   // one slot, no image
    }

    @Test void invalidUtf8PromptFileNamesTheFileAndOffset(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("prompt.txt");
        java.nio.file.Files.write(f, new byte[]{'h', 'i', (byte) 0xC3, '('});
        var e = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", fixture("tiny-qwen2").toString(), "--prompt-file", f.toString())));
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("UTF-8") && e.getMessage().contains("offset 2"), e.getMessage());
    }

    @Test void hugeMaxTokensIsAUsageErrorNamingTheValue() {
        var e = assertThrows(UsageException.class, () -> new GenerateCommand().run(List.of("--model", fixture("tiny-qwen2").toString(), "--prompt", "a",
                "--max-tokens", "2147483647")));
        assertTrue(e.getMessage().contains("--max-tokens") && e.getMessage().contains("2147483647"), e.getMessage());
    }

    /**
     * docs/llm.md: the text never contains the stop token nor the stop string (the token ids keep the stop token).
     * The demo captioner sees a drawn white circle and ends its caption with {@code <|im_end|>}, its EOS.
     */
    @Test void textLeavesOutTheStopTokenAndTheStopString() throws Exception {
        Path model = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
        java.awt.image.BufferedImage img = new java.awt.image.BufferedImage(320, 240, java.awt.image.BufferedImage.TYPE_INT_RGB);
        java.awt.Graphics2D g = img.createGraphics();
        g.setColor(java.awt.Color.WHITE);
        g.fillOval(200, 130, 80, 80);
        g.dispose();
        Path png = tmp.resolve("circle.png");
        javax.imageio.ImageIO.write(img, "png", png.toFile());
        List<String> base = List.of("--model", model.toString(), "--prompt", "Describe the image.", "--image", png.toString(), "--greedy",
                "--max-tokens", "32", "--json");
        JsonNode full = run(base);
        assertEquals("stop", full.get("finish_reason").asText(), full.toString());
        String text = full.get("text").asText();
        assertFalse(text.contains("<|im_end|>") || text.contains("<|"), text);
        assertTrue(text.contains("circle"), text);
        JsonNode ids = full.get("tokens");
        assertEquals(3002, ids.get(ids.size() - 1).asInt(), "the token list keeps the stop token id: " + ids);

        List<String> withStop = new ArrayList<>(base);
        withStop.addAll(List.of("--stop", "circle"));
        JsonNode cut = run(withStop);
        assertEquals("stop_string", cut.get("finish_reason").asText(), cut.toString());
        assertEquals(text.substring(0, text.indexOf("circle")), cut.get("text").asText());
    }

    /** Constrained output from the CLI on a real (random tiny) model: choices, a regex, a JSON schema, logprobs. */
    @Test void constrainedOutputFromTheCommandLine(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        List<String> base = List.of("--model", fixture("tiny-qwen2").toString(), "--prompt", "Is the door open?", "--json", "--max-tokens", "24");
        for (String seed : List.of("1", "2", "3")) {
            List<String> choice = new ArrayList<>(base);
            choice.addAll(List.of("--choice", "yes,no,maybe", "--temperature", "1.0", "--seed", seed));
            String t = run(choice).get("text").asText();
            assertTrue(List.of("yes", "no", "maybe").contains(t), "choice output '" + t + "'");
        }
        List<String> regex = new ArrayList<>(base);
        regex.addAll(List.of("--regex", "[0-9]{3}-[a-z]{2}", "--greedy"));
        assertTrue(run(regex).get("text").asText().matches("[0-9]{3}-[a-z]{2}"));

        Path schema = dir.resolve("door.json");
        java.nio.file.Files.writeString(schema, """
                {"type":"object","properties":{"open":{"type":"boolean"},"count":{"type":"integer","minimum":0,"maximum":9}},
                 "required":["open","count"],"additionalProperties":false}""");
        List<String> js = new ArrayList<>(base);
        js.addAll(List.of("--json-schema", schema.toString(), "--greedy", "--logprobs", "3", "--max-tokens", "40"));
        JsonNode out = run(js);
        JsonNode answer = new ObjectMapper().readTree(out.get("text").asText());
        assertTrue(answer.get("open").isBoolean() && answer.get("count").isInt(), answer.toString());
        assertTrue(answer.get("count").asInt() >= 0 && answer.get("count").asInt() <= 9, answer.toString());
        assertEquals(out.get("tokens").size(), out.get("logprobs").size(), "one logprobs entry per generated token");
        int widest = 0;
        for (JsonNode lp : out.get("logprobs")) {   // over the allowed tokens: a forced token ('{', '"open"') has one
            int n = lp.get("top").size();
            assertTrue(n >= 1 && n <= 3, lp.toString());
            widest = Math.max(widest, n);
            assertTrue(lp.get("logprob").asDouble() <= 0, lp.toString());
        }
        assertTrue(widest >= 2, "some step (true/false, a digit) has several allowed tokens: " + out.get("logprobs"));

        List<String> bad = new ArrayList<>(base);
        bad.addAll(List.of("--regex", "a(b"));
        var e = assertThrows(UsageException.class, () -> new GenerateCommand().run(bad));
        assertTrue(e.getMessage().startsWith("--regex: "), e.getMessage());
        List<String> two = new ArrayList<>(base);
        two.addAll(List.of("--regex", "a", "--choice", "b"));
        assertThrows(UsageException.class, () -> new GenerateCommand().run(two));
    }

    /** --grammar: a recursive GBNF grammar and a Lark file; errors name the flag, line and column. */
    @Test void grammarFromTheCommandLine(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        List<String> base = List.of("--model", fixture("tiny-qwen2").toString(), "--prompt", "List:", "--json", "--max-tokens", "60");
        String gbnf = "root ::= list\nlist ::= \"[\" (item (\",\" item){0,2})? \"]\"\nitem ::= [0-9] | list\n";
        Path g = dir.resolve("list.gbnf");
        java.nio.file.Files.writeString(g, gbnf);
        var spec = io.vlmflux.llm.constrain.ConstraintSpec.grammar(gbnf);
        int stopped = 0;
        for (String seed : List.of("1", "2", "3", "4")) {
            List<String> args = new ArrayList<>(base);
            args.addAll(List.of("--grammar", g.toString(), "--temperature", "1.0", "--seed", seed));
            JsonNode out = run(args);
            String text = out.get("text").asText();
            if (out.get("finish_reason").asText().equals("stop")) {
                assertTrue(spec.matches(text), "a finished output is a sentence: " + text);
                stopped++;
            } else assertEquals("length", out.get("finish_reason").asText(), out.toString());
        }
        assertTrue(stopped > 0, "some outputs finish within 60 tokens");
        Path lark = dir.resolve("yn.lark");
        java.nio.file.Files.writeString(lark, "start: (\"yes\" | \"no\") (\" and \" start)?\n");
        List<String> args = new ArrayList<>(base);
        args.addAll(List.of("--grammar", lark.toString(), "--greedy"));
        JsonNode out = run(args);
        if (out.get("finish_reason").asText().equals("stop")) assertTrue(out.get("text").asText().matches("(yes|no)( and (yes|no))*"), out.toString());
        Path bad = dir.resolve("bad.gbnf");
        java.nio.file.Files.writeString(bad, "root ::= \"a\"\n  | foo\n");
        List<String> badArgs = new ArrayList<>(base);
        badArgs.addAll(List.of("--grammar", bad.toString()));
        var e = assertThrows(UsageException.class, () -> new GenerateCommand().run(badArgs));
        assertTrue(e.getMessage().startsWith("--grammar: ") && e.getMessage().contains("line 2, column 5") && e.getMessage().contains("'foo'"), e.getMessage());
    }
}
