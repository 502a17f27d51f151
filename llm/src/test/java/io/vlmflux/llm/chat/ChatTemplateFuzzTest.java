package io.vlmflux.llm.chat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Fuzzes chat templates as they arrive in a downloaded model folder: each real template of
 * {@code resources/chat-templates} is mutated (spans deleted, duplicated or swapped; Jinja delimiters, keywords,
 * filters, attribute names and huge numbers inserted), written into a {@code tokenizer_config.json}, loaded and rendered
 * with a conversation. Every mutant must either render or fail with an {@link IllegalArgumentException} that names the
 * file — never another exception type, never an {@link Error}, never a hang (each mutant has a time bound). Seeded;
 * {@code -Dvlmflux.fuzz.mutants=N} (default 300 in all) runs the long version.
 */
class ChatTemplateFuzzTest {
    static final int MUTANTS = Integer.getInteger("vlmflux.fuzz.mutants", 300);
    static final long SEED = Long.getLong("vlmflux.fuzz.seed", 20261204L);
    static final List<String> TEMPLATES = List.of("qwen2-vl.jinja", "qwen2-vl-video.jinja", "qwen3.jinja", "llama3.jinja", "llama3_1.jinja",
            "gemma3.jinja", "deepseek_v3.jinja", "features.jinja");
    static final String[] INSERTS = {"{{", "}}", "{%", "%}", "{#", "#}", "{%- ", " -%}", "for x in range(100000000)", "endfor", "if", "endif", "else",
            "elif", "set", "macro m()", "endmacro", "m()", "(", ")", "[", "]", "'", "\"", "|", "|tojson", "|join", "|map(attribute='__class__')",
            ".__class__", ".getClass()", "____int3rpr3t3r____", "**", "*", "~", "99999999999999999999", "2**10**10", "'x'*10**9", "loop.", "namespace(",
            "raise_exception('boom')", "include 'x'", "import os", ".items()", "[::-1]", "is defined", "not ", "None", "\\", "\n", "{{ messages }}"};

    @Test void mutatedRealTemplatesRenderOrFailNamingTheFile(@TempDir Path tmp) throws Exception {
        SplittableRandom r = new SplittableRandom(SEED);
        List<ChatMessage> conversation = List.of(ChatMessage.system("Be brief."), ChatMessage.userWithImage("What is this?"),
                ChatMessage.assistant("A ball."), ChatMessage.user("Colour?"));
        int rendered = 0, rejected = 0;
        List<String> bad = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < MUTANTS; i++) {
            String name = TEMPLATES.get(i % TEMPLATES.size());
            String mutant = mutate(read(name), r);
            Path dir = Files.createDirectories(tmp.resolve("m" + i));
            ObjectNode cfg = json.createObjectNode();
            cfg.put("chat_template", mutant);
            cfg.put("bos_token", "<s>");
            cfg.put("eos_token", "</s>");
            Files.writeString(dir.resolve("tokenizer_config.json"), json.writeValueAsString(cfg));
            Path file = dir.resolve("tokenizer_config.json");
            Object[] outcome = new Object[1];
            int n = i;
            assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
                try {
                    ChatTemplate t = ChatTemplate.load(dir).orElseThrow();
                    t.render(conversation, n % 2 == 0, Map.of("enable_thinking", n % 3 == 0));
                    outcome[0] = "ok";
                } catch (IllegalArgumentException e) {
                    outcome[0] = e;
                } catch (Throwable e) {   // any other type (NPE, ClassCast, StackOverflowError, OOM) is a defect
                    outcome[0] = new AssertionError("mutant " + n + " of " + name + " threw " + e, e);
                }
            }, () -> "mutant " + n + " of " + name + " did not finish in 10 s");
            if (outcome[0] instanceof AssertionError ae) bad.add(ae.getMessage() + "\n--- template ---\n" + mutant);
            else if (outcome[0] instanceof IllegalArgumentException e) {
                rejected++;
                if (e.getMessage() == null || !e.getMessage().contains(file.toString()))
                    bad.add("mutant " + n + " of " + name + ": error does not name " + file + ": " + e.getMessage());
            } else rendered++;
        }
        System.out.printf("chat template fuzz: %d mutants (seed %d): %d rendered, %d rejected with a named error, %d defects%n",
                MUTANTS, SEED, rendered, rejected, bad.size());
        assertEquals(List.of(), bad.subList(0, Math.min(5, bad.size())), bad.size() + " defects");
        assertTrue(rendered > 0 && rejected > 0, "the mutations should both keep and break templates: " + rendered + " / " + rejected);
    }

    static String read(String name) throws IOException {
        try (InputStream in = ChatTemplateFuzzTest.class.getResourceAsStream("/chat-templates/" + name)) {
            assertNotNull(in, name);
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    static String mutate(String t, SplittableRandom r) {
        StringBuilder s = new StringBuilder(t);
        int edits = 1 + r.nextInt(4);
        for (int e = 0; e < edits && s.length() > 2; e++) {
            int at = r.nextInt(s.length()), len = 1 + r.nextInt(Math.min(40, s.length() - at));
            switch (r.nextInt(5)) {
                case 0 -> s.delete(at, Math.min(s.length(), at + len));
                case 1 -> s.insert(at, s.substring(at, Math.min(s.length(), at + len)));
                case 2 -> s.insert(at, INSERTS[r.nextInt(INSERTS.length)]);
                case 3 -> {
                    int b = r.nextInt(s.length());
                    char c = s.charAt(at);
                    s.setCharAt(at, s.charAt(b));
                    s.setCharAt(b, c);
                }
                default -> s.replace(at, Math.min(s.length(), at + len), INSERTS[r.nextInt(INSERTS.length)]);
            }
        }
        return s.toString();
    }
}
