package io.vlmflux.llm.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.tokenizer.RealTokenizers;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Real chat templates (Qwen2-VL, Qwen3, Llama 3, Gemma 3, DeepSeek V3) and a feature-exercising template render
 * exactly as Python Jinja2 renders them with transformers' settings: {@code chat-templates/golden.json} was written
 * by {@code make_golden.py} from the same {@code .jinja} files and conversations (tools, images, video, thinking,
 * add_generation_prompt both ways). Where Python failed, Java must fail too.
 */
class ChatTemplateGoldenTest {
    static final Path DIR = RealTokenizers.testResources().resolve("chat-templates");
    static final ObjectMapper JSON = new ObjectMapper();

    @TestFactory
    Stream<DynamicTest> rendersAsPythonJinja2() throws Exception {
        JsonNode golden = JSON.readTree(DIR.resolve("golden.json").toFile());
        Clock clock = Clock.fixed(LocalDateTime.parse(golden.path("now").asText()).toInstant(ZoneOffset.UTC), ZoneOffset.UTC);
        List<DynamicTest> tests = new ArrayList<>();
        golden.path("templates").properties().forEach(e -> {
            JsonNode t = e.getValue();
            String text;
            try {
                text = Files.readString(DIR.resolve(t.path("file").asText()));
            } catch (java.io.IOException ex) {
                throw new java.io.UncheckedIOException(ex);
            }
            ChatTemplate tpl = ChatTemplate.of(text, t.path("bos_token").asText(null), t.path("eos_token").asText(null)).withClock(clock);
            for (JsonNode c : t.path("cases")) {
                String name = e.getKey() + " " + c.path("name").asText();
                tests.add(DynamicTest.dynamicTest(name, () -> {
                    @SuppressWarnings("unchecked")
                    Map<String, Object> vars = JSON.convertValue(c.path("variables"), Map.class);
                    if (c.has("output")) {
                        assertEquals(c.path("output").asText(), tpl.renderVariables(vars), name);
                    } else {
                        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> tpl.renderVariables(vars), name);
                        assertTrue(ex.getMessage().startsWith("chat template of <string>"), ex.getMessage());
                        if (c.path("error_type").asText().equals("TemplateError")) // raise_exception: the template's own message
                            assertTrue(ex.getMessage().contains(c.path("error").asText()), ex.getMessage());
                    }
                }));
            }
        });
        assertTrue(tests.size() >= 8 * 28, "cases: " + tests.size());
        return tests.stream();
    }

    @Test
    void everyTemplateFileHasGoldens() throws Exception {
        JsonNode golden = JSON.readTree(DIR.resolve("golden.json").toFile());
        try (Stream<Path> files = Files.list(DIR)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".jinja")).toList()) {
                String stem = f.getFileName().toString().replace(".jinja", "");
                assertTrue(golden.path("templates").has(stem), f + " has no goldens; run make_golden.py");
            }
        }
    }
}
