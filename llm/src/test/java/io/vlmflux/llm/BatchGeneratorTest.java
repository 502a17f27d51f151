package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Batched decode on the real CPU decoder. The CPU backend samples on the host, so the decoder is wrapped to claim
 * device sampling (greedy argmax of its own logits) and to record the batch sizes it is handed: concurrent sequences
 * must produce the golden greedy tokens exactly as alone, while their steps arrive as batches of several.
 */
class BatchGeneratorTest {
    static Decoder cpu;
    static Scheduler compute;

    @BeforeAll static void load() throws Exception {
        cpu = Models.load(Fixtures.dir("tiny-qwen2"), "cpu");
        compute = Schedulers.newSingle("batch-test");
    }

    @AfterAll static void close() { cpu.close(); compute.dispose(); }

    /** The CPU decoder, claiming device sampling, counting batched steps by size. */
    static final class Recording implements Decoder {
        final Decoder d;
        final AtomicInteger multi = new AtomicInteger(), maxSize = new AtomicInteger();
        Recording(Decoder d) { this.d = d; }
        @Override public ModelConfig config() { return d.config(); }
        @Override public String backend() { return "cpu (batched test)"; }
        @Override public KvCache newCache(int capacity) { return d.newCache(capacity); }
        @Override public float[] forward(KvCache c, ForwardInput in, boolean all) { return d.forward(c, in, all); }
        @Override public boolean samplesOnDevice(SamplingParams p) { return p.greedy(); }
        @Override public int[] forwardSampleBatch(KvCache[] caches, int[] tokens, SamplingParams[] params) {
            if (caches.length > 1) multi.incrementAndGet();
            maxSize.accumulateAndGet(caches.length, Math::max);
            return Decoder.super.forwardSampleBatch(caches, tokens, params);
        }
        @Override public void close() { }
    }

    static int[] tokens(List<TokenEvent> ev) { return ev.stream().mapToInt(TokenEvent::tokenId).toArray(); }

    @Test void concurrentSequencesBatchTheirStepsAndMatchTheGoldenTokens() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int n = g.get("prompts").size();
        Recording rec = new Recording(cpu);
        try (BatchGenerator gen = new BatchGenerator(rec, null, compute, 8)) {
            List<List<TokenEvent>> all = Flux.range(0, n)
                    .flatMapSequential(i -> {
                        JsonNode p = g.get("prompts").get(i);
                        int[] gold = Fixtures.ints(p.get("greedy_new_tokens"));
                        return gen.generate(MultimodalPrompt.text(Fixtures.ints(p.get("input_ids"))), GenerateOptions.greedy(gold.length, Set.of()), null)
                                .collectList();
                    }, n)
                    .collectList().block(Duration.ofSeconds(60));
            for (int i = 0; i < n; i++) {
                int[] gold = Fixtures.ints(g.get("prompts").get(i).get("greedy_new_tokens"));
                assertArrayEquals(gold, tokens(all.get(i)), "prompt " + i);
                assertEquals(FinishReason.LENGTH, all.get(i).getLast().finishReason());
            }
            if (n > 1) {
                assertTrue(rec.multi.get() > 0, "steps of concurrent sequences were batched");
                assertTrue(rec.maxSize.get() > 1 && rec.maxSize.get() <= n, "max batch " + rec.maxSize.get());
            }
            long[] st = gen.batchStats();
            assertTrue(st[1] >= st[0], "tokens >= steps");
            assertEquals(0, gen.activeSequences(), "every cache freed");
        }
    }

    @Test void aSlowSubscriberSitsOutAndCancelStopsItsSequence() {
        JsonNode g = Fixtures.golden("tiny-qwen2");
        int[] ids = Fixtures.ints(g.get("prompts").get(0).get("input_ids"));
        int[] gold = Fixtures.ints(g.get("prompts").get(0).get("greedy_new_tokens"));
        try (BatchGenerator gen = new BatchGenerator(new Recording(cpu), null, compute, 4)) {
            StepVerifier.create(gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(gold.length, Set.of()), null), 0)
                    .expectSubscription()
                    .expectNoEvent(Duration.ofMillis(100))          // no demand: nothing generated
                    .thenRequest(2)
                    .assertNext(e -> assertEquals(gold[0], e.tokenId()))
                    .assertNext(e -> assertEquals(gold[1], e.tokenId()))
                    .expectNoEvent(Duration.ofMillis(100))
                    .thenCancel()
                    .verify(Duration.ofSeconds(10));
            long deadline = System.nanoTime() + 5_000_000_000L;   // the cache is freed at the next tick
            while (gen.activeSequences() > 0 && System.nanoTime() < deadline) Thread.onSpinWait();
            assertEquals(0, gen.activeSequences(), "cancel freed the cache");
            // the generator keeps serving after a cancel
            List<TokenEvent> ev = gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(gold.length, Set.of()), null)
                    .collectList().block(Duration.ofSeconds(30));
            assertArrayEquals(gold, tokens(ev));
        }
    }

    @Test void aPromptTooLongFailsOnlyItsOwnSubscriber() {
        int ctx = cpu.config().maxPositionEmbeddings();
        try (BatchGenerator gen = new BatchGenerator(new Recording(cpu), null, compute, 4)) {
            StepVerifier.create(gen.generate(MultimodalPrompt.text(new int[ctx + 5]), GenerateOptions.greedy(4, Set.of()), null))
                    .expectErrorSatisfies(e -> assertTrue(e.getMessage().contains("exceeds"), e.getMessage()))
                    .verify(Duration.ofSeconds(10));
        }
    }
}
