package io.vlmflux.vision;

import io.vlmflux.sources.Frame;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Qwen2-VL / Qwen2.5-VL image preprocessing on the CPU, as transformers 5.17's {@code Qwen2VLImageProcessor}
 * (torchvision backend) does it: convert to RGB, smart-resize to multiples of {@code patch * merge} within the
 * pixel bounds with torch's antialiased uint8 bicubic, rescale and normalise in float32 (mean and std fused with
 * the rescale factor, as the processor does), repeat the last frame up to a multiple of {@code temporal_patch_size},
 * and flatten into patches in merge-window order.
 *
 * <p>Immutable and thread-safe; frames passed in are read, never closed (the caller owns them).
 */
public final class ImageProcessor {
    private static final System.Logger LOG = System.getLogger("vlmflux.vision");
    private final PreprocessorConfig config;
    private final float[][] lut; // [channel][uint8 value] -> normalised float

    public ImageProcessor(PreprocessorConfig config) {
        this.config = Objects.requireNonNull(config, "config");
        this.lut = buildLut(config);
    }

    /** Loads {@code preprocessor_config.json} from a model folder. */
    public static ImageProcessor load(Path modelDir) {
        PreprocessorConfig c = PreprocessorConfig.load(modelDir);
        LOG.log(System.Logger.Level.DEBUG, () -> "image processor for " + modelDir + ": " + c);
        return new ImageProcessor(c);
    }

    public PreprocessorConfig config() { return config; }

    /** Size {@code {height, width}} that an image of this size is resized to. */
    public int[] resizedSize(int width, int height) {
        if (!config.doResize()) return new int[]{height, width};
        return SmartResize.resize(height, width, config.factor(), config.minPixels(), config.maxPixels());
    }

    /** Patch grid {@code {t, h, w}} of a still image of this size. */
    public int[] grid(int width, int height) {
        int[] hw = resizedSize(width, height);
        return new int[]{1, hw[0] / config.patchSize(), hw[1] / config.patchSize()};
    }

    /** Image tokens (after merging) of a still image of this size. */
    public int numImageTokens(int width, int height) {
        int[] g = grid(width, height);
        return g[0] * g[1] * g[2] / (config.mergeSize() * config.mergeSize());
    }

    /** Preprocesses one still image. */
    public PixelValues process(Frame frame) {
        Objects.requireNonNull(frame, "frame");
        return processRgb(List.of(Images.toRgb(frame)), frame.width(), frame.height());
    }

    /**
     * Preprocesses consecutive frames of one clip as a video: {@code grid_t = ceil(n / temporal_patch_size)}, the
     * last frame repeated to fill the final temporal patch. All frames must have the first frame's size; the size
     * bounds of the image config apply.
     */
    public PixelValues process(List<Frame> frames) {
        if (frames == null || frames.isEmpty()) throw new IllegalArgumentException("no frames to preprocess");
        Frame first = frames.getFirst();
        for (int i = 1; i < frames.size(); i++) {
            Frame f = frames.get(i);
            if (f.width() != first.width() || f.height() != first.height())
                throw new IllegalArgumentException("frame " + i + " of the clip is " + f.width() + "x" + f.height()
                        + ", frame 0 is " + first.width() + "x" + first.height() + ": all frames of a clip must have one size");
        }
        return processRgb(frames.stream().map(Images::toRgb).toList(), first.width(), first.height());
    }

    /**
     * Preprocesses consecutive frames of one clip resized to {@code resizedHeight x resizedWidth} instead of this
     * processor's smart-resize size: for video processors whose size rule differs (Qwen3-VL's counts the frames),
     * everything else (resampling, normalisation, temporal padding, patch order) as {@link #process(List)}.
     */
    public PixelValues process(List<Frame> frames, int resizedHeight, int resizedWidth) {
        if (frames == null || frames.isEmpty()) throw new IllegalArgumentException("no frames to preprocess");
        int f = config.factor();
        if (resizedHeight <= 0 || resizedWidth <= 0 || resizedHeight % f != 0 || resizedWidth % f != 0)
            throw new IllegalArgumentException("resized size " + resizedWidth + "x" + resizedHeight + " must be positive multiples of patch_size*merge_size = " + f);
        Frame first = frames.getFirst();
        for (int i = 1; i < frames.size(); i++) {
            Frame fr = frames.get(i);
            if (fr.width() != first.width() || fr.height() != first.height())
                throw new IllegalArgumentException("frame " + i + " of the clip is " + fr.width() + "x" + fr.height()
                        + ", frame 0 is " + first.width() + "x" + first.height() + ": all frames of a clip must have one size");
        }
        return processRgb(frames.stream().map(Images::toRgb).toList(), first.width(), first.height(), new int[]{resizedHeight, resizedWidth});
    }

