package io.vlmflux.llm.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.tokenizer.RealTokenizers;
import io.vlmflux.llm.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ChatTemplateTest {
    static Path fixture(String name) { return RealTokenizers.testResources().resolve("fixtures").resolve(name); }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-qwen2vl", "tiny-qwen25vl"})
    void vlmFixturePromptTextAndIds(String name) throws Exception {
        Path dir = fixture(name);
        ChatTemplate tpl = ChatTemplate.load(dir).orElseThrow();
        Tokenizer tok = Tokenizer.load(dir);
        JsonNode golden = new ObjectMapper().readTree(dir.resolve("golden.json").toFile());
        int imagePad = tok.tokenId("<|image_pad|>").orElseThrow();
        int n = 0;
        for (JsonNode p : golden.path("prompts")) {
            String q = p.path("question").asText();
            ChatMessage msg = p.path("image").isNull() ? ChatMessage.user(q) : ChatMessage.userWithImage(q);
            String text = tpl.render(List.of(msg), true);
            assertEquals(p.path("prompt_text").asText(), text, name + " prompt for " + q);
            // Expanding the image slot to num_image_tokens pads gives the golden input_ids.
            int[] ids = tok.encode(text);
            int[] want = ints(p.path("input_ids"));
            if (!p.path("image").isNull()) {
                int tokens = golden.path("images").get(p.path("image").asInt()).path("num_image_tokens").asInt();
                ids = expand(ids, imagePad, tokens);
            }
            assertEquals(Arrays.toString(want), Arrays.toString(ids), name + " input_ids for " + q);
            n++;
        }
        assertTrue(n >= 2);
    }

    @Test
    void imageAndTextPartsInOrder() {
        ChatTemplate tpl = ChatTemplate.load(fixture("tiny-qwen2vl")).orElseThrow();
        ChatMessage m = new ChatMessage("user", List.of(new ChatMessage.Text("A"), new ChatMessage.Image(),
                new ChatMessage.Text("B"), new ChatMessage.Image()));
        String out = tpl.render(List.of(ChatMessage.system("Sys."), m, ChatMessage.assistant("Ok.")), false);
        assertEquals("<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nA<|vision_start|><|image_pad|><|vision_end|>B"
                + "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\nOk.<|im_end|>\n", out);
    }

    @Test
    void qwen3MultiTurnAsHuggingFace() {
        ChatTemplate tpl = ChatTemplate.load(qwen3Dir()).orElseThrow();
        List<ChatMessage> conv = List.of(ChatMessage.system("You are terse."), ChatMessage.user("Hi!"),
                ChatMessage.assistant("<think>\nThe user greets.\n</think>\n\nHello."), ChatMessage.user("2+2?"));
        assertEquals("<|im_start|>system\nYou are terse.<|im_end|>\n"
                + "<|im_start|>user\nHi!<|im_end|>\n"
                + "<|im_start|>assistant\nHello.<|im_end|>\n" // reasoning of turns before the last query is dropped
                + "<|im_start|>user\n2+2?<|im_end|>\n"
                + "<|im_start|>assistant\n", tpl.render(conv, true));
        assertEquals("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                + "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n",
                tpl.render(conv, false));
        // The last assistant turn after the last query keeps its reasoning, re-formatted.
        List<ChatMessage> conv2 = List.of(ChatMessage.user("Hi!"),
                ChatMessage.assistant("<think>\n\nThe user greets.\n\n</think>\n\n\nHello."));
        assertEquals("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\nThe user greets.\n</think>\n\nHello."
                + "<|im_end|>\n", tpl.render(conv2, false));
        // No system turn by default; enable_thinking=false closes an empty think block.
        assertEquals("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
                tpl.render(List.of(ChatMessage.user("Hi!")), true, Map.of("enable_thinking", false)));
        assertEquals("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
                tpl.render(List.of(ChatMessage.user("Hi!")), true, Map.of("enable_thinking", true)));
    }

    @Test
    void qwen3ToolsUseTojsonWithPythonSpacing() {
        ChatTemplate tpl = ChatTemplate.load(qwen3Dir()).orElseThrow();
        Map<String, Object> fn = new LinkedHashMap<>();
        fn.put("name", "get_time");
        fn.put("parameters", Map.of("type", "object"));
        Map<String, Object> tool = new LinkedHashMap<>();
        tool.put("type", "function");
        tool.put("function", fn);
        String out = tpl.render(List.of(ChatMessage.user("time?")), true, Map.of("tools", List.of(tool)));
        assertTrue(out.startsWith("<|im_start|>system\n# Tools\n\nYou may call one or more functions"), out);
        assertTrue(out.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_time\", \"parameters\": {\"type\": \"object\"}}}\n</tools>"), out);
        assertTrue(out.endsWith("<|im_start|>user\ntime?<|im_end|>\n<|im_start|>assistant\n"), out);
    }

    static final String LLAMA3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
            + "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
            + "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    @Test
    void llama3PublishedTemplate() {
        ChatTemplate tpl = ChatTemplate.of(LLAMA3, "<|begin_of_text|>", "<|eot_id|>");
        String out = tpl.render(List.of(ChatMessage.system(" Be brief. "), ChatMessage.user("Hello\n")), true);
        assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", out);
        assertEquals("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
                tpl.render(List.of(ChatMessage.user("Hi")), false));
    }

    @Test
    void llama3TemplateFromTheRealConfig() {
        ChatTemplate tpl = ChatTemplate.load(RealTokenizers.llama3()).orElseThrow();
        String out = tpl.render(List.of(ChatMessage.user("Hi")), true);
        assertEquals("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", out);
        // The rendered BOS is the special token, not text.
        Tokenizer tok = Tokenizer.load(RealTokenizers.llama3());
        assertEquals(128000, tok.encode(out)[0]);
    }

    @Test
    void pythonisms() {
        String t = "{{ messages[0]['content'].startswith('a') }}|{{ messages[0].content.split(',')[-1].lstrip(' ') }}|"
                + "{{ '  x\n'.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a b  c'.split() | length }}|{{ 'Ab'.upper() }}|"
                + "{% set ns = namespace(n=messages|length - 1, s='') %}{% for m in messages[::-1] %}{% set ns.s = ns.s + m.role %}{% endfor %}{{ ns.n }}{{ ns.s }}|"
                + "{{ messages[0] is mapping }}{{ messages[0].content is string }}{{ 'content' in messages[0] }}|"
                + "{{ {'k': 'é', 'n': [1, none, true]} | tojson }}|{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}"
                + "{%- if x is not defined %} undef{% endif -%}";
        ChatTemplate tpl = ChatTemplate.of(t, null, null);
        assertEquals("True|c|x|a|3|AB|1systemuser|TrueTrueTrue|{\"k\": \"é\", \"n\": [1, null, true]}|a=1 undef",
                tpl.render(List.of(ChatMessage.user("a, b, c"), ChatMessage.system("s")), false));
    }

    @Test
    void raiseExceptionBecomesAClearError() {
        ChatTemplate tpl = ChatTemplate.of("{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}ok", null, null);
        assertEquals("ok", tpl.render(List.of(ChatMessage.user("x")), false));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> tpl.render(List.of(ChatMessage.assistant("x")), false));
        assertTrue(e.getMessage().contains("Conversation must start with user"), e.getMessage());
    }

    @Test
    void loadVariants(@TempDir Path dir) throws Exception {
        assertTrue(ChatTemplate.load(dir).isEmpty());
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": {\"content\": \"<s>\"}, \"chat_template\": "
                + "[{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"{{ bos_token }}D\"}]}");
        assertEquals("<s>D", ChatTemplate.load(dir).orElseThrow().render(List.of(), false));
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": \"</s>\"}");
        Files.writeString(dir.resolve("chat_template.jinja"), "J{{ eos_token }}");
        assertEquals("J</s>", ChatTemplate.load(dir).orElseThrow().render(List.of(), false));
        Files.delete(dir.resolve("chat_template.jinja"));
        Files.writeString(dir.resolve("chat_template.json"), "{\"chat_template\": \"C{{ messages|length }}\"}");
        assertEquals("C1", ChatTemplate.load(dir).orElseThrow().render(List.of(ChatMessage.user("u")), false));
        Files.writeString(dir.resolve("tokenizer_config.json"), "{not json");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.load(dir));
        assertTrue(e.getMessage().contains("tokenizer_config.json"), e.getMessage());
    }

    /** A model folder holding the committed Qwen3 tokenizer_config.json (the published chat template). */
    static synchronized Path qwen3Dir() {
        try {
            if (qwen3 == null) {
                qwen3 = Files.createTempDirectory("qwen3-config");
                Files.copy(RealTokenizers.testResources().resolve("tokenizers/qwen3-tokenizer_config.json"),
                        qwen3.resolve("tokenizer_config.json"));
                qwen3.toFile().deleteOnExit();
                qwen3.resolve("tokenizer_config.json").toFile().deleteOnExit();
            }
            return qwen3;
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static Path qwen3;

    static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) r[i] = a.get(i).asInt();
        return r;
    }

    static int[] expand(int[] ids, int pad, int count) {
        int[] out = new int[ids.length - 1 + count];
        int o = 0;
        for (int id : ids) {
            if (id == pad) for (int k = 0; k < count; k++) out[o++] = pad;
            else out[o++] = id;
        }
        return Arrays.copyOf(out, o);
    }
}
