package io.vlmflux.pipeline.config;

import io.vlmflux.pipeline.FanInOptions;
import io.vlmflux.pipeline.SamplingPolicy;

/**
 * Frame selection and fan-in settings.
 *
 * @param every             sampling spec ({@code 1s}, {@code 500ms}, {@code 30f}, {@code scene:0.1}, {@code all});
 *                          default {@code all}
 * @param bufferPerSource   frames buffered per source while the model is busy (newest kept); default 1
 * @param failOnSourceError true: one failing source stops the pipeline; default false (logged and removed)
 */
public record SamplingConfig(String every, Integer bufferPerSource, Boolean failOnSourceError) {
    public static final SamplingConfig DEFAULT = new SamplingConfig(null, null, null);

    public SamplingConfig {
        if (every == null) every = "all";
        try {
            SamplingPolicy.parse(every);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("field 'every': " + e.getMessage(), e);
        }
        if (bufferPerSource == null) bufferPerSource = 1;
        if (bufferPerSource < 1 || bufferPerSource > 1024)
            throw new IllegalArgumentException("field 'bufferPerSource' must be in [1, 1024], got " + bufferPerSource);
        if (failOnSourceError == null) failOnSourceError = false;
    }

    public SamplingPolicy policy() { return SamplingPolicy.parse(every); }

    public FanInOptions fanInOptions() { return new FanInOptions(bufferPerSource, failOnSourceError); }
}
