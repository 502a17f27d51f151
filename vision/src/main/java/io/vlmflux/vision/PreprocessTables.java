package io.vlmflux.vision;

/**
 * The tables behind the CPU preprocessing, for other backends that must reproduce it exactly (the GPU
 * preprocessing in {@code io.vlmflux.vision.cuda}): the fixed-point antialiased bicubic axes of
 * {@link BicubicResize}, the YUV matrix of {@link Images}, and the per-channel uint8 to float normalisation of
 * {@link ImageProcessor}. Pure functions of their arguments.
 */
public final class PreprocessTables {
    private PreprocessTables() {}

    /**
     * One resample axis: for output index i, input samples {@code first[i] .. first[i] + count[i] - 1} weighted by
     * {@code weights[i * taps + j]} (int16 values), the sum rounded and shifted right by {@code precision}.
     */
    public record Axis(int[] first, int[] count, int[] weights, int taps, int precision) {}

    /** The axis that resizes {@code inSize} samples to {@code outSize} (torch's uint8 antialiased bicubic). */
    public static Axis bicubicAxis(int inSize, int outSize) {
        if (inSize <= 0 || outSize <= 0) throw new IllegalArgumentException("axis sizes must be positive, got " + inSize + " -> " + outSize);
        BicubicResize.Axis a = BicubicResize.axis(inSize, outSize);
        return new Axis(a.first(), a.count(), a.weights(), a.taps(), a.precision());
    }

    /**
     * The YUV to RGB matrix used for a frame of this colorimetry and height:
     * {@code {ys, y0, rv, gu, gv, bu}} with {@code R = ys*(Y-y0) + rv*(V-128)}, {@code G = ys*(Y-y0) + gu*(U-128)
     * + gv*(V-128)}, {@code B = ys*(Y-y0) + bu*(U-128)}, each evaluated in double left to right and rounded half up.
     */
    public static double[] yuvMatrix(String colorimetry, int height) {
        Images.YuvMatrix m = Images.matrixFor(colorimetry, height);
        return new double[] {m.ys(), m.y0(), m.rv(), m.gu(), m.gv(), m.bu()};
    }

    /** {@code [3 * 256]}: channel c's normalised float for uint8 value v at {@code c * 256 + v}, as the processor computes it. */
    public static float[] normalizeLut(PreprocessorConfig c) {
        float[] lut = new float[3 * 256];
        double[] mean = c.imageMean(), std = c.imageStd();
        for (int ch = 0; ch < 3; ch++) {
            for (int v = 0; v < 256; v++) {
                float r;
                if (c.doRescale() && c.doNormalize()) {
                    float inv = (float) (1.0 / c.rescaleFactor());
                    float mm = (float) mean[ch] * inv, ss = (float) std[ch] * inv;
                    r = ((float) v - mm) / ss;
                } else if (c.doRescale()) {
                    r = (float) v * (float) c.rescaleFactor();
                } else if (c.doNormalize()) {
                    r = ((float) v - (float) mean[ch]) / (float) std[ch];
                } else {
                    r = v;
                }
                lut[ch * 256 + v] = r;
            }
        }
        return lut;
    }
}
