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
