package io.vlmflux.pipeline.config;

/**
 * A pipeline config that cannot be used. The message is complete on its own: it names the file, the JSON path (and
 * line) and the value found with what was expected, so a CLI prints it alone. The cause, when there is one, is the
 * JSON parser's exception, kept for debugging (stack traces) rather than for users.
 */
public final class ConfigException extends IllegalArgumentException {
    public ConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
