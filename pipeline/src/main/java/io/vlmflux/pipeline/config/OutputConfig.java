package io.vlmflux.pipeline.config;

import java.util.Locale;

/**
 * Where captions go.
 *
 * @param format {@code text} (one line per caption) or {@code json} (one JSON object per line); default text
 * @param path   file the lines are appended to (created with its parent folders, flushed per caption); null: stdout
 * @param tokens true: also write tokens as they are decoded (JSON: one {@code {source, seq, index, token, text}}
 *               line per token before its caption; text: the caption's line grows token by token); default false
 */
public record OutputConfig(String format, String path, Boolean tokens) {
    public static final OutputConfig DEFAULT = new OutputConfig(null, null, null);

    public OutputConfig {
        if (format == null) format = "text";
        format = format.toLowerCase(Locale.ROOT);
        if (!format.equals("text") && !format.equals("json"))
            throw new IllegalArgumentException("field 'format' must be text or json, got '" + format + "'");
        if (path != null && path.isBlank()) throw new IllegalArgumentException("field 'path' must not be blank when given");
        if (tokens == null) tokens = false;
    }
}
