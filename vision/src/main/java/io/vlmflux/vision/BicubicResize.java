package io.vlmflux.vision;

import java.util.stream.IntStream;

/**
 * Antialiased bicubic resize of 8-bit interleaved images, a port of what PyTorch runs for torchvision's
 * {@code F.resize(uint8_tensor, size, BICUBIC, antialias=True)} ({@code _upsample_bicubic2d_aa}, uint8 path of
 * {@code aten/src/ATen/native/cpu/UpSampleKernel.cpp} and {@code UpSampleKernelAVXAntialias.h}).
 *
 * <p>Per axis: the Keys cubic kernel (a = -0.5) is stretched by the scale when downscaling, weights are computed in
 * double and normalised to sum 1 per output sample, then converted to int16 fixed point with the largest precision
 * (bits) at which the axis's largest weight still fits ({@code _compute_index_ranges_int16_weights}). Each output
 * sample is {@code clamp((2^(p-1) + sum w*x) >> p, 0, 255)}. The horizontal pass runs first into a uint8 buffer,
 * then the vertical pass; an axis whose size does not change is not resampled. This reproduces torch's output
 * bit for bit, which PIL's resize (different rounding of the weights) does not.
 */
final class BicubicResize {
    private BicubicResize() {}

    /** One axis of the resample: per output index the first input index, the tap count and int16 weights. */
    record Axis(int[] first, int[] count, int[] weights, int taps, int precision) {}

    static double cubic(double x) {
        final double a = -0.5;
        x = Math.abs(x);
        if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
        return 0.0;
    }

    static Axis axis(int inSize, int outSize) {
        double scale = (double) inSize / outSize; // area_pixel_compute_scale, align_corners=false, no scale factor
        double support = scale >= 1.0 ? 2.0 * scale : 2.0; // interp_size 4 * 0.5
        int taps = (int) Math.ceil(support) * 2 + 1;
        double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
        int[] first = new int[outSize], count = new int[outSize];
        double[] w = new double[outSize * taps];
        double wtMax = 0.0;
        for (int i = 0; i < outSize; i++) {
            double center = scale * (i + 0.5);
            long xmin = Math.max((long) (center - support + 0.5), 0L); // C++ cast truncates toward zero
            long xsize = Math.min((long) (center + support + 0.5), inSize) - xmin;
            xsize = Math.clamp(xsize, 0, taps);
            double total = 0.0;
            for (int j = 0; j < xsize; j++) {
                double v = cubic(((double) (j + xmin) - center + 0.5) * invscale);
                w[i * taps + j] = v;
                total += v;
            }
            if (total != 0.0) {
                for (int j = 0; j < xsize; j++) {
                    w[i * taps + j] /= total;
                    wtMax = Math.max(wtMax, w[i * taps + j]);
                }
            }
            first[i] = (int) xmin;
            count[i] = (int) xsize;
        }
        int precision;
        for (precision = 0; precision < 22; precision++) {
            int next = (int) (0.5 + wtMax * (1 << (precision + 1)));
            if (next >= (1 << 15)) break;
        }
        int[] q = new int[w.length];
        for (int k = 0; k < w.length; k++) {
            double v = w[k] * (1 << precision);
            q[k] = (short) (v < 0 ? (int) (-0.5 + v) : (int) (0.5 + v)); // stored as int16 in torch
        }
        return new Axis(first, count, q, taps, precision);
    }

    /**
     * Resizes an interleaved image of {@code channels} bytes per pixel (rows tightly packed) to {@code outW x outH}.
     */
    static byte[] resize(byte[] src, int inW, int inH, int channels, int outW, int outH) {
        if (src.length < (long) inW * inH * channels)
            throw new IllegalArgumentException("image buffer of " + src.length + " bytes is smaller than " + inW + "x" + inH + "x" + channels);
        if (outW <= 0 || outH <= 0) throw new IllegalArgumentException("output size must be positive, got " + outW + "x" + outH);
        byte[] cur = src;
        if (outW != inW) {
            Axis ax = axis(inW, outW);
            byte[] dst = new byte[outW * inH * channels];
            final byte[] in = cur;
            IntStream.range(0, inH).parallel().forEach(y -> horizontalRow(in, dst, y, inW, outW, channels, ax));
            cur = dst;
        }
        if (outH != inH) {
            Axis ax = axis(inH, outH);
            byte[] dst = new byte[outW * outH * channels];
            final byte[] in = cur;
            IntStream.range(0, outH).parallel().forEach(y -> verticalRow(in, dst, y, outW, channels, ax));
            cur = dst;
        }
        return cur == src ? src.clone() : cur;
    }

    private static void horizontalRow(byte[] in, byte[] out, int y, int inW, int outW, int ch, Axis ax) {
        int rowIn = y * inW * ch, rowOut = y * outW * ch;
        int round = 1 << (ax.precision - 1), p = ax.precision;
        int[] w = ax.weights;
        for (int x = 0; x < outW; x++) {
            int f = ax.first[x], n = ax.count[x], wo = x * ax.taps;
            for (int c = 0; c < ch; c++) {
                int acc = round;
                int s = rowIn + f * ch + c;
                for (int j = 0; j < n; j++, s += ch) acc += (in[s] & 0xFF) * w[wo + j];
                out[rowOut + x * ch + c] = clamp8(acc >> p);
            }
        }
    }

    private static void verticalRow(byte[] in, byte[] out, int y, int w, int ch, Axis ax) {
        int rowLen = w * ch;
        int round = 1 << (ax.precision - 1), p = ax.precision;
        int f = ax.first[y], n = ax.count[y], wo = y * ax.taps;
        int[] acc = new int[rowLen];
        java.util.Arrays.fill(acc, round);
        for (int j = 0; j < n; j++) {
            int k = ax.weights[wo + j];
            int s = (f + j) * rowLen;
            for (int i = 0; i < rowLen; i++) acc[i] += (in[s + i] & 0xFF) * k;
        }
        int o = y * rowLen;
        for (int i = 0; i < rowLen; i++) out[o + i] = clamp8(acc[i] >> p);
    }

    private static byte clamp8(int v) {
        return (byte) (v < 0 ? 0 : Math.min(v, 255));
    }
}
