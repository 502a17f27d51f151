package io.vlmflux.vision.qwen2vl;

import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.Images;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** The demo model on a 320x240 camera-sized frame: 54 tokens; prints preprocessing and encode times. */
class ShapesVlTimingTest {
    @Test
    void encode320x240Frame() throws Exception {
        Path dir = Fixtures.root().resolve("demos/models/shapes-vl");
        ImageProcessor proc = ImageProcessor.load(dir);
        byte[] rgb = new byte[320 * 240 * 3];
        for (int y = 0; y < 240; y++)
            for (int x = 0; x < 320; x++) {
                int o = (y * 320 + x) * 3;
                boolean in = (x - 200) * (x - 200) + (y - 160) * (y - 160) < 900;
                rgb[o] = rgb[o + 1] = rgb[o + 2] = (byte) (in ? 255 : 0);
            }
        try (VisionEncoder enc = VisionEncoders.load(dir); Frame f = Images.fromRgb(rgb, 320, 240)) {
            PixelValues pv = proc.process(f);
            assertArrayEquals(new int[]{1, 12, 18}, new int[]{pv.gridT(), pv.gridH(), pv.gridW()});
            ImageEmbeddings first = enc.encode(pv);
            assertEquals(54, first.tokens());
            assertEquals(256, first.hidden());
            for (float v : first.data()) assertTrue(Float.isFinite(v));
            int warm = 20, runs = 50;
            for (int i = 0; i < warm; i++) enc.encode(proc.process(f));
            // the reference for "same frame, same embeddings" is taken after the warm-up: before it the Vector API code
            // may still run interpreted or at C1, whose lane reductions may round differently from C2's (1 ulp seen)
            float[] steady = enc.encode(proc.process(f)).data();
            long[] pre = new long[runs], encT = new long[runs];
            for (int i = 0; i < runs; i++) {
                long t0 = System.nanoTime();
                PixelValues p = proc.process(f);
                long t1 = System.nanoTime();
                ImageEmbeddings e = enc.encode(p);
                long t2 = System.nanoTime();
                pre[i] = t1 - t0;
                encT[i] = t2 - t1;
                assertArrayEquals(steady, e.data());
            }
            Arrays.sort(pre);
            Arrays.sort(encT);
            System.out.printf("shapes-vl 320x240 -> 54 tokens, %d threads: preprocess median %.2f ms (p90 %.2f), encode median %.2f ms (p90 %.2f)%n",
                    io.vlmflux.cuda.cpu.Parallel.threads(), pre[runs / 2] / 1e6, pre[runs * 9 / 10] / 1e6, encT[runs / 2] / 1e6, encT[runs * 9 / 10] / 1e6);
        }
    }
}
