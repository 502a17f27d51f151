package io.vlmflux.vision.cuda;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Test-only decoder of 8-bit RGB / RGBA non-interlaced PNGs (the fixtures' golden images) into RGB frames, with
 * java.base alone: the GPU bundle's runtime has no java.desktop (no ImageIO). Checked against ImageIO by
 * {@link TestPngTest} wherever java.desktop exists.
 */
final class TestPng {
    private TestPng() {}

    static Frame read(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file));
        b.position(8);
        int w = 0, h = 0, channels = 0;
        ByteArrayOutputStream idat = new ByteArrayOutputStream();
        while (b.remaining() >= 12) {
            int len = b.getInt();
            byte[] type = new byte[4];
            b.get(type);
            byte[] data = new byte[len];
            b.get(data);
            b.getInt(); // crc
            String t = new String(type, java.nio.charset.StandardCharsets.US_ASCII);
            if (t.equals("IHDR")) {
                ByteBuffer hd = ByteBuffer.wrap(data);
                w = hd.getInt();
                h = hd.getInt();
                int depth = data[8], color = data[9], interlace = data[12];
                if (depth != 8 || (color != 2 && color != 6) || interlace != 0)
                    throw new IOException(file + ": only 8-bit RGB/RGBA non-interlaced PNGs (depth " + depth + ", color " + color + ", interlace " + interlace + ")");
                channels = color == 2 ? 3 : 4;
            } else if (t.equals("IDAT")) {
                idat.write(data);
            } else if (t.equals("IEND")) {
                break;
            }
        }
        int stride = w * channels;
        byte[] raw = new byte[(stride + 1) * h];
        Inflater inf = new Inflater();
        inf.setInput(idat.toByteArray());
        try {
            int n = 0;
            while (n < raw.length && !inf.finished()) n += inf.inflate(raw, n, raw.length - n);
        } catch (DataFormatException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        } finally {
            inf.end();
        }
        byte[] px = new byte[stride * h];
        for (int y = 0; y < h; y++) {
            int f = raw[y * (stride + 1)] & 0xFF, in = y * (stride + 1) + 1, o = y * stride;
            for (int x = 0; x < stride; x++) {
                int a = x >= channels ? px[o + x - channels] & 0xFF : 0;
                int up = y > 0 ? px[o - stride + x] & 0xFF : 0;
                int c = x >= channels && y > 0 ? px[o - stride + x - channels] & 0xFF : 0;
                int v = raw[in + x] & 0xFF;
                int pred = switch (f) {
                    case 0 -> 0;
                    case 1 -> a;
                    case 2 -> up;
                    case 3 -> (a + up) >>> 1;
                    case 4 -> {
                        int p = a + up - c, pa = Math.abs(p - a), pb = Math.abs(p - up), pc = Math.abs(p - c);
                        yield pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
                    }
                    default -> throw new IOException(file + ": bad PNG filter " + f);
                };
                px[o + x] = (byte) (v + pred);
            }
        }
        byte[] rgb = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++) System.arraycopy(px, i * channels, rgb, i * 3, 3);
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(rgb.length);
        MemorySegment.copy(rgb, 0, seg, ValueLayout.JAVA_BYTE, 0, rgb.length);
        return Frame.builder().format(PixelFormat.RGB).size(w, h).data(seg).releaser(arena::close).build();
    }
}