    /** Preprocesses packed RGB images (all {@code width x height}) as temporal frames of one input. */
    PixelValues processRgb(List<byte[]> rgbFrames, int width, int height) {
        return processRgb(rgbFrames, width, height, resizedSize(width, height));
    }

    private PixelValues processRgb(List<byte[]> rgbFrames, int width, int height, int[] hw) {
        int p = config.patchSize(), m = config.mergeSize(), tps = config.temporalPatchSize();
        int rh = hw[0], rw = hw[1];
        if (rh % (p * m) != 0 || rw % (p * m) != 0)
            throw new IllegalArgumentException("with do_resize=false the image size " + width + "x" + height
                    + " must be a multiple of patch_size*merge_size = " + p * m);
        int n = rgbFrames.size();
        byte[][] resized = new byte[n][];
        for (int i = 0; i < n; i++) {
            byte[] src = rgbFrames.get(i);
            resized[i] = (rh == height && rw == width) ? src : BicubicResize.resize(src, width, height, 3, rw, rh);
        }
        int gridT = (n + tps - 1) / tps, gridH = rh / p, gridW = rw / p;
        int patchDim = 3 * tps * p * p;
        float[] out = new float[gridT * gridH * gridW * patchDim];
        int row = 0;
        for (int t = 0; t < gridT; t++)
            for (int bh = 0; bh < gridH / m; bh++)
                for (int bw = 0; bw < gridW / m; bw++)
                    for (int mh = 0; mh < m; mh++)
                        for (int mw = 0; mw < m; mw++, row++) {
                            int o = row * patchDim;
                            int y0 = (bh * m + mh) * p, x0 = (bw * m + mw) * p;
                            for (int c = 0; c < 3; c++) {
                                float[] l = lut[c];
                                for (int tt = 0; tt < tps; tt++) {
                                    byte[] img = resized[Math.min(t * tps + tt, n - 1)];
                                    for (int py = 0; py < p; py++) {
                                        int s = ((y0 + py) * rw + x0) * 3 + c;
                                        for (int px = 0; px < p; px++, s += 3) out[o++] = l[img[s] & 0xFF];
                                    }
                                }
                            }
                        }
        return PixelValues.of(out, patchDim, gridT, gridH, gridW);
    }

    /**
     * Every uint8 value's normalised float, computed as the processor does in float32: with rescale and normalise
     * both on, mean and std are first multiplied by {@code 1/rescale_factor} and the pixel becomes
     * {@code (x - mean') / std'}.
     */
    private static float[][] buildLut(PreprocessorConfig c) {
        float[][] lut = new float[3][256];
        double[] mean = c.imageMean(), std = c.imageStd();
        for (int ch = 0; ch < 3; ch++) {
            if (c.doRescale() && c.doNormalize()) {
                float inv = (float) (1.0 / c.rescaleFactor());
                float mm = (float) mean[ch] * inv, ss = (float) std[ch] * inv;
                for (int v = 0; v < 256; v++) lut[ch][v] = ((float) v - mm) / ss;
            } else if (c.doRescale()) {
                float r = (float) c.rescaleFactor();
                for (int v = 0; v < 256; v++) lut[ch][v] = (float) v * r;
            } else if (c.doNormalize()) {
                float mm = (float) mean[ch], ss = (float) std[ch];
                for (int v = 0; v < 256; v++) lut[ch][v] = ((float) v - mm) / ss;
            } else {
                for (int v = 0; v < 256; v++) lut[ch][v] = v;
            }
        }
        return lut;
    }
}
