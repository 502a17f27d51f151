package io.vlmflux.llm.runtime;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.MropePositions;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.vlmflux.llm.runtime.LiveSessionTest.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Qwen3-VL live sessions (cpu) on the tiny-qwen3vl fixture and a variant of it with other DeepStack layers: groups
 * appended one by one (each with its timestamp and vision block) equal the one-shot video prompt that
 * {@link VlmRuntime#prepareVideo} builds (the path checked against transformers' golden ids, positions and logits), the
 * answer decodes as greedy decoding of that prompt, and after an eviction (REPREFILL) the next answer's logits equal a
 * from-scratch prefill of exactly the retained tokens at their one-shot positions.
 */
class LiveSessionQwen3Test {
    static final String SYSTEM = "You are a helpful assistant.", Q = "Where does the ball go?";
    @TempDir Path tmp;

    static List<Frame> frames(Path dir, String video, double fps) throws Exception {
        List<Frame> out = new ArrayList<>();
        try (var files = Files.list(dir.resolve(video))) {
            int i = 0;
            for (Path f : files.filter(f -> f.toString().endsWith(".png")).sorted().toList()) {
                try (Frame raw = Images.read(f)) { out.add(LiveSessionTest.withPts(raw, Math.round(i++ * 1e9 / fps))); }
            }
        }
        return out;
    }

    @Test void fixtureSevenFramesAtFourFps() throws Exception {
        check(Fixtures.dir("tiny-qwen3vl"), "golden_video_1", 4, Duration.ofSeconds(1));
    }

    /** Other DeepStack layers ([0, 3] instead of [1, 2]), the 4-frame 128x96 clip at 2 fps, a 0.5 s window. */
    @Test void variantWithOtherDeepstackLayers() throws Exception {
        Path src = Fixtures.dir("tiny-qwen3vl");
        try (var files = Files.list(src)) {
            for (Path f : files.toList()) {
                if (Files.isDirectory(f)) {
                    Files.createDirectories(tmp.resolve(f.getFileName()));
                    try (var fs = Files.list(f)) { for (Path g : fs.toList()) Files.copy(g, tmp.resolve(f.getFileName()).resolve(g.getFileName())); }
                } else Files.copy(f, tmp.resolve(f.getFileName()));
            }
        }
        String cfg = Files.readString(tmp.resolve("config.json"));
        String changed = cfg.replaceFirst("\"deepstack_visual_indexes\":\\s*\\[\\s*1,\\s*2\\s*]", "\"deepstack_visual_indexes\": [0, 3]");
        assertNotEquals(cfg, changed);
        Files.writeString(tmp.resolve("config.json"), changed);
        check(tmp, "golden_video_0", 2, Duration.ofMillis(500));
    }

    void check(Path dir, String video, double fps, Duration window) throws Exception {
        try (VlmRuntime rt = VlmRuntime.load(dir, LiveSessionTest.CPU)) {
            int fpg = 2;
            String text = "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>" + Q
                    + "<|im_end|>\n<|im_start|>assistant\n";
            Prompt one = rt.prepareVideoBlocking(text, frames(dir, video, fps), fps);
            one.close();   // host rows: the spans keep their arrays
            int[] all = one.input().tokens();
            List<EmbeddingSpan> spans = one.input().spans();
            MropePositions mp = MropePositions.compute(one.input(), rt.config());
            float[] oneShot;
            int[] greedy = new int[4];
            KvCache ref = rt.decoder().newCache(all.length + 8);
            try {
                oneShot = rt.decoder().forward(ref, new ForwardInput(all, spans, mp.positions()), false);
                ref.positionDelta(mp.delta());
                float[] l = oneShot;
                for (int i = 0; i < greedy.length; i++) {
                    greedy[i] = argmax(l);
                    if (i + 1 < greedy.length) l = rt.decoder().forward(ref, ForwardInput.tokens(greedy[i]), false);
                }
            } finally {
                ref.close();
            }

            // frames sized for the whole clip, as the one-shot prompt sizes them
            LiveSession.Options o = LiveSession.Options.defaults().withSystemPrompt(SYSTEM).withFps(fps).withMaxAnswerTokens(4)
                    .withSizeFrames(frameCount(dir, video));
            // 1. no eviction: incremental groups == the one-shot prompt
            LiveSession s = LiveSession.open(rt, o.withWindow(Duration.ofHours(1)));
            List<Frame> fs = frames(dir, video, fps);
            int groups = 0;
            for (int i = 0; i < fs.size(); i += fpg, groups++) s.appendBlocking(fs.subList(i, Math.min(fs.size(), i + fpg)));
            assertEquals(spans.size(), groups, "one vision block per group");
            int[] prefix = s.prefixTokens(), q = s.questionTokens(Q);
            assertArrayEquals(prefix, Arrays.copyOf(all, prefix.length), "sink = the prompt's head");
            assertArrayEquals(q, Arrays.copyOfRange(all, all.length - q.length, all.length), "question = the prompt's tail");
            assertEquals(all.length - q.length, s.window().cacheLength(), "timestamps, vision blocks and pads of every group");
            float[] live = s.questionLogits(Q).block();
            assertClose(oneShot, live, 1e-4, dir.getFileName() + ": incremental vs one-shot");
            int[] answer = s.ask(Q, greedy.length).map(TokenEvent::tokenId).collectList().block().stream().mapToInt(Integer::intValue).toArray();
            assertArrayEquals(Arrays.copyOf(greedy, answer.length), answer, "the answer decodes as the one-shot prompt");
            assertClose(live, s.questionLogits(Q).block(), 1e-5, "the answer left the cache");
            s.close();

            // 2. REPREFILL window: group 0 is evicted; the next answer equals a prefill of exactly the retained tokens
            LiveSession w = LiveSession.open(rt, o.withWindow(window).withEviction(LiveSession.Eviction.REPREFILL));
            fs = frames(dir, video, fps);
            int evicted = 0;
            for (int i = 0; i < fs.size(); i += fpg) evicted += w.appendBlocking(fs.subList(i, Math.min(fs.size(), i + fpg))).evictedItems();
            assertEquals(1, evicted);
            assertEquals(groups - 1, w.window().groups());
            float[] windowed = w.questionLogits(Q).block();
            int cut = spans.get(0).end() + 1;   // group 0: [prefix, its <|vision_end|>]
            int[] toks = new int[all.length - (cut - prefix.length)];
            int[][] pos = new int[3][toks.length];
            for (int i = 0, j = 0; i < all.length; i++) {
                if (i >= prefix.length && i < cut) continue;
                toks[j] = all[i];
                for (int a = 0; a < 3; a++) pos[a][j] = mp.positions()[a][i];
                j++;
            }
            List<EmbeddingSpan> kept = new ArrayList<>();
            for (int g = 1; g < spans.size(); g++) kept.add(spans.get(g).at(spans.get(g).start() - (cut - prefix.length)));
            float[] retained = LiveSessionTest.lastLogits(rt, toks, kept, pos);
            assertClose(retained, windowed, 1e-4, dir.getFileName() + ": after eviction vs retained prefill");
            double diff = 0;
            for (int i = 0; i < live.length; i++) diff = Math.max(diff, Math.abs(live[i] - windowed[i]));
            assertTrue(diff > 1e-3, "evicting a group should change the logits, max |Δ| " + diff);
            w.close();

            // 3. SLIDE evicts the same group
            LiveSession sl = LiveSession.open(rt, o.withWindow(window));
            fs = frames(dir, video, fps);
            for (int i = 0; i < fs.size(); i += fpg) sl.appendBlocking(fs.subList(i, Math.min(fs.size(), i + fpg)));
            assertTrue(sl.window().groups() < groups);
            assertTrue(sl.window().cacheLength() < all.length - q.length);
            sl.close();
        }
    }

    static int frameCount(Path dir, String video) throws Exception {
        try (var files = Files.list(dir.resolve(video))) { return (int) files.filter(f -> f.toString().endsWith(".png")).count(); }
    }

    static int argmax(float[] l) {
        int b = 0;
        for (int i = 1; i < l.length; i++) if (l[i] > l[b]) b = i;
        return b;
    }
}
