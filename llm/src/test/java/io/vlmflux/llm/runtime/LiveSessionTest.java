package io.vlmflux.llm.runtime;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.MropePositions;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SpanRows;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Live sessions on the cpu backend with the real tiny Qwen2-VL / Qwen2.5-VL video fixtures: incremental prefill of the
 * groups equals a one-shot prefill of the same video prompt; after evictions the next answer equals a from-scratch
 * prefill of exactly the retained tokens at their positions; questions leave the cache as they found it.
 */
class LiveSessionTest {
    static final RuntimeOptions CPU = RuntimeOptions.defaults().withBackend(Backend.CPU);
    static final double FPS = 4;
    static final String Q = "What moves?";

    /** Frame {@code i} of the fixture's 7-frame clip with its presentation time at {@link #FPS}. */
    static Frame frame(Path dir, int i) {
        try (Frame f = Images.read(dir.resolve("golden_video_1/frame_00" + i + ".png"))) {
            return withPts(f, Math.round(i * 1e9 / FPS));
        }
    }

    static Frame withPts(Frame f, long pts) {
        byte[] rgb = Images.toRgb(f);
        Frame g = Images.fromRgb(rgb, f.width(), f.height());
        Frame out = Frame.builder().format(g.format()).size(g.width(), g.height()).data(g.data()).pts(pts).sourceId("test").build();
        return out;
    }

    /** The 7 frames as groups of 2 (the last one alone, padded by the processor). */
    static List<List<Frame>> groups(Path dir) {
        List<List<Frame>> gs = new ArrayList<>();
        for (int i = 0; i < 7; i += 2) gs.add(i + 1 < 7 ? List.of(frame(dir, i), frame(dir, i + 1)) : List.of(frame(dir, i)));
        return gs;
    }

    /** Host rows of one group, encoded as the session encodes it. */
    static float[] rows(VlmRuntime rt, List<Frame> group, int[] gridOut) {
        ImageRows r = rt.visionPath().encodeClip(io.vlmflux.vision.VideoProcessor.loadQwen2VL(rt.dir()).process(group));
        try {
            gridOut[0] = r.gridH;
            gridOut[1] = r.gridW;
            return ((SpanRows.Host) r.spanRows()).data().clone();
        } finally {
            rt.visionPath().release(r);
            group.forEach(Frame::close);
        }
    }

    static float[] lastLogits(VlmRuntime rt, int[] tokens, List<EmbeddingSpan> spans, int[][] pos) {
        KvCache c = rt.decoder().newCache(tokens.length + 1);
        try {
            return rt.decoder().forward(c, new ForwardInput(tokens, spans, pos), false);
        } finally {
            c.close();
        }
    }

