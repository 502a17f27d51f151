package io.vlmflux.vision;

/**
 * transformers' {@code smart_resize} for Qwen2-VL: both sides become multiples of {@code factor}, the pixel count
 * lands within {@code [minPixels, maxPixels]} and the aspect ratio is kept as closely as possible. The arithmetic
 * follows Python's exactly (banker's rounding, then floor/ceil of the side divided/multiplied by sqrt(beta)), because
 * one step of difference changes the patch grid and with it the number of image tokens.
 */
public final class SmartResize {
    private SmartResize() {}

    /** Returns {@code {height, width}} after resize. */
    public static int[] resize(int height, int width, int factor, long minPixels, long maxPixels) {
        if (height <= 0 || width <= 0) throw new IllegalArgumentException("image size must be positive, got " + width + "x" + height);
        if (factor <= 0) throw new IllegalArgumentException("factor must be positive, got " + factor);
        if ((double) Math.max(height, width) / Math.min(height, width) > 200)
            throw new IllegalArgumentException("absolute aspect ratio must be smaller than 200, got " + width + "x" + height);
        long hBar = (long) Math.rint((double) height / factor) * factor; // Python round(): half to even
        long wBar = (long) Math.rint((double) width / factor) * factor;
        if (hBar * wBar > maxPixels) {
            double beta = Math.sqrt((double) height * width / maxPixels);
            hBar = Math.max(factor, (long) Math.floor(height / beta / factor) * factor);
            wBar = Math.max(factor, (long) Math.floor(width / beta / factor) * factor);
        } else if (hBar * wBar < minPixels) {
            double beta = Math.sqrt((double) minPixels / ((double) height * width));
            hBar = (long) Math.ceil(height * beta / factor) * factor;
            wBar = (long) Math.ceil(width * beta / factor) * factor;
        }
        if (hBar > Integer.MAX_VALUE / 4 || wBar > Integer.MAX_VALUE / 4)
            throw new IllegalArgumentException("resized size " + wBar + "x" + hBar + " of a " + width + "x" + height + " image is too large");
        return new int[]{(int) hBar, (int) wBar};
    }

    /**
     * transformers' Qwen3-VL video {@code smart_resize}: as {@link #resize} but the pixel bounds apply to the whole
     * clip, {@code ceil(frames / temporalFactor) * temporalFactor * h * w} (the scale then uses {@code frames * h * w}),
     * and sides below {@code factor} are refused. Returns {@code {height, width}}.
     */
    public static int[] resizeVideo(int frames, int height, int width, int temporalFactor, int factor, long minPixels, long maxPixels) {
        if (frames <= 0 || temporalFactor <= 0) throw new IllegalArgumentException("frames and temporal factor must be positive, got " + frames + ", " + temporalFactor);
        if (height <= 0 || width <= 0) throw new IllegalArgumentException("video frame size must be positive, got " + width + "x" + height);
        if (factor <= 0) throw new IllegalArgumentException("factor must be positive, got " + factor);
        if (height < factor || width < factor)
            throw new IllegalArgumentException("video frame " + width + "x" + height + " is smaller than patch_size*merge_size = " + factor + " on a side");
        if ((double) Math.max(height, width) / Math.min(height, width) > 200)
            throw new IllegalArgumentException("absolute aspect ratio must be smaller than 200, got " + width + "x" + height);
        long hBar = (long) Math.rint((double) height / factor) * factor;
        long wBar = (long) Math.rint((double) width / factor) * factor;
        long tBar = (long) Math.ceilDiv(frames, temporalFactor) * temporalFactor;
        double clip = (double) frames * height * width;
        if ((double) tBar * hBar * wBar > maxPixels) {
            double beta = Math.sqrt(clip / maxPixels);
            hBar = Math.max(factor, (long) Math.floor(height / beta / factor) * factor);
            wBar = Math.max(factor, (long) Math.floor(width / beta / factor) * factor);
        } else if ((double) tBar * hBar * wBar < minPixels) {
            double beta = Math.sqrt(minPixels / clip);
            hBar = (long) Math.ceil(height * beta / factor) * factor;
            wBar = (long) Math.ceil(width * beta / factor) * factor;
        }
        if (hBar > Integer.MAX_VALUE / 4 || wBar > Integer.MAX_VALUE / 4)
            throw new IllegalArgumentException("resized size " + wBar + "x" + hBar + " of a " + width + "x" + height + " video is too large");
        return new int[]{(int) hBar, (int) wBar};
    }
}
