package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.EncoderCacheStats;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.ImageSlots;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.chat.ChatMessage;
import io.vlmflux.llm.chat.ChatTemplate;
import io.vlmflux.llm.tokenizer.Tokenizer;
import io.vlmflux.pipeline.GpuSchedulers;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static io.vlmflux.pipeline.caption.CaptionTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/** The caption stage on the real cockatoo video with the tiny random-weight Qwen2-VL fixture. */
class CaptionStageTest {
    static final SourceOptions SMALL = new SourceOptions(320, 180, PixelFormat.RGB);
    static VlmRuntime model;

    @BeforeAll static void load() { model = VlmRuntime.load(TINY_VL, RuntimeOptions.defaults().withBackend(Backend.CPU)); }

    @AfterAll static void close() { model.close(); }

    static Flux<Frame> cockatoo() { return Sources.parse(COCKATOO.toString(), SMALL).frames(); }

    static CaptionOptions lossless(int maxTokens) {
        return CaptionOptions.defaults().withMaxTokens(maxTokens).withBackpressure(CaptionOptions.Backpressure.LOSSLESS);
    }

    @Test void promptMatchesTheGoldenChatPromptAndTokens() throws Exception {
        JsonNode g = new ObjectMapper().readTree(TINY_VL.resolve("golden.json").toFile());
        JsonNode p0 = g.get("prompts").get(0);
        PromptTemplate t = model.promptTemplate(null, p0.get("question").asText(), 1);
        assertEquals(p0.get("prompt_text").asText(), t.text());
        String image = g.get("images").get(0).get("file").asText();
        try (io.vlmflux.llm.runtime.Prompt p = model.prepareBlocking(t, List.of(io.vlmflux.vision.Images.read(TINY_VL.resolve(image))))) {
            int[] gold = new ObjectMapper().convertValue(p0.get("input_ids"), int[].class);
            assertArrayEquals(gold, p.input().tokens());
            assertEquals(t.sharedPrefix(), p.input().spans().getFirst().start(), "the cached prefix must end right before the first image token");
        }
    }

    /** Captions through the pipeline equal those computed directly from the same frames with separately loaded parts. */
    @Test void pipelineCaptionsEqualDirectComputationAndTimingsAreConsistent() throws Exception {
        Tap tap = new Tap();
        List<String> threads = new CopyOnWriteArrayList<>();
        List<Caption> caps = cockatoo().transform(tap::apply)
                .transform(Stages.sample("25f"))
                .transform(CaptionStage.captions(model, lossless(8)))
                .doOnNext(c -> threads.add(Thread.currentThread().getName()))
                .take(3)
                .collectList().block(Duration.ofSeconds(60));
        assertEquals(3, caps.size());
        assertEquals(List.of(0L, 25L, 50L), caps.stream().map(c -> c.frame().sequence()).toList());
        tap.awaitAllReleased(5000);
        assertEquals(0, tap.open(), "frames left open");
        for (String t : threads) assertTrue(t.startsWith("vlmflux-compute-"), "caption emitted on " + t);

        // direct: preprocess + encode + prompt + generate, no pipeline, no prefix cache, own instances
        Map<Long, Caption> bySeq = new HashMap<>();
        caps.forEach(c -> bySeq.put(c.frame().sequence(), c));
        Tokenizer tok = Tokenizer.load(TINY_VL);
        ChatTemplate tpl = ChatTemplate.load(TINY_VL).orElseThrow();
        int pad = tok.tokenId("<|image_pad|>").orElseThrow();
        int[] ids = tok.encode(tpl.render(List.of(ChatMessage.userWithImage(CaptionOptions.DEFAULT_PROMPT)), true));
        ImageProcessor proc = ImageProcessor.load(TINY_VL);
        try (VisionEncoder enc = VisionEncoders.load(TINY_VL); Decoder dec = Models.load(TINY_VL, "cpu"); Generator gen = new Generator(dec, null, null)) {
            List<Frame> frames = cockatoo().take(51).collectList().block(Duration.ofSeconds(60));
            try {
                for (Frame f : frames) {
                    Caption c = bySeq.get(f.sequence());
                    if (c == null) continue;
                    ImageEmbeddings e = enc.encode(proc.process(f));
                    ImageSlots.Expanded x = ImageSlots.expand(ids, pad, new int[] {e.tokens()});
                    MultimodalPrompt p = new MultimodalPrompt(x.tokens(), List.of(EmbeddingSpan.image(x.spanStarts()[0], e.data(), e.hidden(), e.gridH(), e.gridW(), e.contentHash())));
                    List<TokenEvent> ev = gen.generateBlocking(p, GenerateOptions.greedy(8, model.stopTokens()), null);
                    int[] direct = ev.stream().filter(t -> !model.stopTokens().contains(t.tokenId())).mapToInt(TokenEvent::tokenId).toArray();
                    assertArrayEquals(direct, c.tokens(), "frame " + f.sequence());
                    assertEquals(tok.decode(direct, true), c.text(), "frame " + f.sequence());
                    assertEquals(ev.getLast().finishReason(), c.finishReason());
                }
            } finally {
                frames.forEach(Frame::close);
            }
        }
        for (Caption c : caps) {
            CaptionTimings t = c.timings();
            assertTrue(t.preprocessMs() > 0 && t.encodeMs() > 0 && t.prefillMs() > 0, t.toString());
            assertTrue(t.preprocessMs() + t.encodeMs() + t.prefillMs() <= t.ttftMs() + 0.5, t.toString());
            assertTrue(t.ttftMs() <= t.totalMs(), t.toString());
            assertEquals(0, c.dropped());
        }
    }

