package io.vlmflux.llm.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * GPT-2 byte-level alphabet: every byte maps to one printable char (printable Latin-1 bytes map to themselves, the
 * other 68 to U+0100..U+0143), and the lossy UTF-8 decoder used for detokenization. Stateless.
 */
final class ByteLevel {
    static final char[] BYTE_TO_CHAR = new char[256];
    /** char (below 0x144) to byte, -1 where the char is not part of the alphabet. */
    static final int[] CHAR_TO_BYTE = new int[0x144];

    static {
        Arrays.fill(CHAR_TO_BYTE, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + n++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {}

    /** Byte-level spelling of UTF-8 bytes. */
    static String toChars(byte[] bytes) {
        char[] cs = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) cs[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        return new String(cs);
    }

    /**
     * Bytes a token stands for, as Hugging Face's ByteLevel decoder computes them: the alphabet mapping when every
     * char of the token is in the alphabet, otherwise the token's own UTF-8 bytes (added tokens such as {@code <|x|>}
     * are pure ASCII and map to themselves either way).
     */
    static byte[] tokenBytes(String token) {
        byte[] out = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            int b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
            if (b < 0) return token.getBytes(StandardCharsets.UTF_8);
            out[i] = (byte) b;
        }
        return out;
    }

    /**
     * Decodes UTF-8 from {@code b[off, end)} into {@code out}, replacing each maximal invalid subpart with one U+FFFD
     * (the Unicode "best practice" that Rust's {@code from_utf8_lossy} follows). When {@code last} is false, a valid
     * but incomplete sequence at the end is left undecoded.
     *
     * @return index of the first byte not consumed ({@code end} unless an incomplete tail was kept)
     */
    static int decodeUtf8(byte[] b, int off, int end, StringBuilder out, boolean last) {
        int i = off;
        while (i < end) {
            int c = b[i] & 0xFF;
            if (c < 0x80) { out.append((char) c); i++; continue; }
            int need, cp, lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
            else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
            else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
            else { out.append('\uFFFD'); i++; continue; }
            int j = i + 1, k = 0;
            while (k < need) {
                if (j >= end) {
                    if (!last) return i;
                    out.append('\uFFFD');
                    return end;
                }
                int d = b[j] & 0xFF;
                if (d < (k == 0 ? lo : 0x80) || d > (k == 0 ? hi : 0xBF)) break;
                cp = (cp << 6) | (d & 0x3F);
                j++; k++;
            }
            if (k == need) out.appendCodePoint(cp); else out.append('\uFFFD');
            i = j;
        }
        return end;
    }
}
