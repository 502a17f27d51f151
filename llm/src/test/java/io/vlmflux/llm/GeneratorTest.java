package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.safetensors.SafetensorsFile;
import io.vlmflux.llm.cache.PrefixCache;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

class GeneratorTest {
    static Decoder qwen2, vl;

    @BeforeAll static void load() throws Exception {
        qwen2 = Models.load(Fixtures.dir("tiny-qwen2"), "cpu");
        vl = Models.load(Fixtures.dir("tiny-qwen2vl"), "cpu");
    }

    @AfterAll static void close() { qwen2.close(); vl.close(); }

    static int[] tokens(List<TokenEvent> ev) { return ev.stream().mapToInt(TokenEvent::tokenId).toArray(); }

    @Test void fluxReproducesGoldenGreedyAndEndsWithLength() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(0).get("input_ids"));
        int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
        try (Generator gen = new Generator(qwen2, null, null)) {
            List<TokenEvent> ev = gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(gold.length, Set.of()), null)
                    .collectList().block(Duration.ofSeconds(30));
            assertArrayEquals(gold, tokens(ev));
            assertEquals(FinishReason.LENGTH, ev.get(ev.size() - 1).finishReason());
            for (int i = 0; i < ev.size() - 1; i++) assertNull(ev.get(i).finishReason());
            assertEquals(0, gen.activeSequences());
        }
    }

    @Test void stopTokenEndsWithStop() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(0).get("input_ids"));
        int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
        try (Generator gen = new Generator(qwen2, null, null)) {
            List<TokenEvent> ev = gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(32, Set.of(gold[2])), null).collectList().block();
            assertEquals(3, ev.size());
            assertEquals(FinishReason.STOP, ev.get(2).finishReason());
        }
    }

    @Test void backpressureAndCancelFreeTheCache() throws Exception {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(1).get("input_ids"));
        try (Generator gen = new Generator(qwen2, null, null)) {
            Flux<TokenEvent> f = gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(1000, Set.of()), null);
            StepVerifier.create(f, 0)
                    .expectSubscription()
                    .expectNoEvent(Duration.ofMillis(100))        // no demand, no decoding
                    .thenRequest(2)
                    .expectNextCount(2)
                    .then(() -> assertEquals(1, gen.activeSequences()))
                    .thenCancel()
                    .verify(Duration.ofSeconds(30));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (gen.activeSequences() != 0 && System.nanoTime() < deadline) Thread.sleep(5);
            assertEquals(0, gen.activeSequences(), "cancelled sequence's cache not freed");
        }
    }

    @Test void cancelMidStreamStopsWithinOneStep() throws Exception {
        int[] ids = Fixtures.ints(Fixtures.golden("tiny-qwen2").get("prompts").get(1).get("input_ids"));
        try (Generator gen = new Generator(qwen2, null, null)) {
            CountDownLatch five = new CountDownLatch(5);
            java.util.concurrent.atomic.AtomicInteger seen = new java.util.concurrent.atomic.AtomicInteger();
            var sub = gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(100_000, Set.of()), null)
                    .doOnNext(e -> { seen.incrementAndGet(); five.countDown(); })
                    .subscribe();
            assertTrue(five.await(30, TimeUnit.SECONDS));
            sub.dispose();
            int atCancel = seen.get();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (gen.activeSequences() != 0 && System.nanoTime() < deadline) Thread.sleep(5);
            assertEquals(0, gen.activeSequences());
            Thread.sleep(100);
            assertTrue(seen.get() <= atCancel + 1, "kept generating after cancel: " + atCancel + " -> " + seen.get());
        }
    }

    @Test void errorsArriveAsOnErrorAndFreeTheCache() {
        try (Generator gen = new Generator(qwen2, null, null)) {
            StepVerifier.create(gen.generate(MultimodalPrompt.text(new int[]{1, 2, 99999}), GenerateOptions.greedy(4, Set.of()), null))
                    .expectErrorSatisfies(e -> assertTrue(e.getMessage().contains("99999"), e.getMessage()))
                    .verify(Duration.ofSeconds(30));
            assertEquals(0, gen.activeSequences());
        }
    }

    @Test void textPrefixReuseMatchesColdRun() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(0).get("input_ids"));
        int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
        try (PrefixCache pc = new PrefixCache(64 << 20); Generator gen = new Generator(qwen2, pc, null)) {
            GenerateOptions o = GenerateOptions.greedy(gold.length, Set.of()).withCachePrefix(ids.length - 5);
            int[] first = tokens(gen.generate(MultimodalPrompt.text(ids), o, null).collectList().block());
            assertEquals(1, pc.size());
            assertEquals(0, pc.hits());
            int[] second = tokens(gen.generate(MultimodalPrompt.text(ids), o, null).collectList().block());
            assertEquals(1, pc.hits());
            assertArrayEquals(gold, first);
            assertArrayEquals(gold, second);
            // a different continuation of the same prefix also hits and equals its own cold run
            int[] other = ids.clone();
            other[other.length - 2] = 500;
            int[] warm = tokens(gen.generate(MultimodalPrompt.text(other), o, null).collectList().block());
            assertEquals(2, pc.hits());
            try (Generator cold = new Generator(qwen2, null, null)) {
                assertArrayEquals(tokens(cold.generate(MultimodalPrompt.text(other), o, null).collectList().block()), warm);
            }
        }
    }

    @Test void imagePrefixKeyedByContentHash() {
        JsonNode g = Fixtures.golden("tiny-qwen2vl");
        try (SafetensorsFile gt = Fixtures.goldenTensors("tiny-qwen2vl"); PrefixCache pc = new PrefixCache(64 << 20);
             Generator gen = new Generator(vl, pc, null)) {
            MultimodalPrompt p = Fixtures.prompt("tiny-qwen2vl", g, gt, 0, 64);
            int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
            int spanEnd = p.spans().get(0).end();
            GenerateOptions o = GenerateOptions.greedy(gold.length, Set.of()).withCachePrefix(spanEnd + 1);
            assertArrayEquals(gold, tokens(gen.generate(p, o, null).collectList().block()));
            assertArrayEquals(gold, tokens(gen.generate(p, o, null).collectList().block()));
            assertEquals(1, pc.hits());
            // same tokens, different pixels (hash): must not reuse the image prefix
            EmbeddingSpan s = p.spans().get(0);
            float[] other = s.embeddings().clone();
            for (int i = 0; i < other.length; i++) other[i] = -other[i];
            MultimodalPrompt q = new MultimodalPrompt(p.tokens(), List.of(new EmbeddingSpan(s.start(), s.length(), s.hidden(), other,
                    s.gridT(), s.gridH(), s.gridW(), s.contentHash() + 1, 0)));
            int[] warm = tokens(gen.generate(q, o.withCachePrefix(0), null).collectList().block());
            assertEquals(1, pc.hits());                  // the text-only part before the image could match, but no entry covers it
            try (Generator cold = new Generator(vl, null, null)) {
                assertArrayEquals(tokens(cold.generate(q, o, null).collectList().block()), warm);
            }
        }
    }

    @Test void prefixCacheEvictsLeastRecentlyUsed() {
        int[] base = Fixtures.ints(Fixtures.golden("tiny-qwen2").get("prompts").get(0).get("input_ids"));
        try (KvCache probe = qwen2.newCache(64)) {
            qwen2.forward(probe, ForwardInput.tokens(java.util.Arrays.copyOf(base, 20)), false);
            long one = probe.snapshot(20).bytes();
            try (PrefixCache pc = new PrefixCache(one * 2 + one / 2)) {
                MultimodalPrompt a = MultimodalPrompt.text(base);
                int[] bt = base.clone(); bt[0] = 7;
                int[] ct = base.clone(); ct[0] = 8;
                MultimodalPrompt b = MultimodalPrompt.text(bt), c = MultimodalPrompt.text(ct);
                pc.store(a, 20, probe);
                pc.store(b, 20, probe);     // content does not matter for the bookkeeping
                try (KvCache t = qwen2.newCache(64)) { assertEquals(20, pc.restore(a, 24, t)); }   // a is now most recent
                pc.store(c, 20, probe);     // evicts b
                assertEquals(2, pc.size());
                assertEquals(1, pc.evictions());
                assertTrue(pc.contains(a, 20));
                assertFalse(pc.contains(b, 20));
                assertTrue(pc.contains(c, 20));
                assertTrue(pc.bytes() <= pc.maxBytes());
            }
        }
    }
}
