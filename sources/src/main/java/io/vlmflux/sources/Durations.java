package io.vlmflux.sources;

import java.time.Duration;
import java.util.Locale;

/**
 * Durations as people write them in source specs, sampling specs, configs and CLI flags: a number (fractions allowed)
 * with a unit {@code ns}, {@code us}, {@code ms}, {@code s}, {@code m} or {@code h} — {@code 500ms}, {@code 1.5s},
 * {@code 2m}; a bare number is seconds. The one parser every module uses, so the same text means the same time
 * everywhere.
 */
public final class Durations {
    private Durations() {}

    /** Parses {@code text}; throws {@link IllegalArgumentException} naming the text when it is not a finite duration, positive or zero. */
    public static Duration parse(String text) {
        if (text == null) throw new IllegalArgumentException("missing duration (expected e.g. 500ms, 2s or 1m)");
        String s = text.trim().toLowerCase(Locale.ROOT);
        int unit = unitLength(s);
        double scale = switch (unit == 0 ? "" : s.substring(s.length() - unit)) {
            case "ns" -> 1;
            case "us" -> 1e3;
            case "ms" -> 1e6;
            case "m" -> 60e9;
            case "h" -> 3600e9;
            default -> 1e9;   // "s" or no unit
        };
        double v;
        try {
            v = Double.parseDouble(s.substring(0, s.length() - unit).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is not a duration such as 500ms, 2s or 1m");
        }
        if (!Double.isFinite(v) || v < 0) throw new IllegalArgumentException("'" + text + "': a duration must be a finite number, positive or zero");
        return Duration.ofNanos(Math.round(v * scale));
    }

    /** True when {@code text} ends in one of the time units (so {@code 30f} or {@code 5fps} are not durations). */
    public static boolean hasUnit(String text) {
        return text != null && unitLength(text.trim().toLowerCase(Locale.ROOT)) > 0;
    }

    /** Length of the unit suffix, 0 when there is none; a unit must follow the number ({@code 5fps} has none). */
    private static int unitLength(String s) {
        int n = 0;
        for (String u : new String[] {"ns", "us", "ms", "s", "m", "h"})
            if (s.endsWith(u)) { n = u.length(); break; }
        if (n == 0 || s.length() == n) return 0;
        char before = s.charAt(s.length() - n - 1);
        return Character.isDigit(before) || before == '.' || before == ' ' ? n : 0;
    }
}
