package io.vlmflux.demos.fleet;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.config.AlertConfig;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * One camera of a fleet: the value of its record in the cameras topic (key = {@code id}), e.g.
 * {@code {"id":"gate","source":"rtsp://cam1/stream","every":"2s","prompt":"Describe the scene.","alerts":[...]}}.
 * {@code every} (a sampling spec, default {@code 2s}), {@code prompt} and {@code alerts} (an array of the alert objects
 * of a pipeline config, {@code {"question": "Is the gate open?", "answers": "yes|no", "agree": 2, ...}}; kept as JSON,
 * validated here: {@link #alertList()}) are optional. A record whose key differs from {@code id}, with unknown fields or
 * a bad value is rejected, naming the field ({@code field 'alerts[1]': field 'question' is required ...}).
 */
public record CameraDef(String id, String source, String every, String prompt, JsonNode alerts) {
    public static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    static final String DEFAULT_EVERY = "2s";
    private static final Set<String> FIELDS = Set.of("id", "source", "every", "prompt", "alerts");
    private static final ObjectMapper JSON = new ObjectMapper();

    public CameraDef {
        if (id == null || !ID.matcher(id).matches()) throw new IllegalArgumentException("field 'id': '" + id + "' is not " + ID.pattern());
        if (source == null || source.isBlank()) throw new IllegalArgumentException("field 'source' is required (a source spec, e.g. test:ball)");
        if (every == null) every = DEFAULT_EVERY;
        try {
            SamplingPolicy.parse(every);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("field 'every': " + e.getMessage(), e);
        }
        if (prompt != null && prompt.isBlank()) throw new IllegalArgumentException("field 'prompt' must not be blank");
        if (alerts != null && alerts.isNull()) alerts = null;
        try {
            List<AlertConfig> list = AlertConfig.list(alerts);
            for (int i = 0; i < list.size(); i++) {   // answers and constraints parse
                try {
                    io.vlmflux.pipeline.caption.Alert.of(list.get(i));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("[" + i + "]: " + e.getMessage(), e);
                }
            }
        } catch (IllegalArgumentException e) {
            String m = e.getMessage();
            int colon = m.indexOf(": ");
            // "[1].hold: unknown field 'hold' ..." -> "field 'alerts[1].hold': unknown field 'hold' ..."
            throw new IllegalArgumentException(m.startsWith("[") && colon > 0 ? "field 'alerts" + m.substring(0, colon) + "': " + m.substring(colon + 2)
                    : "field 'alerts': " + m, e);
        }
    }

    public SamplingPolicy sampling() { return SamplingPolicy.parse(every); }

    /**
     * The camera's own alerts, which replace the node's ({@code --alert}, the config's) on this camera; null when the
     * record has no {@code alerts} (the node's run), empty for {@code "alerts": []} (none).
     */
    public List<Alert> alertList() {
        if (alerts == null) return null;
        return AlertConfig.list(alerts).stream().map(io.vlmflux.pipeline.caption.Alert::of).toList();
    }

    /**
     * The camera of a record value. {@code key} is the record's key; {@code where} names the record in errors
     * (topic-partition@offset).
     */
    public static CameraDef parse(String key, byte[] value, String where) {
        JsonNode n;
        try {
            n = JSON.readTree(value);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(where + " (key '" + key + "'): not JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new IllegalArgumentException(where + " (key '" + key + "'): " + e.getMessage());
        }
        if (n == null || !n.isObject()) throw new IllegalArgumentException(where + " (key '" + key + "'): a camera is a JSON object");
        for (Iterator<String> it = n.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) throw new IllegalArgumentException(where + " (key '" + key + "'): unknown field '" + f + "' (known: " + String.join(", ", new java.util.TreeSet<>(FIELDS)) + ")");
        }
        try {
            CameraDef d = new CameraDef(text(n, "id"), text(n, "source"), text(n, "every"), text(n, "prompt"), n.get("alerts"));
            if (!d.id().equals(key)) throw new IllegalArgumentException("the key '" + key + "' is not the camera's id '" + d.id() + "'");
            return d;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + " (key '" + key + "'): " + e.getMessage(), e);
        }
    }

    private static String text(JsonNode n, String f) {
        JsonNode v = n.get(f);
        if (v == null || v.isNull()) return null;
        if (!v.isTextual()) throw new IllegalArgumentException("field '" + f + "' must be a string");
        return v.asText();
    }

    /** The record value of this camera. */
    public byte[] toJson() {
        ObjectNode o = JSON.createObjectNode().put("id", id).put("source", source).put("every", every);
        if (prompt != null) o.put("prompt", prompt);
        if (alerts != null && !alerts.isNull()) o.set("alerts", alerts);
        return o.toString().getBytes(StandardCharsets.UTF_8);
    }
}
