package io.vlmflux.llm.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds added tokens in text, leftmost-longest and non-overlapping as Hugging Face's added vocabulary does, honouring
 * {@code lstrip}/{@code rstrip} (whitespace next to the token is absorbed) and {@code single_word} (only matched when
 * not inside a word). One instance covers one set of tokens (the non-normalized ones, or the normalized ones).
 */
final class AddedVocab {
    /** A piece of text: {@code tokenId >= 0} for a matched added token, -1 for plain text in {@code [start, end)}. */
    record Piece(int tokenId, int start, int end) {}

    private final Map<Character, AddedToken[]> byFirstChar = new HashMap<>();
    private final boolean[] firstChar = new boolean[65536];

    AddedVocab(List<AddedToken> tokens) {
        Map<Character, List<AddedToken>> m = new HashMap<>();
        for (AddedToken t : tokens) {
            if (t.content().isEmpty()) continue;
            m.computeIfAbsent(t.content().charAt(0), k -> new ArrayList<>()).add(t);
        }
        for (var e : m.entrySet()) {
            List<AddedToken> l = e.getValue();
            l.sort(Comparator.comparingInt((AddedToken t) -> t.content().length()).reversed());
            byFirstChar.put(e.getKey(), l.toArray(AddedToken[]::new));
            firstChar[e.getKey()] = true;
        }
    }

    boolean isEmpty() { return byFirstChar.isEmpty(); }

    /** Splits {@code s} into plain-text pieces and added-token pieces, in order (plain pieces may be empty-free). */
    List<Piece> split(String s) {
        List<Piece> out = new ArrayList<>();
        int offset = 0; // end of the last emitted piece
        int n = s.length();
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            if (!firstChar[c]) continue;
            AddedToken hit = null;
            for (AddedToken t : byFirstChar.get(c)) {
                if (s.startsWith(t.content(), i)) { hit = t; break; }
            }
            if (hit == null) continue;
            int start = i, stop = i + hit.content().length();
            if (hit.singleWord()) {
                boolean startOk = start == 0 || !isWordChar(s.codePointBefore(start));
                boolean stopOk = stop == n || !isWordChar(s.codePointAt(stop));
                if (!startOk || !stopOk) continue;
            }
            if (hit.lstrip()) {
                int ns = start;
                while (ns > offset && isWhitespace(s.charAt(ns - 1))) ns--;
                start = ns;
            }
            if (hit.rstrip()) {
                while (stop < n && isWhitespace(s.charAt(stop))) stop++;
            }
            if (offset < start) out.add(new Piece(-1, offset, start));
            out.add(new Piece(hit.id(), start, stop));
            offset = stop;
            i = stop - 1;
        }
        if (offset < n) out.add(new Piece(-1, offset, n));
        return out;
    }

    private static boolean isWordChar(int cp) { return Character.isLetterOrDigit(cp) || cp == '_'; }

    /** Unicode White_Space (Rust's {@code char::is_whitespace}), unlike {@link Character#isWhitespace}. */
    static boolean isWhitespace(int c) {
        return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F
                || c == 0x3000;
    }
}