    @Test void prefixIsPrefilledOnceAndReusedWithCaptionsEqualToAColdRun() {
        long hits0 = model.prefixCache().hits();
        List<Caption> warm = cockatoo().transform(Stages.sample("40f")).transform(CaptionStage.captions(model, lossless(6)))
                .take(4).collectList().block(Duration.ofSeconds(60));
        assertTrue(model.prefixCache().hits() - hits0 >= 3, "prefix cache hits grew by " + (model.prefixCache().hits() - hits0));
        assertEquals(1, model.prefixCache().size(), "one system/header prefix, not one per frame");
        try (VlmRuntime cold = VlmRuntime.load(TINY_VL, RuntimeOptions.defaults().withBackend(Backend.CPU).withPrefixCacheBytes(0))) {
            assertNull(cold.prefixCache());
            List<Caption> c = cockatoo().transform(Stages.sample("40f")).transform(CaptionStage.captions(cold, lossless(6)))
                    .take(4).collectList().block(Duration.ofSeconds(60));
            for (int i = 0; i < 4; i++) {
                assertEquals(c.get(i).frame(), warm.get(i).frame());
                assertArrayEquals(c.get(i).tokens(), warm.get(i).tokens(), "frame " + c.get(i).frame());
            }
        }
    }

    /** A slow subscriber: newest wins drops the frames that arrive while it does not ask, and counts them. */
    @Test void slowSubscriberDropsAndCountsFramesNewestWins() throws Exception {
        Tap tap = new Tap();
        StageMetrics m = new StageMetrics("caption");
        CaptionOptions o = CaptionOptions.defaults().withMaxTokens(2);
        Flux<Caption> f = cockatoo().transform(tap::apply).transform(CaptionStage.captions(model, o, m));
        long[] firstSeq = {-1};
        StepVerifier.create(f, 0)
                .thenRequest(1)
                .assertNext(c -> { firstSeq[0] = c.frame().sequence(); assertTrue(c.frame().sequence() <= 2, "first caption of frame " + c.frame()); })
                .then(() -> awaitTrue(() -> tap.seen.size() > firstSeq[0] + 12, 30_000))   // the file decodes on; newest kept
                .thenRequest(1)
                .assertNext(c -> {
                    long seq = c.frame().sequence();
                    assertTrue(seq >= firstSeq[0] + 12, "second caption is of " + c.frame() + ", not of the newest frame");
                    assertTrue(c.dropped() >= seq - firstSeq[0] - 1, "frames between the captions were not all counted: " + c.dropped());
                    assertTrue(m.dropped() >= c.dropped());
                })
                .thenCancel()
                .verify(Duration.ofSeconds(60));
        tap.awaitAllReleased(5000);
        assertEquals(0, tap.open(), "frames left open");
        assertEquals(0, model.activeSequences());
    }

    /**
     * {@code VlmPipeline.Builder.captions}: the {@code model} stage's dropped counter is the caption stage's drop count
     * (it read 0 while captions reported drops); in = out + dropped once the pipeline stopped.
     */
    @Test void pipelineModelMetricsCountTheCaptionStagesDrops() {
        var p = io.vlmflux.pipeline.VlmPipeline.builder().source(new io.vlmflux.pipeline.SourceInput("c", cockatoo(), true))
                .captions(model, CaptionOptions.defaults().withMaxTokens(2));
        var m = p.metrics().stage("model");
        long[] dropped = {-1};
        StepVerifier.create(p.flux(), 0)
                .thenRequest(1)
                .expectNextCount(1)
                .then(() -> awaitTrue(() -> m.in() > 12, 30_000))   // a slow subscriber: frames pile up and are replaced
                .thenRequest(1)
                .assertNext(c -> {
                    dropped[0] = c.dropped();
                    assertTrue(c.dropped() >= 11, "dropped " + c.dropped());
                    assertTrue(m.dropped() >= c.dropped(), m.dropped() + " < " + c.dropped());
                })
                .thenCancel()
                .verify(Duration.ofSeconds(60));
        awaitTrue(() -> m.in() == m.out() + m.dropped(), 5000);
        assertEquals(2, m.out());
        assertTrue(m.dropped() >= dropped[0], m.dropped() + " vs " + dropped[0]);
    }

