package io.vlmflux.llm.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.chat.TemplateAst.Node;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * A Hugging Face chat template (Jinja), parsed and rendered by this package's own small interpreter
 * ({@link TemplateParser}, {@link TemplateRenderer}) with the settings transformers uses ({@code trim_blocks} and
 * {@code lstrip_blocks} on, its {@code tojson}, {@code raise_exception}, {@code strftime_now}, loop controls, the
 * {@code generation} tag). A template is untrusted input: its values are only None, bools, numbers, strings, lists,
 * dicts, namespaces, loops and its own macros, so it cannot reach any host object, file or class; rendering is bounded
 * in output size, steps, recursion and time ({@link TemplateRenderer.Limits}). Variables: {@code messages},
 * {@code add_generation_prompt}, {@code tools} and {@code documents} (None unless given), {@code bos_token}/
 * {@code eos_token}/{@code pad_token}/{@code unk_token} from {@code tokenizer_config.json}, plus any extra ones passed
 * to {@link #render(List, boolean, Map)}. Immutable; rendering is thread-safe.
 */
public final class ChatTemplate {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String source;   // where the template came from, for messages
    private final String template; // the template text as given
    private final List<Node> body; // parsed once
    private final Map<String, Object> specialTokens;
    private final TemplateRenderer.Limits limits;
    private final Clock clock;

    private ChatTemplate(String source, String template, Map<String, Object> specialTokens) {
        this(source, template, TemplateParser.parse(template, source), specialTokens, TemplateRenderer.Limits.DEFAULT,
                Clock.systemDefaultZone());
    }

    private ChatTemplate(String source, String template, List<Node> body, Map<String, Object> specialTokens,
                         TemplateRenderer.Limits limits, Clock clock) {
        this.source = source;
        this.template = template;
        this.body = body;
        this.specialTokens = Map.copyOf(specialTokens);
        this.limits = Objects.requireNonNull(limits, "limits");
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    /** This template rendered under other limits (tests, or a caller that wants tighter bounds). */
    ChatTemplate withLimits(TemplateRenderer.Limits limits) {
        return new ChatTemplate(source, template, body, specialTokens, limits, clock);
    }

    /** This template with {@code strftime_now} reading the given clock. */
    ChatTemplate withClock(Clock clock) {
        return new ChatTemplate(source, template, body, specialTokens, limits, clock);
    }

    /**
     * A template from its text; {@code bosToken}/{@code eosToken} may be null (then the variables are empty strings).
     */
    public static ChatTemplate of(String template, String bosToken, String eosToken) {
        Objects.requireNonNull(template, "template");
        Map<String, Object> sp = new HashMap<>();
        sp.put("bos_token", bosToken == null ? "" : bosToken);
        sp.put("eos_token", eosToken == null ? "" : eosToken);
        return new ChatTemplate("<string>", template, sp);
    }

    /**
     * The model's chat template: {@code chat_template} of {@code tokenizer_config.json} (a string, or a list of
     * {@code {name, template}} of which {@code default} is used), else {@code chat_template.jinja}, else
     * {@code chat_template.json}. Empty when the model has none.
     *
     * @throws IllegalArgumentException naming the file when a file is malformed
     */
    public static Optional<ChatTemplate> load(Path modelDir) {
        Path configFile = modelDir.resolve("tokenizer_config.json");
        JsonNode config = Files.isRegularFile(configFile) ? readJson(configFile) : JSON.createObjectNode();
        Map<String, Object> sp = new HashMap<>();
        for (String k : List.of("bos_token", "eos_token", "pad_token", "unk_token")) sp.put(k, tokenString(config, k));
        String tpl = templateFrom(configFile, config.get("chat_template"));
        String source = configFile.toString();
        if (tpl == null && Files.isRegularFile(modelDir.resolve("chat_template.jinja"))) {
            source = modelDir.resolve("chat_template.jinja").toString();
            try {
                tpl = Files.readString(modelDir.resolve("chat_template.jinja"));
            } catch (IOException e) {
                throw new IllegalArgumentException("cannot read " + source + ": " + e, e);
            }
        }
        if (tpl == null && Files.isRegularFile(modelDir.resolve("chat_template.json"))) {
            Path f = modelDir.resolve("chat_template.json");
            source = f.toString();
            tpl = templateFrom(f, readJson(f).get("chat_template"));
            if (tpl == null) throw new IllegalArgumentException(f + " has no \"chat_template\" string");
        }
        return tpl == null ? Optional.empty() : Optional.of(new ChatTemplate(source, tpl, sp));
    }

    private static String templateFrom(Path file, JsonNode n) {
        if (n == null || n.isNull()) return null;
        if (n.isTextual()) return n.asText();
        if (n.isArray()) {
            for (JsonNode t : n) if ("default".equals(t.path("name").asText()) && t.path("template").isTextual())
                return t.path("template").asText();
            throw new IllegalArgumentException(file + ": chat_template is a list without a \"default\" entry");
        }
        throw new IllegalArgumentException(file + ": chat_template is neither a string nor a list of {name, template}");
    }

    private static JsonNode readJson(Path f) {
        try {
            return JSON.readTree(f.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(f + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    private static String tokenString(JsonNode config, String key) {
        JsonNode v = config.get(key);
        if (v == null || v.isNull()) return "";
        if (v.isTextual()) return v.asText();
        return v.path("content").asText("");
    }

    /** Renders the conversation; {@code addGenerationPrompt} opens the assistant turn. */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /**
     * Renders with extra template variables (e.g. {@code enable_thinking}, {@code tools}, {@code date_string}); values
     * are plain Java objects (String, Number, Boolean, List, Map, null).
     *
     * @throws IllegalArgumentException naming the source (and line) when the template fails, calls
     *     {@code raise_exception}, or exceeds a limit; or when a variable has another type
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, Object> variables) {
        Map<String, Object> vars = new HashMap<>(variables);
        vars.put("messages", toTemplateMessages(messages));
        vars.put("add_generation_prompt", addGenerationPrompt);
        return renderVariables(vars);
    }

    /**
     * Renders with the given variables only (plus the special tokens, and {@code tools}/{@code documents} as None
     * unless given, as transformers passes them); messages are raw dicts here, e.g. with {@code tool_calls}.
     */
    String renderVariables(Map<String, Object> variables) {
        Map<String, Object> ctx = new HashMap<>(specialTokens);
        ctx.put("tools", null);
        ctx.put("documents", null);
        for (Map.Entry<String, Object> e : variables.entrySet()) ctx.put(e.getKey(), Py.fromJava(e.getValue(), e.getKey()));
        TemplateRenderer r = new TemplateRenderer(limits, clock);
        try {
            return r.render(body, ctx);
        } catch (TemplateRenderer.LimitError e) {
            throw new IllegalArgumentException("chat template of " + source + " stopped at line " + r.line + ": " + e.getMessage(), e);
        } catch (TemplateRenderer.RaisedError e) {
            throw new IllegalArgumentException("chat template of " + source + " raised an error at line " + r.line
                    + ": raise_exception: " + e.getMessage(), e);
        } catch (Py.TemplateError | ArithmeticException e) {
            throw new IllegalArgumentException("chat template of " + source + " failed at line " + r.line + ": " + e.getMessage(), e);
        } catch (StackOverflowError e) {
            throw new IllegalArgumentException("chat template of " + source + " stopped at line " + r.line
                    + ": nesting too deep for the stack", e);
        }
    }

    /** Messages as the template sees them: content is a string when all parts are text, else a list of dicts. */
    static List<Map<String, Object>> toTemplateMessages(List<ChatMessage> messages) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (ChatMessage m : messages) {
            Map<String, Object> mm = new LinkedHashMap<>();
            mm.put("role", m.role());
            if (m.imageCount() == 0 && m.videoCount() == 0) {
                mm.put("content", m.text());
            } else {
                List<Map<String, Object>> parts = new ArrayList<>();
                for (ChatMessage.Part p : m.content()) {
                    Map<String, Object> pm = new LinkedHashMap<>();
                    switch (p) {
                        case ChatMessage.Image i -> pm.put("type", "image");
                        case ChatMessage.Video v -> pm.put("type", "video");
                        case ChatMessage.Text t -> { pm.put("type", "text"); pm.put("text", t.text()); }
                    }
                    parts.add(pm);
                }
                mm.put("content", parts);
            }
            out.add(mm);
        }
        return out;
    }

    /** The template text. */
    public String template() { return template; }

    @Override public String toString() { return "ChatTemplate[" + source + "]"; }
}
