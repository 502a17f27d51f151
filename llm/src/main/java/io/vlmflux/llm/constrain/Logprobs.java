package io.vlmflux.llm.constrain;

import java.util.List;

/**
 * Log-probabilities for one generated token: the chosen token's, and the {@code top} most likely ids best first
 * (ties by lower id), all from the log-softmax of the final (biased, masked) logits.
 */
public record Logprobs(float chosen, List<Entry> top) {
    public record Entry(int tokenId, float logprob) {}

    public Logprobs {
        top = List.copyOf(top);
    }
}
