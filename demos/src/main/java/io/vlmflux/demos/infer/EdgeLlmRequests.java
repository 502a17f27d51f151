package io.vlmflux.demos.infer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.chat.ChatMessage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A request file of TensorRT Edge-LLM's {@code llm_inference} example, validated: global sampling settings and a list
 * of conversations, grouped into batches of {@code batch_size}. Owns the mapping from that format to VLMFlux's terms;
 * every error names the file, the field ({@code requests[2].messages[0].content[1].image}) and what was wrong.
 *
 * <p>Read: {@code batch_size}, {@code temperature}, {@code top_p}, {@code top_k}, {@code max_generate_length},
 * {@code sampling_seed}, {@code logit_bias}, {@code num_logprobs}, {@code apply_chat_template},
 * {@code add_generation_prompt}, {@code enable_thinking} (false only), {@code default_system_prompt},
 * {@code available_lora_weights} (empty only); per request {@code messages}, {@code stop}, {@code logit_bias},
 * {@code num_logprobs}, {@code lora_name} (empty only), {@code formatted_complete_request}. Ignored (they only tune
 * Edge-LLM's engines, or are the caller's own annotations): {@code save_system_prompt_kv_cache},
 * {@code disable_spec_decode}, {@code context_cache_*}, {@code spec_proposal_sampling}, {@code formatted_system_prompt}
 * and any other member.
 */
