package io.vlmflux.llm.tokenizer;

/**
 * Hand-written matcher for the GPT-4-style split regex that Qwen2/2.5/3 ({@code \p{N}}) and Llama 3
 * ({@code \p{N}{1,3}}) publish:
 * <pre>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</pre>
 * It returns exactly the matches java.util.regex finds for that pattern (checked by a randomized test) at several
 * times the speed. Alternatives are tried in order, as the regex does; every code point starts some match.
 */
final class FastSplit {
    static final String PATTERN_PREFIX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}";
    static final String PATTERN_SUFFIX = "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    private final int maxDigits;

    private FastSplit(int maxDigits) { this.maxDigits = maxDigits; }

    /** The matcher for this regex, or null when it is not one of the patterns handled here. */
    static FastSplit forPattern(String regex) {
        if (regex.equals(PATTERN_PREFIX + PATTERN_SUFFIX)) return new FastSplit(1);
        if (regex.equals(PATTERN_PREFIX + "{1,3}" + PATTERN_SUFFIX)) return new FastSplit(3);
        return null;
    }

    static boolean isLetter(int cp) { return Character.isLetter(cp); }

    static boolean isNumber(int cp) {
        int t = Character.getType(cp);
        return t == Character.DECIMAL_DIGIT_NUMBER || t == Character.LETTER_NUMBER || t == Character.OTHER_NUMBER;
    }

    static boolean isSpace(int cp) { return AddedVocab.isWhitespace(cp); }

    /** End (exclusive, char index) of the match starting at {@code i < s.length()}. */
    int matchEnd(String s, int i) {
        int n = s.length();
        int c = s.codePointAt(i);
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (c == '\'' && i + 1 < n) {
            int a = Character.toLowerCase(s.charAt(i + 1));
            if (a == 's' || a == 't' || a == 'm' || a == 'd' || a == '\u017F') return i + 2;
            if (i + 2 < n) {
                int b = Character.toLowerCase(s.charAt(i + 2));
                if ((a == 'r' || a == 'v') && b == 'e') return i + 3;
                if (a == 'l' && b == 'l') return i + 3;
            }
        }
        int cl = Character.charCount(c);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (isLetter(c)) return letters(s, i + cl);
        boolean num = isNumber(c);
        if (!num && c != '\r' && c != '\n' && i + cl < n && isLetter(s.codePointAt(i + cl))) return letters(s, i + cl);
        // \p{N}{1,K}
        if (num) {
            int j = i + cl, k = 1;
            while (k < maxDigits && j < n) {
                int d = s.codePointAt(j);
                if (!isNumber(d)) break;
                j += Character.charCount(d);
                k++;
            }
            return j;
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        int j = c == ' ' ? i + 1 : i;
        int k = j;
        while (k < n) {
            int d = s.codePointAt(k);
            if (isSpace(d) || isLetter(d) || isNumber(d)) break;
            k += Character.charCount(d);
        }
        if (k > j) {
            while (k < n && (s.charAt(k) == '\r' || s.charAt(k) == '\n')) k++;
            return k;
        }
        // Whitespace alternatives (all White_Space code points are single chars).
        int end = i;
        int lastNl = -1;
        while (end < n && isSpace(s.charAt(end))) {
            if (s.charAt(end) == '\r' || s.charAt(end) == '\n') lastNl = end;
            end++;
        }
        if (end == i) return i + cl; // unreachable for this pattern: every code point is covered above
        if (lastNl >= 0) return lastNl + 1;          // \s*[\r\n]+
        if (end == n || end - i == 1) return end;    // \s+(?!\S) at the end, or \s+
        return end - 1;                              // \s+(?!\S): leave one space for the next word
    }

    private static int letters(String s, int j) {
        int n = s.length();
        while (j < n) {
            int d = s.codePointAt(j);
            if (!isLetter(d)) break;
            j += Character.charCount(d);
        }
        return j;
    }
}
