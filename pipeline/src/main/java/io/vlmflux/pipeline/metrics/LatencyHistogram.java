package io.vlmflux.pipeline.metrics;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A lock-free log-linear latency histogram in nanoseconds, in the spirit of HdrHistogram: values below 32 ns are
 * counted exactly, larger ones in 32 linear sub-buckets per power of two, so a reported percentile is within
 * 1/32 (about 3%) of the true value. Recording is wait-free (one atomic increment); {@link #snapshot()} may be taken
 * from any thread while recording goes on (it is not atomic across buckets, which only matters to the last sample).
 *
 * <p>Invariant: {@code counts[i]} holds the number of recorded values whose {@link #bucketOf bucket} is {@code i};
 * negative values are recorded as 0.
 */
public final class LatencyHistogram {
    private static final int SUB_BITS = 5;
    private static final int SUB = 1 << SUB_BITS;                  // 32 sub-buckets per power of two
    static final int BUCKETS = (63 - SUB_BITS + 1) * SUB;          // covers every non-negative long

    private final AtomicLongArray counts = new AtomicLongArray(BUCKETS);
    private final AtomicLong total = new AtomicLong();
    private final AtomicLong sum = new AtomicLong();
    private final AtomicLong max = new AtomicLong();

    /** Records one latency; negative values count as 0. */
    public void record(long nanos) {
        long v = Math.max(0, nanos);
        counts.incrementAndGet(bucketOf(v));
        total.incrementAndGet();
        sum.addAndGet(v);
        max.accumulateAndGet(v, Math::max);
    }

    public long count() { return total.get(); }

    /** Forgets every recorded value (concurrent records may survive partially). */
    public void reset() {
        for (int i = 0; i < BUCKETS; i++) counts.set(i, 0);
        total.set(0);
        sum.set(0);
        max.set(0);
    }

    static int bucketOf(long v) {
        if (v < SUB) return (int) v;
        int e = 63 - Long.numberOfLeadingZeros(v);                 // >= SUB_BITS
        int m = (int) (v >>> (e - SUB_BITS));                      // in [SUB, 2*SUB)
        return (e - SUB_BITS + 1) * SUB + (m - SUB);
    }

    /** Largest value that falls into bucket {@code b}. */
    static long upperOf(int b) {
        if (b < SUB) return b;
        int g = b / SUB;
        long m = SUB + (b % SUB);
        long hi = ((m + 1) << (g - 1)) - 1;
        return hi < 0 ? Long.MAX_VALUE : hi;
    }

    /** Smallest value that falls into bucket {@code b}. */
    static long lowerOf(int b) {
        if (b < SUB) return b;
        int g = b / SUB;
        long m = SUB + (b % SUB);
        return m << (g - 1);
    }

    /** Percentiles p50/p90/p99, mean and max in milliseconds over everything recorded so far. */
    public LatencySnapshot snapshot() {
        long[] c = new long[BUCKETS];
        long n = 0;
        for (int i = 0; i < BUCKETS; i++) { c[i] = counts.get(i); n += c[i]; }
        long mx = max.get();
        if (n == 0) return LatencySnapshot.EMPTY;
        return new LatencySnapshot(n, ms(valueAt(c, n, 0.50, mx)), ms(valueAt(c, n, 0.90, mx)),
                ms(valueAt(c, n, 0.99, mx)), ms(mx), sum.get() / (double) n / 1e6);
    }

    /** The value at quantile {@code q} (0..1], as the midpoint of its bucket clamped to the maximum seen. */
    public long valueAtQuantile(double q) {
        if (!(q > 0 && q <= 1)) throw new IllegalArgumentException("quantile must be in (0, 1], got " + q);
        long[] c = new long[BUCKETS];
        long n = 0;
        for (int i = 0; i < BUCKETS; i++) { c[i] = counts.get(i); n += c[i]; }
        return n == 0 ? 0 : valueAt(c, n, q, max.get());
    }

    private static long valueAt(long[] c, long n, double q, long max) {
        long rank = Math.max(1, (long) Math.ceil(q * n));
        long seen = 0;
        for (int i = 0; i < c.length; i++) {
            seen += c[i];
            if (seen >= rank) {
                long lo = lowerOf(i), hi = upperOf(i);
                return Math.min(lo + (hi - lo) / 2, max);
            }
        }
        return max;
    }

    private static double ms(long nanos) { return nanos / 1e6; }
}
