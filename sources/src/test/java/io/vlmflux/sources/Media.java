package io.vlmflux.sources;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;

/** Test helpers: where the media files are, pixel access. */
final class Media {
    private Media() {}

    static Path root() {
        String r = System.getProperty("vlmflux.root");
        Path p = r != null ? Path.of(r) : Path.of("..").toAbsolutePath().normalize();
        return p;
    }

    static Path media(String name) {
        Path p = root().resolve("sources/src/test/resources/media").resolve(name);
        if (!Files.exists(p)) throw new IllegalStateException("missing test media " + p);
        return p;
    }

    /** RGB(A)/BGR pixel {@code c}-th byte at (x, y) of plane 0. */
    static int px(Frame f, int x, int y, int c) {
        MemorySegment d = f.data();
        return Byte.toUnsignedInt(d.get(ValueLayout.JAVA_BYTE, f.planeOffset(0) + (long) y * f.stride(0) + (long) x * f.format().bytesPerPixel() + c));
    }

    static int[] rgb(Frame f, int x, int y) {
        return new int[] {px(f, x, y, 0), px(f, x, y, 1), px(f, x, y, 2)};
    }

    static void assertNear(int[] expected, int[] actual, int tol, String what) {
        for (int i = 0; i < expected.length; i++)
            if (Math.abs(expected[i] - actual[i]) > tol)
                throw new AssertionError(what + ": expected " + java.util.Arrays.toString(expected) + " ± " + tol + ", got " + java.util.Arrays.toString(actual));
    }
}
