package io.vlmflux.llm;

/**
 * A loaded language model on one backend. {@link #forward} runs a chunk of positions through the network, appending
 * their keys/values to the cache, and returns logits on the host. Prefill is one call with the whole prompt; decode
 * is one call per token. Implementations are not thread-safe: use one decoder from one thread (the generator's
 * scheduler).
 */
public interface Decoder extends AutoCloseable {
    ModelConfig config();

    /** Which backend ("cpu", "cuda"). */
    String backend();

    /** A cache able to hold {@code capacity} positions. */
    KvCache newCache(int capacity);

    /**
     * Runs {@code input} at cache positions {@code [cache.length(), + n)} and commits them.
     *
     * @param allLogits true: logits of every position {@code [n, vocab]}; false: of the last position {@code [vocab]}
     */
    float[] forward(KvCache cache, ForwardInput input, boolean allLogits);

    /**
     * Runs {@code input} like {@code forward(cache, input, false)} and returns the next token chosen from its last
     * position's logits with {@code p}. Backends that select on the device (CUDA) override this so that only the token
     * id crosses to the host. This default samples on the host: greedy is the argmax; otherwise a fresh
     * {@link io.vlmflux.llm.sampling.Sampler} seeded with {@code p.seed() + cache.length()} draws once.
     */
    default int forwardSample(KvCache cache, ForwardInput input, SamplingParams p) {
        float[] logits = forward(cache, input, false);
        return new io.vlmflux.llm.sampling.Sampler(p.withSeed(p.seed() + cache.length()), config().vocabSize()).sample(logits);
    }

    /**
     * Whether {@link #forwardSample} selects with {@code p} on the device, so that only the token id crosses to the
     * host. The {@link Generator} then calls {@code forwardSample} every step; otherwise it downloads the logits and
     * samples with its per-sequence host {@link io.vlmflux.llm.sampling.Sampler} (which keeps the seen-token set of
     * the repetition penalty and one random stream per sequence). Default: false.
     */
    default boolean samplesOnDevice(SamplingParams p) { return false; }

    /**
     * {@link #forwardSample} restricted to the ids whose bit is set in {@code allowed} (uint64 words, id {@code i} =
     * bit {@code i % 64} of word {@code i / 64}): constrained decoding. Backends that mask on the device (CUDA) override
     * it so that the logits never leave the GPU; this default masks on the host and samples like {@link #forwardSample}.
     */
    default int forwardSampleMasked(KvCache cache, ForwardInput input, SamplingParams p, long[] allowed) {
        float[] logits = forward(cache, input, false);
        for (int i = 0; i < logits.length; i++)
            if ((i >> 6) >= allowed.length || (allowed[i >> 6] & (1L << (i & 63))) == 0) logits[i] = Float.NEGATIVE_INFINITY;
        return new io.vlmflux.llm.sampling.Sampler(p.withSeed(p.seed() + cache.length()), config().vocabSize()).sample(logits);
    }

    /** Whether {@link #forwardSampleMasked} masks and selects on the device for {@code p}. Default: false. */
    default boolean masksOnDevice(SamplingParams p) { return false; }

    /**
     * One decode step for several sequences at once: feeds {@code tokens[i]} to {@code caches[i]} (one position each)
     * and returns the token chosen for each with {@code params[i]}, as {@link #forwardSample} would. Backends that run
     * the batch as one pass over the weights (CUDA) override this; the default takes the sequences in turn.
     */
    default int[] forwardSampleBatch(KvCache[] caches, int[] tokens, SamplingParams[] params) {
        if (caches.length != tokens.length || caches.length != params.length)
            throw new IllegalArgumentException("batched step needs one token and one sampling setting per cache: " + caches.length + " caches, "
                    + tokens.length + " tokens, " + params.length + " settings");
        int[] out = new int[caches.length];
        for (int i = 0; i < caches.length; i++) out[i] = forwardSample(caches[i], ForwardInput.tokens(tokens[i]), params[i]);
        return out;
    }

    /**
     * Facts about this decoder for logs and benchmarks, in insertion order: {@code backend} always; the CPU decoder adds
     * {@code threads} and {@code kernels}, the CUDA decoder {@code device}, {@code weight_bytes}, {@code decoder_bytes}
     * (its device arena), {@code device_used_bytes} (device memory in use, all processes), {@code cuda_graphs},
     * {@code batch_graphs} and {@code batch_graphs_captured}. Values are strings, numbers or booleans.
     */
    default java.util.Map<String, Object> info() { return java.util.Map.of("backend", backend()); }

    @Override void close();

    /**
     * Starts ({@code on}) or stops the profiler's collection range, so that Nsight Compute run with
     * {@code --profile-from-start off} sees only the work in between (the cuda backend; {@code bench llm
     * --profile-steps}). False where this backend has no profiler.
     */
    default boolean profilerRange(boolean on) { return false; }

    /**
     * Runs {@code input} as {@code forward(cache, input, false)} does, with the device time of each kind of operation
     * recorded: kind (e.g. "q/k/v product", "attention") to {milliseconds, pieces}, in the order first met, each kind's
     * launch gaps included, nothing synchronized in between ({@code bench llm --profile-prefill}). Empty where this
     * backend does not record (the CPU's).
     */
    default java.util.Map<String, double[]> profileForward(KvCache cache, ForwardInput input) {
        forward(cache, input, false);
        return java.util.Map.of();
    }
}
