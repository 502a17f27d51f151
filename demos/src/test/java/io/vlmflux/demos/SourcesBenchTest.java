package io.vlmflux.demos;

import io.vlmflux.demos.bench.SourcesBench;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

class SourcesBenchTest {

    @Test
    void comparesJavaDecodeWithGstLaunchOnAShortFile() throws Exception {
        Path f = Path.of(System.getProperty("vlmflux.root", "..")).resolve("sources/src/test/resources/media/realshort.mp4");
        String out = ProbeCommandTest.capture(new SourcesBench(), "--file", f.toString(), "--seconds", "1", "--json");
        assertTrue(out.contains("\"frames_per_decode\":36,"), out);
        Matcher m = Pattern.compile("\"java_fps\":([0-9.]+),\"gst_launch_fps\":([0-9.]+),\"ratio\":([0-9.]+)").matcher(out);
        assertTrue(m.find(), out);
        double java = Double.parseDouble(m.group(1)), gst = Double.parseDouble(m.group(2)), ratio = Double.parseDouble(m.group(3));
        assertTrue(java > 0 && gst > 0, out);
        assertEquals(java / gst, ratio, 0.01);
    }

    @Test
    void missingFileIsAUsageError() {
        assertThrows(UsageException.class, () -> new SourcesBench().run(List.of("--file", "/no/such.mp4", "--seconds", "1")));
    }
}
