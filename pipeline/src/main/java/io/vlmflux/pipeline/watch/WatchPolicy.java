package io.vlmflux.pipeline.watch;

import java.time.Duration;

/**
 * When a watch's answer counts as changed, and how often it may or must speak. Immutable; validated on construction.
 *
 * @param agree       hysteresis: how many answers in a row must agree before a new answer replaces the confirmed one
 *                    (also for the first answer); in [1, 1000]; default 2
 * @param debounce    the new answer must also have held this long (from its first agreeing answer); default 0
 * @param minInterval at most one {@code changed} event per watch and source in this interval: a change confirmed
 *                    sooner waits, and is emitted when the interval is over only if it still stands; default 0
 * @param maxInterval at least one event per watch and source in this interval: {@code repeated} when answers kept
 *                    arriving, {@code stalled} when none did; null: never
 */
public record WatchPolicy(int agree, Duration debounce, Duration minInterval, Duration maxInterval) {
    public static final WatchPolicy DEFAULT = new WatchPolicy(2, Duration.ZERO, Duration.ZERO, null);

    public WatchPolicy {
        if (agree < 1 || agree > 1000) throw new IllegalArgumentException("agree (answers in a row before a change) must be in [1, 1000], got " + agree);
        if (debounce == null) debounce = Duration.ZERO;
        if (minInterval == null) minInterval = Duration.ZERO;
        if (debounce.isNegative()) throw new IllegalArgumentException("debounce must be >= 0, got " + debounce);
        if (minInterval.isNegative()) throw new IllegalArgumentException("minInterval must be >= 0, got " + minInterval);
        if (maxInterval != null && (maxInterval.isNegative() || maxInterval.isZero()))
            throw new IllegalArgumentException("maxInterval must be > 0 when given, got " + maxInterval);
        if (maxInterval != null && maxInterval.compareTo(minInterval) < 0)
            throw new IllegalArgumentException("maxInterval " + maxInterval + " must not be shorter than minInterval " + minInterval);
    }

    public WatchPolicy withAgree(int k) { return new WatchPolicy(k, debounce, minInterval, maxInterval); }
    public WatchPolicy withDebounce(Duration d) { return new WatchPolicy(agree, d, minInterval, maxInterval); }
    public WatchPolicy withMinInterval(Duration d) { return new WatchPolicy(agree, debounce, d, maxInterval); }
    public WatchPolicy withMaxInterval(Duration d) { return new WatchPolicy(agree, debounce, minInterval, d); }
}
