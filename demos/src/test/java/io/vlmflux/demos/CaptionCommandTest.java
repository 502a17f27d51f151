package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux caption} through {@link Main#run} with the embedded demo model and real GStreamer sources. */
class CaptionCommandTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();

    record Result(int code, List<String> out, String err) {}

    static synchronized Result run(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream bo = new ByteArrayOutputStream(), be = new ByteArrayOutputStream();
        try (PrintStream po = new PrintStream(bo, true, StandardCharsets.UTF_8); PrintStream pe = new PrintStream(be, true, StandardCharsets.UTF_8)) {
            System.setOut(po);
            System.setErr(pe);
            int code = Main.run(args);
            String out = bo.toString(StandardCharsets.UTF_8);
            return new Result(code, out.isEmpty() ? List.of() : Arrays.asList(out.split("\n")), be.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    @Test void jsonLinesForThreeCaptionsOfTheLiveColourBars() throws Exception {
        Result r = run("caption", "--json", "--count", "3", "--source", "test:smpte");
        assertEquals(0, r.code(), r.err());
        assertEquals(3, r.out().size(), r.out().toString());
        long lastSeq = -1;
        for (String line : r.out()) {
            JsonNode j = new ObjectMapper().readTree(line);
            assertEquals("test:smpte", j.get("source").asText());
            assertTrue(j.get("seq").asLong() > lastSeq, line);
            lastSeq = j.get("seq").asLong();
            assertTrue(j.get("pts_ms").asLong() >= 0, line);
            assertEquals("vertical color bars", j.get("text").asText().strip(), line);
            assertTrue(j.get("tokens").isArray() && !j.get("tokens").isEmpty(), line);
            assertEquals("stop", j.get("finish_reason").asText(), line);
            assertTrue(j.get("dropped").asLong() >= 0, line);
            JsonNode t = j.get("timings");
            for (String k : List.of("preprocess_ms", "encode_ms", "prefill_ms", "ttft_ms", "total_ms")) assertTrue(t.get(k).asDouble() > 0, k + " in " + line);
            assertTrue(t.get("ttft_ms").asDouble() <= t.get("total_ms").asDouble(), line);
            assertTrue(t.get("encode_ms").asDouble() + t.get("prefill_ms").asDouble() <= t.get("ttft_ms").asDouble() + 0.05, line);
        }
    }

    @Test void readableLinesForANonLiveSourceUntilItEnds() {
        Result r = run("caption", "--source", "test:ball?live=false&num-buffers=20", "--every", "10f", "--max-tokens", "24");
        assertEquals(0, r.code(), r.err());
        assertEquals(2, r.out().size(), r.out().toString());
        assertTrue(r.out().get(0).matches("\\[seq 0 \\| 0\\.00s\\] a white .* on a black background"), r.out().get(0));
        assertTrue(r.out().get(1).startsWith("[seq 10 | 0.33s] "), r.out().get(1));
        assertTrue(r.err().contains("lossless"), r.err());
    }

    @Test void configFileWithFlagsOverridingIt(@TempDir Path tmp) throws Exception {
        Path cfg = tmp.resolve("snow.json");
        Files.writeString(cfg, """
                {"sources": [{"uri": "test:snow?live=false&num-buffers=10", "id": "noise"}],
                 "sampling": {"every": "5f"},
                 "model": {"dir": "%s", "backend": "cpu"},
                 "maxTokens": 32}""".formatted(ROOT.resolve("demos/models/shapes-vl").toString().replace("\\", "/")));
        Result r = run("caption", "--config", cfg.toString(), "--json");
        assertEquals(0, r.code(), r.err());
        assertEquals(2, r.out().size(), r.out().toString());
        for (String line : r.out()) {
            JsonNode j = new ObjectMapper().readTree(line);
            assertEquals("noise", j.get("source").asText());
            assertEquals("random noise", j.get("text").asText().strip());
        }
        r = run("caption", "--config", cfg.toString(), "--json", "--max-tokens", "1", "--count", "1");
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out().getFirst());
        assertEquals("length", j.get("finish_reason").asText());
        assertEquals(1, j.get("tokens").size());
    }

    @Test void durationStopsALiveSource() {
        long t0 = System.nanoTime();
        Result r = run("caption", "--duration", "1500ms", "--every", "500ms");
        double s = (System.nanoTime() - t0) / 1e9;
        assertEquals(0, r.code(), r.err());
        assertFalse(r.out().isEmpty(), r.err());
        assertTrue(s < 15, "took " + s + " s");
        assertTrue(r.out().getFirst().contains("white circle"), r.out().toString());
    }

    @Test void badArgumentsAreUsageErrors() {
        Result r = run("caption", "--every", "2x");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--every") && r.err().contains("2x"), r.err());
        r = run("caption", "--model", "/no/such/model", "--count", "1");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("/no/such/model") && r.err().contains("not found"), r.err());
        r = run("caption", "--count", "0");
        assertEquals(2, r.code());
        r = run("caption", "--source", "bogus:thing", "--count", "1");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("bogus"), r.err());
    }

    /** A config error is one clean line naming the file, the JSON path and the value; Jackson's text stays out. */
    @Test void configErrorsAreOneCleanLine(@TempDir Path tmp) throws Exception {
        Path cfg = tmp.resolve("bad.json");
        Files.writeString(cfg, """
                {"sources": [{"uri": "test:ball", "every": "2x"}],
                 "model": {"dir": "demos/models/shapes-vl"}}""");
        Result r = run("caption", "--config", cfg.toString());
        assertEquals(1, r.code(), r.err());
        List<String> lines = r.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, lines.size(), r.err());
        String line = lines.getFirst();
        assertTrue(line.startsWith("error: " + cfg + ": $.sources[0] (line 1, column "), line);
        assertTrue(line.contains("field 'every'") && line.contains("'2x'"), line);
        for (String jackson : List.of("Cannot construct", "Source:", "reference chain", "com.fasterxml", "problem:"))
            assertFalse(line.contains(jackson), jackson + " in " + line);
    }
}
