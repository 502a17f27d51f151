package io.vlmflux.llm.tokenizer;

import io.vlmflux.llm.TokenText;

import java.util.Arrays;

/**
 * Incremental detokenizer for one sequence: {@link #push} returns the text that became complete with that token and
 * holds back the bytes of a UTF-8 character that is not finished yet, so no half character is ever emitted; invalid
 * bytes come out as U+FFFD as soon as they are known to be invalid. The concatenation of all {@code push} results and
 * {@link #flush} equals {@link Tokenizer#decode} of the same ids. Not thread-safe (one per sequence).
 */
public final class StreamingDecoder implements TokenText {
    private final Tokenizer tokenizer;
    private final boolean skipSpecial;
    private byte[] pending = new byte[16];
    private int n;

    StreamingDecoder(Tokenizer tokenizer, boolean skipSpecial) {
        this.tokenizer = tokenizer;
        this.skipSpecial = skipSpecial;
    }

    /** Adds one token; returns the newly complete text (possibly empty, never null). */
    @Override
    public String push(int id) {
        byte[] b = tokenizer.bytesOf(id, skipSpecial);
        if (b == null || b.length == 0) return "";
        if (n + b.length > pending.length) pending = Arrays.copyOf(pending, Math.max(pending.length * 2, n + b.length));
        System.arraycopy(b, 0, pending, n, b.length);
        n += b.length;
        StringBuilder sb = new StringBuilder(n);
        int used = ByteLevel.decodeUtf8(pending, 0, n, sb, false);
        System.arraycopy(pending, used, pending, 0, n - used);
        n -= used;
        return sb.toString();
    }

    /** Emits what is held back (an unfinished character becomes U+FFFD) and resets. */
    @Override
    public String flush() {
        StringBuilder sb = new StringBuilder();
        ByteLevel.decodeUtf8(pending, 0, n, sb, true);
        n = 0;
        return sb.toString();
    }

    /** True when bytes of an unfinished character are held back. */
    public boolean hasPending() { return n > 0; }
}
