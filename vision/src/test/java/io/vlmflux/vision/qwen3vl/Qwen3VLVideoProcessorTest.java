package io.vlmflux.vision.qwen3vl;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.Images;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.SmartResize;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Qwen3-VL video preprocessing against transformers 5.17's Qwen3VLVideoProcessor goldens of tiny-qwen3vl. */
class Qwen3VLVideoProcessorTest {
    @TempDir Path tmp;

    @Test
    void clipPixelValuesMatchGolden() throws Exception {
        Path dir = Fixtures.fixture("tiny-qwen3vl");
        Qwen3VLVideoProcessor proc = Qwen3VLVideoProcessor.load(dir);
        assertEquals(4096, proc.minPixels());
        assertEquals(32768, proc.maxPixels());
        assertEquals(16, proc.config().patchSize());
        JsonNode videos = Fixtures.golden("tiny-qwen3vl").get("videos");
        assertEquals(2, videos.size());
        try (VisionEncoder enc = VisionEncoders.load(dir)) {
            for (int v = 0; v < videos.size(); v++) {
                JsonNode video = videos.get(v);
                List<Frame> frames = new ArrayList<>();
                PixelValues pv;
                try {
                    for (int k = 0; k < video.get("frames").asInt(); k++)
                        frames.add(Images.read(dir.resolve(video.get("dir").asText()).resolve("frame_%03d.png".formatted(k))));
                    assertEquals(video.get("size_wh").get(0).asInt(), frames.getFirst().width());
                    pv = proc.process(frames);
                    JsonNode g = video.get("grid_thw");
                    int[] want = {g.get(0).asInt(), g.get(1).asInt(), g.get(2).asInt()};
                    assertArrayEquals(want, new int[]{pv.gridT(), pv.gridH(), pv.gridW()}, "grid of video " + v);
                    assertArrayEquals(want, proc.grid(frames.size(), frames.getFirst().width(), frames.getFirst().height()));
                } finally {
                    for (Frame f : frames) f.close();
                }
                int[][] shape = new int[1][];
                float[] gold = Fixtures.readF32(dir.resolve("golden.safetensors"), "video" + v + ".pixel_values", shape);
                assertEquals(shape[0][0], pv.numPatches());
                double max = 0;
                for (int i = 0; i < gold.length; i++) max = Math.max(max, Math.abs(gold[i] - pv.data()[i]));
                System.out.printf("qwen3vl video%d grid %dx%dx%d: pixel max |d| %.3e%n", v, pv.gridT(), pv.gridH(), pv.gridW(), max);
                assertEquals(0.0, max, "pixel values of video " + v);
                ImageEmbeddings e = enc.encode(pv);
                float[] emb = Fixtures.readF32(dir.resolve("golden.safetensors"), "video" + v + ".embeds", shape);
                double d = 0, scale = 0;
                for (int i = 0; i < emb.length; i++) { d = Math.max(d, Math.abs(emb[i] - e.data()[i])); scale = Math.max(scale, Math.abs(emb[i])); }
                assertTrue(d / scale <= 1e-3, "video " + v + " embeddings rel err " + d / scale);
            }
        }
    }

    @Test
    void videoResizeFollowsPython() {
        // values from transformers' qwen3_vl video smart_resize (python: round half to even, floor/ceil)
        assertArrayEquals(new int[]{64, 96}, SmartResize.resizeVideo(4, 96, 128, 2, 32, 4096, 32768));
        assertArrayEquals(new int[]{32, 64}, SmartResize.resizeVideo(7, 112, 200, 2, 32, 4096, 32768));
        assertArrayEquals(new int[]{64, 128}, SmartResize.resizeVideo(2, 80, 112, 2, 32, 4096, 1 << 20));   // 2.5 -> 2, 3.5 -> 4
        assertArrayEquals(new int[]{224, 224}, SmartResize.resizeVideo(1, 40, 40, 2, 32, 50000, 1 << 20));   // clip below the minimum
        var e = assertThrows(IllegalArgumentException.class, () -> SmartResize.resizeVideo(4, 20, 64, 2, 32, 4096, 32768));
        assertTrue(e.getMessage().contains("20"), e.getMessage());
    }

    @Test
    void badVideoConfigNamesFileAndField() throws Exception {
        Path d = tmp.resolve("m");
        Files.createDirectories(d);
        var missing = assertThrows(IllegalArgumentException.class, () -> Qwen3VLVideoProcessor.load(d));
        assertTrue(missing.getMessage().contains("video_preprocessor_config.json"), missing.getMessage());
        Files.writeString(d.resolve("video_preprocessor_config.json"), "{\"size\": {\"shortest_edge\": 4096, \"longest_edge\": -1}}");
        var bad = assertThrows(IllegalArgumentException.class, () -> Qwen3VLVideoProcessor.load(d));
        assertTrue(bad.getMessage().contains("video_preprocessor_config.json") && bad.getMessage().contains("longest_edge"), bad.getMessage());
        Files.writeString(d.resolve("video_preprocessor_config.json"), "{\"patch_size\": \"16\"}");
        var bad2 = assertThrows(IllegalArgumentException.class, () -> Qwen3VLVideoProcessor.load(d));
        assertTrue(bad2.getMessage().contains("patch_size"), bad2.getMessage());
        // defaults are Qwen3VLVideoProcessor's, with the published file's larger clip bound accepted
        Files.writeString(d.resolve("video_preprocessor_config.json"), "{\"size\": {\"longest_edge\": 25165824, \"shortest_edge\": 4096}}");
        Qwen3VLVideoProcessor p = Qwen3VLVideoProcessor.load(d);
        assertEquals(16, p.config().patchSize());
        assertEquals(0.5, p.config().imageMean()[0]);
        assertEquals(25165824, p.maxPixels());
        assertArrayEquals(new int[]{8, 58, 104}, p.grid(16, 1920, 1080));   // clip bound: 928x1664 per frame
    }
}
