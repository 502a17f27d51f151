package io.vlmflux.llm.chat;

import io.vlmflux.llm.chat.Py.TemplateError;
import io.vlmflux.llm.chat.Py.Tuple;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/** Python {@code str} methods for chat templates (the non-underscore ones that make sense on text). Stateless. */
final class PyStr {
    private PyStr() {}

    static final Set<String> METHODS = Set.of("startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit",
            "splitlines", "upper", "lower", "title", "capitalize", "swapcase", "casefold", "replace", "find", "rfind",
            "index", "rindex", "count", "join", "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace",
            "isupper", "islower", "istitle", "center", "ljust", "rjust", "zfill", "partition", "rpartition",
            "removeprefix", "removesuffix", "format", "expandtabs");

    static Object call(TemplateRenderer r, String s, String name, List<Object> a, Map<String, Object> kw) {
        return switch (name) {
            case "startswith" -> affix(s, arg(a, kw, 0, "prefix"), true);
            case "endswith" -> affix(s, arg(a, kw, 0, "suffix"), false);
            case "strip" -> strip(s, chars(a, kw), true, true);
            case "lstrip" -> strip(s, chars(a, kw), true, false);
            case "rstrip" -> strip(s, chars(a, kw), false, true);
            case "split" -> split(s, opt(a, kw, 0, "sep"), maxsplit(a, kw));
            case "rsplit" -> rsplit(s, opt(a, kw, 0, "sep"), maxsplit(a, kw));
            case "splitlines" -> splitlines(s, Py.truthy(opt(a, kw, 0, "keepends")));
            case "upper" -> s.toUpperCase(Locale.ROOT);
            case "lower" -> s.toLowerCase(Locale.ROOT);
            case "casefold" -> s.toLowerCase(Locale.ROOT);
            case "swapcase" -> swapcase(s);
            case "title" -> title(s);
            case "capitalize" -> capitalize(s);
            case "replace" -> {
                Object count = opt(a, kw, 2, "count");
                String out = replace(r, s, text(arg(a, kw, 0, "old")), text(arg(a, kw, 1, "new")), count == null ? -1 : Py.asLong(count));
                yield out;
            }
            case "find" -> (long) s.indexOf(text(arg(a, kw, 0, "sub")));
            case "rfind" -> (long) s.lastIndexOf(text(arg(a, kw, 0, "sub")));
            case "index", "rindex" -> {
                String sub = text(arg(a, kw, 0, "sub"));
                int i = name.equals("index") ? s.indexOf(sub) : s.lastIndexOf(sub);
                if (i < 0) throw new TemplateError("substring not found");
                yield (long) i;
            }
            case "count" -> count(s, text(arg(a, kw, 0, "sub")));
            case "join" -> {
                StringBuilder sb = new StringBuilder();
                boolean first = true;
                for (Object o : Py.iterate(arg(a, kw, 0, "iterable"))) {
                    if (!(o instanceof String t)) throw new TemplateError("sequence item: expected str instance, " + Py.typeName(o) + " found");
                    if (!first) sb.append(s);
                    first = false;
                    sb.append(t);
                    r.checkString(sb.length());
                }
                yield sb.toString();
            }
            case "isdigit", "isdecimal", "isnumeric" -> !s.isEmpty() && s.codePoints().allMatch(Character::isDigit);
            case "isalpha" -> !s.isEmpty() && s.codePoints().allMatch(Character::isLetter);
            case "isalnum" -> !s.isEmpty() && s.codePoints().allMatch(Character::isLetterOrDigit);
            case "isspace" -> !s.isEmpty() && s.codePoints().allMatch(PyStr::isSpace);
            case "isupper" -> s.codePoints().anyMatch(Character::isLetter) && s.equals(s.toUpperCase(Locale.ROOT));
            case "islower" -> s.codePoints().anyMatch(Character::isLetter) && s.equals(s.toLowerCase(Locale.ROOT));
            case "istitle" -> s.codePoints().anyMatch(Character::isLetter) && s.equals(title(s));
            case "center", "ljust", "rjust" -> {
                long width = Py.asLong(arg(a, kw, 0, "width"));
                r.checkString(width);
                Object f = opt(a, kw, 1, "fillchar");
                yield pad(s, (int) width, f == null ? " " : text(f), name);
            }
            case "zfill" -> {
                long width = Py.asLong(arg(a, kw, 0, "width"));
                r.checkString(width);
                int n = (int) width - s.length();
                if (n <= 0) yield s;
                boolean sign = !s.isEmpty() && (s.charAt(0) == '-' || s.charAt(0) == '+');
                yield sign ? s.charAt(0) + "0".repeat(n) + s.substring(1) : "0".repeat(n) + s;
            }
            case "partition", "rpartition" -> {
                String sep = text(arg(a, kw, 0, "sep"));
                int i = name.equals("partition") ? s.indexOf(sep) : s.lastIndexOf(sep);
                if (i < 0) yield name.equals("partition") ? new Tuple(s, "", "") : new Tuple("", "", s);
                yield new Tuple(s.substring(0, i), sep, s.substring(i + sep.length()));
            }
            case "removeprefix" -> { String p = text(arg(a, kw, 0, "prefix")); yield s.startsWith(p) ? s.substring(p.length()) : s; }
            case "removesuffix" -> { String p = text(arg(a, kw, 0, "suffix")); yield !p.isEmpty() && s.endsWith(p) ? s.substring(0, s.length() - p.length()) : s; }
            case "expandtabs" -> s.replace("\t", " ".repeat(8));
            case "format" -> format(r, s, a, kw);
            default -> throw new TemplateError("'str' object has no attribute '" + name + "'");
        };
    }

