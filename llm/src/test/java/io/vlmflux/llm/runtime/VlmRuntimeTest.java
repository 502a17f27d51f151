package io.vlmflux.llm.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** The runtime on the cpu backend with the real fixture checkpoints: prompts, the encoder-output cache, errors, lifecycle. */
class VlmRuntimeTest {
    static final Path VL = Fixtures.dir("tiny-qwen2vl");
    static final RuntimeOptions CPU = RuntimeOptions.defaults().withBackend(Backend.CPU);
    static VlmRuntime rt;

    @BeforeAll static void load() { rt = VlmRuntime.load(VL, CPU); }
    @AfterAll static void close() { if (rt != null) rt.close(); }

    static Frame image(int i) { return Images.read(VL.resolve("golden_image_" + i + ".png")); }

    @Test void promptMatchesTheGoldenIdsAndGreedyTokens() {
        JsonNode g = Fixtures.golden("tiny-qwen2vl");
        for (JsonNode p : g.get("prompts")) {
            boolean hasImage = p.hasNonNull("image");
            PromptTemplate t = rt.promptTemplate(null, p.get("question").asText(), hasImage ? 1 : 0);
            assertEquals(p.get("prompt_text").asText(), t.text());
            Prompt prompt = rt.prepareBlocking(t, hasImage ? List.of(image(p.get("image").asInt())) : List.of());
            assertArrayEquals(Fixtures.ints(p.get("input_ids")), prompt.input().tokens());
            int n = p.get("greedy_new_tokens").size();
            GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), n, Set.of(), List.of(), t.sharedPrefix(), null);
            int[] got = rt.generate(prompt, o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList().block(Duration.ofSeconds(60))
                    .stream().mapToInt(Integer::intValue).toArray();
            assertArrayEquals(Fixtures.ints(p.get("greedy_new_tokens")), got, p.get("question").asText());
        }
    }

    @Test void encoderCacheServesTheSameFrameAndMissesAChangedByte() {
        try (VlmRuntime rt = VlmRuntime.load(VL, CPU)) {
        PromptTemplate t = rt.promptTemplate(null, "What is it?", 1);
        EncoderCacheStats s0 = rt.encoderCacheStats();
        float[] a, b;
        try (Prompt p1 = rt.prepareBlocking(t, List.of(image(1))); Prompt p2 = rt.prepareBlocking(t, List.of(image(1)))) {
            assertEquals(0, p1.cacheHits());
            assertEquals(1, p2.cacheHits());
            a = p1.input().spans().getFirst().embeddings();
            b = p2.input().spans().getFirst().embeddings();
        }
        assertArrayEquals(a, b);
        EncoderCacheStats s1 = rt.encoderCacheStats();
        assertEquals(s0.hits() + 1, s1.hits());
        assertEquals(s0.misses() + 1, s1.misses());
        Frame f = image(1);
        Frame changed = copyWithFlippedByte(f);
        f.close();
        try (Prompt p3 = rt.prepareBlocking(t, List.of(changed))) {
            assertEquals(0, p3.cacheHits());
        }
        assertEquals(s1.misses() + 1, rt.encoderCacheStats().misses());
        }
    }

    @Test void prepareSharedEncodesOnceForSeveralQuestionsAndEachPromptGeneratesAsIfAlone() {
        PromptTemplate t1 = rt.promptTemplate(null, "What is it?", 1), t2 = rt.promptTemplate("Be brief.", "Colour?", 1);
        GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), 6, Set.of(), List.of(), 0, null);
        Frame f = copyWithFlippedByte(image(2));   // a frame no other test encoded: a miss
        EncoderCacheStats s0 = rt.encoderCacheStats();
        List<Prompt> shared = rt.prepareShared(List.of(t1, t2), f).block(Duration.ofSeconds(60));
        EncoderCacheStats s1 = rt.encoderCacheStats();
        assertTrue(f.isReleased(), "the frame is closed once encoded");
        assertEquals(1, (s1.hits() + s1.misses()) - (s0.hits() + s0.misses()), "one encode for two questions");
        assertEquals(2, shared.size());
        int[][] alone = new int[2][];
        List<PromptTemplate> ts = List.of(t1, t2);
        for (int i = 0; i < 2; i++) {
            try (Prompt p = rt.prepareBlocking(ts.get(i), List.of(copyWithFlippedByte(image(2))))) {
                assertArrayEquals(p.input().tokens(), shared.get(i).input().tokens());
                assertArrayEquals(p.input().spans().getFirst().embeddings(), shared.get(i).input().spans().getFirst().embeddings());
                alone[i] = rt.generate(p, o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList().block(Duration.ofSeconds(60))
                        .stream().mapToInt(Integer::intValue).toArray();
            }
        }
        // the second prompt still reads the shared rows after the first one let go of them
        for (int i = 0; i < 2; i++)
            assertArrayEquals(alone[i], rt.generate(shared.get(i), o).filter(e -> e.tokenId() >= 0).map(TokenEvent::tokenId).collectList()
                    .block(Duration.ofSeconds(60)).stream().mapToInt(Integer::intValue).toArray());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> rt.prepareShared(List.of(rt.promptTemplate(null, "Hi", 0)), image(0)).block(Duration.ofSeconds(60)));
        assertTrue(e.getMessage().contains("exactly one image"), e.getMessage());
    }

    @Test void preparedFramesAreClosedAndPromptsAreSingleUse() {
        PromptTemplate t = rt.promptTemplate("Be brief.", "Colour?", 1);
        Frame f = image(0);
        Prompt p = rt.prepareBlocking(t, List.of(f));
        assertTrue(f.isReleased(), "the runtime closes a frame once its pixels are copied");
        GenerateOptions o = rt.generateOptions(null, 2, List.of(), t.sharedPrefix());
        rt.generate(p, o).blockLast(Duration.ofSeconds(60));
        var e = assertThrows(IllegalStateException.class, () -> rt.generate(p, o).blockLast(Duration.ofSeconds(10)));
        assertTrue(e.getMessage().contains("single use"), e.getMessage());
        assertEquals(0, rt.activeSequences());
    }

    @Test void cpuCachesEveryPositionOfTheSharedPrefix() {
        assertEquals(5, rt.cachedPrefix(5));
        assertEquals(0, rt.cachedPrefix(0));
        try (VlmRuntime cold = VlmRuntime.load(VL, CPU.withPrefixCacheBytes(0))) {
            assertEquals(0, cold.cachedPrefix(100), "no prefix cache, nothing to keep");
        }
    }

    @Test void badInputIsNamed() {
        PromptTemplate t = rt.promptTemplate(null, "x", 1);
        Frame a = image(0), b = image(1);
        var e = assertThrows(IllegalArgumentException.class, () -> rt.prepareBlocking(t, List.of(a, b)));
        assertTrue(e.getMessage().contains("1 image slot(s) but 2 image(s)"), e.getMessage());
        assertTrue(a.isReleased() && b.isReleased(), "frames of a failed prepare are closed");
        var dev = assertThrows(IllegalArgumentException.class, () -> VlmRuntime.load(VL, CPU.withDevice(1)));
        assertTrue(dev.getMessage().contains("device 1") && dev.getMessage().contains("cpu"), dev.getMessage());
        var missing = assertThrows(IllegalArgumentException.class, () -> VlmRuntime.load(VL.resolve("nope"), CPU));
        assertTrue(missing.getMessage().contains("nope"), missing.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Backend.parse("tpu"));
    }

    @Test void textOnlyModelsGenerateAndRefuseImages() {
        try (VlmRuntime text = VlmRuntime.load(Fixtures.dir("tiny-qwen3"), CPU)) {
            assertFalse(text.hasVision());
            PromptTemplate t = text.rawPrompt("Hello");
            List<TokenEvent> ev = text.generate(text.prepareBlocking(t, List.of()), text.generateOptions(SamplingParams.greedyDecoding(), 3, List.of(), 0))
                    .collectList().block(Duration.ofSeconds(60));
            assertNotNull(ev.getLast().finishReason());
            Frame f = image(0);
            var e = assertThrows(IllegalArgumentException.class, () -> text.prepareBlocking(t, List.of(f)));
            assertTrue(e.getMessage().contains("image"), e.getMessage());
            assertTrue(f.isReleased());
        }
    }

    @Test void closeIsIdempotentAndLaterCallsFailClearly() {
        VlmRuntime r = VlmRuntime.load(VL, CPU);
        PromptTemplate t = r.promptTemplate(null, "x", 1);
        r.close();
        r.close();
        assertTrue(r.isClosed());
        Frame f = image(0);
        var e = assertThrows(IllegalStateException.class, () -> r.prepareBlocking(t, List.of(f)));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertTrue(f.isReleased(), "a frame handed to a closed runtime is closed");
    }

    private static Frame copyWithFlippedByte(Frame f) {
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(f.data().byteSize());
        seg.copyFrom(f.data());
        long mid = seg.byteSize() / 2;
        seg.set(java.lang.foreign.ValueLayout.JAVA_BYTE, mid, (byte) (seg.get(java.lang.foreign.ValueLayout.JAVA_BYTE, mid) ^ 1));
        return Frame.builder().format(f.format()).size(f.width(), f.height()).data(seg).releaser(arena::close).build();
    }
}
