package io.vlmflux.vision.qwen2vl;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.Images;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VideoProcessor;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Qwen2-VL / Qwen2.5-VL video preprocessing and encoding against transformers 5.17's {@code Qwen2VLVideoProcessor}
 * and vision towers ({@code tiny-qwen2vl-video}, {@code tiny-qwen25vl-video}: a 4-frame and a 7-frame clip, the odd
 * tail padded by repeating the last frame), and the group-by-group path a live session uses.
 */
class Qwen2VLVideoProcessorTest {
    @TempDir Path tmp;

    static List<Frame> frames(Path dir) throws Exception {
        List<Frame> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path f : s.filter(p -> p.toString().endsWith(".png")).sorted().toList()) out.add(Images.read(f));
        }
        return out;
    }

    static void closeAll(List<Frame> fs) { for (Frame f : fs) f.close(); }

    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"tiny-qwen2vl-video", "tiny-qwen25vl-video"})
    void clipsMatchTheGolden(String model) throws Exception {
        Path dir = Fixtures.fixture(model);
        VideoProcessor vp = VideoProcessor.loadQwen2VL(dir);
        assertEquals(VideoProcessor.SizeRule.PER_FRAME, vp.rule());
        assertEquals(3136, vp.minPixels());
        assertEquals(25088, vp.maxPixels());
        JsonNode videos = Fixtures.golden(model).get("videos");
        assertEquals(2, videos.size());
        Path gold = dir.resolve("golden.safetensors");
        try (VisionEncoder enc = VisionEncoders.load(dir)) {
            for (int v = 0; v < videos.size(); v++) {
                JsonNode video = videos.get(v);
                List<Frame> fs = frames(dir.resolve(video.get("dir").asText()));
                PixelValues pv;
                try {
                    assertEquals(video.get("frames").asInt(), fs.size());
                    pv = vp.process(fs);
                    int[] want = {video.get("grid_thw").get(0).asInt(), video.get("grid_thw").get(1).asInt(), video.get("grid_thw").get(2).asInt()};
                    assertArrayEquals(want, new int[]{pv.gridT(), pv.gridH(), pv.gridW()}, "grid of video " + v);
                    assertArrayEquals(want, vp.grid(fs.size(), fs.getFirst().width(), fs.getFirst().height()));
                    assertEquals(video.get("num_patches").asInt(), pv.numPatches());
                    if (video.has("second_per_grid_ts"))
                        assertEquals(video.get("second_per_grid_ts").get(0).asDouble(), vp.secondPerGrid(video.get("fps").asDouble()), 1e-12);
                } finally {
                    closeAll(fs);
                }
                int[][] shape = new int[1][];
                float[] px = Fixtures.readF32(gold, "video" + v + ".pixel_values", shape);
                assertArrayEquals(new int[]{pv.numPatches(), pv.patchDim()}, shape[0]);
                double max = 0, sum = 0;
                for (int i = 0; i < px.length; i++) { double d = Math.abs(px[i] - pv.data()[i]); max = Math.max(max, d); sum += d; }
                System.out.printf("%s video%d grid %dx%dx%d: pixel max |d| %.3e, mean %.3e%n", model, v, pv.gridT(), pv.gridH(), pv.gridW(), max, sum / px.length);
                assertTrue(max <= 0.03 && sum / px.length <= 0.002, "pixel values of video " + v + ": max " + max + ", mean " + sum / px.length);

                float[] emb = Fixtures.readF32(gold, "video" + v + ".embeds", shape);
                // strict: from the golden pixel values; and from our pixels
                ImageEmbeddings fromGolden = enc.encode(PixelValues.of(px, pv.patchDim(), pv.gridT(), pv.gridH(), pv.gridW()));
                ImageEmbeddings ours = enc.encode(pv);
                double d1 = maxDiff(emb, fromGolden.data()), d2 = maxDiff(emb, ours.data());
                System.out.printf("%s video%d embeddings: max |d| %.3e (golden pixels), %.3e (our pixels)%n", model, v, d1, d2);
                assertEquals(emb.length, fromGolden.data().length);
                assertTrue(d1 <= 1e-3, "embeddings of video " + v + " from golden pixels: " + d1);
                assertTrue(d2 <= 1e-3, "embeddings of video " + v + " from our pixels: " + d2);
            }
        }
    }

    /**
     * A live session preprocesses and encodes one temporal group at a time at a fixed size: the rows equal the
     * matching slice of the whole clip's (the tower attends within each temporal slice and each window of one).
     */
    @ParameterizedTest(name = "{0}") @ValueSource(strings = {"tiny-qwen2vl-video", "tiny-qwen25vl-video"})
    void groupByGroupEqualsTheWholeClip(String model) throws Exception {
        Path dir = Fixtures.fixture(model);
        VideoProcessor vp = VideoProcessor.loadQwen2VL(dir);
        List<Frame> fs = frames(dir.resolve("golden_video_1"));   // 7 frames: groups of 2, the last one padded
        try (VisionEncoder enc = VisionEncoders.load(dir)) {
            PixelValues whole = vp.process(fs);
            ImageEmbeddings all = enc.encode(whole);
            int[] hw = vp.resizedSize(fs.size(), fs.getFirst().width(), fs.getFirst().height());
            int tps = vp.config().temporalPatchSize(), per = whole.gridH() * whole.gridW(), tokens = all.tokens() / whole.gridT();
            for (int g = 0; g < whole.gridT(); g++) {
                PixelValues one = vp.process(fs.subList(g * tps, Math.min(fs.size(), (g + 1) * tps)), hw[0], hw[1]);
                assertArrayEquals(new int[]{1, whole.gridH(), whole.gridW()}, new int[]{one.gridT(), one.gridH(), one.gridW()});
                assertArrayEquals(Arrays.copyOfRange(whole.data(), g * per * whole.patchDim(), (g + 1) * per * whole.patchDim()), one.data(), "pixels of group " + g);
                ImageEmbeddings e = enc.encode(one);
                float[] slice = Arrays.copyOfRange(all.data(), g * tokens * all.hidden(), (g + 1) * tokens * all.hidden());
                assertTrue(maxDiff(slice, e.data()) <= 1e-5, "rows of group " + g + ": " + maxDiff(slice, e.data()));
            }
        } finally {
            closeAll(fs);
        }
    }

    @Test
    void configLayoutsDefaultsAndErrors() throws Exception {
        Path d = tmp.resolve("m");
        Files.createDirectories(d);
        var missing = assertThrows(IllegalArgumentException.class, () -> VideoProcessor.loadQwen2VL(d));
        assertTrue(missing.getMessage().contains("video_preprocessor_config.json") && missing.getMessage().contains("preprocessor_config.json"), missing.getMessage());
        // an older checkpoint: only preprocessor_config.json, min_pixels / max_pixels
        Files.writeString(d.resolve("preprocessor_config.json"), "{\"min_pixels\": 3136, \"max_pixels\": 12845056, \"image_processor_type\": \"Qwen2VLImageProcessor\"}");
        VideoProcessor fallback = VideoProcessor.loadQwen2VL(d);
        assertEquals(3136, fallback.minPixels());
        assertEquals(12845056, fallback.maxPixels());
        // per-frame rule: the frame count does not change the size (1280x720 within 12845056 per frame)
        assertArrayEquals(fallback.resizedSize(2, 1280, 720), fallback.resizedSize(64, 1280, 720));
        assertArrayEquals(new int[]{728, 1288}, fallback.resizedSize(64, 1280, 720));
        assertArrayEquals(new int[]{32, 52, 92}, fallback.grid(64, 1280, 720));
        assertEquals(32 * 26 * 46, fallback.numTokens(63, 1280, 720));   // 63 frames: the tail padded to 64
        // video_preprocessor_config.json wins; defaults are Qwen2VLVideoProcessor's
        Files.writeString(d.resolve("video_preprocessor_config.json"), "{}");
        VideoProcessor dflt = VideoProcessor.loadQwen2VL(d);
        assertEquals(VideoProcessor.QWEN2VL_MIN_PIXELS, dflt.minPixels());
        assertEquals(VideoProcessor.QWEN2VL_MAX_PIXELS, dflt.maxPixels());
        assertEquals(14, dflt.config().patchSize());
        assertEquals(1.0, dflt.secondPerGrid(2.0));
        Files.writeString(d.resolve("video_preprocessor_config.json"), "{\"size\": {\"shortest_edge\": 3136, \"longest_edge\": 1e30}}");
        var bad = assertThrows(IllegalArgumentException.class, () -> VideoProcessor.loadQwen2VL(d));
        assertTrue(bad.getMessage().contains("video_preprocessor_config.json") && bad.getMessage().contains("longest_edge"), bad.getMessage());
        Files.writeString(d.resolve("video_preprocessor_config.json"), "{\"size\": {\"shortest_edge\": 9000, \"longest_edge\": 4000}}");
        var order = assertThrows(IllegalArgumentException.class, () -> VideoProcessor.loadQwen2VL(d));
        assertTrue(order.getMessage().contains("min <= max"), order.getMessage());
        Files.writeString(d.resolve("video_preprocessor_config.json"), "{\"temporal_patch_size\": \"2\"}");
        var type = assertThrows(IllegalArgumentException.class, () -> VideoProcessor.loadQwen2VL(d));
        assertTrue(type.getMessage().contains("temporal_patch_size"), type.getMessage());
        assertThrows(IllegalArgumentException.class, () -> dflt.secondPerGrid(0));
    }

    static double maxDiff(float[] a, float[] b) {
        if (a.length != b.length) return Double.POSITIVE_INFINITY;
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }
}
