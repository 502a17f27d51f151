package io.vlmflux.sources;

/**
 * Pixel layouts a {@link Frame} can carry. Packed formats have one plane; planar YUV formats have the
 * chroma planes subsampled 2x2 (rounded up for odd sizes, as GStreamer does).
 */
public enum PixelFormat {
    RGB(1, 3), BGR(1, 3), RGBA(1, 4), BGRA(1, 4), GRAY8(1, 1),
    /** Y plane, then one interleaved UV plane at half resolution. */
    NV12(2, 1),
    /** Y plane, U plane, V plane; U and V at half resolution. */
    I420(3, 1);

    private final int planes;
    private final int bytesPerPixel; // of plane 0

    PixelFormat(int planes, int bytesPerPixel) {
        this.planes = planes;
        this.bytesPerPixel = bytesPerPixel;
    }

    public int planeCount() { return planes; }

    /** Bytes per pixel of plane 0 (packed formats: of the whole pixel). */
    public int bytesPerPixel() { return bytesPerPixel; }

    public boolean isPacked() { return planes == 1; }

    /** Smallest row length in bytes of {@code plane} for an image {@code width} pixels wide. */
    public int minStride(int plane, int width) {
        checkPlane(plane);
        if (plane == 0) return width * bytesPerPixel;
        int cw = (width + 1) / 2;
        return this == NV12 ? cw * 2 : cw;
    }

    /** Rows in {@code plane} for an image {@code height} pixels high. */
    public int planeHeight(int plane, int height) {
        checkPlane(plane);
        return plane == 0 ? height : (height + 1) / 2;
    }

    /** The GStreamer caps name of this format ({@code video/x-raw,format=...}). */
    public String gstName() { return name(); }

    /** Parses a GStreamer caps format name; throws naming the value when it is not supported. */
    public static PixelFormat fromGstName(String name) {
        for (PixelFormat f : values()) if (f.gstName().equalsIgnoreCase(name)) return f;
        throw new IllegalArgumentException("unsupported pixel format '" + name + "' (supported: RGB, BGR, RGBA, BGRA, GRAY8, NV12, I420)");
    }

    private void checkPlane(int plane) {
        if (plane < 0 || plane >= planes) throw new IndexOutOfBoundsException("plane " + plane + " of " + this);
    }
}
