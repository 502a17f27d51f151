package io.vlmflux.llm.constrain;

import java.util.function.Consumer;

/**
 * Splits a code-point range into sequences of UTF-8 byte ranges that together match exactly the UTF-8 encodings of
 * those code points (surrogates excluded). Each sequence is {@code [lo0, hi0, lo1, hi1, ...]}, one pair per byte.
 * Stateless.
 */
final class Utf8Ranges {
    private Utf8Ranges() {}

    private static final int[] MAX_OF_LEN = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};

    static void split(int lo, int hi, Consumer<int[]> out) {
        if (lo <= 0xDFFF && hi >= 0xD800) {   // cut out surrogates
            if (lo < 0xD800) split(lo, 0xD7FF, out);
            if (hi > 0xDFFF) split(0xE000, hi, out);
            return;
        }
        for (int len = 0; len < 4; len++) {   // cut at encoding-length boundaries
            int max = MAX_OF_LEN[len];
            if (lo <= max && hi > max) { split(lo, max, out); split(max + 1, hi, out); return; }
        }
        if (hi < 0x80) { out.accept(new int[] {lo, hi}); return; }
        int n = hi <= 0x7FF ? 2 : hi <= 0xFFFF ? 3 : 4;
        for (int i = 1; i < n; i++) {
            int m = (1 << (6 * i)) - 1;
            if ((lo & ~m) != (hi & ~m)) {
                if ((lo & m) != 0) { split(lo, lo | m, out); split((lo | m) + 1, hi, out); return; }
                if ((hi & m) != m) { split(lo, (hi & ~m) - 1, out); split(hi & ~m, hi, out); return; }
            }
        }
        byte[] a = Character.toString(lo).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        byte[] b = Character.toString(hi).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int[] seq = new int[2 * n];
        for (int k = 0; k < n; k++) { seq[2 * k] = a[k] & 0xFF; seq[2 * k + 1] = b[k] & 0xFF; }
        out.accept(seq);
    }

    /** Whether some code point of the ranges has a UTF-8 encoding (is not a surrogate). */
    static boolean encodable(int[] ranges) {
        for (int i = 0; i < ranges.length; i += 2) if (ranges[i] < 0xD800 || ranges[i + 1] > 0xDFFF) return true;
        return false;
    }
}
