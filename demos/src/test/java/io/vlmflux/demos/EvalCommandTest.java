package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code vlmflux eval --images}: caption agreement of the demo model with itself, and of its 4-bit copy
 * ({@code vlmflux quantize --method rtn}) with it, over drawn scenes, through the real runtime on the cpu.
 */
class EvalCommandTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir static Path dir;
    static Path images;

    @BeforeAll static void scenes() throws Exception {
        images = Files.createDirectories(dir.resolve("scenes"));
        Color[] colours = {Color.WHITE, Color.RED, Color.BLUE, Color.GREEN};
        for (int i = 0; i < colours.length; i++) {
            BufferedImage img = new BufferedImage(320, 240, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            g.setColor(colours[i]);
            if (i % 2 == 0) g.fillOval(30 + 60 * i, 40 + 30 * i, 70, 70);
            else g.fillRect(30 + 60 * i, 40 + 30 * i, 70, 70);
            g.dispose();
            assertTrue(ImageIO.write(img, "png", images.resolve("scene" + i + ".png").toFile()));
        }
        Files.writeString(images.resolve("notes.txt"), "not an image: skipped");
    }

    static JsonNode eval(String... args) throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream old = System.out;
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, new EvalCommand().run(List.of(args)));
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8).strip();
        assertFalse(out.contains("\n"), "one JSON object: " + out);
        return JSON.readTree(out);
    }

    @Test void aModelAgreesWithItselfOnEveryCaption() throws Exception {
        JsonNode j = eval("--model", MODEL.toString(), "--reference", MODEL.toString(), "--windows", "1", "--window", "16",
                "--images", images.toString(), "--max-tokens", "16", "--json");
        assertEquals(1.0, j.get("top1").asDouble());
        JsonNode c = j.get("captions");
        assertEquals(4, c.get("images").asInt(), "the four png files, not notes.txt");
        assertEquals(1.0, c.get("exact").asDouble());
        assertEquals(1.0, c.get("prefix_agreement").asDouble());
        assertEquals(1.0, c.get("word_f1").asDouble());
        List<String> names = new ArrayList<>();
        for (JsonNode it : c.get("items")) {
            names.add(it.get("image").asText());
            assertFalse(it.get("caption").asText().isBlank(), it.toString());
            assertEquals(it.get("tokens").asInt(), it.get("common_prefix").asInt(), it.toString());
        }
        assertEquals(List.of("scene0.png", "scene1.png", "scene2.png", "scene3.png"), names, "name order");
    }

    @Test void fourBitCaptionsAreScoredAgainstSixteenBit() throws Exception {
        Path q = dir.resolve("shapes-vl-rtn");
        assertEquals(0, new QuantizeCommand().run(List.of("--model", MODEL.toString(), "--out", q.toString(), "--method", "rtn", "--group-size", "64")));
        JsonNode c = eval("--model", q.toString(), "--reference", MODEL.toString(), "--windows", "1", "--window", "16",
                "--images", images.toString(), "--max-tokens", "16", "--json").get("captions");
        int exact = 0;
        for (JsonNode it : c.get("items")) {
            boolean same = it.get("caption").asText().equals(it.get("reference").asText());
            assertEquals(same, it.get("exact").asBoolean(), it.toString());
            if (same) {
                exact++;
                assertEquals(1.0, it.get("word_f1").asDouble(), it.toString());
            } else assertTrue(it.get("word_f1").asDouble() < 1.0 || it.get("common_prefix").asInt() < it.get("tokens").asInt(), it.toString());
        }
        assertEquals(exact / 4.0, c.get("exact").asDouble(), 1e-9);
        // docs/quantization.md: RTN at group 64 keeps this model's captions; a broken 4-bit path would not
        assertTrue(exact >= 3, "4-bit captions equal to 16-bit: " + exact + " of 4: " + c.get("items"));
    }

    @Test void badImageArgumentsAreClearErrors(@TempDir Path empty) {
        UsageException a = assertThrows(UsageException.class, () -> new EvalCommand().run(List.of("--model", MODEL.toString(), "--images", images.toString())));
        assertTrue(a.getMessage().contains("--images needs --reference"), a.getMessage());
        UsageException b = assertThrows(UsageException.class, () -> new EvalCommand().run(List.of("--model", MODEL.toString(), "--reference",
                MODEL.toString(), "--images", empty.toString())));
        assertTrue(b.getMessage().contains(empty.toString()) && b.getMessage().contains("no png"), b.getMessage());
        UsageException c = assertThrows(UsageException.class, () -> new EvalCommand().run(List.of("--model", MODEL.toString(), "--reference",
                MODEL.toString(), "--images", empty.resolve("missing").toString())));
        assertTrue(c.getMessage().contains("no such folder"), c.getMessage());
    }
}
