package io.vlmflux.llm.sampling;

import io.vlmflux.llm.SamplingParams;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class SamplerTest {
    static final float NEG = Float.NEGATIVE_INFINITY;

    @Test void topKKeepsKLargest() {
        float[] l = {1, 5, 3, 4, 2};
        Sampler.topK(l, 2);
        assertArrayEquals(new float[]{NEG, 5, NEG, 4, NEG}, l);
    }

    @Test void topPKeepsSmallestSetReachingP() {
        // probs 0.5, 0.25, 0.125, 0.125 from logits log(p)
        float[] l = {(float) Math.log(0.5), (float) Math.log(0.25), (float) Math.log(0.125), (float) Math.log(0.125)};
        float[] a = l.clone();
        Sampler.topP(a, 0.6);   // 0.5 < 0.6, 0.75 >= 0.6 → keep two
        assertTrue(Float.isFinite(a[0]) && Float.isFinite(a[1]));
        assertEquals(NEG, a[2]);
        assertEquals(NEG, a[3]);
        float[] b = l.clone();
        Sampler.topP(b, 0.4);   // top token alone reaches it
        assertTrue(Float.isFinite(b[0]));
        assertEquals(NEG, b[1]);
    }

    /**
     * Top-p over a 152k vocabulary cuts where a float64 computation cuts (a float running sum in the softmax came out
     * 1.7e-4 low there and kept 17 tokens fewer than the rule).
     */
    @Test void topPOverALargeVocabularyCutsWhereFloat64Does() {
        java.util.Random r = new java.util.Random(5);
        for (int round = 0; round < 3; round++) {
            int n = 151_936;
            float[] l = new float[n];
            for (int i = 0; i < n; i++) l[i] = (float) (r.nextGaussian() * 2.0 / 0.7);
            double p = 0.9f, mx = Double.NEGATIVE_INFINITY, z = 0;
            for (float v : l) mx = Math.max(mx, v);
            double[] w = new double[n];
            for (int i = 0; i < n; i++) z += (w[i] = Math.exp(l[i] - mx));
            double[] sorted = w.clone();
            java.util.Arrays.sort(sorted);
            int want = 0;
            double cum = 0;
            for (int i = n - 1; i >= 0 && cum < p * z; i--) { cum += sorted[i]; want++; }
            float[] masked = l.clone();
            Sampler.topP(masked, p);
            int kept = 0;
            for (float v : masked) if (v != Float.NEGATIVE_INFINITY) kept++;
            assertTrue(Math.abs(kept - want) <= 1, "round " + round + ": kept " + kept + ", float64 rule keeps " + want);
        }
    }

    @Test void minPRelativeToTop() {
        float[] l = {(float) Math.log(0.6), (float) Math.log(0.3), (float) Math.log(0.1)};
        Sampler.minP(l, 0.4);   // threshold 0.24: keep 0.6 and 0.3
        assertTrue(Float.isFinite(l[0]) && Float.isFinite(l[1]));
        assertEquals(NEG, l[2]);
    }

    @Test void repetitionPenaltyAsTransformers() {
        float[] l = {2f, -2f, 3f};
        Sampler.repetitionPenalty(l, new boolean[]{true, true, false}, 2f);
        assertArrayEquals(new float[]{1f, -4f, 3f}, l);
    }

    @Test void greedyHonoursRepetitionPenalty() {
        Sampler s = new Sampler(SamplingParams.greedyDecoding().withRepetitionPenalty(3.0), 3);
        s.observe(0);
        assertEquals(1, s.sample(new float[]{3f, 2f, -1f}));   // 3/3 = 1 < 2
        assertEquals(0, new Sampler(SamplingParams.greedyDecoding(), 3).sample(new float[]{3f, 2f, -1f}));
    }

    @Test void seededSamplingIsDeterministicAndRespectsMasks() {
        float[] logits = new float[50];
        for (int i = 0; i < logits.length; i++) logits[i] = (float) Math.sin(i) * 3;
        SamplingParams p = SamplingParams.sample(0.8, 5, 0.95, 0.0, 42);
        Sampler a = new Sampler(p, 50), b = new Sampler(p, 50), c = new Sampler(p.withSeed(43), 50);
        int[] ra = new int[200], rb = new int[200], rc = new int[200];
        for (int i = 0; i < 200; i++) { ra[i] = a.sample(logits); rb[i] = b.sample(logits); rc[i] = c.sample(logits); }
        assertArrayEquals(ra, rb);
        assertFalse(java.util.Arrays.equals(ra, rc));
        float[] k = logits.clone();
        Sampler.topK(k, 5);
        for (int t : ra) assertTrue(Float.isFinite(k[t]), "token " + t + " outside top-5");
    }

    @Test void stopStringsAcrossTokenBoundaries() {
        StopMatcher m = new StopMatcher(List.of("</end>", "STOP"));
        StringBuilder out = new StringBuilder();
        String[] deltas = {"Hello ", "wor", "ld </", "en", "d> more"};
        boolean stopped = false;
        for (String d : deltas) {
            StopMatcher.Result r = m.push(d);
            out.append(r.emit());
            if (r.stopped()) { stopped = true; break; }
        }
        assertTrue(stopped);
        assertEquals("Hello world ", out.toString());
        StopMatcher n = new StopMatcher(List.of("STOP"));
        assertEquals("ab", n.push("abST").emit());         // "ST" held back
        assertEquals("STx", n.push("x").emit());            // released when it can no longer match
        assertEquals("", n.push("S").emit());
        assertEquals("S", n.flush());
    }
}
