package io.vlmflux.llm;

/**
 * One generated token. {@code textDelta} is the new text it completes (may be empty: partial UTF-8, a held-back
 * stop-string prefix, a stop token). The last event of a stream carries a non-null {@code finishReason}.
 *
 * @param index    0-based position among the generated tokens
 * @param logprobs the token's log-probabilities when {@link io.vlmflux.llm.constrain.TokenControls#logprobs()} asked
 *                 for them, else null
 */
public record TokenEvent(int tokenId, String textDelta, int index, FinishReason finishReason, io.vlmflux.llm.constrain.Logprobs logprobs) {
    public TokenEvent(int tokenId, String textDelta, int index, FinishReason finishReason) {
        this(tokenId, textDelta, index, finishReason, null);
    }

    public boolean isLast() { return finishReason != null; }
}
