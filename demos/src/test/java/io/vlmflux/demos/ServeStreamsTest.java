package io.vlmflux.demos;

import io.vlmflux.demos.serve.LiveStream;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux serve}'s stream flags: which streams are made, their ids, and the usage errors (nothing is started). */
class ServeStreamsTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static VlmRuntime runtime;

    @BeforeAll static void load() { runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU)); }
    @AfterAll static void close() { if (runtime != null) runtime.close(); }

    static Args args(String... a) {
        Set<String> valued = new java.util.HashSet<>(ServeStreams.VALUED);
        return Args.parse(List.of(a), valued, ServeStreams.FLAGS);
    }

    static List<String> ids(String... a) {
        Args parsed = args(a);
        try (LiveStreams s = new LiveStreams(runtime, ServeStreams.options(parsed))) {
            ServeStreams.add(s, parsed, ServeStreams.config(parsed), runtime);
            return s.all().stream().map(LiveStream::id).toList();
        }
    }

    @Test void noFlagsServeTheBouncingBall() {
        assertEquals(List.of("ball"), ids());
        assertEquals(List.of(), ids("--no-streams"));
    }

    @Test void repeatedSourcesGetDistinctValidIds() {
        assertEquals(List.of("ball", "ball-2", "smpte"), ids("--source", "test:ball", "--source", "test:ball", "--source", "test:smpte?live=false"));
        for (String id : ids("--source", "gst:videotestsrc pattern=ball ! videoconvert ! appsink name=sink"))
            assertTrue(LiveStream.ID.matcher(id).matches(), id);
    }

    @Test void aConfigNamesTheStreams(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path f = dir.resolve("c.json");
        Files.writeString(f, "{\"model\": {\"dir\": \"" + MODEL.toAbsolutePath().toString().replace("\\", "\\\\") + "\"},"
                + " \"sources\": [{\"uri\": \"test:ball\", \"id\": \"cam1\"}, {\"uri\": \"test:smpte\", \"id\": \"cam2\", \"every\": \"2s\"}]}");
        assertEquals(List.of("cam1", "cam2"), ids("--config", f.toString()));
        assertEquals(List.of("ball"), ids("--config", f.toString(), "--source", "test:ball"), "--source replaces the config's sources");
    }

    @Test void aConfigSourcesLiveBlockGivesItALiveWindow(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path f = dir.resolve("c.json");
        Files.writeString(f, "{\"model\": {\"dir\": \"" + MODEL.toAbsolutePath().toString().replace("\\", "\\\\") + "\"},"
                + " \"sources\": [{\"uri\": \"test:ball\", \"id\": \"cam1\", \"live\": {\"window\": \"6s\", \"narrate\": \"3s\", \"alertEvery\": \"1s\"}},"
                + " {\"uri\": \"test:smpte\", \"id\": \"cam2\"}]}");
        for (String[] extra : new String[][]{{}, {"--live", "cam2"}, {"--live", "cam1", "--live-window", "9s"}}) {
            List<String> argv = new java.util.ArrayList<>(List.of("--config", f.toString()));
            argv.addAll(List.of(extra));
            Args parsed = args(argv.toArray(String[]::new));
            try (LiveStreams s = new LiveStreams(runtime, ServeStreams.options(parsed))) {
                ServeStreams.add(s, parsed, ServeStreams.config(parsed), runtime);
                var w = s.stream("cam1").liveWindow().options();
                boolean flags = extra.length > 2;   // --live naming cam1 wins over its config block
                assertEquals(flags ? java.time.Duration.ofSeconds(9) : java.time.Duration.ofSeconds(6), w.session().window(), String.join(" ", extra));
                assertEquals(flags ? null : java.time.Duration.ofSeconds(3), w.narrateEvery());
                assertEquals(flags ? java.time.Duration.ofSeconds(2) : java.time.Duration.ofSeconds(1), w.alertPeriod());
                assertEquals(extra.length == 2, s.stream("cam2").liveWindow() != null, "cam2 only with --live cam2");
            }
        }
    }

    @Test void badFlagsAreUsageErrors() {
        assertThrows(UsageException.class, () -> ids("--no-streams", "--source", "test:ball"));
        UsageException e = assertThrows(UsageException.class, () -> ids("--view-fps", "0"));
        assertTrue(e.getMessage().contains("--view-fps"), e.getMessage());
        assertThrows(UsageException.class, () -> ids("--every", "sometimes"));
        assertThrows(UsageException.class, () -> ids("--caption-tokens", "0"));
        assertThrows(UsageException.class, () -> ids("--source", "nosuchscheme:x"));
    }
}
