package io.vlmflux.vision;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.Raster;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Pixel conversions into the one layout preprocessing works on: packed 8-bit RGB, rows tightly packed
 * ({@code width * 3} bytes). Reads still images (PNG, JPEG, BMP, GIF through {@code javax.imageio}) into RGB
 * {@link Frame}s, and converts any {@link Frame} (RGB, BGR, RGBA, BGRA, GRAY8, NV12, I420, padded strides and
 * plane offsets honoured) to RGB.
 *
 * <p>YUV: the matrix follows {@link Frame#colorimetry()} (a GStreamer colorimetry string such as {@code bt709},
 * {@code bt601}, {@code bt2020} or {@code 2:4:7:1}); when it is absent, GStreamer's default applies (BT.601 up to
 * 576 rows, BT.709 above, BT.2020 from 2160) with limited range (Y 16-235, UV 16-240). Chroma is upsampled by
 * replication (each 2x2 block shares its U/V sample). Alpha is dropped, as PIL's {@code convert("RGB")} does.
 */
public final class Images {
    private Images() {}

    /**
     * Largest image accepted, in pixels: 67,108,864 (8192x8192; 192 MiB as RGB). Larger images are refused before
     * they are decoded (preprocessing resizes to at most {@link PreprocessorConfig#MAX_PIXELS} anyway).
     */
    public static final long MAX_PIXELS = 1L << 26;

    /** Throws naming {@code what} and the size unless {@code width x height} is positive and at most {@link #MAX_PIXELS}. */
    static void checkSize(Object what, long width, long height) {
        if (width <= 0 || height <= 0 || width * height > MAX_PIXELS)
            throw new IllegalArgumentException(what + " is " + width + "x" + height + " = " + width * height + " pixels; at most "
                    + MAX_PIXELS + " (8192x8192) are accepted");
    }