    /** Cancelling a caption's token stream stops generation within a step, frees its cache and closes its frame. */
    @Test void cancellingTheTokenStreamStopsGenerationAndFreesTheCache() throws Exception {
        Tap tap = new Tap();
        List<TokenEvent> seen = new CopyOnWriteArrayList<>();
        CaptionOptions o = lossless(3000).withSampling(io.vlmflux.llm.SamplingParams.sample(1.0, 0, 1.0, 0.0, 7));
        StepVerifier.create(cockatoo().transform(tap::apply).transform(CaptionStage.streams(model, o)), 0)
                .thenRequest(1)
                .assertNext(s -> StepVerifier.create(s.tokens().doOnNext(seen::add), 0)
                        .thenRequest(3)
                        .expectNextCount(3)
                        .then(() -> assertEquals(1, model.activeSequences()))
                        .thenCancel()
                        .verify(Duration.ofSeconds(30)))
                .thenCancel()
                .verify(Duration.ofSeconds(30));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (model.activeSequences() != 0 && System.nanoTime() < deadline) Thread.sleep(5);
        assertEquals(0, model.activeSequences(), "KV cache of the cancelled caption not freed");
        int atCancel = seen.size();
        Thread.sleep(200);
        assertEquals(atCancel, seen.size(), "tokens kept coming after cancel");
        tap.awaitAllReleased(5000);
        assertEquals(0, tap.open(), "frames left open");
    }

    @Test void aStreamGivesLiveTokensAndTheSameCaption() {
        List<Object[]> out = cockatoo().transform(CaptionStage.streams(model, lossless(5)))
                .concatMap(s -> s.tokens().collectList().zipWith(s.caption(), (t, c) -> new Object[] {t, c}), 0)
                .take(2).collectList().block(Duration.ofSeconds(60));
        for (Object[] r : out) {
            @SuppressWarnings("unchecked") List<TokenEvent> ev = (List<TokenEvent>) r[0];
            Caption c = (Caption) r[1];
            StringBuilder sb = new StringBuilder();
            ev.forEach(e -> sb.append(e.textDelta()));
            assertEquals(sb.toString(), c.text());
            assertEquals(ev.getLast().finishReason(), c.finishReason());
        }
    }

    /**
     * A file with {@code CaptionOptions.defaults()} through the pipeline builder: every sampled frame is captioned
     * (AUTO backpressure becomes lossless for non-live sources); before, newest-wins dropped most of them.
     */
    @Test void defaultOptionsCaptionEverySampledFrameOfAFile() {
        io.vlmflux.sources.FrameSource file = Sources.parse(COCKATOO.toString(), SMALL);
        assertFalse(file.isLive());
        List<Caption> caps = io.vlmflux.pipeline.VlmPipeline.builder().source(file).every("25f")
                .captions(model, CaptionOptions.defaults().withMaxTokens(2)).flux()
                .take(4).collectList().block(Duration.ofSeconds(120));
        assertEquals(List.of(0L, 25L, 50L, 75L), caps.stream().map(c -> c.frame().sequence()).toList());
        assertTrue(caps.stream().allMatch(c -> c.dropped() == 0), caps.toString());
    }

    /** A source that fails while a caption is being made: the caption in flight is delivered, then the error. */
    @Test void aSourceErrorWaitsForTheCaptionInFlight() {
        List<Frame> one = cockatoo().take(1).collectList().block(Duration.ofSeconds(30));
        Flux<Frame> failing = Flux.concat(Flux.fromIterable(one), Flux.error(new java.io.IOException("camera unplugged")));
        StepVerifier.create(failing.transform(CaptionStage.captions(model, lossless(4))))
                .assertNext(c -> assertEquals(0L, c.frame().sequence()))
                .expectErrorMessage("camera unplugged")
                .verify(Duration.ofSeconds(60));
        assertTrue(one.getFirst().isReleased());
    }

    @Test void modelErrorsNameTheFolderAndFile(@org.junit.jupiter.api.io.TempDir Path tmp) {
        var e = assertThrows(IllegalArgumentException.class, () -> VlmRuntime.load(tmp.resolve("nope"), RuntimeOptions.defaults().withBackend(Backend.CPU)));
        assertTrue(e.getMessage().contains("nope") && e.getMessage().contains("does not exist"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> VlmRuntime.load(tmp, RuntimeOptions.defaults().withBackend(Backend.CPU)));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> CaptionOptions.defaults().withMaxTokens(0));
    }

    static void awaitTrue(java.util.function.BooleanSupplier cond, long millis) {
        long deadline = System.nanoTime() + millis * 1_000_000;
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) fail("condition not met in " + millis + " ms");
            sleep(5);
        }
    }

    static void sleep(long ms) {
        try { Thread.sleep(ms); } catch (InterruptedException e) { throw new RuntimeException(e); }
    }
}
