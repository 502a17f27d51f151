package io.vlmflux.vision;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class ImagesTest {
    static final int W = 13, H = 9; // odd sizes exercise the rounded-up chroma planes

    /** A known image whose colour is constant over each 2x2 block (so 4:2:0 subsampling loses nothing). */
    static byte[] known() {
        byte[] rgb = new byte[W * H * 3];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int bx = x / 2, by = y / 2, o = (y * W + x) * 3;
                rgb[o] = (byte) (40 + 30 * bx);
                rgb[o + 1] = (byte) (200 - 35 * by);
                rgb[o + 2] = (byte) ((bx * 53 + by * 71) % 180 + 40);
            }
        return rgb;
    }

    static Frame frame(PixelFormat f, byte[][] planes, int[] strides, int[] rowBytes, int[] rows, int gap, String colorimetry) {
        long total = 0;
        long[] offs = new long[planes.length];
        for (int p = 0; p < planes.length; p++) { offs[p] = total + gap; total = offs[p] + (long) strides[p] * rows[p]; }
        Arena arena = Arena.ofConfined();
        MemorySegment seg = arena.allocate(total);
        seg.fill((byte) 0x5A); // padding garbage that must never be read
        for (int p = 0; p < planes.length; p++)
            for (int r = 0; r < rows[p]; r++)
                MemorySegment.copy(planes[p], r * rowBytes[p], seg, ValueLayout.JAVA_BYTE, offs[p] + (long) r * strides[p], rowBytes[p]);
        return Frame.builder().format(f).size(W, H).data(seg).strides(strides).planeOffsets(offs).colorimetry(colorimetry).releaser(arena::close).build();
    }

    static Frame packed(PixelFormat f, int[] order, int bpp) {
        byte[] rgb = known();
        byte[] px = new byte[W * H * bpp];
        for (int i = 0; i < W * H; i++) {
            for (int c = 0; c < bpp; c++) px[i * bpp + c] = order[c] < 3 ? rgb[i * 3 + order[c]] : (byte) 0x80;
        }
        return frame(f, new byte[][]{px}, new int[]{W * bpp + 7}, new int[]{W * bpp}, new int[]{H}, 5, null);
    }

    @Test
    void packedFormatsWithPaddedStrides() {
        byte[] want = known();
        try (Frame rgb = packed(PixelFormat.RGB, new int[]{0, 1, 2}, 3);
             Frame bgr = packed(PixelFormat.BGR, new int[]{2, 1, 0}, 3);
             Frame rgba = packed(PixelFormat.RGBA, new int[]{0, 1, 2, 3}, 4);
             Frame bgra = packed(PixelFormat.BGRA, new int[]{2, 1, 0, 3}, 4)) {
            assertArrayEquals(want, Images.toRgb(rgb));
            assertArrayEquals(want, Images.toRgb(bgr));
            assertArrayEquals(want, Images.toRgb(rgba));
            assertArrayEquals(want, Images.toRgb(bgra));
        }
    }

    @Test
    void gray8Replicates() {
        byte[] g = new byte[W * H];
        for (int i = 0; i < g.length; i++) g[i] = (byte) (i * 7);
        try (Frame f = frame(PixelFormat.GRAY8, new byte[][]{g}, new int[]{W + 3}, new int[]{W}, new int[]{H}, 0, null)) {
            byte[] rgb = Images.toRgb(f);
            for (int i = 0; i < g.length; i++)
                for (int c = 0; c < 3; c++) assertEquals(g[i], rgb[i * 3 + c]);
        }
    }

    /** Forward transform (limited range) used to build YUV test frames from the known image. */
    static int[] yuv(int r, int g, int b, double kr, double kb) {
        double kg = 1 - kr - kb;
        double y = kr * r + kg * g + kb * b;
        double u = (b - y) / (2 * (1 - kb)), v = (r - y) / (2 * (1 - kr));
        return new int[]{(int) Math.round(16 + y * 219 / 255), (int) Math.round(128 + u * 224 / 255), (int) Math.round(128 + v * 224 / 255)};
    }

    static void yuvRoundTrip(PixelFormat fmt, String colorimetry, double kr, double kb) {
        byte[] rgb = known();
        int cw = (W + 1) / 2, ch = (H + 1) / 2;
        byte[] yp = new byte[W * H], up = new byte[cw * ch], vp = new byte[cw * ch];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int o = (y * W + x) * 3;
                int[] t = yuv(rgb[o] & 0xFF, rgb[o + 1] & 0xFF, rgb[o + 2] & 0xFF, kr, kb);
                yp[y * W + x] = (byte) t[0];
                up[(y / 2) * cw + x / 2] = (byte) t[1];
                vp[(y / 2) * cw + x / 2] = (byte) t[2];
            }
        Frame f;
        if (fmt == PixelFormat.NV12) {
            byte[] uv = new byte[cw * 2 * ch];
            for (int i = 0; i < cw * ch; i++) { uv[2 * i] = up[i]; uv[2 * i + 1] = vp[i]; }
            f = frame(fmt, new byte[][]{yp, uv}, new int[]{W + 3, cw * 2 + 6}, new int[]{W, cw * 2}, new int[]{H, ch}, 16, colorimetry);
        } else {
            f = frame(fmt, new byte[][]{yp, up, vp}, new int[]{W + 11, cw + 4, cw + 9}, new int[]{W, cw, cw}, new int[]{H, ch, ch}, 8, colorimetry);
        }
        try (f) {
            byte[] got = Images.toRgb(f);
            for (int i = 0; i < rgb.length; i++)
                assertEquals(rgb[i] & 0xFF, got[i] & 0xFF, 2.0, fmt + " " + colorimetry + " byte " + i);
        }
    }

    @Test
    void nv12AndI420ByColorimetry() {
        yuvRoundTrip(PixelFormat.NV12, "bt601", 0.299, 0.114);
        yuvRoundTrip(PixelFormat.I420, "bt601", 0.299, 0.114);
        yuvRoundTrip(PixelFormat.NV12, "bt709", 0.2126, 0.0722);
        yuvRoundTrip(PixelFormat.I420, "bt709", 0.2126, 0.0722);
        yuvRoundTrip(PixelFormat.I420, "2:3:5:1", 0.2126, 0.0722);
        yuvRoundTrip(PixelFormat.I420, null, 0.299, 0.114); // SD default: BT.601 limited
    }

    @Test
    void limitedRangeEndpoints() {
        Images.YuvMatrix m = Images.matrixFor("bt601", 480);
        assertEquals(255.0, m.ys() * (235 - m.y0()), 1e-9);
        assertEquals(0.0, m.ys() * (16 - m.y0()), 1e-9);
        assertSame(Images.matrixFor(null, 1080).getClass(), m.getClass());
        assertEquals(Images.YuvMatrix.of(0.2126, 0.0722, false), Images.matrixFor(null, 1080)); // HD default: BT.709
        assertEquals(Images.YuvMatrix.of(0.299, 0.114, true), Images.matrixFor("1:4:0:0", 480));
    }

    @Test
    void imageIoTypesDecodeAlike() {
        byte[] want = known();
        int[] types = {BufferedImage.TYPE_3BYTE_BGR, BufferedImage.TYPE_4BYTE_ABGR, BufferedImage.TYPE_INT_RGB, BufferedImage.TYPE_INT_ARGB};
        for (int type : types) {
            BufferedImage img = new BufferedImage(W, H, type);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int o = (y * W + x) * 3;
                    img.setRGB(x, y, 0xFF000000 | (want[o] & 0xFF) << 16 | (want[o + 1] & 0xFF) << 8 | (want[o + 2] & 0xFF));
                }
            assertArrayEquals(want, Images.toRgb(img), "BufferedImage type " + type);
        }
        BufferedImage gray = new BufferedImage(W, H, BufferedImage.TYPE_BYTE_GRAY);
        gray.getRaster().setSample(3, 2, 0, 77);
        byte[] g = Images.toRgb(gray);
        assertEquals(77, g[(2 * W + 3) * 3] & 0xFF); // raw sample, no gamma conversion
        assertEquals(0, g[0]);
    }

    @Test
    void readsPngAndNamesMissingFiles() {
        Path png = Fixtures.root().resolve("sources/src/test/resources/media/chelsea.png");
        try (Frame f = Images.read(png)) {
            assertEquals(PixelFormat.RGB, f.format());
            assertTrue(f.width() > 0 && f.height() > 0);
        }
        Path missing = Fixtures.root().resolve("no/such.png");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Images.read(missing));
        assertTrue(e.getMessage().contains("no/such.png"), e.getMessage());
    }

    @Test
    void readsJpeg(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        BufferedImage img = new BufferedImage(40, 24, BufferedImage.TYPE_3BYTE_BGR);
        for (int y = 0; y < 24; y++) for (int x = 0; x < 40; x++) img.setRGB(x, y, 0x3C78B4);
        Path jpg = tmp.resolve("flat.jpg");
        assertTrue(javax.imageio.ImageIO.write(img, "jpeg", jpg.toFile()));
        try (Frame f = Images.read(jpg)) {
            assertEquals(40, f.width());
            assertEquals(24, f.height());
            byte[] rgb = Images.toRgb(f);
            int[] want = {0x3C, 0x78, 0xB4};
            for (int i = 0; i < rgb.length; i++) assertEquals(want[i % 3], rgb[i] & 0xFF, 3.0, "byte " + i);
        }
    }

    @Test
    void decodesPngBytesAndNamesBadData() throws Exception {
        BufferedImage img = new BufferedImage(30, 20, BufferedImage.TYPE_INT_RGB);
        img.setRGB(3, 4, 0xFF0000);
        java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
        assertTrue(javax.imageio.ImageIO.write(img, "png", png));
        try (Frame f = Images.decode(png.toByteArray(), "upload 1")) {
            assertEquals(30, f.width());
            assertEquals(20, f.height());
            byte[] rgb = Images.toRgb(f);
            assertEquals(0xFF, rgb[(4 * 30 + 3) * 3] & 0xFF);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Images.decode("not an image".getBytes(), "field x"));
        assertTrue(e.getMessage().contains("field x"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Images.decode(png.toByteArray(), "upload 2", 599));
        assertTrue(e.getMessage().contains("upload 2") && e.getMessage().contains("30x20") && e.getMessage().contains("599"), e.getMessage());
        byte[] cut = java.util.Arrays.copyOf(png.toByteArray(), 40);
        e = assertThrows(IllegalArgumentException.class, () -> Images.decode(cut, "field y"));
        assertTrue(e.getMessage().contains("field y"), e.getMessage());
    }
}