public record EdgeLlmRequests(Path file, int batchSize, double temperature, double topP, int topK, int maxGenerateLength, long seed,
                              boolean applyChatTemplate, List<Request> requests) {
    /** Edge-LLM's defaults where the file says nothing. */
    public static final double DEFAULT_TEMPERATURE = 1.0, DEFAULT_TOP_P = 0.8;
    public static final int DEFAULT_TOP_K = 50, DEFAULT_MAX_GENERATE_LENGTH = 256;
    /** Edge-LLM's bound on {@code num_logprobs}. */
    public static final int MAX_LOGPROBS = 50;
    /** Largest request file read. */
    public static final long MAX_FILE_BYTES = 256L << 20;

    /**
     * One conversation.
     *
     * @param messages  the turns, images as slots
     * @param images    the image files in slot order
     * @param echo      the messages as the output file repeats them (content always an array)
     * @param raw       the text to tokenize verbatim instead of rendering the chat template, or null
     */
    public record Request(List<ChatMessage> messages, List<Path> images, JsonNode echo, String raw, List<String> stop,
                          Map<Integer, Float> logitBias, int numLogprobs) {
        public Request {
            messages = List.copyOf(messages);
            images = List.copyOf(images);
            stop = List.copyOf(stop);
            logitBias = Map.copyOf(logitBias);
        }
    }

    public EdgeLlmRequests {
        requests = List.copyOf(requests);
    }

    /** The requests in batches of {@link #batchSize}, in file order. */
    public List<List<Request>> batches() {
        List<List<Request>> out = new ArrayList<>();
        for (int i = 0; i < requests.size(); i += batchSize) out.add(requests.subList(i, Math.min(requests.size(), i + batchSize)));
        return out;
    }

    /** Reads and validates {@code file}; overrides (null: the file's value) as Edge-LLM's command-line flags give them. */
    public static EdgeLlmRequests read(Path file, Integer batchSizeOverride, Integer maxLengthOverride, Integer logprobsOverride) {
        JsonNode root;
        try {
            long size = Files.size(file);
            if (size > MAX_FILE_BYTES) throw new IllegalArgumentException(file + ": the request file is " + size + " bytes; at most " + MAX_FILE_BYTES + " are read");
            root = new ObjectMapper().readTree(file.toFile());
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")" : ""));
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read the request file: " + e.getMessage());
        }
        return new Parser(file).parse(root, batchSizeOverride, maxLengthOverride, logprobsOverride);
    }

    private static final class Parser {
        private final Path file;
        private final Path base;

        Parser(Path file) {
            this.file = file;
            this.base = Path.of("").toAbsolutePath();   // like llm_inference: image paths are relative to the working folder
        }

        IllegalArgumentException bad(String field, String why) { return new IllegalArgumentException(file + ": '" + field + "' " + why); }

        EdgeLlmRequests parse(JsonNode root, Integer batchOverride, Integer lengthOverride, Integer logprobsOverride) {
            if (root == null || !root.isObject()) throw new IllegalArgumentException(file + ": the request file must hold a JSON object with 'requests'");
            int batch = batchOverride != null ? batchOverride : integer(root, "batch_size", 1, 1, 1 << 16);
            if (batch < 1) throw bad("batch_size", "must be >= 1, got " + batch);
            double temperature = number(root, "temperature", DEFAULT_TEMPERATURE, 0, 100);
            double topP = number(root, "top_p", DEFAULT_TOP_P, 0, 1);
            int topK = integer(root, "top_k", DEFAULT_TOP_K, -1, 1 << 20);
            int length = lengthOverride != null ? lengthOverride : integer(root, "max_generate_length", DEFAULT_MAX_GENERATE_LENGTH, 1, 1 << 20);
            if (length < 1) throw bad("max_generate_length", "must be >= 1, got " + length);
            long seed = 0;
            JsonNode s = root.get("sampling_seed");
            if (s != null && !s.isNull()) {
                if (!s.isIntegralNumber()) throw bad("sampling_seed", "must be an integer, got " + s);
                seed = s.asLong();
            }
            boolean template = bool(root, "apply_chat_template", true);
            if (!bool(root, "add_generation_prompt", true) && template)
                throw bad("add_generation_prompt", "false is not supported: the chat template always opens the assistant turn (use apply_chat_template: false and a raw prompt)");
            if (bool(root, "enable_thinking", false)) throw bad("enable_thinking", "true is not supported by VLMFlux's chat templates");
            JsonNode lora = root.get("available_lora_weights");
            if (lora != null && !lora.isNull() && !(lora.isObject() && lora.isEmpty()))
                throw bad("available_lora_weights", "LoRA adapters are not supported by VLMFlux; remove them");
            String defaultSystem = text(root, "default_system_prompt");
            Map<Integer, Float> globalBias = bias(root.get("logit_bias"), "logit_bias");
            int globalLogprobs = logprobsOverride != null ? logprobsOverride : integer(root, "num_logprobs", 0, 0, MAX_LOGPROBS);
            if (globalLogprobs < 0 || globalLogprobs > MAX_LOGPROBS) throw bad("num_logprobs", "must be in [0, " + MAX_LOGPROBS + "], got " + globalLogprobs);

            JsonNode rs = root.get("requests");
            if (rs == null || !rs.isArray()) throw bad("requests", "is required: an array of requests");
            if (rs.isEmpty()) throw bad("requests", "holds no request");
            List<Request> out = new ArrayList<>();
            for (int i = 0; i < rs.size(); i++)
                out.add(request(rs.get(i), "requests[" + i + "]", template, defaultSystem, globalBias, logprobsOverride != null ? Integer.valueOf(globalLogprobs) : null, globalLogprobs));
            return new EdgeLlmRequests(file, batch, temperature, topP, topK <= 0 ? 0 : topK, length, seed, template, out);
        }

        private Request request(JsonNode r, String at, boolean template, String defaultSystem, Map<Integer, Float> globalBias,
                                Integer logprobsOverride, int globalLogprobs) {
            if (!r.isObject()) throw bad(at, "must be an object with 'messages'");
            String lora = text(r, "lora_name");
            if (lora != null && !lora.isEmpty()) throw bad(at + ".lora_name", "names a LoRA adapter; VLMFlux does not support LoRA");
            JsonNode ms = r.get("messages");
            if (ms == null || !ms.isArray() || ms.isEmpty()) throw bad(at + ".messages", "must be a non-empty array of messages");
            List<ChatMessage> messages = new ArrayList<>();
            List<Path> images = new ArrayList<>();
            var json = new ObjectMapper();
            var echo = json.createArrayNode();
            boolean hasSystem = false;
            for (int j = 0; j < ms.size(); j++) {
                String ma = at + ".messages[" + j + "]";
                JsonNode m = ms.get(j);
                if (!m.isObject()) throw bad(ma, "must be an object with 'role' and 'content'");
                String role = text(m, "role");
                if (role == null) throw bad(ma + ".role", "is required");
                role = role.toLowerCase(Locale.ROOT);
                if (!role.equals("system") && !role.equals("user") && !role.equals("assistant"))
                    throw bad(ma + ".role", "must be system, user or assistant, got '" + role + "'");
                hasSystem |= role.equals("system");
                JsonNode c = m.get("content");
                var em = echo.addObject().put("role", role);
                var ec = em.putArray("content");
                List<ChatMessage.Part> parts = new ArrayList<>();
                if (c != null && c.isTextual()) {
                    parts.add(new ChatMessage.Text(c.asText()));
                    ec.addObject().put("type", "text").put("text", c.asText());
                } else if (c != null && c.isArray()) {
                    for (int k = 0; k < c.size(); k++) {
                        String pa = ma + ".content[" + k + "]";
                        JsonNode p = c.get(k);
                        String type = p.isObject() ? text(p, "type") : null;
                        if (type == null) throw bad(pa + ".type", "is required ('text' or 'image')");
                        switch (type) {
                            case "text" -> {
                                String t = text(p, "text");
                                if (t == null) throw bad(pa + ".text", "is required");
                                parts.add(new ChatMessage.Text(t));
                                ec.addObject().put("type", "text").put("text", t);
                            }
                            case "image" -> {
                                String path = text(p, "image");
                                if (path == null || path.isBlank()) throw bad(pa + ".image", "is required: an image file path");
                                if (!role.equals("user")) throw bad(pa, "images are accepted in user messages only");
                                Path im = base.resolve(path).normalize();
                                if (!Files.isRegularFile(im)) throw bad(pa + ".image", "names " + im + ", which is not a readable file");
                                images.add(im);
                                parts.add(new ChatMessage.Image());
                                ec.addObject().put("type", "image").put("image", path);
                            }
                            case "video", "audio" -> throw bad(pa + ".type", "'" + type + "' content is not supported by VLMFlux's infer (images and text are)");
                            default -> throw bad(pa + ".type", "must be 'text' or 'image', got '" + type + "'");
                        }
                    }
                } else {
                    throw bad(ma + ".content", "must be a string or an array of content items");
                }
                messages.add(new ChatMessage(role, parts));
            }
            if (!hasSystem && defaultSystem != null && !defaultSystem.isEmpty()) messages.addFirst(ChatMessage.system(defaultSystem));
            String raw = null;
            String formatted = text(r, "formatted_complete_request");
            if (formatted != null && !formatted.isEmpty()) raw = formatted;
            else if (!template) {
                StringBuilder sb = new StringBuilder();
                for (ChatMessage m : messages) for (ChatMessage.Part p : m.content()) if (p instanceof ChatMessage.Text t) sb.append(t.text());
                raw = sb.toString();
            }
            if (raw != null && !images.isEmpty()) throw bad(at, "a raw prompt (apply_chat_template: false or formatted_complete_request) cannot carry images");
            List<String> stop = new ArrayList<>();
            JsonNode st = r.get("stop");
            if (st != null && !st.isNull()) {
                if (st.isTextual()) stop.add(st.asText());
                else if (st.isArray()) for (int k = 0; k < st.size(); k++) {
                    if (!st.get(k).isTextual() || st.get(k).asText().isEmpty()) throw bad(at + ".stop[" + k + "]", "must be a non-empty string");
                    stop.add(st.get(k).asText());
                }
                else throw bad(at + ".stop", "must be a string or an array of strings");
            }
            Map<Integer, Float> bias = new HashMap<>(globalBias);
            bias.putAll(bias(r.get("logit_bias"), at + ".logit_bias"));
            int logprobs = logprobsOverride != null ? logprobsOverride : integer(r, "num_logprobs", globalLogprobs, 0, MAX_LOGPROBS);
            return new Request(messages, images, echo, raw, stop, bias, logprobs);
        }

        private Map<Integer, Float> bias(JsonNode b, String at) {
            if (b == null || b.isNull()) return Map.of();
            if (!b.isObject()) throw bad(at, "must be an object from token ids to biases");
            Map<Integer, Float> out = new HashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = b.fields(); it.hasNext(); ) {
                var e = it.next();
                int id;
                try {
                    id = Integer.parseInt(e.getKey().strip());
                } catch (NumberFormatException x) {
                    throw bad(at, "keys must be token ids, got '" + e.getKey() + "'");
                }
                if (id < 0) throw bad(at, "token ids must be >= 0, got " + id);
                if (!e.getValue().isNumber() || !Double.isFinite(e.getValue().asDouble())) throw bad(at + "[\"" + id + "\"]", "must be a number");
                out.put(id, (float) e.getValue().asDouble());
            }
            return out;
        }

        private String text(JsonNode o, String name) {
            JsonNode v = o.get(name);
            if (v == null || v.isNull()) return null;
            if (!v.isTextual()) throw bad(name, "must be a string, got " + v.getNodeType().name().toLowerCase(Locale.ROOT));
            return v.asText();
        }

        private int integer(JsonNode o, String name, int dflt, int min, int max) {
            JsonNode v = o.get(name);
            if (v == null || v.isNull()) return dflt;
            if (!v.isIntegralNumber() || !v.canConvertToInt()) throw bad(name, "must be an integer, got " + v);
            int i = v.asInt();
            if (i < min || i > max) throw bad(name, "must be in [" + min + ", " + max + "], got " + i);
            return i;
        }

        private double number(JsonNode o, String name, double dflt, double min, double max) {
            JsonNode v = o.get(name);
            if (v == null || v.isNull()) return dflt;
            if (!v.isNumber()) throw bad(name, "must be a number, got " + v);
            double d = v.asDouble();
            if (!(d >= min && d <= max)) throw bad(name, "must be in [" + min + ", " + max + "], got " + v);
            return d;
        }

        private boolean bool(JsonNode o, String name, boolean dflt) {
            JsonNode v = o.get(name);
            if (v == null || v.isNull()) return dflt;
            if (!v.isBoolean()) throw bad(name, "must be true or false, got " + v);
            return v.asBoolean();
        }
    }
}
