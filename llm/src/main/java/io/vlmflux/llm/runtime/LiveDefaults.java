package io.vlmflux.llm.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.sources.Durations;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;

/**
 * The live-session settings a model's maker recommends, read from {@code vlmflux_live.json} in the model folder
 * (optional; every field optional): {@code window} ("4s"), {@code eviction} ("slide" | "reprefill") and
 * {@code prompt} (the narration's standing question). {@code vlmflux watch} and {@code vlmflux serve --live} use them
 * where their flags are not given. A small model trained on short clips alone (the embedded demo model) wants a short
 * window whose keys and values are computed from the window alone, i.e. re-prefilled when it slides: sliding in place
 * keeps keys and values that attended to groups since evicted, which it was never trained on.
 *
 * @param window   the video a session keeps, or null (the caller's default)
 * @param eviction how the window slides, or null (the caller's default)
 * @param prompt   the narration prompt, or null (the caller's default)
 */
public record LiveDefaults(Duration window, LiveSession.Eviction eviction, String prompt) {
    /** The file's name in a model folder. */
    public static final String FILE = "vlmflux_live.json";
    private static final Set<String> FIELDS = Set.of("window", "eviction", "prompt");
    private static final LiveDefaults NONE = new LiveDefaults(null, null, null);

    /**
     * The defaults of the model in {@code dir}: none when the folder has no {@value #FILE}; a file that is not a JSON
     * object, an unknown field or a bad value is an error naming the file and the field.
     */
    public static LiveDefaults of(Path dir) {
        Path f = dir.resolve(FILE);
        if (!Files.isRegularFile(f)) return NONE;
        JsonNode n;
        try {
            n = new ObjectMapper().readTree(f.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(f + ": not valid JSON: " + e.getMessage(), e);
        }
        if (n == null || !n.isObject()) throw new IllegalArgumentException(f + ": must be a JSON object");
        n.fieldNames().forEachRemaining(k -> {
            if (!FIELDS.contains(k)) throw new IllegalArgumentException(f + ": unknown field '" + k + "' (known: window, eviction, prompt)");
        });
        Duration window = null;
        if (n.hasNonNull("window")) {
            try {
                window = Durations.parse(text(f, n, "window"));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(f + ": field 'window': " + e.getMessage(), e);
            }
            if (window.isZero() || window.isNegative()) throw new IllegalArgumentException(f + ": field 'window' must be positive");
        }
        LiveSession.Eviction eviction = null;
        if (n.hasNonNull("eviction")) {
            String e = text(f, n, "eviction");
            try {
                eviction = LiveSession.Eviction.valueOf(e.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException x) {
                throw new IllegalArgumentException(f + ": field 'eviction' must be slide or reprefill, got '" + e + "'");
            }
        }
        String prompt = n.hasNonNull("prompt") ? text(f, n, "prompt") : null;
        if (prompt != null && prompt.isBlank()) throw new IllegalArgumentException(f + ": field 'prompt' must not be blank");
        return new LiveDefaults(window, eviction, prompt);
    }

    /** The string value of {@code field}, or an error naming the file and the field. */
    private static String text(Path f, JsonNode n, String field) {
        if (!n.get(field).isTextual()) throw new IllegalArgumentException(f + ": field '" + field + "' must be a string");
        return n.get(field).asText();
    }

    /** {@code options} with this model's window and eviction where it gives them. */
    public LiveSession.Options applyTo(LiveSession.Options options) {
        LiveSession.Options o = options;
        if (window != null) o = o.withWindow(window);
        if (eviction != null) o = o.withEviction(eviction);
        return o;
    }

    /** This model's window, else {@code fallback}. */
    public Duration windowOr(Duration fallback) { return window != null ? window : fallback; }

    /** This model's eviction, else {@code fallback}. */
    public LiveSession.Eviction evictionOr(LiveSession.Eviction fallback) { return eviction != null ? eviction : fallback; }

    /** This model's narration prompt, else {@code fallback}. */
    public String promptOr(String fallback) { return prompt != null ? prompt : fallback; }
}
