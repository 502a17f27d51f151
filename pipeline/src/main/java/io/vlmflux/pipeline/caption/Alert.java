package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.constrain.ConstraintException;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.pipeline.watch.Watch;
import io.vlmflux.pipeline.watch.WatchPolicy;

import java.util.Arrays;
import java.util.List;

/**
 * A question asked about every sampled frame, with the shape its answer must have and when a change of the answer is
 * an event. Immutable; validated on construction.
 *
 * @param name       names the events (default: the question and its answer spec, as {@link #parse} reads them)
 * @param question   the user question after the image
 * @param constraint what the answer must look like (choices, a regex, a JSON Schema), or null for free text
 * @param policy     hysteresis, debounce, min/max interval ({@link WatchPolicy#DEFAULT} when null)
 * @param maxTokens  most tokens per answer (an answer cut there that the constraint does not accept is an error)
 */
public record Alert(String name, String question, ConstraintSpec constraint, WatchPolicy policy, int maxTokens) {
    public static final int DEFAULT_MAX_TOKENS = 32;

    public Alert {
        if (question == null || question.isBlank()) throw new IllegalArgumentException("alert question must not be blank, got '" + question + "'");
        if (name == null || name.isBlank()) name = question;
        if (policy == null) policy = WatchPolicy.DEFAULT;
        if (maxTokens < 1) throw new IllegalArgumentException("alert maxTokens must be >= 1, got " + maxTokens);
    }

    public Alert(String question, ConstraintSpec constraint, WatchPolicy policy) {
        this(null, question, constraint, policy, DEFAULT_MAX_TOKENS);
    }

    /** The watch the operator runs for this alert. */
    public Watch watch() { return new Watch(name, policy); }

    public Alert withPolicy(WatchPolicy p) { return new Alert(name, question, constraint, p, maxTokens); }

    /**
     * The alert a config entry describes ({@code c.answers()} parsed as {@code caption --alert} does, {@code c.constraint()} by
     * {@code ConstraintSpec.fromJson}); errors c.name() the field. The c.constraint() is checked against a tokenizer only
     * when it is compiled for a model.
     */
    public static Alert of(io.vlmflux.pipeline.config.AlertConfig c) {
        Alert parsed;
        try {
            parsed = c.answers() != null ? Alert.parse(c.spec(), c.policy()) : null;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("field 'answers': " + e.getMessage(), e);
        }
        ConstraintSpec spec;
        if (parsed != null) spec = parsed.constraint();
        else if (c.constraint() == null) spec = null;
        else {
            try {
                spec = ConstraintSpec.fromJson(c.constraint());
            } catch (ConstraintException e) {
                String m = e.getMessage() == null ? e.toString() : e.getMessage();
                throw new IllegalArgumentException("field 'constraint': " + (m.startsWith("constraint: ") ? m.substring("constraint: ".length()) : m), e);
            }
        }
        return new Alert(c.name() != null ? c.name() : parsed != null ? parsed.name() : null, c.question(), spec, c.policy(), c.maxTokens());
    }

    /**
     * Reads {@code QUESTION? ANSWERS}: the text up to the last {@code ?} is the question (the {@code ?} kept), the rest
     * the answers: {@code yes|no} (one of the options, trimmed), {@code /REGEX/} (a full match), or nothing (free text).
     * E.g. {@code "Is there a person? yes|no"}.
     */
    public static Alert parse(String spec, WatchPolicy policy) {
        if (spec == null || spec.isBlank()) throw new IllegalArgumentException("alert must not be blank (e.g. \"Is there a person? yes|no\")");
        int q = spec.lastIndexOf('?');
        if (q < 0) throw new IllegalArgumentException("alert '" + spec + "' has no '?': write QUESTION? ANSWER|ANSWER (e.g. \"Is there a person? yes|no\")");
        String question = spec.substring(0, q + 1).strip();
        String answers = spec.substring(q + 1).strip();
        ConstraintSpec c;
        if (answers.isEmpty()) c = null;
        else if (answers.length() >= 2 && answers.startsWith("/") && answers.endsWith("/")) c = new ConstraintSpec.Regex(answers.substring(1, answers.length() - 1));
        else {
            List<String> options = Arrays.stream(answers.split("\\|", -1)).map(String::strip).toList();
            for (int i = 0; i < options.size(); i++)
                if (options.get(i).isEmpty()) throw new IllegalArgumentException("alert '" + spec + "': answer " + (i + 1) + " of '" + answers + "' is empty");
            c = new ConstraintSpec.Choice(options);
        }
        return new Alert(spec.strip(), question, c, policy, DEFAULT_MAX_TOKENS);
    }
}
