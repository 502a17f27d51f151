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
import java.nio.file.attribute.FileTime;

import static org.junit.jupiter.api.Assertions.*;

/** Corrupt headers, non-finite weights and files changed under a loaded store. */
class SafetensorsHardeningTest {
    @TempDir Path dir;

    private Path raw(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path f = dir.resolve("x.safetensors");
        Files.write(f, b.array());
        return f;
    }

    @Test void overlappingTensorOffsetsAreRejectedNamingBoth() throws IOException {
        Path f = raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        var e = assertThrows(IllegalArgumentException.class, () -> SafetensorsFile.open(f).close());
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("'a'") && e.getMessage().contains("'b'")
                && e.getMessage().contains("overlap"), e.getMessage());
    }

    @Test void nanWeightsAreRejectedWhenCopied() throws IOException {
        Path f = dir.resolve("model.safetensors");
        new SafetensorsWriter().add("ok", DType.BF16, new long[]{3}, new float[]{1, 2, 3})
                .add("w", DType.BF16, new long[]{4}, new float[]{1, 2, Float.NaN, 4}).write(f);
        var e = assertThrows(IllegalArgumentException.class, () -> WeightStore.read(dir).close());
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("'w'") && e.getMessage().contains("element 2"), e.getMessage());
        new SafetensorsWriter().add("w", DType.F32, new long[]{2}, new float[]{1, Float.NEGATIVE_INFINITY}).write(f);
        assertThrows(IllegalArgumentException.class, () -> WeightStore.read(dir).close());
        new SafetensorsWriter().add("w", DType.F16, new long[]{2}, new float[]{1, Float.POSITIVE_INFINITY}).write(f);
        assertThrows(IllegalArgumentException.class, () -> WeightStore.read(dir).close());
    }

    @Test void copiedStoreSurvivesTruncationAndNoticesTheChange() throws IOException {
        Path f = dir.resolve("model.safetensors");
        float[] v = new float[4096];
        for (int i = 0; i < v.length; i++) v[i] = i;
        new SafetensorsWriter().add("w", DType.F32, new long[]{v.length}, v).write(f);
        try (WeightStore w = WeightStore.read(dir)) {
            w.checkUnchanged();
            try (RandomAccessFile r = new RandomAccessFile(f.toFile(), "rw")) { r.setLength(100); }
            assertEquals(4095f, w.tensor("w").get(4095));          // the copy is ours: no SIGBUS
            var e = assertThrows(IllegalStateException.class, w::checkUnchanged);
            assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("atomically"), e.getMessage());
        }
    }

    @Test void rewriteInPlaceWithSameSizeIsNoticed() throws IOException {
        Path f = dir.resolve("model.safetensors");
        new SafetensorsWriter().add("w", DType.F32, new long[]{2}, new float[]{1, 2}).write(f);
        try (WeightStore w = WeightStore.open(dir)) {
            new SafetensorsWriter().add("w", DType.F32, new long[]{2}, new float[]{3, 4}).write(f);
            Files.setLastModifiedTime(f, FileTime.fromMillis(Files.getLastModifiedTime(f).toMillis() + 5000));
            assertThrows(IllegalStateException.class, w::checkUnchanged);
        }
    }

    @Test void readCopyEqualsMapping() throws IOException {
        try (WeightStore m = WeightStore.open(SafetensorsTest.fixture("tiny-qwen2")); WeightStore c = WeightStore.read(SafetensorsTest.fixture("tiny-qwen2"))) {
            assertEquals(m.names(), c.names());
            for (String n : m.names())
                assertEquals(m.tensor(n).segment().mismatch(c.tensor(n).segment()), -1L, n);
        }
    }
}
