package io.vlmflux.llm;

import io.vlmflux.llm.constrain.TokenControls;

import java.util.List;
import java.util.Set;
import java.util.function.LongConsumer;

/**
 * Per-request generation settings.
 *
 * @param maxTokens     most tokens to generate (finish reason {@code length})
 * @param stopTokens    ids that end generation (finish reason {@code stop}); empty disables EOS
 * @param stopStrings   texts that end generation (finish reason {@code stop_string}); not included in the text
 * @param cachePrefix   prompt positions worth keeping in the prefix cache (0: none; clipped to prompt length - 1)
 * @param onPrefillNanos called with the prefill time (nullable)
 * @param controls      constraint, logit bias and log-probabilities ({@link TokenControls#none()} when null); any of
 *                      them selects host sampling for the request (the device-side mask is not there yet)
 */
public record GenerateOptions(SamplingParams sampling, int maxTokens, Set<Integer> stopTokens, List<String> stopStrings,
                              int cachePrefix, LongConsumer onPrefillNanos, TokenControls controls) {
    public GenerateOptions(SamplingParams sampling, int maxTokens, Set<Integer> stopTokens, List<String> stopStrings,
                           int cachePrefix, LongConsumer onPrefillNanos) {
        this(sampling, maxTokens, stopTokens, stopStrings, cachePrefix, onPrefillNanos, TokenControls.none());
    }

    public GenerateOptions {
        if (sampling == null) throw new IllegalArgumentException("sampling params are required");
        if (maxTokens < 0) throw new IllegalArgumentException("maxTokens must be >= 0, got " + maxTokens);
        stopTokens = Set.copyOf(stopTokens);
        stopStrings = List.copyOf(stopStrings);
        if (cachePrefix < 0) throw new IllegalArgumentException("cachePrefix must be >= 0, got " + cachePrefix);
        if (controls == null) controls = TokenControls.none();
    }

    public static GenerateOptions greedy(int maxTokens, Set<Integer> stopTokens) {
        return new GenerateOptions(SamplingParams.greedyDecoding(), maxTokens, stopTokens, List.of(), 0, null);
    }

    public GenerateOptions withCachePrefix(int n) { return new GenerateOptions(sampling, maxTokens, stopTokens, stopStrings, n, onPrefillNanos, controls); }

    public GenerateOptions withStopStrings(List<String> s) { return new GenerateOptions(sampling, maxTokens, stopTokens, s, cachePrefix, onPrefillNanos, controls); }

    public GenerateOptions withControls(TokenControls c) { return new GenerateOptions(sampling, maxTokens, stopTokens, stopStrings, cachePrefix, onPrefillNanos, c); }

    public GenerateOptions withPrefillListener(LongConsumer l) { return new GenerateOptions(sampling, maxTokens, stopTokens, stopStrings, cachePrefix, l, controls); }
}
