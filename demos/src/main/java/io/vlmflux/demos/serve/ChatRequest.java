package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.llm.chat.ChatMessage;
import io.vlmflux.llm.constrain.ConstraintSpec;

import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One {@code POST /v1/chat/completions} body, validated: the chat turns (images as slots), the encoded images in slot
 * order, and the generation settings. Owns the mapping from OpenAI's request fields to the runtime's terms; every
 * error names the field ({@code messages[0].content[1].image_url.url}) and what was wrong.
 *
 * @param maxTokens   null: the server's limit
 * @param temperature null: the model's generation config
 * @param topP        null: the model's generation config
 * @param seed        null: a fresh one per request
 * @param ignoreEos   vLLM's extension: keep going past end-of-turn tokens (stop strings still apply)
 * @param format      {@code response_format} as a constraint on the answer (json_schema, json_object), or null for text
 * @param topLogprobs -1: no {@code logprobs}; else {@code logprobs: true} with this many {@code top_logprobs} (0..20)
 * @param logitBias   {@code logit_bias}: token id to a bias in [-100, 100] (empty: none)
 */
record ChatRequest(String model, List<ChatMessage> messages, List<Image> images, Integer maxTokens, Double temperature,
                   Double topP, Long seed, List<String> stop, boolean stream, boolean includeUsage, boolean ignoreEos,
                   ConstraintSpec format, int topLogprobs, Map<Integer, Float> logitBias) {
    /**
     * An image: encoded bytes (PNG, JPEG, ...) from a data URL, or an http(s) {@code url} still to fetch (bytes null);
     * {@code param} is the field it came from.
     */
    record Image(byte[] bytes, String url, String param) {}

    /** Images one request may carry: with {@link ChatServer#MAX_IMAGE_PIXELS} it bounds what a request decodes. */
    static final int MAX_IMAGES = 8;

    /** OpenAI allows at most this many stop strings. */
    static final int MAX_STOP = 4;

    ChatRequest {
        messages = List.copyOf(messages);
        images = List.copyOf(images);
        stop = List.copyOf(stop);
        logitBias = Map.copyOf(logitBias);
    }

    /** OpenAI's bound on {@code top_logprobs}. */
    static final int MAX_TOP_LOGPROBS = 20;
    /** Entries one {@code logit_bias} may hold (OpenAI documents no bound; this keeps a request's work small). */
    static final int MAX_LOGIT_BIAS = 1024;

    boolean logprobs() { return topLogprobs >= 0; }

    /** @param fetch whether http(s) image URLs are accepted (to be fetched), or refused */
    static ChatRequest parse(JsonNode body, boolean fetch) {
        if (body == null || !body.isObject()) throw ApiException.invalid(null, "the request body must be a JSON object");
        String model = string(body, "model", true);
        JsonNode ms = body.get("messages");
        if (ms == null || ms.isNull()) throw ApiException.invalid("messages", "'messages' is required");
        if (!ms.isArray() || ms.isEmpty()) throw ApiException.invalid("messages", "'messages' must be a non-empty array, got " + shape(ms));
        List<ChatMessage> messages = new ArrayList<>();
        List<Image> images = new ArrayList<>();
        for (int i = 0; i < ms.size(); i++) messages.add(message(ms.get(i), "messages[" + i + "]", images, fetch));

        Integer maxTokens = integer(body, "max_completion_tokens", 1);
        if (maxTokens == null) maxTokens = integer(body, "max_tokens", 1);
        Double temperature = number(body, "temperature", 0, 2);
        Double topP = number(body, "top_p", 0, 1);
        if (topP != null && topP == 0) throw ApiException.invalid("top_p", "'top_p' must be in (0, 1], got 0");
        JsonNode seedNode = body.get("seed");
        Long seed = null;
        if (seedNode != null && !seedNode.isNull()) {
            if (!seedNode.isIntegralNumber() || !seedNode.canConvertToLong()) throw ApiException.invalid("seed", "'seed' must be an integer, got " + shape(seedNode));
            seed = seedNode.asLong();
        }
        List<String> stop = new ArrayList<>();
        JsonNode st = body.get("stop");
        if (st != null && !st.isNull()) {
            if (st.isTextual()) stop.add(st.asText());
            else if (st.isArray()) for (int i = 0; i < st.size(); i++) {
                if (!st.get(i).isTextual()) throw ApiException.invalid("stop", "'stop[" + i + "]' must be a string, got " + shape(st.get(i)));
                stop.add(st.get(i).asText());
            }
            else throw ApiException.invalid("stop", "'stop' must be a string or an array of strings, got " + shape(st));
            if (stop.size() > MAX_STOP) throw ApiException.invalid("stop", "'stop' takes at most " + MAX_STOP + " strings, got " + stop.size());
            for (String s : stop) if (s.isEmpty()) throw ApiException.invalid("stop", "'stop' strings must not be empty");
        }
        boolean stream = bool(body, "stream");
        boolean includeUsage = false;
        JsonNode so = body.get("stream_options");
        if (so != null && !so.isNull()) {
            if (!so.isObject()) throw ApiException.invalid("stream_options", "'stream_options' must be an object, got " + shape(so));
            if (!stream) throw ApiException.invalid("stream_options", "'stream_options' is only allowed when 'stream' is true");
            includeUsage = bool(so, "include_usage");
        }
        Integer n = integer(body, "n", 1);
        if (n != null && n != 1) throw ApiException.invalid("n", "this server returns one choice per request: 'n' must be 1, got " + n);
        JsonNode tools = body.get("tools");
        if (tools != null && !tools.isNull() && !(tools.isArray() && tools.isEmpty()))
            throw ApiException.invalid("tools", "tools / function calling are not supported by this server");
        boolean logprobs = bool(body, "logprobs");
        Integer top = integer(body, "top_logprobs", 0);
        if (top != null && top > MAX_TOP_LOGPROBS)
            throw ApiException.invalid("top_logprobs", "'top_logprobs' must be in [0, " + MAX_TOP_LOGPROBS + "], got " + top);
        if (top != null && !logprobs) throw ApiException.invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        int topLogprobs = logprobs ? (top == null ? 0 : top) : -1;
        ConstraintSpec format = ResponseFormats.parse(body.get("response_format"));
        return new ChatRequest(model, messages, images, maxTokens, temperature, topP, seed, stop, stream, includeUsage, bool(body, "ignore_eos"),
                format, topLogprobs, logitBias(body.get("logit_bias")));
    }

    /** {@code logit_bias}: an object from token ids (as strings) to numbers in [-100, 100]. */
    private static Map<Integer, Float> logitBias(JsonNode lb) {
        if (lb == null || lb.isNull()) return Map.of();
        if (!lb.isObject()) throw ApiException.invalid("logit_bias", "'logit_bias' must be an object from token ids to biases, got " + shape(lb));
        if (lb.size() > MAX_LOGIT_BIAS) throw ApiException.invalid("logit_bias", "'logit_bias' takes at most " + MAX_LOGIT_BIAS + " entries, got " + lb.size());
        Map<Integer, Float> out = new HashMap<>();
        for (var it = lb.fields(); it.hasNext(); ) {
            var e = it.next();
            int id;
            try {
                id = Integer.parseInt(e.getKey().strip());
            } catch (NumberFormatException x) {
                throw ApiException.invalid("logit_bias", "'logit_bias' keys must be token ids, got '" + abbreviate(e.getKey()) + "'");
            }
            if (id < 0) throw ApiException.invalid("logit_bias", "'logit_bias' token id must be >= 0, got " + id);
            JsonNode v = e.getValue();
            if (!v.isNumber() || !(v.asDouble() >= -100 && v.asDouble() <= 100))
                throw ApiException.invalid("logit_bias", "'logit_bias[\"" + id + "\"]' must be a number in [-100, 100], got " + shape(v));
            out.put(id, (float) v.asDouble());
        }
        return out;
    }

    private static ChatMessage message(JsonNode m, String at, List<Image> images, boolean fetch) {
        if (!m.isObject()) throw ApiException.invalid(at, "'" + at + "' must be an object, got " + shape(m));
        JsonNode r = m.get("role");
        if (r == null || !r.isTextual()) throw ApiException.invalid(at + ".role", "'" + at + ".role' must be one of system, developer, user, assistant");
        String role = r.asText().toLowerCase(Locale.ROOT);
        switch (role) {
            case "developer" -> role = "system";   // OpenAI's newer name for the system turn
            case "system", "user", "assistant" -> { }
            default -> throw ApiException.invalid(at + ".role", "'" + at + ".role' must be one of system, developer, user, assistant, got '" + r.asText() + "'");
        }
        JsonNode c = m.get("content");
        List<ChatMessage.Part> parts = new ArrayList<>();
        if (c == null || c.isNull()) {
            if (!role.equals("assistant")) throw ApiException.invalid(at + ".content", "'" + at + ".content' is required for a " + role + " message");
        } else if (c.isTextual()) {
            parts.add(new ChatMessage.Text(c.asText()));
        } else if (c.isArray()) {
            for (int j = 0; j < c.size(); j++) {
                String pa = at + ".content[" + j + "]";
                JsonNode p = c.get(j);
                String type = p.path("type").asText("");
                switch (type) {
                    case "text" -> {
                        JsonNode t = p.get("text");
                        if (t == null || !t.isTextual()) throw ApiException.invalid(pa + ".text", "'" + pa + ".text' must be a string");
                        parts.add(new ChatMessage.Text(t.asText()));
                    }
                    case "image_url" -> {
                        if (!role.equals("user")) throw ApiException.invalid(pa, "images are accepted in user messages only, '" + at + "' is a " + role + " message");
                        JsonNode iu = p.get("image_url");
                        String field = pa + ".image_url.url";
                        JsonNode url = iu == null ? null : iu.isTextual() ? iu : iu.get("url");
                        if (url == null || !url.isTextual()) throw ApiException.invalid(field, "'" + field + "' must be a string URL");
                        if (images.size() == MAX_IMAGES)
                            throw ApiException.invalid(field, "a request may carry at most " + MAX_IMAGES + " images; '" + field + "' is one more");
                        String u = url.asText();
                        images.add(fetch && isRemote(u) ? new Image(null, u, field) : new Image(dataUrl(u, field), null, field));
                        parts.add(new ChatMessage.Image());
                    }
                    default -> throw ApiException.invalid(pa + ".type", "'" + pa + ".type' must be 'text' or 'image_url', got '" + type + "'");
                }
            }
        } else {
            throw ApiException.invalid(at + ".content", "'" + at + ".content' must be a string or an array of content parts, got " + shape(c));
        }
        return new ChatMessage(role, parts);
    }

    private static boolean isRemote(String url) {
        String lower = url.length() > 16 ? url.substring(0, 16).toLowerCase(Locale.ROOT) : url.toLowerCase(Locale.ROOT);
        return lower.startsWith("http://") || lower.startsWith("https://");
    }

    /** The bytes of a {@code data:image/...;base64,...} URL. Remote URLs are refused here (the server fetches them only with --fetch-images). */
    static byte[] dataUrl(String url, String field) {
        String lower = url.length() > 16 ? url.substring(0, 16).toLowerCase(Locale.ROOT) : url.toLowerCase(Locale.ROOT);
        if (isRemote(url))
            throw new ApiException(400, "invalid_request_error", "'" + field + "': this server does not fetch remote images (start it with --fetch-images); "
                    + "send the image inline as a data URL (data:image/png;base64,...)", field, "unsupported_image_url");
        if (!lower.startsWith("data:"))
            throw ApiException.invalid(field, "'" + field + "' must be a data URL (data:image/png;base64,...), got '" + abbreviate(url) + "'");
        int comma = url.indexOf(',');
        if (comma < 0) throw ApiException.invalid(field, "'" + field + "': a data URL needs a comma before its data, got '" + abbreviate(url) + "'");
        String meta = url.substring(5, comma).toLowerCase(Locale.ROOT);
        if (!meta.endsWith(";base64")) throw ApiException.invalid(field, "'" + field + "': the data URL must be base64-encoded (data:image/...;base64,...), got 'data:" + meta + "'");
        String mime = meta.substring(0, meta.length() - 7);
        if (!mime.isEmpty() && !mime.startsWith("image/"))
            throw ApiException.invalid(field, "'" + field + "': the data URL holds '" + mime + "', an image/* type is expected");
        String data = url.substring(comma + 1).replaceAll("\\s", "");
        byte[] b;
        try {
            b = Base64.getDecoder().decode(data);
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(field, "'" + field + "': invalid base64 (" + e.getMessage() + ")");
        }
        if (b.length == 0) throw ApiException.invalid(field, "'" + field + "': the data URL holds no data");
        return b;
    }

    private static String string(JsonNode o, String name, boolean required) {
        JsonNode v = o.get(name);
        if (v == null || v.isNull()) {
            if (required) throw ApiException.invalid(name, "'" + name + "' is required");
            return null;
        }
        if (!v.isTextual()) throw ApiException.invalid(name, "'" + name + "' must be a string, got " + shape(v));
        return v.asText();
    }

    private static Integer integer(JsonNode o, String name, int min) {
        JsonNode v = o.get(name);
        if (v == null || v.isNull()) return null;
        if (!v.isIntegralNumber() || !v.canConvertToInt()) throw ApiException.invalid(name, "'" + name + "' must be an integer, got " + shape(v));
        if (v.asInt() < min) throw ApiException.invalid(name, "'" + name + "' must be >= " + min + ", got " + v.asInt());
        return v.asInt();
    }

    private static Double number(JsonNode o, String name, double min, double max) {
        JsonNode v = o.get(name);
        if (v == null || v.isNull()) return null;
        if (!v.isNumber()) throw ApiException.invalid(name, "'" + name + "' must be a number, got " + shape(v));
        double d = v.asDouble();
        if (!(d >= min && d <= max)) throw ApiException.invalid(name, "'" + name + "' must be in [" + min + ", " + max + "], got " + v);
        return d;
    }

    private static boolean bool(JsonNode o, String name) {
        JsonNode v = o.get(name);
        if (v == null || v.isNull()) return false;
        if (!v.isBoolean()) throw ApiException.invalid(name, "'" + name + "' must be true or false, got " + shape(v));
        return v.asBoolean();
    }

    static String shape(JsonNode v) {
        String s = v.toString();
        return v.getNodeType().name().toLowerCase(Locale.ROOT) + " " + abbreviate(s);
    }

    static String abbreviate(String s) { return s.length() > 40 ? s.substring(0, 40) + "..." : s; }
}