    static void assertClose(float[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length);
        double max = 0;
        for (int i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - got[i]));
        assertTrue(max <= tol, what + ": max |Δ| " + max + " > " + tol);
    }

    static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] p : parts) n += p.length;
        int[] out = new int[n];
        int o = 0;
        for (int[] p : parts) { System.arraycopy(p, 0, out, o, p.length); o += p.length; }
        return out;
    }

    @ParameterizedTest @ValueSource(strings = {"tiny-qwen2vl-video", "tiny-qwen25vl-video"})
    void incrementalPrefillEqualsOneShotAndEvictionEqualsRetainedPrefill(String model) {
        Path dir = Fixtures.dir(model);
        try (VlmRuntime rt = VlmRuntime.load(dir, CPU)) {
            LiveSession.Options o = LiveSession.Options.defaults().withFps(FPS);
            // reference rows, per group
            List<float[]> rows = new ArrayList<>();
            int[] grid = new int[2];
            for (List<Frame> g : groups(dir)) rows.add(rows(rt, g, grid));
            int per = rows.getFirst().length / rt.config().hiddenSize(), H = rt.config().hiddenSize(), G = rows.size();

            // 1. no eviction (1 h window): incremental == one-shot video prompt (one span, grid G x h x w)
            LiveSession s = LiveSession.open(rt, o.withWindow(Duration.ofHours(1)));
            for (List<Frame> g : groups(dir)) {
                LiveSession.Appended a = s.appendBlocking(g);
                assertEquals(per, a.tokens());
                assertEquals(0, a.evictedItems());
            }
            float[] live = s.questionLogits(Q).block();
            int[] prefix = s.prefixTokens(), q = s.questionTokens(Q);
            int[] pads = new int[G * per];
            Arrays.fill(pads, s.videoPadToken());
            int[] all = concat(prefix, pads, q);
            float[] joined = new float[G * per * H];
            for (int i = 0; i < G; i++) System.arraycopy(rows.get(i), 0, joined, i * per * H, per * H);
            EmbeddingSpan video = new EmbeddingSpan(prefix.length, G * per, H, new SpanRows.Host(joined), G, grid[0], grid[1], 1L,
                    model.contains("25") ? 2 / FPS : 0);
            MropePositions mp = MropePositions.compute(new MultimodalPrompt(all, List.of(video)), rt.config());
            float[] oneShot = lastLogits(rt, all, List.of(video), mp.positions());
            assertClose(oneShot, live, 1e-4, model + " incremental vs one-shot");
            // asking leaves the cache as it was
            String answer = s.ask(Q, 5).map(TokenEvent::textDelta).reduce("", String::concat).block();
            assertNotNull(answer);
            assertClose(live, s.questionLogits(Q).block(), 1e-5, model + ": the question and answer left the cache");   // a regrown cache may reorder float sums
            assertEquals(prefix.length + G * per, s.window().cacheLength());
            s.close();
            assertTrue(s.isClosed());
            assertEquals(0, s.window().kvBytes());

            // 2. window of 1 s at 4 fps (0.5 s groups): appending group 2 (ends 1.5 s) evicts group 0, group 3 (ends 1.75 s) nothing more;
            // REPREFILL: the cache is then exactly a from-scratch prefill of the retained tokens at their positions
            LiveSession w = LiveSession.open(rt, o.withWindow(Duration.ofSeconds(1)).withEviction(LiveSession.Eviction.REPREFILL));
            int evicted = 0;
            for (List<Frame> g : groups(dir)) evicted += w.appendBlocking(g).evictedItems();
            assertEquals(1, evicted);
            assertEquals(G - 1, w.window().groups());
            assertEquals(Math.round(0.5e9), w.window().startPts());
            float[] windowed = w.questionLogits(Q).block();
            // from scratch: the sink, groups 1..G-1 and the question, each at its position in the one-shot prompt
            int[] keepIdx = concat(range(0, prefix.length), range(prefix.length + per, prefix.length + G * per), range(prefix.length + G * per, all.length));
            int[] toks = new int[keepIdx.length];
            int[][] pos = new int[3][keepIdx.length];
            for (int i = 0; i < keepIdx.length; i++) {
                toks[i] = all[keepIdx[i]];
                for (int a = 0; a < 3; a++) pos[a][i] = mp.positions()[a][keepIdx[i]];
            }
            List<EmbeddingSpan> spans = new ArrayList<>();
            for (int i = 1; i < G; i++)
                spans.add(new EmbeddingSpan(prefix.length + (i - 1) * per, per, H, new SpanRows.Host(rows.get(i)), 1, grid[0], grid[1], i, 0));
            float[] retained = lastLogits(rt, toks, spans, pos);
            assertClose(retained, windowed, 1e-4, model + " after eviction vs retained prefill");
            // and it is not the same as the full window (the eviction mattered)
            double diff = 0;
            for (int i = 0; i < live.length; i++) diff = Math.max(diff, Math.abs(live[i] - windowed[i]));
            assertTrue(diff > 1e-3, "evicting a group should change the logits, max |Δ| " + diff);
            w.close();

            // 3. SLIDE: the evicted positions are cut out of the cache; equals a reference cache built position by
            // position (sink, every group at its one-shot positions) with group 0's rows removed before the question
            LiveSession sl = LiveSession.open(rt, o.withWindow(Duration.ofSeconds(1)));
            for (List<Frame> g : groups(dir)) sl.appendBlocking(g);
            float[] slid = sl.questionLogits(Q).block();
            KvCache ref = rt.decoder().newCache(all.length + 1);
            try {
                rt.decoder().forward(ref, new ForwardInput(prefix, List.of(), slice(mp.positions(), 0, prefix.length)), false);
                for (int i = 0; i < G; i++) {
                    int from = prefix.length + i * per;
                    if (i == 2) ref.evict(prefix.length, per);   // group 0 (ends 0.5 s) leaves before group 2 (ends 1.5 s) is appended
                    int[] gp = new int[per];
                    Arrays.fill(gp, s.videoPadToken());
                    rt.decoder().forward(ref, new ForwardInput(gp, List.of(new EmbeddingSpan(0, per, H, new SpanRows.Host(rows.get(i)), 1, grid[0], grid[1], i, 0)),
                            slice(mp.positions(), from, from + per)), false);
                }
                float[] want = rt.decoder().forward(ref, new ForwardInput(q, List.of(), slice(mp.positions(), prefix.length + G * per, all.length)), false);
                assertClose(want, slid, 1e-4, model + " SLIDE vs reference compaction");
            } finally {
                ref.close();
            }
            double drift = 0;
            for (int i = 0; i < slid.length; i++) drift = Math.max(drift, Math.abs(slid[i] - windowed[i]));
            System.out.println(model + ": SLIDE vs REPREFILL after one eviction, max |Δ logit| = " + drift);
            sl.close();
        }
    }

    static int[][] slice(int[][] p, int from, int to) {
        int[][] out = new int[p.length][];
        for (int a = 0; a < p.length; a++) out[a] = Arrays.copyOfRange(p[a], from, to);
        return out;
    }

    static int[] range(int from, int to) {
        int[] r = new int[to - from];
        for (int i = 0; i < r.length; i++) r[i] = from + i;
        return r;
    }

    @Test void aDecodedAnswerMatchesTheReferenceAndCancelRollsBack() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, CPU)) {
            LiveSession s = LiveSession.open(rt, LiveSession.Options.defaults().withFps(FPS).withWindow(Duration.ofSeconds(1)));
            for (List<Frame> g : groups(dir)) s.appendBlocking(g);
            int len = s.window().cacheLength();
            float[] before = s.questionLogits(Q).block();
            // cancel after 2 tokens
            List<TokenEvent> two = s.ask(Q, 20).take(2).collectList().block();
            assertEquals(2, two.size());
            assertEquals(len, s.window().cacheLength(), "a cancelled answer leaves the cache");
            assertClose(before, s.questionLogits(Q).block(), 1e-5, "after a cancelled answer");   // a larger cache copy may reorder float sums
            // keep dialogue: the turn stays and the cache grows by it
            LiveSession k = LiveSession.open(rt, LiveSession.Options.defaults().withFps(FPS).withWindow(Duration.ofSeconds(1)).withKeepDialogue(true));
            for (List<Frame> g : groups(dir)) k.appendBlocking(g);
            int l0 = k.window().cacheLength();
            List<TokenEvent> ans = k.ask(Q, 4).collectList().block();
            assertTrue(k.window().cacheLength() > l0 + s.questionTokens(Q).length, "the kept turn stays in the cache");
            assertTrue(ans.getLast().isLast());
            k.close();
            s.close();
        }
    }

    @Test void appendOwnsItsFramesAndRefusesBadGroups() {
        Path dir = Fixtures.dir("tiny-qwen2vl-video");
        try (VlmRuntime rt = VlmRuntime.load(dir, CPU)) {
            LiveSession s = LiveSession.open(rt, LiveSession.Options.defaults().withFps(FPS));
            List<Frame> three = List.of(frame(dir, 0), frame(dir, 1), frame(dir, 2));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.appendBlocking(three));
            assertTrue(e.getMessage().contains("1 to 2 frames"), e.getMessage());
            assertTrue(three.stream().allMatch(Frame::isReleased), "refused frames are closed");
            s.close();
            assertThrows(IllegalStateException.class, () -> s.appendBlocking(List.of(frame(dir, 0))));
        }
        try (VlmRuntime text = VlmRuntime.load(Fixtures.dir("tiny-qwen2"), CPU)) {
            assertThrows(IllegalArgumentException.class, () -> LiveSession.open(text, LiveSession.Options.defaults()));
        }
    }
}
