package io.vlmflux.pipeline.config;

import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

class PipelineConfigTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", ".."));

    @Test
    void everyShippedConfigLoadsAndItsSourcesParse() throws IOException {
        List<Path> files;
        try (Stream<Path> s = Files.list(ROOT.resolve("configs"))) {
            files = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
        }
        assertTrue(files.size() >= 5, "configs/: " + files);
        for (Path f : files) {
            PipelineConfig c = PipelineConfig.load(f);
            assertNotNull(c.sampling().policy(), f.toString());
            for (SourceConfig s : c.sources()) {
                // Relative file paths in configs are relative to the repository root, where the CLI runs.
                String uri = s.uri().contains(":") ? s.uri() : ROOT.resolve(s.uri()).toString();
                FrameSource src = Sources.parse(uri, new SourceOptions(s.width() == null ? 0 : s.width(), s.height() == null ? 0 : s.height(), s.pixelFormat()));
                assertNotNull(src.id(), f + ": " + s.uri());
                if (s.every() != null) SamplingPolicy.parse(s.every());
            }
            assertTrue(Files.isDirectory(ROOT.resolve(c.model().dir())), f + ": model dir " + c.model().dir());
        }
    }

    @Test
    void demoConfigIsTheBallPatternAndTheShapesModel() {
        PipelineConfig c = PipelineConfig.load(ROOT.resolve("configs/demo.json"));
        assertTrue(c.sources().getFirst().uri().startsWith("test:ball"));
        assertEquals("demos/models/shapes-vl", c.model().dir());
        assertEquals(new SamplingPolicy.MinInterval(Duration.ofMillis(500)), c.sampling().policy());
        assertEquals(Boolean.TRUE, c.generation().greedy());
    }

    @Test
    void defaultsFillOptionalFields() {
        PipelineConfig c = PipelineConfig.parse("{\"sources\":[{\"uri\":\"test:snow\"}],\"model\":{\"dir\":\"m\"}}", "inline");
        assertEquals("all", c.sampling().every());
        assertEquals(1, c.sampling().bufferPerSource());
        assertFalse(c.sampling().failOnSourceError());
        assertEquals("auto", c.model().backend());
        assertEquals(0, c.model().device());
        assertEquals(PipelineConfig.DEFAULT_PROMPT, c.prompt());
        assertEquals(64, c.maxTokens());
        assertEquals("text", c.output().format());
        assertEquals(PixelFormat.RGB, c.sources().getFirst().pixelFormat());
        assertNull(new SourceConfig("x", null, null, null, null, "any").pixelFormat());
    }

    private static String error(String json) {
        return assertThrows(IllegalArgumentException.class, () -> PipelineConfig.parse(json, "configs/bad.json")).getMessage();
    }

    @Test
    void errorsNameTheFileTheJsonPathAndTheValue() {
        String m = error("{\"sources\":[{\"uri\":\"test:ball\"},{\"uri\":\"test:snow\",\"every\":\"2x\"}],\"model\":{\"dir\":\"m\"}}");
        assertTrue(m.startsWith("configs/bad.json: $.sources[1]"), m);
        assertTrue(m.contains("field 'every'") && m.contains("'2x'"), m);

        m = error("{\"sources\":[{\"uri\":\"test:ball\"}],\"model\":{\"dir\":\"m\",\"backend\":\"gpu\"}}");
        assertTrue(m.contains("$.model") && m.contains("field 'backend' must be auto, cpu or cuda, got 'gpu'"), m);

        m = error("{\"sources\":[{\"uri\":\"test:ball\",\"fps\":30}],\"model\":{\"dir\":\"m\"}}");
        assertTrue(m.contains("$.sources[0].fps") && m.contains("unknown field 'fps'"), m);

        m = error("{\"sources\":[],\"model\":{\"dir\":\"m\"}}");
        assertTrue(m.contains("field 'sources' must list at least one source"), m);

        m = error("{\"sources\":[{\"uri\":\"test:ball\"}],\"model\":{\"dir\":\"m\"},\"maxTokens\":\"many\"}");
        assertTrue(m.contains("$.maxTokens"), m);

        m = error("{\"sources\":[{\"uri\":\"test:ball\"}],\"model\":{\"dir\":\"m\"},\"generation\":{\"topP\":1.5}}");
        assertTrue(m.contains("$.generation") && m.contains("field 'topP' must be in (0, 1], got 1.5"), m);

        m = error("{\"sources\":[{\"uri\":\"test:ball\", \"format\":\"YUY2\"}],\"model\":{\"dir\":\"m\"}}");
        assertTrue(m.contains("field 'format'") && m.contains("'YUY2'"), m);

        m = error("{\"sources\":[{\"uri\":\"a\",\"id\":\"x\"},{\"uri\":\"b\",\"id\":\"x\"}],\"model\":{\"dir\":\"m\"}}");
        assertTrue(m.contains("duplicate id 'x'"), m);

        m = error("{\"sources\":[{\"uri\":\"test:ball\"}],\n \"model\":{\"dir\":\"m\"},,}");
        assertTrue(m.contains("malformed JSON (line 2"), m);

        m = error("{\"sources\":[{\"uri\":\"test:ball\"}]}");
        assertTrue(m.contains("field 'model' is required"), m);
    }

    @Test
    void loadNamesAMissingFile(@TempDir Path dir) throws IOException {
        var e = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.load(dir.resolve("nope.json")));
        assertTrue(e.getMessage().contains("nope.json does not exist"), e.getMessage());
        Path f = dir.resolve("x.json");
        Files.writeString(f, "{\"sources\":[{\"uri\":\" \"}],\"model\":{\"dir\":\"m\"}}");
        e = assertThrows(IllegalArgumentException.class, () -> PipelineConfig.load(f));
        assertTrue(e.getMessage().startsWith(f + ": $.sources[0]"), e.getMessage());
        assertTrue(e.getMessage().contains("field 'uri'"), e.getMessage());
    }

    @Test
    void alertsAndAConstraintLoadWithTheirPolicies() {
        PipelineConfig c = PipelineConfig.load(ROOT.resolve("configs/alerts.json"));
        assertEquals(2, c.alerts().size());
        AlertConfig region = c.alerts().getFirst();
        assertEquals("ball-region", region.name());
        assertTrue(region.constraint().get("regex").asText().startsWith("a white circle"));
        assertEquals(new io.vlmflux.pipeline.watch.WatchPolicy(2, Duration.ZERO, Duration.ofMillis(500), Duration.ofSeconds(10)), region.policy());
        assertEquals("Describe the image.? a white circle|a red square", c.alerts().get(1).spec());
        assertNull(c.constraint());
        PipelineConfig k = PipelineConfig.parse("""
                {"sources": [{"uri": "test:ball"}], "model": {"dir": "m"}, "constraint": {"choice": ["yes", "no"]}}""", "x.json");
        assertEquals(2, k.constraint().get("choice").size());
        assertEquals(List.of(), k.alerts());
    }

    @Test
    void badAlertsNameTheFileThePathAndTheReason() {
        String base = "{\"sources\": [{\"uri\": \"test:ball\"}], \"model\": {\"dir\": \"m\"}, ";
        for (String[] c : new String[][]{
                {"\"alerts\": [{\"answers\": \"yes|no\"}]}", "x.json: $.alerts[0]", "field 'question' is required"},
                {"\"alerts\": [{\"question\": \"Q?\", \"agree\": 0}]}", "$.alerts[0]", "field 'agree': agree (answers in a row before a change) must be in [1, 1000], got 0"},
                {"\"alerts\": [{\"question\": \"Q?\", \"debounce\": \"soon\"}]}", "$.alerts[0]", "field 'debounce': expected a duration"},
                {"\"alerts\": [{\"question\": \"Q?\", \"minInterval\": \"5s\", \"maxInterval\": \"1s\"}]}", "$.alerts[0]", "field 'maxInterval'"},
                {"\"alerts\": [{\"question\": \"Q?\", \"answers\": \"a|b\", \"constraint\": {\"regex\": \"a\"}}]}", "$.alerts[0]", "give 'answers' or 'constraint', not both"},
                {"\"alerts\": [{\"question\": \"Q?\", \"constraint\": \"yes|no\"}]}", "$.alerts[0]", "field 'constraint' must be an object"},
                {"\"alerts\": [{\"question\": \"Q?\"}, {\"question\": \"Q?\"}]}", "x.json", "two alerts are named 'Q?'"},
                {"\"alerts\": [{\"question\": \"Q?\", \"hold\": 3}]}", "$.alerts[0].hold", "unknown field 'hold'"},
                {"\"constraint\": [\"yes\"]}", "x.json", "field 'constraint' must be an object"}}) {
            ConfigException e = assertThrows(ConfigException.class, () -> PipelineConfig.parse(base + c[0], "x.json"), c[0]);
            assertTrue(e.getMessage().contains(c[1]) && e.getMessage().contains(c[2]), c[0] + " -> " + e.getMessage());
        }
    }

    @Test
    void aSourcesLiveBlockHasDefaultsAndNamesItsBadFields() {
        PipelineConfig c = PipelineConfig.parse("""
                {"sources": [{"uri": "test:ball", "id": "ball", "live": {}}, {"uri": "test:smpte", "live": {"fps": 4, "window": "10s",
                 "narrate": "5s", "prompt": "Anything new?", "maxTokens": 16, "alertEvery": "1s"}}, {"uri": "test:snow"}], "model": {"dir": "m"}}""", "x.json");
        LiveConfig d = c.sources().getFirst().live();
        assertEquals(2.0, d.fps());
        assertEquals(Duration.ofSeconds(30), d.windowDuration());
        assertNull(d.narrateDuration());
        assertEquals("What changed?", d.prompt());
        assertEquals(64, d.maxTokens());
        assertNull(d.alertEveryDuration());
        LiveConfig l = c.sources().get(1).live();
        assertEquals(4.0, l.fps());
        assertEquals(Duration.ofSeconds(10), l.windowDuration());
        assertEquals(Duration.ofSeconds(5), l.narrateDuration());
        assertEquals(Duration.ofSeconds(1), l.alertEveryDuration());
        assertNull(c.sources().get(2).live());
        String base = "{\"model\": {\"dir\": \"m\"}, \"sources\": [{\"uri\": \"test:ball\", \"live\": ";
        for (String[] bad : new String[][]{{"{\"fps\": 0}", "field 'fps' must be in (0, 30]"}, {"{\"window\": \"0s\"}", "field 'window' must be positive"},
                {"{\"narrate\": \"often\"}", "field 'narrate': expected a duration"}, {"{\"maxTokens\": 0}", "field 'maxTokens'"},
                {"{\"alertEvery\": \"-1s\"}", "field 'alertEvery'"}, {"{\"hold\": 1}", "unknown field 'hold'"}}) {
            ConfigException e = assertThrows(ConfigException.class, () -> PipelineConfig.parse(base + bad[0] + "}]}", "x.json"), bad[0]);
            assertTrue(e.getMessage().contains("$.sources[0].live") && e.getMessage().contains(bad[1]), bad[0] + " -> " + e.getMessage());
        }
    }
}
