package io.vlmflux.pipeline.config;

/**
 * Decoding settings; every null field takes the model's {@code generation_config.json} value.
 *
 * @param greedy            true: argmax decoding (temperature and top-k/p ignored)
 * @param temperature       > 0
 * @param topK              >= 0 (0: off)
 * @param topP              in (0, 1]
 * @param minP              in [0, 1)
 * @param repetitionPenalty > 0 (1: off)
 * @param seed              sampling seed
 */
public record GenerationSettings(Boolean greedy, Double temperature, Integer topK, Double topP, Double minP,
                                 Double repetitionPenalty, Long seed) {
    public static final GenerationSettings MODEL_DEFAULTS = new GenerationSettings(null, null, null, null, null, null, null);

    public GenerationSettings {
        if (temperature != null && !(temperature > 0 && Double.isFinite(temperature)))
            throw new IllegalArgumentException("field 'temperature' must be > 0, got " + temperature);
        if (topK != null && topK < 0) throw new IllegalArgumentException("field 'topK' must be >= 0, got " + topK);
        if (topP != null && !(topP > 0 && topP <= 1)) throw new IllegalArgumentException("field 'topP' must be in (0, 1], got " + topP);
        if (minP != null && !(minP >= 0 && minP < 1)) throw new IllegalArgumentException("field 'minP' must be in [0, 1), got " + minP);
        if (repetitionPenalty != null && !(repetitionPenalty > 0 && Double.isFinite(repetitionPenalty)))
            throw new IllegalArgumentException("field 'repetitionPenalty' must be > 0, got " + repetitionPenalty);
    }
}
