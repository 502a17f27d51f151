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
}
