package io.vlmflux.pipeline.config;

import io.vlmflux.sources.Durations;

import java.time.Duration;

/**
 * A source's live-video session ({@code sources[i].live}; {@code vlmflux serve}, docs/serve.md "Live-video
 * sessions"): its questions are answered, and its alerts checked, over the last {@code window} of video, appended at
 * {@code fps}; with {@code narrate} the {@code prompt} is asked over the window every period. {@code {}} is a session
 * with every default.
 *
 * @param fps        frames per second appended to the session, in (0, 30]; default 2
 * @param window     how much video the session keeps ({@code 30s}); default 30s
 * @param narrate    narration period ({@code 5s}), or {@code off}; default off
 * @param prompt     the narration's standing question; default "What changed?"
 * @param maxTokens  longest answer or narration, in [1, 4096]; default 64
 * @param alertEvery how often (video time) the source's alerts are checked over the window; default: the narration
 *                   period, else 2s
 */
public record LiveConfig(Double fps, String window, String narrate, String prompt, Integer maxTokens, String alertEvery) {
    public static final String DEFAULT_PROMPT = "What changed?";

    public LiveConfig {
        if (fps == null) fps = 2.0;
        if (!(fps > 0 && fps <= 30)) throw new IllegalArgumentException("field 'fps' must be in (0, 30], got " + fps);
        if (window == null) window = "30s";
        positive("window", window);
        if (narrate != null && !narrate.strip().equalsIgnoreCase("off")) positive("narrate", narrate);
        if (prompt == null) prompt = DEFAULT_PROMPT;
        if (prompt.isBlank()) throw new IllegalArgumentException("field 'prompt' must not be blank");
        if (maxTokens == null) maxTokens = 64;
        if (maxTokens < 1 || maxTokens > 4096) throw new IllegalArgumentException("field 'maxTokens' must be in [1, 4096], got " + maxTokens);
        if (alertEvery != null) positive("alertEvery", alertEvery);
    }

    /** The window as a duration. */
    public Duration windowDuration() { return positive("window", window); }

    /** The narration period, or null when off. */
    public Duration narrateDuration() { return narrate == null || narrate.strip().equalsIgnoreCase("off") ? null : positive("narrate", narrate); }

    /** The alert period, or null for the default (the narration period, else 2 s). */
    public Duration alertEveryDuration() { return alertEvery == null ? null : positive("alertEvery", alertEvery); }

    private static Duration positive(String field, String text) {
        Duration d;
        try {
            d = Durations.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("field '" + field + "': expected a duration such as 500ms, 2s or 1m, got '" + text + "'", e);
        }
        if (d.isZero() || d.isNegative()) throw new IllegalArgumentException("field '" + field + "' must be positive, got '" + text + "'");
        return d;
    }
}
