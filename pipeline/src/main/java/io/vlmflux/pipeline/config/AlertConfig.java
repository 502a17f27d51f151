package io.vlmflux.pipeline.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.pipeline.watch.WatchPolicy;
import io.vlmflux.sources.Durations;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * One alert of a pipeline config: a question asked about every sampled frame, the shape of its answer, and when a
 * change of the answer is an event (docs/pipeline.md, "Alerts").
 *
 * @param name        names its events; default: the question (with its answers)
 * @param question    the question (required)
 * @param answers     the answers in the CLI's short form: {@code yes|no} (one of the options) or {@code /REGEX/};
 *                    give this or {@code constraint}, or neither for free text
 * @param constraint  the answer's constraint as JSON ({@code {"choice": [...]}}, {@code {"regex": "..."}},
 *                    {@code {"json_schema": {...}}}, {@code {"grammar": "..."}}: {@code ConstraintSpec.fromJson}); checked against the model's tokenizer when the pipeline starts
 * @param agree       answers in a row that must agree before a change; default 2
 * @param debounce    how long a new answer must hold ({@code 0}, {@code 2s}); default 0
 * @param minInterval at most one change event per interval; default 0
 * @param maxInterval at least one event per interval ({@code repeated} or {@code stalled}); default: none
 * @param maxTokens   tokens per answer, in [1, 4096]; default 32
 */
public record AlertConfig(String name, String question, String answers, JsonNode constraint, Integer agree, String debounce,
                          String minInterval, String maxInterval, Integer maxTokens) {
    public AlertConfig {
        if (question == null || question.isBlank()) throw new IllegalArgumentException("field 'question' is required (e.g. \"Is there a person?\")");
        if (name != null && name.isBlank()) throw new IllegalArgumentException("field 'name' must not be blank when given");
        if (constraint != null && constraint.isNull()) constraint = null;
        if (answers != null && constraint != null) throw new IllegalArgumentException("give 'answers' or 'constraint', not both");
        if (answers != null && answers.isBlank()) throw new IllegalArgumentException("field 'answers' must not be blank when given (e.g. \"yes|no\")");
        if (constraint != null && !constraint.isObject())
            throw new IllegalArgumentException("field 'constraint' must be an object such as {\"choice\": [\"yes\", \"no\"]}, got " + constraint);
        if (agree == null) agree = WatchPolicy.DEFAULT.agree();
        if (maxTokens == null) maxTokens = 32;
        if (maxTokens < 1 || maxTokens > 4096) throw new IllegalArgumentException("field 'maxTokens' must be in [1, 4096], got " + maxTokens);
        policy(agree, debounce, minInterval, maxInterval);   // validates
    }

    /**
     * The alerts of a JSON array of alert objects (the fields of this record, as in a config's {@code alerts}), e.g.
     * a fleet camera record's {@code alerts}; null or JSON null: none. Errors name the entry and field
     * ({@code [1].question: ...}); two alerts with one name are refused.
     */
    public static List<AlertConfig> list(JsonNode array) {
        if (array == null || array.isNull()) return List.of();
        if (!array.isArray()) throw new IllegalArgumentException("must be an array of alert objects, got " + array.getNodeType().toString().toLowerCase(java.util.Locale.ROOT));
        List<AlertConfig> out = new ArrayList<>();
        for (int i = 0; i < array.size(); i++) {
            JsonNode n = array.get(i);
            if (!n.isObject()) throw new IllegalArgumentException("[" + i + "]: an alert is an object such as {\"question\": \"Is the gate open?\", \"answers\": \"yes|no\"}, got " + n);
            try {
                out.add(PipelineConfig.MAPPER.treeToValue(n, AlertConfig.class));
            } catch (JsonMappingException e) {
                String where = PipelineConfig.where(e).substring(1).replaceAll(" \\(line .*$", "");
                throw new IllegalArgumentException("[" + i + "]" + where + ": " + PipelineConfig.reason(e), e);
            } catch (JsonProcessingException e) {
                throw new IllegalArgumentException("[" + i + "]: " + e.getOriginalMessage(), e);
            }
        }
        checkNames(out);
        return List.copyOf(out);
    }

    /** Refuses two alerts of one name (the name, else the question with its answers, keys their events). */
    static void checkNames(List<AlertConfig> alerts) {
        java.util.HashSet<String> names = new java.util.HashSet<>();
        for (AlertConfig a : alerts) {
            String n = a.name() != null ? a.name() : a.spec();
            if (!names.add(n)) throw new IllegalArgumentException("two alerts are named '" + n + "' (give each a 'name')");
        }
    }

    /** The watch policy of this alert. */
    public WatchPolicy policy() { return policy(agree, debounce, minInterval, maxInterval); }

    /** The question with its short-form answers, as {@code vlmflux caption --alert} takes it (when no JSON constraint). */
    public String spec() { return answers == null ? question : question.strip() + (question.strip().endsWith("?") ? " " : "? ") + answers; }

    private static WatchPolicy policy(int agree, String debounce, String minInterval, String maxInterval) {
        try {
            return new WatchPolicy(agree, duration("debounce", debounce), duration("minInterval", minInterval), duration("maxInterval", maxInterval));
        } catch (IllegalArgumentException e) {
            throw e.getMessage().startsWith("field ") ? e : new IllegalArgumentException("field '" + field(e.getMessage()) + "': " + e.getMessage(), e);
        }
    }

    private static String field(String message) {
        for (String f : new String[]{"agree", "debounce", "minInterval", "maxInterval"}) if (message.startsWith(f)) return f;
        return "maxInterval";
    }

    private static Duration duration(String field, String text) {
        if (text == null) return null;
        try {
            return text.strip().equals("0") ? Duration.ZERO : Durations.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("field '" + field + "': expected a duration such as 500ms, 2s or 1m, got '" + text + "'", e);
        }
    }
}