    static Object arg(List<Object> a, Map<String, Object> kw, int i, String name) {
        if (i < a.size()) return a.get(i);
        if (kw.containsKey(name)) return kw.get(name);
        throw new TemplateError("missing required argument '" + name + "'");
    }

    static Object opt(List<Object> a, Map<String, Object> kw, int i, String name) {
        if (i < a.size()) return a.get(i);
        return kw.get(name);
    }

    static String text(Object o) {
        if (o instanceof String s) return s;
        throw new TemplateError("expected a string argument, got " + Py.typeName(o) + " " + Py.repr(o));
    }

    private static String chars(List<Object> a, Map<String, Object> kw) {
        Object c = opt(a, kw, 0, "chars");
        return c == null ? null : text(c);
    }

    private static int maxsplit(List<Object> a, Map<String, Object> kw) {
        Object m = opt(a, kw, 1, "maxsplit");
        return m == null ? -1 : (int) Math.max(-1, Math.min(Integer.MAX_VALUE, Py.asLong(m)));
    }

    private static boolean affix(String s, Object arg, boolean prefix) {
        if (arg instanceof Tuple t) {
            for (Object o : t) if (prefix ? s.startsWith(text(o)) : s.endsWith(text(o))) return true;
            return false;
        }
        if (!(arg instanceof String x)) throw new TemplateError((prefix ? "startswith" : "endswith") + " first arg must be str or a tuple of str, not " + Py.typeName(arg));
        return prefix ? s.startsWith(x) : s.endsWith(x);
    }

    /** Python's {@code str.isspace} for one code point. */
    static boolean isSpace(int c) {
        return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
    }

    /** {@code strip(chars)}; {@code chars == null} strips Python whitespace. */
    static String strip(String s, String chars, boolean left, boolean right) {
        int a = 0, b = s.length();
        if (left) while (a < b && (chars == null ? isSpace(s.charAt(a)) : chars.indexOf(s.charAt(a)) >= 0)) a++;
        if (right) while (b > a && (chars == null ? isSpace(s.charAt(b - 1)) : chars.indexOf(s.charAt(b - 1)) >= 0)) b--;
        return s.substring(a, b);
    }

    static List<Object> split(String s, Object sepArg, int maxsplit) {
        List<Object> out = new ArrayList<>();
        int n = s.length();
        if (sepArg == null) {
            int i = 0;
            while (i < n) {
                while (i < n && isSpace(s.charAt(i))) i++;
                if (i >= n) break;
                if (maxsplit >= 0 && out.size() == maxsplit) { out.add(strip(s.substring(i), null, false, true)); return out; }
                int j = i;
                while (j < n && !isSpace(s.charAt(j))) j++;
                out.add(s.substring(i, j));
                i = j;
            }
            return out;
        }
        String sep = text(sepArg);
        if (sep.isEmpty()) throw new TemplateError("empty separator");
        int from = 0, idx;
        while ((maxsplit < 0 || out.size() < maxsplit) && (idx = s.indexOf(sep, from)) >= 0) {
            out.add(s.substring(from, idx));
            from = idx + sep.length();
        }
        out.add(s.substring(from));
        return out;
    }

    static List<Object> rsplit(String s, Object sepArg, int maxsplit) {
        if (maxsplit < 0) return split(s, sepArg, -1);
        List<Object> out = new ArrayList<>();
        if (sepArg == null) {
            int j = s.length();
            while (j > 0) {
                while (j > 0 && isSpace(s.charAt(j - 1))) j--;
                if (j == 0) break;
                if (out.size() == maxsplit) { out.addFirst(strip(s.substring(0, j), null, true, false)); return out; }
                int i = j;
                while (i > 0 && !isSpace(s.charAt(i - 1))) i--;
                out.addFirst(s.substring(i, j));
                j = i;
            }
            return out;
        }
        String sep = text(sepArg);
        if (sep.isEmpty()) throw new TemplateError("empty separator");
        int end = s.length(), idx;
        while (out.size() < maxsplit && (idx = s.lastIndexOf(sep, end - sep.length())) >= 0) {
            out.addFirst(s.substring(idx + sep.length(), end));
            end = idx;
        }
        out.addFirst(s.substring(0, end));
        return out;
    }

