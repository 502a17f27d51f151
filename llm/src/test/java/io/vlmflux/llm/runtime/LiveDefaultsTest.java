package io.vlmflux.llm.runtime;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux_live.json}: a model folder's recommended live settings, optional, every field optional, errors named. */
class LiveDefaultsTest {
    @TempDir Path dir;

    @Test void absentFileGivesTheCallersDefaults() {
        LiveDefaults d = LiveDefaults.of(dir);
        assertEquals(Duration.ofSeconds(30), d.windowOr(Duration.ofSeconds(30)));
        assertEquals(LiveSession.Eviction.SLIDE, d.evictionOr(LiveSession.Eviction.SLIDE));
        assertEquals("What changed?", d.promptOr("What changed?"));
        LiveSession.Options o = LiveSession.Options.defaults();
        assertEquals(o, d.applyTo(o));
    }

    @Test void fieldsOverrideTheDefaultsTheyName() throws Exception {
        Files.writeString(dir.resolve(LiveDefaults.FILE), "{\"window\": \"4s\", \"eviction\": \"reprefill\"}");
        LiveDefaults d = LiveDefaults.of(dir);
        assertEquals(Duration.ofSeconds(4), d.window());
        assertEquals("Describe.", d.promptOr("Describe."));
        LiveSession.Options o = d.applyTo(LiveSession.Options.defaults().withFps(3));
        assertEquals(Duration.ofSeconds(4), o.window());
        assertEquals(LiveSession.Eviction.REPREFILL, o.eviction());
        assertEquals(3, o.fps());
    }

    @Test void theDemoModelShipsItsLiveSettings() {
        Path shapes = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
        LiveDefaults d = LiveDefaults.of(shapes);
        assertEquals(new LiveDefaults(Duration.ofSeconds(4), LiveSession.Eviction.REPREFILL, "Describe the video."), d);
    }

    @Test void badFilesNameTheFileAndField() throws Exception {
        Path f = dir.resolve(LiveDefaults.FILE);
        String[][] cases = {
                {"[1]", "must be a JSON object"},
                {"{\"window\": \"4s\", \"fps\": 2}", "unknown field 'fps'"},
                {"{\"window\": \"soon\"}", "field 'window'"},
                {"{\"window\": \"0s\"}", "field 'window' must be positive"},
                {"{\"eviction\": \"sometimes\"}", "field 'eviction' must be slide or reprefill, got 'sometimes'"},
                {"{\"prompt\": \" \"}", "field 'prompt' must not be blank"},
                {"{\"prompt\": 3}", "field 'prompt' must be a string"},
                {"{\"window\": ", "not valid JSON"}};
        for (String[] c : cases) {
            Files.writeString(f, c[0]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LiveDefaults.of(dir), c[0]);
            assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains(c[1]), c[0] + " -> " + e.getMessage());
        }
    }
}
