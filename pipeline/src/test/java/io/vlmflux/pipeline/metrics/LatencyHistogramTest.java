package io.vlmflux.pipeline.metrics;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class LatencyHistogramTest {
    @Test
    void bucketsCoverEveryValueWithin3Percent() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (int i = 0; i < 200_000; i++) {
            long v = rnd.nextLong(Long.MAX_VALUE) >>> rnd.nextInt(63);
            int b = LatencyHistogram.bucketOf(v);
            assertTrue(b >= 0 && b < LatencyHistogram.BUCKETS, "bucket " + b + " of " + v);
            assertTrue(LatencyHistogram.lowerOf(b) <= v && v <= LatencyHistogram.upperOf(b), v + " outside bucket " + b);
            if (v >= 32) assertTrue((LatencyHistogram.upperOf(b) - LatencyHistogram.lowerOf(b)) / (double) LatencyHistogram.lowerOf(b) < 1 / 31.0);
        }
        assertEquals(LatencyHistogram.BUCKETS - 1, LatencyHistogram.bucketOf(Long.MAX_VALUE));
    }

    @Test
    void percentilesOfAUniformSpread() {
        LatencyHistogram h = new LatencyHistogram();
        for (int us = 1; us <= 100_000; us++) h.record(us * 1_000L); // 1 µs .. 100 ms
        LatencySnapshot s = h.snapshot();
        assertEquals(100_000, s.count());
        assertEquals(50.0, s.p50Ms(), 50 * 0.035);
        assertEquals(90.0, s.p90Ms(), 90 * 0.035);
        assertEquals(99.0, s.p99Ms(), 99 * 0.035);
        assertEquals(100.0, s.maxMs(), 1e-9);
        assertEquals(50.0005, s.meanMs(), 1e-6);
        h.reset();
        assertEquals(LatencySnapshot.EMPTY, h.snapshot());
    }

    @Test
    void skewedDistributionTail() {
        LatencyHistogram h = new LatencyHistogram();
        for (int i = 0; i < 980; i++) h.record(2_000_000);   // 2 ms
        for (int i = 0; i < 20; i++) h.record(500_000_000);  // 500 ms stalls
        LatencySnapshot s = h.snapshot();
        assertEquals(2.0, s.p50Ms(), 0.07);
        assertEquals(2.0, s.p90Ms(), 0.07);
        assertEquals(500.0, s.p99Ms(), 500 * 0.035);
        assertThrows(IllegalArgumentException.class, () -> h.valueAtQuantile(0));
    }

    @Test
    void pipelineMetricsKeepsOrderAndFormats() {
        PipelineMetrics m = new PipelineMetrics();
        m.stage("sample/cam").recordIn();
        m.stage("model").recordOut();
        assertSame(m.stage("model"), m.stage("model"));
        MetricsSnapshot snap = m.snapshot();
        assertEquals(2, snap.stages().size());
        assertEquals("sample/cam", snap.stages().get(0).name());
        assertEquals(1, snap.stage("model").out());
        assertTrue(snap.format().contains("model") && snap.format().contains("p99="), snap.format());
    }
}