    /** Reads an image file into a new RGB frame (heap-independent memory owned by the frame, freed on close). */
    public static Frame read(Path file) {
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("image file not found: " + file);
        try (javax.imageio.stream.ImageInputStream in = ImageIO.createImageInputStream(file.toFile())) {
            return decode(in, file.toString(), MAX_PIXELS);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot decode image " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Decodes an encoded image (PNG, JPEG, BMP, GIF) held in memory into a new RGB frame; {@code what} names it in
     * errors (an upload, a request field). Bad or truncated data is an {@link IllegalArgumentException} naming it.
     */
    public static Frame decode(byte[] encoded, String what) { return decode(encoded, what, MAX_PIXELS); }

    /**
     * {@link #decode(byte[], String)} refusing, before decoding, an image of more than {@code maxPixels} (at most
     * {@link #MAX_PIXELS}): a server bounds what one small upload can make it allocate.
     */
    public static Frame decode(byte[] encoded, String what, long maxPixels) {
        if (maxPixels < 1 || maxPixels > MAX_PIXELS) throw new IllegalArgumentException("maxPixels must be in 1.." + MAX_PIXELS + ", got " + maxPixels);
        try (javax.imageio.stream.ImageInputStream in = ImageIO.createImageInputStream(new java.io.ByteArrayInputStream(encoded))) {
            return decode(in, what, maxPixels);
        } catch (IllegalArgumentException e) {
            throw e;
        } catch (IOException | RuntimeException e) {   // decoders throw unchecked exceptions on some corrupt streams
            throw new IllegalArgumentException("cannot decode image " + what + ": " + e.getMessage(), e);
        }
    }

    private static Frame decode(javax.imageio.stream.ImageInputStream in, String what, long maxPixels) throws IOException {
        var readers = in == null ? null : ImageIO.getImageReaders(in);
        if (readers == null || !readers.hasNext())
            throw new IllegalArgumentException("no image decoder for " + what + " (supported: PNG, JPEG, BMP, GIF)");
        javax.imageio.ImageReader reader = readers.next();
        BufferedImage img;
        try {
            reader.setInput(in, true, true);
            long w = reader.getWidth(0), h = reader.getHeight(0);
            checkSize("image " + what, w, h);
            if (w * h > maxPixels)
                throw new IllegalArgumentException("image " + what + " is " + w + "x" + h + " = " + w * h + " pixels; at most " + maxPixels + " are accepted here");
            img = reader.read(0);
        } finally {
            reader.dispose();
        }
        if (img == null) throw new IllegalArgumentException("no image decoder for " + what + " (supported: PNG, JPEG, BMP, GIF)");
        return fromRgb(toRgb(img), img.getWidth(), img.getHeight());
    }

    /** Copies packed RGB bytes into a new frame that owns its memory (an arena closed by {@link Frame#close()}). */
    public static Frame fromRgb(byte[] rgb, int width, int height) {
        if (rgb.length != (long) width * height * 3)
            throw new IllegalArgumentException("RGB buffer holds " + rgb.length + " bytes, a " + width + "x" + height + " image needs " + (long) width * height * 3);
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(rgb.length);
        MemorySegment.copy(rgb, 0, seg, ValueLayout.JAVA_BYTE, 0, rgb.length);
        return Frame.builder().format(PixelFormat.RGB).size(width, height).data(seg).releaser(arena::close).build();
    }

    /** Packed RGB of a decoded image. 8-bit gray and sRGB rasters are read as stored (no colour management). */
    static byte[] toRgb(BufferedImage img) {
        int w = img.getWidth(), h = img.getHeight();
        checkSize("image", w, h);
        byte[] out = new byte[w * h * 3];
        Raster r = img.getRaster();
        boolean bytes = r.getDataBuffer().getDataType() == DataBuffer.TYPE_BYTE;
        int bands = r.getNumBands();
        boolean component = img.getColorModel() instanceof ComponentColorModel;
        if (bytes && component && bands <= 2 && img.getColorModel().getColorSpace().getType() == java.awt.color.ColorSpace.TYPE_GRAY) {
            int[] row = new int[w * bands];
            for (int y = 0; y < h; y++) {
                r.getPixels(0, y, w, 1, row);
                for (int x = 0; x < w; x++) {
                    byte g = (byte) row[x * bands];
                    int o = (y * w + x) * 3;
                    out[o] = g; out[o + 1] = g; out[o + 2] = g;
                }
            }
            return out;
        }
        if (bytes && component && bands >= 3 && img.getColorModel().getColorSpace().isCS_sRGB()) {
            int[] row = new int[w * bands];
            for (int y = 0; y < h; y++) {
                r.getPixels(0, y, w, 1, row); // bands in colour-model order: R, G, B[, A]
                for (int x = 0; x < w; x++) {
                    int o = (y * w + x) * 3, i = x * bands;
                    out[o] = (byte) row[i]; out[o + 1] = (byte) row[i + 1]; out[o + 2] = (byte) row[i + 2];
                }
            }
            return out;
        }
        // Packed int, indexed (palette) and anything else: the colour model maps to sRGB ARGB.
        int[] argb = img.getRGB(0, 0, w, h, null, 0, w);
        for (int i = 0; i < argb.length; i++) {
            int v = argb[i];
            out[i * 3] = (byte) (v >> 16); out[i * 3 + 1] = (byte) (v >> 8); out[i * 3 + 2] = (byte) v;
        }
        return out;
    }

    /** Converts any frame to packed RGB ({@code width * height * 3} bytes). */
    public static byte[] toRgb(Frame frame) {
        int w = frame.width(), h = frame.height();
        checkSize("frame", w, h);
        byte[] out = new byte[w * h * 3];
        MemorySegment d = frame.data();
        switch (frame.format()) {
            case RGB, BGR, RGBA, BGRA -> {
                int bpp = frame.format().bytesPerPixel();
                boolean bgr = frame.format() == PixelFormat.BGR || frame.format() == PixelFormat.BGRA;
                int ri = bgr ? 2 : 0, bi = bgr ? 0 : 2;
                byte[] row = new byte[w * bpp];
                for (int y = 0; y < h; y++) {
                    MemorySegment.copy(d, ValueLayout.JAVA_BYTE, frame.planeOffset(0) + (long) y * frame.stride(0), row, 0, row.length);
                    int o = y * w * 3;
                    for (int x = 0, s = 0; x < w; x++, s += bpp, o += 3) {
                        out[o] = row[s + ri]; out[o + 1] = row[s + 1]; out[o + 2] = row[s + bi];
                    }
                }
            }
            case GRAY8 -> {
                byte[] row = new byte[w];
                for (int y = 0; y < h; y++) {
                    MemorySegment.copy(d, ValueLayout.JAVA_BYTE, frame.planeOffset(0) + (long) y * frame.stride(0), row, 0, w);
                    for (int x = 0, o = y * w * 3; x < w; x++, o += 3) {
                        out[o] = row[x]; out[o + 1] = row[x]; out[o + 2] = row[x];
                    }
                }
            }
            case NV12, I420 -> yuvToRgb(frame, d, out);
        }
        return out;
    }

    /** YUV to RGB coefficients for one colorimetry: {@code R = a*(Y-y0) + rv*(V-128)} etc. */
    record YuvMatrix(double ys, int y0, double rv, double gu, double gv, double bu) {
        static YuvMatrix of(double kr, double kb, boolean fullRange) {
            double kg = 1 - kr - kb;
            double ys = fullRange ? 1.0 : 255.0 / 219.0;
            double cs = fullRange ? 1.0 : 255.0 / 224.0;
            return new YuvMatrix(ys, fullRange ? 0 : 16,
                    cs * 2 * (1 - kr),
                    -cs * 2 * kb * (1 - kb) / kg,
                    -cs * 2 * kr * (1 - kr) / kg,
                    cs * 2 * (1 - kb));
        }
    }

    /** Parses a GStreamer colorimetry string (named or {@code range:matrix:transfer:primaries}). */
    static YuvMatrix matrixFor(String colorimetry, int height) {
        String c = colorimetry == null ? "" : colorimetry.trim().toLowerCase(java.util.Locale.ROOT);
        boolean full = false;
        String matrix;
        switch (c) {
            case "bt601" -> matrix = "bt601";
            case "bt709" -> matrix = "bt709";
            case "bt2020", "bt2020-10", "bt2100-pq", "bt2100-hlg" -> matrix = "bt2020";
            case "smpte240m" -> matrix = "smpte240m";
            case "jpeg" -> { matrix = "bt601"; full = true; }
            default -> {
                matrix = height >= 2160 ? "bt2020" : height > 576 ? "bt709" : "bt601";
                String[] parts = c.split(":");
                if (parts.length == 4) {
                    full = parts[0].equals("1");
                    switch (parts[1]) {
                        case "2" -> matrix = "fcc";
                        case "3" -> matrix = "bt709";
                        case "4" -> matrix = "bt601";
                        case "5" -> matrix = "smpte240m";
                        case "6" -> matrix = "bt2020";
                        default -> { }
                    }
                }
            }
        }
        return switch (matrix) {
            case "bt709" -> YuvMatrix.of(0.2126, 0.0722, full);
            case "bt2020" -> YuvMatrix.of(0.2627, 0.0593, full);
            case "smpte240m" -> YuvMatrix.of(0.212, 0.087, full);
            case "fcc" -> YuvMatrix.of(0.30, 0.11, full);
            default -> YuvMatrix.of(0.299, 0.114, full);
        };
    }

    private static void yuvToRgb(Frame f, MemorySegment d, byte[] out) {
        int w = f.width(), h = f.height();
        YuvMatrix m = matrixFor(f.colorimetry(), h);
        boolean nv12 = f.format() == PixelFormat.NV12;
        int cw = (w + 1) / 2;
        byte[] yRow = new byte[w];
        byte[] uRow = new byte[nv12 ? cw * 2 : cw];
        byte[] vRow = new byte[cw];
        for (int y = 0; y < h; y++) {
            MemorySegment.copy(d, ValueLayout.JAVA_BYTE, f.planeOffset(0) + (long) y * f.stride(0), yRow, 0, w);
            int cy = y / 2;
            MemorySegment.copy(d, ValueLayout.JAVA_BYTE, f.planeOffset(1) + (long) cy * f.stride(1), uRow, 0, uRow.length);
            if (!nv12) MemorySegment.copy(d, ValueLayout.JAVA_BYTE, f.planeOffset(2) + (long) cy * f.stride(2), vRow, 0, cw);
            for (int x = 0, o = y * w * 3; x < w; x++, o += 3) {
                int cx = x / 2;
                double yy = m.ys * ((yRow[x] & 0xFF) - m.y0);
                double u = (nv12 ? uRow[cx * 2] & 0xFF : uRow[cx] & 0xFF) - 128;
                double v = (nv12 ? uRow[cx * 2 + 1] & 0xFF : vRow[cx] & 0xFF) - 128;
                out[o] = sat(yy + m.rv * v);
                out[o + 1] = sat(yy + m.gu * u + m.gv * v);
                out[o + 2] = sat(yy + m.bu * u);
            }
        }
    }

    private static byte sat(double v) {
        long r = Math.round(v);
        return (byte) (r < 0 ? 0 : r > 255 ? 255 : r);
    }
}
