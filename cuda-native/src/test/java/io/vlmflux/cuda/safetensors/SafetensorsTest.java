package io.vlmflux.cuda.safetensors;

import io.vlmflux.cuda.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class SafetensorsTest {
    @TempDir Path dir;

    static Path fixture(String model) {
        return Path.of(System.getProperty("vlmflux.root", "..")).resolve("llm/src/test/resources/fixtures").resolve(model);
    }

    @Test void roundTripAllFloatTypes() throws IOException {
        float[] v = {1.5f, -2.25f, 3.0e-3f, 65504f, -0.0f, 7f};
        Path f = dir.resolve("a.safetensors");
        new SafetensorsWriter().metadata("format", "pt")
                .add("f32", DType.F32, new long[]{2, 3}, v)
                .add("bf16", DType.BF16, new long[]{6}, v)
                .add("f16", DType.F16, new long[]{3, 2}, v)
                .add("i32", DType.I32, new long[]{2}, new float[]{7, -9})
                .write(f);
        try (SafetensorsFile s = SafetensorsFile.open(f)) {
            assertEquals("pt", s.metadata().get("format"));
            assertArrayEquals(v, s.tensor("f32").toFloatArray());
            float[] b = s.tensor("bf16").toFloatArray();
            for (int i = 0; i < v.length; i++) assertEquals(DType.bf16ToFloat(DType.floatToBf16(v[i])), b[i]);
            assertEquals(1.5f, b[0]);
            float[] h = s.tensor("f16").toFloatArray();
            assertEquals(65504f, h[3]);
            assertEquals(-2.25f, s.tensor("f16").get(1));
            assertArrayEquals(new int[]{7, -9}, s.tensor("i32").toIntArray());
            assertArrayEquals(new long[]{2, 3}, s.tensor("f32").shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.tensor("nope"));
            assertTrue(e.getMessage().contains("nope") && e.getMessage().contains(f.toString()), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> s.tensor("f32").requireShape(3, 2));
        }
    }

    @Test void readsFixtureCheckpoint() throws IOException {
        try (WeightStore w = WeightStore.open(fixture("tiny-qwen2"))) {
            TensorView t = w.tensor("model.embed_tokens.weight", 3014, 96);
            assertEquals(DType.BF16, t.dtype());
            assertTrue(Float.isFinite(t.get(3014L * 96 - 1)));
            assertFalse(w.has("lm_head.weight"));
        }
    }

    @Test void shardedStore() throws IOException {
        new SafetensorsWriter().add("a", DType.F32, new long[]{2}, new float[]{1, 2}).write(dir.resolve("s1.safetensors"));
        new SafetensorsWriter().add("b", DType.BF16, new long[]{1}, new float[]{3}).write(dir.resolve("s2.safetensors"));
        Files.writeString(dir.resolve(WeightStore.INDEX), "{\"metadata\":{},\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}");
        try (WeightStore w = WeightStore.open(dir)) {
            assertEquals(2f, w.tensor("a").get(1));
            assertEquals(3f, w.tensor("b").get(0));
            assertEquals(2, w.files().size());
        }
        Files.writeString(dir.resolve(WeightStore.INDEX), "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}}");
        var e = assertThrows(IllegalArgumentException.class, () -> WeightStore.open(dir));
        assertTrue(e.getMessage().contains("'b'") && e.getMessage().contains("s1.safetensors"), e.getMessage());
        Files.writeString(dir.resolve(WeightStore.INDEX), "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s3.safetensors\"}}");
        var e2 = assertThrows(IOException.class, () -> WeightStore.open(dir));
        assertTrue(e2.getMessage().contains("s3.safetensors"), e2.getMessage());
    }

    @Test void missingModelFolderContents() {
        var e = assertThrows(IOException.class, () -> WeightStore.open(dir));
        assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
    }

    /** A sparse file > 2 GiB whose header declares one big F32 tensor; values near the end are read back. */
    @Test void tensorLargerThan2GiB() throws IOException {
        long n = 2_200_000_000L; // 4.4 GB of BF16, more elements than an int can index
        String header = "{\"big\":{\"dtype\":\"BF16\",\"shape\":[" + n + "],\"data_offsets\":[0," + n * 2 + "]}}";
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        Path f = dir.resolve("big.safetensors");
        try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
            ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length);
            raf.write(b.array());
            raf.write(h);
            long dataStart = 8 + h.length;
            raf.setLength(dataStart + n * 2);
            raf.seek(dataStart + (n - 1) * 2);
            raf.write(ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort(DType.floatToBf16(42.5f)).array());
            raf.seek(dataStart + (n - 600_000_000L) * 2);
            raf.write(ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort(DType.floatToBf16(-3f)).array());
        }
        try (SafetensorsFile s = SafetensorsFile.open(f)) {
            TensorView t = s.tensor("big");
            assertEquals(n, t.numel());
            assertEquals(n * 2, t.byteSize());
            assertEquals(42.5f, t.get(n - 1));
            assertEquals(-3f, t.get(n - 600_000_000L));
            assertEquals(0f, t.get(n - 2));
            float[] tail = new float[2];
            t.copyTo(n - 2, tail, 0, 2);
            assertEquals(42.5f, tail[1]);
            assertThrows(IllegalStateException.class, t::toFloatArray);
        }
    }

    private Path raw(String name, byte[] headerBytes, long declaredLen, int dataBytes) throws IOException {
        Path f = dir.resolve(name);
        ByteBuffer b = ByteBuffer.allocate(8 + headerBytes.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(declaredLen).put(headerBytes);
        Files.write(f, b.array());
        return f;
    }

    private Path raw(String name, String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return raw(name, h, h.length, dataBytes);
    }

    private static void assertMessage(Path f, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SafetensorsFile.open(f).close());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
    }

    @Test void badInputsNameFileTensorAndExpectation() throws IOException {
        Files.write(dir.resolve("tiny"), new byte[]{1, 2, 3});
        assertMessage(dir.resolve("tiny"), "truncated");
        assertMessage(raw("trunc", "{\"a\":{}}".getBytes(StandardCharsets.UTF_8), 100, 0), "truncated", "100");
        assertMessage(raw("notjson", "hello world", 0), "not valid JSON");
        assertMessage(raw("range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), "'w'", "out of range");
        assertMessage(raw("shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16), "'w'", "needs 12");
        assertMessage(raw("dtype", "{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[3],\"data_offsets\":[0,3]}}", 16), "'w'", "Q4_K");
        assertMessage(raw("noshape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "'w'", "shape");
        assertMessage(raw("neg", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "'w'", "non-negative");
        assertMessage(raw("huge", "{\"w\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,4],\"data_offsets\":[0,4]}}", 4), "'w'", "overflow");
        assertMessage(raw("arr", "[1,2]", 0), "JSON object");
    }

    /** Hundreds of randomly corrupted headers: always a clean IllegalArgumentException or a valid file, never a crash. */
    @Test void randomlyCorruptedHeadersNeverCrash() throws IOException {
        Path good = dir.resolve("good.safetensors");
        new SafetensorsWriter().metadata("format", "pt")
                .add("x.weight", DType.BF16, new long[]{4, 8}, i -> (float) Math.sin(i))
                .add("x.bias", DType.F32, new long[]{4}, i -> i)
                .write(good);
        byte[] orig = Files.readAllBytes(good);
        long headerLen = ByteBuffer.wrap(orig, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        int ok = 0, rejected = 0;
        for (int seed = 0; seed < 400; seed++) {
            Random r = new Random(seed);
            byte[] b = orig.clone();
            int edits = 1 + r.nextInt(6);
            for (int k = 0; k < edits; k++) {
                int pos = (int) (r.nextInt((int) Math.min(headerLen + 8, b.length)));
                if (seed % 10 == 0 && k == 0) pos = r.nextInt(8);       // hit the length field sometimes
                b[pos] = switch (r.nextInt(4)) {
                    case 0 -> (byte) r.nextInt(256);
                    case 1 -> (byte) "{}[]\",:0123456789-".charAt(r.nextInt(18));
                    case 2 -> (byte) (b[pos] ^ (1 << r.nextInt(8)));
                    default -> (byte) ' ';
                };
            }
            if (seed % 7 == 0) b = java.util.Arrays.copyOf(b, r.nextInt(b.length));   // truncate too
            Path f = dir.resolve("c" + seed);
            Files.write(f, b);
            try (SafetensorsFile s = SafetensorsFile.open(f)) {
                for (TensorView t : s.tensors().values()) if (t.numel() > 0) t.get(t.numel() - 1);
                ok++;
            } catch (IllegalArgumentException e) {
                assertNotNull(e.getMessage());
                assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
                rejected++;
            }
        }
        assertTrue(rejected > 100, "rejected " + rejected + ", ok " + ok);
    }
}
