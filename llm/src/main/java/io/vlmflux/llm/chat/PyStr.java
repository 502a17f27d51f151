package io.vlmflux.llm.chat;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;

/** Python {@code str} methods for templates ({@code startswith}, {@code strip(chars)}, {@code split}, ...). */
final class PyStr {
    private PyStr() {}

    static Object call(String s, String name, Object[] p) {
        return switch (name) {
            case "startswith" -> p.length == 1 ? anyMatch(p[0], s::startsWith) : JinjaPy.NONE;
            case "endswith" -> p.length == 1 ? anyMatch(p[0], s::endsWith) : JinjaPy.NONE;
            case "strip" -> p.length == 0 || p[0] == null ? s.strip() : strip(s, str(p[0]), true, true);
            case "lstrip" -> p.length == 0 || p[0] == null ? s.stripLeading() : strip(s, str(p[0]), true, false);
            case "rstrip" -> p.length == 0 || p[0] == null ? s.stripTrailing() : strip(s, str(p[0]), false, true);
            case "split" -> split(s, p.length > 0 ? p[0] : null, p.length > 1 ? ((Number) p[1]).intValue() : -1);
            case "rsplit" -> p.length <= 1 ? split(s, p.length > 0 ? p[0] : null, -1) : JinjaPy.NONE;
            case "splitlines" -> splitlines(s);
            case "upper" -> s.toUpperCase(Locale.ROOT);
            case "lower" -> s.toLowerCase(Locale.ROOT);
            case "title" -> title(s);
            case "capitalize" -> s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            case "replace" -> p.length == 2 ? s.replace(str(p[0]), str(p[1])) : p.length == 3 ? replace(s, str(p[0]), str(p[1]), ((Number) p[2]).intValue()) : JinjaPy.NONE;
            case "find" -> p.length == 1 ? (long) s.indexOf(str(p[0])) : JinjaPy.NONE;
            case "count" -> p.length == 1 ? count(s, str(p[0])) : JinjaPy.NONE;
            case "join" -> p.length == 1 && p[0] instanceof Collection<?> c ? String.join(s, c.stream().map(PyStr::str).toList()) : JinjaPy.NONE;
            case "isdigit" -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
            case "isalpha" -> !s.isEmpty() && s.chars().allMatch(Character::isLetter);
            case "isalnum" -> !s.isEmpty() && s.chars().allMatch(Character::isLetterOrDigit);
            case "isspace" -> !s.isEmpty() && s.chars().allMatch(Character::isWhitespace);
            case "isupper" -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toUpperCase(Locale.ROOT));
            case "islower" -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toLowerCase(Locale.ROOT));
            default -> JinjaPy.NONE;
        };
    }

    private static String str(Object o) { return o == null ? "None" : o.toString(); }

    private static boolean anyMatch(Object arg, java.util.function.Predicate<String> f) {
        if (arg instanceof Collection<?> c) return c.stream().anyMatch(x -> f.test(str(x)));
        return f.test(str(arg));
    }

    static String strip(String s, String chars, boolean left, boolean right) {
        int a = 0, b = s.length();
        if (left) while (a < b && chars.indexOf(s.charAt(a)) >= 0) a++;
        if (right) while (b > a && chars.indexOf(s.charAt(b - 1)) >= 0) b--;
        return s.substring(a, b);
    }

    static List<String> split(String s, Object sepArg, int maxsplit) {
        List<String> out = new ArrayList<>();
        if (sepArg == null) { // runs of whitespace, no empty strings
            int i = 0, n = s.length();
            while (i < n) {
                while (i < n && Character.isWhitespace(s.charAt(i))) i++;
                if (i >= n) break;
                if (maxsplit >= 0 && out.size() == maxsplit) { out.add(s.substring(i).stripTrailing()); return out; }
                int j = i;
                while (j < n && !Character.isWhitespace(s.charAt(j))) j++;
                out.add(s.substring(i, j));
                i = j;
            }
            return out;
        }
        String sep = str(sepArg);
        if (sep.isEmpty()) throw new IllegalArgumentException("split: empty separator");
        int from = 0, idx;
        while ((maxsplit < 0 || out.size() < maxsplit) && (idx = s.indexOf(sep, from)) >= 0) {
            out.add(s.substring(from, idx));
            from = idx + sep.length();
        }
        out.add(s.substring(from));
        return out;
    }

    private static List<String> splitlines(String s) {
        List<String> out = new ArrayList<>(List.of(s.split("\r\n|[\n\r\u000B\u000C\u001C\u001D\u001E\u0085\u2028\u2029]", -1)));
        if (!out.isEmpty() && out.getLast().isEmpty()) out.removeLast();
        return out;
    }

    private static String title(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        boolean prevCased = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            sb.append(prevCased ? Character.toLowerCase(c) : Character.toUpperCase(c));
            prevCased = Character.isLetter(c);
        }
        return sb.toString();
    }

    private static String replace(String s, String a, String b, int count) {
        if (count < 0) return s.replace(a, b);
        StringBuilder sb = new StringBuilder();
        int from = 0, idx, n = 0;
        while (n < count && !a.isEmpty() && (idx = s.indexOf(a, from)) >= 0) {
            sb.append(s, from, idx).append(b);
            from = idx + a.length();
            n++;
        }
        return sb.append(s.substring(from)).toString();
    }

    private static long count(String s, String sub) {
        if (sub.isEmpty()) return s.length() + 1;
        long n = 0;
        for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + sub.length())) n++;
        return n;
    }
}
