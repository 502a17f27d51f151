package io.vlmflux.llm;

/**
 * One generated token. {@code textDelta} is the new text it completes (may be empty: partial UTF-8, a held-back
 * stop-string prefix, a stop token). The last event of a stream carries a non-null {@code finishReason}.
 *
 * @param index 0-based position among the generated tokens
 */
public record TokenEvent(int tokenId, String textDelta, int index, FinishReason finishReason) {
    public boolean isLast() { return finishReason != null; }
}
