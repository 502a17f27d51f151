package io.vlmflux.llm.runtime;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.llm.Backend;

/**
 * How to load a {@link VlmRuntime}. Immutable; validated on construction.
 *
 * @param backend           where to compute ({@link Backend#AUTO}: cuda when a usable GPU is present, resolved once)
 * @param device            the CUDA device index (0 on cpu, where there is only the host)
 * @param prefixCacheBytes  bound of the prefix KV cache (0: every prompt prefills from position 0)
 * @param encoderCacheBytes bound of the encoder-output cache (0: every image is encoded)
 * @param maxBatch          most concurrent sequences whose decode steps run as one batched step (cuda)
 * @param configFile        the model config's file name in the folder ({@code config.json}; the fixtures also ship
 *                          {@code config.hub.json}, the flat layout of published checkpoints)
 * @param tuning            the per-model knobs (docs/gpu.md, "Tuning"); null: read from the {@code vlmflux.*} system
 *                          properties once, when the runtime loads
 */
public record RuntimeOptions(Backend backend, int device, long prefixCacheBytes, long encoderCacheBytes, int maxBatch, String configFile,
                             Tuning tuning) {
    /** Default prefix-cache budget: room for a few system prompts of a large model. */
    public static final long DEFAULT_PREFIX_CACHE_BYTES = 256L << 20;
    /** Default encoder-output cache budget (a 640x480 frame: ~1.6 MB rows + 0.9 MB frame copy). */
    public static final long DEFAULT_ENCODER_CACHE_BYTES = 64L << 20;
    /** Default most sequences per batched decode step. */
    public static final int DEFAULT_MAX_BATCH = 16;

    public RuntimeOptions {
        if (backend == null) throw new IllegalArgumentException("backend must not be null (use AUTO)");
        if (device < 0) throw new IllegalArgumentException("device index must be >= 0, got " + device);
        if (prefixCacheBytes < 0) throw new IllegalArgumentException("prefix cache size must be >= 0, got " + prefixCacheBytes);
        if (encoderCacheBytes < 0) throw new IllegalArgumentException("encoder cache size must be >= 0, got " + encoderCacheBytes);
        if (maxBatch < 1) throw new IllegalArgumentException("maxBatch must be >= 1, got " + maxBatch);
        if (configFile == null || configFile.isBlank() || configFile.contains("/") || configFile.contains("\\"))
            throw new IllegalArgumentException("configFile must be a file name inside the model folder, got '" + configFile + "'");
    }

    /** Auto backend, device 0, default caches and batch. */
    public static RuntimeOptions defaults() {
        return new RuntimeOptions(Backend.AUTO, 0, DEFAULT_PREFIX_CACHE_BYTES, DEFAULT_ENCODER_CACHE_BYTES, DEFAULT_MAX_BATCH, "config.json", null);
    }

    public RuntimeOptions withBackend(Backend b) { return new RuntimeOptions(b, device, prefixCacheBytes, encoderCacheBytes, maxBatch, configFile, tuning); }
    public RuntimeOptions withDevice(int d) { return new RuntimeOptions(backend, d, prefixCacheBytes, encoderCacheBytes, maxBatch, configFile, tuning); }
    public RuntimeOptions withPrefixCacheBytes(long n) { return new RuntimeOptions(backend, device, n, encoderCacheBytes, maxBatch, configFile, tuning); }
    public RuntimeOptions withEncoderCacheBytes(long n) { return new RuntimeOptions(backend, device, prefixCacheBytes, n, maxBatch, configFile, tuning); }
    public RuntimeOptions withMaxBatch(int n) { return new RuntimeOptions(backend, device, prefixCacheBytes, encoderCacheBytes, n, configFile, tuning); }
    public RuntimeOptions withTuning(Tuning t) { return new RuntimeOptions(backend, device, prefixCacheBytes, encoderCacheBytes, maxBatch, configFile, t); }
    public RuntimeOptions withConfigFile(String f) { return new RuntimeOptions(backend, device, prefixCacheBytes, encoderCacheBytes, maxBatch, f, tuning); }
}
