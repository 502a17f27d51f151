package io.vlmflux.llm;

/**
 * Turns generated token ids into text incrementally (a tokenizer's streaming decoder): {@link #push} returns the
 * newly completed text (empty while a UTF-8 sequence is incomplete), {@link #flush} the rest at the end.
 */
public interface TokenText {
    String push(int tokenId);

    String flush();

    /** A decoder that yields no text (token ids only). */
    static TokenText none() {
        return new TokenText() {
            @Override public String push(int tokenId) { return ""; }
            @Override public String flush() { return ""; }
        };
    }
}
