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
import java.util.ArrayList;
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

    /** The config's model.device is honoured: a device that cannot exist fails naming it (it used to be ignored). */
    @Test void configModelDeviceIsHonoured(@TempDir Path tmp) throws Exception {
        Path cfg = tmp.resolve("dev.json");
        Files.writeString(cfg, """
                {"sources": [{"uri": "test:snow?live=false&num-buffers=2"}],
                 "model": {"dir": "%s", "backend": "cpu", "device": 3}}""".formatted(ROOT.resolve("demos/models/shapes-vl").toString().replace("\\", "/")));
        Result r = run("caption", "--config", cfg.toString(), "--json");
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("device 3"), r.err());
        assertTrue(r.out().isEmpty(), r.out().toString());
        Result flag = run("caption", "--source", "test:snow?live=false&num-buffers=2", "--backend", "cpu", "--device", "2");
        assertNotEquals(0, flag.code());
        assertTrue(flag.err().contains("device 2"), flag.err());
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

    static final List<String> CAPTION_KEYS = List.of("source", "seq", "pts_ms", "text", "tokens", "finish_reason", "dropped", "timings");

    static Path config(Path dir, String output) throws Exception {
        Path cfg = dir.resolve("ball.json");
        Files.writeString(cfg, """
                {"sources": [{"uri": "test:ball?live=false&num-buffers=20", "id": "ball"}],
                 "sampling": {"every": "10f"},
                 "model": {"dir": "%s", "backend": "cpu"},
                 "maxTokens": 24,
                 "output": %s}""".formatted(ROOT.resolve("demos/models/shapes-vl").toString().replace("\\", "/"), output));
        return cfg;
    }

    static List<String> keys(JsonNode j) {
        List<String> k = new java.util.ArrayList<>();
        j.fieldNames().forEachRemaining(k::add);
        return k;
    }

    /** The config's output block: JSON lines appended to output.path (parent folders created), nothing on stdout. */
    @Test void configOutputAppendsJsonLinesToItsFile(@TempDir Path tmp) throws Exception {
        Path file = tmp.resolve("out/nested/captions.jsonl");
        Path cfg = config(tmp, "{\"format\": \"json\", \"path\": \"%s\"}".formatted(file.toString().replace("\\", "/")));
        for (int run = 1; run <= 2; run++) {
            Result r = run("caption", "--config", cfg.toString());
            assertEquals(0, r.code(), r.err());
            assertEquals(List.of(), r.out());
            List<String> lines = Files.readAllLines(file);
            assertEquals(2 * run, lines.size(), lines.toString());   // appended, one line per caption
            for (String line : lines) {
                JsonNode j = new ObjectMapper().readTree(line);
                assertEquals(CAPTION_KEYS, keys(j), line);
                assertEquals("ball", j.get("source").asText());
                assertTrue(j.get("text").asText().contains("white"), line);
            }
            assertEquals(List.of(0L, 10L), lines.subList(lines.size() - 2, lines.size()).stream()
                    .map(l -> { try { return new ObjectMapper().readTree(l).get("seq").asLong(); } catch (Exception e) { throw new AssertionError(e); } }).toList());
            assertTrue(r.err().contains("captions appended to " + file), r.err());
        }
    }

    /** tokens: one JSON object per token (source, seq, index, token, text) before its caption; they add up to it. */
    @Test void configOutputStreamsTokenEventsAsJsonLines(@TempDir Path tmp) throws Exception {
        Path file = tmp.resolve("tokens.jsonl");
        Path cfg = config(tmp, "{\"format\": \"json\", \"tokens\": true, \"path\": \"%s\"}".formatted(file.toString().replace("\\", "/")));
        Result r = run("caption", "--config", cfg.toString());
        assertEquals(0, r.code(), r.err());
        List<JsonNode> lines = new java.util.ArrayList<>();
        for (String l : Files.readAllLines(file)) lines.add(new ObjectMapper().readTree(l));
        int captions = 0;
        StringBuilder text = new StringBuilder();
        List<Integer> ids = new java.util.ArrayList<>();
        for (JsonNode j : lines) {
            if (j.has("tokens")) {
                assertEquals(CAPTION_KEYS, keys(j), j.toString());
                captions++;
                assertEquals(j.get("text").asText(), text.toString(), "the token texts add up to the caption");
                List<Integer> capIds = new java.util.ArrayList<>();
                j.get("tokens").forEach(t -> capIds.add(t.asInt()));
                assertEquals(capIds, ids.subList(0, capIds.size()), "token ids, then at most the stop token");
                assertTrue(ids.size() - capIds.size() <= 1, ids + " vs " + capIds);
                text.setLength(0);
                ids.clear();
            } else {
                assertEquals(List.of("source", "seq", "index", "token", "text"), keys(j), j.toString());
                assertEquals("ball", j.get("source").asText());
                assertEquals(ids.size(), j.get("index").asInt(), j.toString());
                text.append(j.get("text").asText());
                ids.add(j.get("token").asInt());
            }
        }
        assertEquals(2, captions, lines.toString());
        assertTrue(lines.size() > 2 + 2 * 3, "tokens of each caption come before it: " + lines.size());
    }

    /** Text with tokens: each caption's line grows token by token and ends identical to the line without tokens. */
    @Test void configTextOutputWithTokensGivesTheSameLines(@TempDir Path tmp) throws Exception {
        Result plain = run("caption", "--config", config(tmp, "{\"format\": \"text\"}").toString());
        Result live = run("caption", "--config", config(tmp, "{\"format\": \"text\", \"tokens\": true}").toString());
        assertEquals(0, plain.code(), plain.err());
        assertEquals(0, live.code(), live.err());
        assertEquals(2, plain.out().size(), plain.out().toString());
        assertEquals(plain.out(), live.out());
    }

    /**
     * A live 30 fps source captioned at every frame: the model (~0.2 s a caption) is the slow consumer and the caption
     * stage drops frames. The stderr summary's model line agrees with the captions: out = captions, in = out + dropped,
     * and dropped is at least the last caption's dropped (a caption carries the count when it was finished; the source
     * goes on replacing the pending frame until the stop reaches it, however long that takes on a loaded machine, so
     * the summary may count any number more). The captions' counts never decrease.
     */
    @Test void stageSummaryCountsAgreeWithTheCaptions() throws Exception {
        // 500 fps: far faster than any caption (tens of ms even on a fast machine), so newest-wins must drop frames
        Result r = run("caption", "--json", "--count", "4", "--every", "all", "--source", "test:ball?width=160&height=120&fps=500");
        assertEquals(0, r.code(), r.err());
        assertEquals(4, r.out().size(), r.out().toString());
        long previous = 0;
        for (String line : r.out()) {
            long d = new ObjectMapper().readTree(line).get("dropped").asLong();
            assertTrue(d >= previous, "a caption's dropped count never decreases: " + r.out());
            previous = d;
        }
        long lastDropped = previous;
        assertTrue(lastDropped > 0, "the slow model must have dropped frames: " + r.out());
        java.util.regex.Matcher m = java.util.regex.Pattern
                .compile("vlmflux: stage model +in=(\\d+) out=(\\d+) dropped=(\\d+) errors=(\\d+) p50=").matcher(r.err());
        assertTrue(m.find(), r.err());
        long in = Long.parseLong(m.group(1)), out = Long.parseLong(m.group(2)), dropped = Long.parseLong(m.group(3));
        assertEquals(4, out, r.err());
        System.out.println("summary dropped=" + dropped + ", last caption dropped=" + lastDropped);
        assertTrue(dropped >= lastDropped, "summary dropped=" + dropped + ", last caption dropped=" + lastDropped);
        assertEquals(in, out + dropped, r.err());
        assertEquals("0", m.group(4));
        assertTrue(r.err().contains("vlmflux: stage sample/test:ball") && r.err().contains("vlmflux: stage fan-in/test:ball"), r.err());
    }

    /**
     * An image folder with a corrupt file in the middle: every good image is captioned and named, the bad one is
     * skipped with a source_skipped event in the JSON stream, and nothing after it is lost.
     */
    @Test void imageFolderCaptionsEveryGoodFileNamesItAndReportsTheSkippedOne(@TempDir Path tmp) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("stills"));
        java.awt.image.BufferedImage img = new java.awt.image.BufferedImage(160, 120, java.awt.image.BufferedImage.TYPE_INT_RGB);
        java.awt.Graphics2D g = img.createGraphics();
        g.setColor(java.awt.Color.WHITE);
        g.fillOval(60, 40, 40, 40);
        g.dispose();
        javax.imageio.ImageIO.write(img, "png", dir.resolve("a.png").toFile());
        Files.write(dir.resolve("b.png"), new byte[] {(byte) 0x89, 'P', 'N', 'G', 1, 2, 3});   // not an image
        javax.imageio.ImageIO.write(img, "png", dir.resolve("c.png").toFile());
        Result r = run("caption", "--json", "--source", "images:" + dir, "--every", "all", "--max-tokens", "8");
        assertEquals(0, r.code(), r.err());
        List<JsonNode> lines = new ArrayList<>();
        for (String l : r.out()) lines.add(new ObjectMapper().readTree(l));
        List<String> files = lines.stream().filter(j -> j.has("text")).map(j -> j.path("file").asText()).toList();
        assertEquals(List.of("a.png", "c.png"), files, r.out().toString());
        List<Long> seqs = lines.stream().filter(j -> j.has("text")).map(j -> j.get("seq").asLong()).toList();
        assertEquals(2, seqs.size());
        assertTrue(seqs.get(1) > seqs.get(0), "each still has its own index: " + seqs);
        assertTrue(lines.stream().anyMatch(j -> "source_skipped".equals(j.path("event").asText()) && j.path("message").asText().contains("b.png")),
                r.out().toString());
    }

    /** Answers constrained to a list of choices: the demo model must pick one of them for every frame. */
    @Test void choiceConstrainedCaptions() throws Exception {
        Result r = run("caption", "--json", "--source", "test:smpte?live=false&num-buffers=20", "--every", "10f", "--max-tokens", "8",
                "--prompt", "What is shown?", "--choice", "vertical color bars,a white circle,random noise");
        assertEquals(0, r.code(), r.err());
        List<String> texts = new ArrayList<>();
        for (String l : r.out()) {
            JsonNode j = new ObjectMapper().readTree(l);
            if (j.has("text")) texts.add(j.get("text").asText());
        }
        assertEquals(2, texts.size(), r.out().toString());
        for (String t : texts) assertTrue(List.of("vertical color bars", "a white circle", "random noise").contains(t), t);
        assertEquals("vertical color bars", texts.getFirst(), "the demo model knows the colour bars");
        Result bad = run("caption", "--regex", "a(b", "--count", "1");
        assertNotEquals(0, bad.code());
        assertTrue(bad.err().contains("--regex"), bad.err());
    }
}
