package io.vlmflux.pipeline;

/**
 * How a fan-in buffers and fails.
 *
 * @param bufferPerSource   frames held per source while downstream is busy (live sources drop the oldest beyond it;
 *                          non-live ones are asked for no more than it)
 * @param failOnSourceError true: the first failing source fails the whole fan-in; false: it is logged, counted and
 *                          removed, and the others go on (the fan-in fails only when every source failed)
 */
public record FanInOptions(int bufferPerSource, boolean failOnSourceError) {
    public static final FanInOptions DEFAULT = new FanInOptions(1, false);

    public FanInOptions {
        if (bufferPerSource < 1 || bufferPerSource > 1024)
            throw new IllegalArgumentException("bufferPerSource must be in [1, 1024], got " + bufferPerSource);
    }
}