    private static List<Object> splitlines(String s, boolean keepends) {
        List<Object> out = new ArrayList<>();
        int start = 0, i = 0, n = s.length();
        while (i < n) {
            char c = s.charAt(i);
            int eol = 0;
            if (c == '\r' && i + 1 < n && s.charAt(i + 1) == '\n') eol = 2;
            else if (c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85
                    || c == 0x2028 || c == 0x2029) eol = 1;
            if (eol > 0) {
                out.add(s.substring(start, keepends ? i + eol : i));
                i += eol;
                start = i;
            } else {
                i++;
            }
        }
        if (start < n) out.add(s.substring(start));
        return out;
    }

    /** Python's {@code str.title}: a letter after a non-letter is upper-cased, others lower-cased. */
    static String title(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        boolean prevCased = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            sb.append(prevCased ? Character.toLowerCase(c) : Character.toUpperCase(c));
            prevCased = Character.isLetter(c);
        }
        return sb.toString();
    }

    static String capitalize(String s) {
        if (s.isEmpty()) return s;
        int first = s.codePointAt(0);
        int n = Character.charCount(first);
        return new String(Character.toChars(Character.toTitleCase(first))) + s.substring(n).toLowerCase(Locale.ROOT);
    }

    private static String swapcase(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        s.codePoints().forEach(c -> sb.appendCodePoint(Character.isUpperCase(c) ? Character.toLowerCase(c)
                : Character.isLowerCase(c) ? Character.toUpperCase(c) : c));
        return sb.toString();
    }

    static String replace(TemplateRenderer r, String s, String a, String b, long count) {
        StringBuilder sb = new StringBuilder();
        if (a.isEmpty()) { // Python inserts b between every character (and at both ends)
            long n = 0;
            for (int i = 0; i <= s.length(); i++) {
                if (count < 0 || n < count) { sb.append(b); n++; }
                if (i < s.length()) sb.append(s.charAt(i));
                r.checkString(sb.length());
            }
            return sb.toString();
        }
        int from = 0, idx;
        long n = 0;
        while ((count < 0 || n < count) && (idx = s.indexOf(a, from)) >= 0) {
            sb.append(s, from, idx).append(b);
            r.checkString(sb.length());
            from = idx + a.length();
            n++;
        }
        return sb.append(s, from, s.length()).toString();
    }

    private static long count(String s, String sub) {
        if (sub.isEmpty()) return s.length() + 1;
        long n = 0;
        for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + sub.length())) n++;
        return n;
    }

    private static String pad(String s, int width, String fill, String how) {
        if (fill.length() != 1) throw new TemplateError("The fill character must be exactly one character long");
        int marg = width - s.length();
        if (marg <= 0) return s;
        int left = switch (how) {
            case "ljust" -> 0;
            case "rjust" -> marg;
            default -> marg / 2 + (marg & width & 1);
        };
        return fill.repeat(left) + s + fill.repeat(marg - left);
    }

    /** {@code str.format} with {@code {}}, {@code {0}} and {@code {name}} fields (no format specs, no attribute access). */
    private static String format(TemplateRenderer r, String s, List<Object> a, Map<String, Object> kw) {
        StringBuilder sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '{' && i + 1 < s.length() && s.charAt(i + 1) == '{') { sb.append('{'); i++; continue; }
            if (c == '}' && i + 1 < s.length() && s.charAt(i + 1) == '}') { sb.append('}'); i++; continue; }
            if (c != '{') { sb.append(c); continue; }
            int end = s.indexOf('}', i);
            if (end < 0) throw new TemplateError("Single '{' encountered in format string");
            String field = s.substring(i + 1, end);
            Object v;
            if (field.isEmpty()) v = auto < a.size() ? a.get(auto++) : fail("Replacement index " + auto + " out of range");
            else if (field.chars().allMatch(Character::isDigit)) {
                int k = Integer.parseInt(field);
                v = k < a.size() ? a.get(k) : fail("Replacement index " + k + " out of range");
            } else if (kw.containsKey(field)) v = kw.get(field);
            else throw new TemplateError("format field {" + field + "} is not supported or has no value");
            sb.append(Py.str(v));
            r.checkString(sb.length());
            i = end;
        }
        return sb.toString();
    }

    private static Object fail(String msg) { throw new TemplateError(msg); }
}
