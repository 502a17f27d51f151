package io.vlmflux.demos;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Minimal GNU-style option parser: {@code --name value}, {@code --name=value}, repeatable options and flags.
 * Values are taken literally (no escape processing). Unknown options are a {@link UsageException}.
 */
public final class Args {
    private final Map<String, List<String>> values = new LinkedHashMap<>();
    private final List<String> positional = new ArrayList<>();

    private Args() {}

    /**
     * @param withValue option names (without dashes) that take a value
     * @param flags     option names that take none
     */
    public static Args parse(List<String> args, Set<String> withValue, Set<String> flags) {
        Args a = new Args();
        for (int i = 0; i < args.size(); i++) {
            String s = args.get(i);
            if (s.startsWith("--") && s.length() > 2) {
                String name = s.substring(2);
                String value = null;
                int eq = name.indexOf('=');
                if (eq >= 0) { value = name.substring(eq + 1); name = name.substring(0, eq); }
                if (flags.contains(name)) {
                    if (value != null) throw new UsageException("option --" + name + " takes no value");
                    a.values.computeIfAbsent(name, k -> new ArrayList<>()).add("true");
                } else if (withValue.contains(name)) {
                    if (value == null) {
                        if (i + 1 >= args.size()) throw new UsageException("option --" + name + " needs a value");
                        value = args.get(++i);
                    }
                    a.values.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
                } else {
                    throw new UsageException("unknown option --" + name);
                }
            } else {
                a.positional.add(s);
            }
        }
        return a;
    }

    public boolean has(String name) { return values.containsKey(name); }
    public boolean flag(String name) { return values.containsKey(name); }

    /** Last value given for the option, or null. */
    public String get(String name) {
        List<String> v = values.get(name);
        return v == null ? null : v.get(v.size() - 1);
    }

    public String get(String name, String dflt) { String v = get(name); return v == null ? dflt : v; }

    public String require(String name) {
        String v = get(name);
        if (v == null) throw new UsageException("missing required option --" + name);
        return v;
    }

    public List<String> all(String name) { return values.getOrDefault(name, List.of()); }
    public List<String> positional() { return positional; }

    public int getInt(String name, int dflt) {
        String v = get(name);
        if (v == null) return dflt;
        try { return Integer.parseInt(v.trim()); }
        catch (NumberFormatException e) { throw new UsageException("--" + name + " expects an integer, got '" + v + "'"); }
    }

    public long getLong(String name, long dflt) {
        String v = get(name);
        if (v == null) return dflt;
        try { return Long.parseLong(v.trim()); }
        catch (NumberFormatException e) { throw new UsageException("--" + name + " expects an integer, got '" + v + "'"); }
    }

    public double getDouble(String name, double dflt) {
        String v = get(name);
        if (v == null) return dflt;
        try { return Double.parseDouble(v.trim()); }
        catch (NumberFormatException e) { throw new UsageException("--" + name + " expects a number, got '" + v + "'"); }
    }

    /** A duration option such as {@code 500ms}, {@code 2s}, {@code 1.5m}, {@code 1h}; null when absent. */
    public Duration getDuration(String name) {
        String v = get(name);
        return v == null ? null : parseDuration("--" + name, v);
    }

    public static Duration parseDuration(String what, String v) {
        try {
            return io.vlmflux.sources.Durations.parse(v);
        } catch (IllegalArgumentException e) {
            throw new UsageException(what + " expects a duration such as 500ms, 2s or 1m, got '" + v + "'");
        }
    }
}
