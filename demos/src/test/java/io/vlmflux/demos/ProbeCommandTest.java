package io.vlmflux.demos;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ProbeCommandTest {

    static String capture(Command c, String... args) throws Exception {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, c.run(List.of(args)));
        } finally {
            System.setOut(old);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void probesATestPatternAsJson() throws Exception {
        String out = capture(new ProbeCommand(), "--source", "test:white?live=false&num-buffers=50", "--frames", "12", "--width", "64", "--height", "32", "--json");
        assertTrue(out.contains("\"width\":64,\"height\":32,\"format\":\"RGB\""), out);
        assertTrue(out.contains("\"frames\":12,"), out);
        assertTrue(out.contains("\"live\":false"), out);
        assertTrue(out.contains("\"mean_luma\":255.00"), out);
    }

    @Test
    void probesAFileAsText() throws Exception {
        Path f = Path.of(System.getProperty("vlmflux.root", "..")).resolve("sources/src/test/resources/media/realshort.mp4");
        String out = capture(new ProbeCommand(), "--source", f.toString(), "--frames", "1000", "--format", "GRAY8");
        assertTrue(out.contains("320x240 GRAY8"), out);
        assertTrue(out.contains("frames      36 in"), out);
    }

    @Test
    void badArgumentsAndSourcesAreReported() {
        assertThrows(UsageException.class, () -> new ProbeCommand().run(List.of("--frames", "3")));
        assertThrows(UsageException.class, () -> new ProbeCommand().run(List.of("--source", "test:ball", "--frames", "3", "--duration", "1s")));
        Exception e = assertThrows(Exception.class, () -> new ProbeCommand().run(List.of("--source", "nope://x", "--frames", "1")));
        assertTrue(e.getMessage().contains("nope://x"), e.getMessage());
        e = assertThrows(Exception.class, () -> new ProbeCommand().run(List.of("--source", "/no/such/file.mp4", "--frames", "1")));
        assertTrue(Main.describe(e).contains("/no/such/file.mp4"), Main.describe(e));
    }

    /** Colorimetry is printed by name (range, matrix, transfer, primaries), also where the caps carry raw codes. */
    @Test
    void colorimetryIsPrintedByName() throws Exception {
        String out = capture(new ProbeCommand(), "--source", "test:ball?live=false&num-buffers=5", "--frames", "2");
        assertTrue(out.contains("RGB (sRGB: full range, matrix rgb, transfer srgb, primaries bt709)"), out);
        out = capture(new ProbeCommand(), "--source", "test:ball?live=false&num-buffers=5", "--frames", "2", "--format", "I420");
        assertTrue(out.contains("I420 (bt601: limited range, matrix bt601, transfer bt601, primaries smpte170m)"), out);
        out = capture(new ProbeCommand(), "--source", "gst:videotestsrc num-buffers=5 ! video/x-raw,format=I420,width=64,height=48,colorimetry=1:3:5:1 ! appsink name=sink",
                "--frames", "2", "--format", "any");
        assertTrue(out.contains("64x48 I420 (full range, matrix bt709, transfer bt709, primaries bt709)"), out);
        assertFalse(out.lines().filter(l -> l.startsWith("format")).findFirst().orElseThrow().contains("1:3:5:1"), out);
        assertEquals("limited range, matrix bt2020, transfer smpte2084 (pq), primaries bt2020", ColorimetryNames.describe("bt2100-pq"));
        assertEquals("matrix bt601", ColorimetryNames.describe("0:4:0:0"));
        assertEquals("weird", ColorimetryNames.describe("weird"));
    }
}
