package io.vlmflux.vision;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The encoder-output cache around the real CPU encoder of the tiny fixture. */
class CachingVisionEncoderTest {
    static PixelValues golden(int i) throws Exception {
        var g = Fixtures.golden("tiny-qwen2vl").get("images").get(i).get("grid_thw");
        float[] v = Fixtures.readF32(Fixtures.fixture("tiny-qwen2vl").resolve("golden.safetensors"), "image" + i + ".pixel_values", null);
        return PixelValues.of(v, 1176, g.get(0).asInt(), g.get(1).asInt(), g.get(2).asInt());
    }

    @Test
    void repeatedInputsHitAndBoundEvicts() throws Exception {
        PixelValues a = golden(0), b = golden(1), c = golden(2);
        try (VisionEncoder cpu = VisionEncoders.load(Fixtures.fixture("tiny-qwen2vl"))) {
            ImageEmbeddings wantA = cpu.encode(a), wantB = cpu.encode(b);
            long oneEntry = 4L * a.data().length + 4L * wantA.data().length + 96;
            long twoEntries = oneEntry + 4L * b.data().length + 4L * wantB.data().length + 96;
            try (CachingVisionEncoder cache = new CachingVisionEncoder(VisionEncoders.load(Fixtures.fixture("tiny-qwen2vl")), twoEntries)) {
                assertArrayEquals(wantA.data(), cache.encode(a).data());
                assertEquals(0, cache.hits());
                assertEquals(1, cache.misses());
                // an equal copy (a frozen source): same hash, same values -> hit, no encoder call
                PixelValues a2 = PixelValues.of(a.data().clone(), 1176, a.gridT(), a.gridH(), a.gridW());
                assertSame(cache.encode(a), cache.encode(a2));
                assertEquals(2, cache.hits());
                cache.encode(b);
                assertEquals(2, cache.size());
                assertEquals(twoEntries, cache.bytesUsed());
                // a third image exceeds the bound: the least recently used (a was used after... b is newest) goes
                cache.encode(a); // a becomes most recent
                cache.encode(c);
                assertTrue(cache.bytesUsed() <= twoEntries, "bounded: " + cache.bytesUsed());
                assertTrue(cache.evictions() >= 1);
                long missesBefore = cache.misses();
                cache.encode(b); // b was evicted first (least recently used)
                assertEquals(missesBefore + 1, cache.misses());
                // batched calls mix hits and misses and keep input order
                List<ImageEmbeddings> batch = cache.encode(List.of(b, a, b));
                assertArrayEquals(wantB.data(), batch.get(0).data());
                assertArrayEquals(wantA.data(), batch.get(1).data(), 1e-6f);
                assertArrayEquals(wantB.data(), batch.get(2).data());
            }
        }
    }

    @Test
    void hashCollisionIsNotAHit() throws Exception {
        PixelValues a = golden(0);
        float[] other = a.data().clone();
        other[5] += 1f;
        // forge the same hash: a colliding key must still compare the values
        PixelValues forged = new PixelValues(other, 1176, a.gridT(), a.gridH(), a.gridW(), a.contentHash());
        try (CachingVisionEncoder cache = new CachingVisionEncoder(VisionEncoders.load(Fixtures.fixture("tiny-qwen2vl")), 1 << 20)) {
            float[] e1 = cache.encode(a).data(), e2 = cache.encode(forged).data();
            assertEquals(2, cache.misses());
            assertFalse(java.util.Arrays.equals(e1, e2));
        }
        assertThrows(IllegalArgumentException.class, () -> new CachingVisionEncoder(VisionEncoders.load(Fixtures.fixture("tiny-qwen2vl")), 0));
    }
}
