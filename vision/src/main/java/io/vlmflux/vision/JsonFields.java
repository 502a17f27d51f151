package io.vlmflux.vision;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * Strict readers of config-file fields for the vision configs: a present field of the wrong type or out of range is an
 * {@link IllegalArgumentException} naming the field and the value (never a silent default or a truncated number);
 * an absent or null field takes the default.
 */
public final class JsonFields {
    private JsonFields() {}

    /**
     * Parses {@code config.json} of {@code modelDir} with {@code parse}; every error names the file (a missing file, bad
     * JSON, or the field {@code parse} rejects).
     */
    public static <T> T readConfig(java.nio.file.Path modelDir, java.util.function.Function<JsonNode, T> parse) {
        java.nio.file.Path file = modelDir.resolve("config.json");
        if (!java.nio.file.Files.isRegularFile(file)) throw new IllegalArgumentException("missing " + file + ": not a Hugging Face model folder");
        JsonNode root;
        try {
            root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(file.toFile());
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        try {
            return parse.apply(root);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    /** An integer in {@code [min, max]}. */
    public static int integer(JsonNode parent, String key, int dflt, int min, int max) {
        JsonNode n = parent.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isIntegralNumber() || !n.canConvertToInt() || n.asInt() < min || n.asInt() > max)
            throw new IllegalArgumentException("field '" + key + "' must be an integer in " + min + ".." + max + ", got " + n);
        return n.asInt();
    }

    /** A long in {@code [min, max]}. */
    public static long integer(JsonNode parent, String key, long dflt, long min, long max) {
        JsonNode n = parent.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() < min || n.asLong() > max)
            throw new IllegalArgumentException("field '" + key + "' must be an integer in " + min + ".." + max + ", got " + n);
        return n.asLong();
    }

    /** A finite number. */
    public static double number(JsonNode parent, String key, double dflt) {
        JsonNode n = parent.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isNumber() || !Double.isFinite(n.asDouble()))
            throw new IllegalArgumentException("field '" + key + "' must be a finite number, got " + n);
        return n.asDouble();
    }

    public static boolean bool(JsonNode parent, String key, boolean dflt) {
        JsonNode n = parent.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isBoolean()) throw new IllegalArgumentException("field '" + key + "' must be true or false, got " + n);
        return n.asBoolean();
    }

    public static String text(JsonNode parent, String key, String dflt) {
        JsonNode n = parent.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isTextual()) throw new IllegalArgumentException("field '" + key + "' must be a string, got " + n);
        return n.asText();
    }
}
