package io.vlmflux.vision;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.vision.qwen2vl.VisionConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.*;

/** Wrong or hostile vision configs and images: refused quickly, naming the file, the field and the value. */
@Timeout(60)
class VisionFileHardeningTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @TempDir Path dir;

    private Path edited(String file, Consumer<ObjectNode> edit) throws IOException {
        Path d = Files.createTempDirectory(dir, "m");
        ObjectNode n = (ObjectNode) JSON.readTree(Fixtures.fixture("tiny-qwen2vl").resolve(file).toFile());
        edit.accept(n);
        Files.writeString(d.resolve(file), JSON.writeValueAsString(n));
        return d;
    }

    private static void assertNames(Throwable e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage() != null && e.getMessage().contains(p), "'" + p + "' missing in: " + e.getMessage());
    }

    @Test void zeroVisionSizesNameTheField() throws IOException {
        for (String field : new String[]{"depth", "num_heads", "patch_size"}) {
            Path d = edited("config.json", n -> ((ObjectNode) n.get("vision_config")).put(field, 0));
            var e = assertThrows(IllegalArgumentException.class, () -> VisionConfig.load(d));
            assertNames(e, d.resolve("config.json").toString(), "'" + field + "'", "got 0");
        }
    }

    @Test void nonNumericVisionFieldIsNotDefaulted() throws IOException {
        Path d = edited("config.json", n -> ((ObjectNode) n.get("vision_config")).put("depth", "x"));
        var e = assertThrows(IllegalArgumentException.class, () -> VisionConfig.load(d));
        assertNames(e, "config.json", "'depth'", "\"x\"");
    }

    @Test void hugePixelBoundsAreCapped() throws IOException {
        for (String[] f : new String[][]{{"size", "shortest_edge"}, {"size", "longest_edge"}, {null, "max_pixels"}, {null, "min_pixels"}}) {
            Path d = edited("preprocessor_config.json", n -> {
                ObjectNode o = f[0] == null ? n : (ObjectNode) n.get(f[0]);
                o.put(f[1], 40_000_000L);
            });
            var e = assertThrows(IllegalArgumentException.class, () -> PreprocessorConfig.load(d));
            assertNames(e, "preprocessor_config.json", f[1], "40000000", String.valueOf(PreprocessorConfig.MAX_PIXELS));
        }
    }

    @Test void fractionalPixelBoundIsRejected() throws IOException {
        Path d = edited("preprocessor_config.json", n -> n.put("max_pixels", 4e7));
        var e = assertThrows(IllegalArgumentException.class, () -> PreprocessorConfig.load(d));
        assertNames(e, "preprocessor_config.json", "max_pixels");
    }

    @Test void hugeImageIsRefusedBeforeDecoding() throws IOException {
        Path png = dir.resolve("huge.png");
        Files.write(png, pngHeader(30000, 30000));
        var e = assertThrows(IllegalArgumentException.class, () -> Images.read(png).close());
        assertNames(e, png.toString(), "30000x30000", String.valueOf(Images.MAX_PIXELS));
    }

    /** A PNG signature and IHDR chunk (no image data: the size is all a reader needs to report). */
    static byte[] pngHeader(int w, int h) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(out);
        d.write(new byte[]{(byte) 0x89, 'P', 'N', 'G', 13, 10, 26, 10});
        ByteArrayOutputStream chunk = new ByteArrayOutputStream();
        DataOutputStream c = new DataOutputStream(chunk);
        c.writeBytes("IHDR");
        c.writeInt(w); c.writeInt(h);
        c.write(new byte[]{8, 2, 0, 0, 0});
        byte[] body = chunk.toByteArray();
        d.writeInt(body.length - 4);
        d.write(body);
        CRC32 crc = new CRC32();
        crc.update(body);
        d.writeInt((int) crc.getValue());
        return out.toByteArray();
    }
}
