package io.vlmflux.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Paths of the shared fixtures and a minimal F32 reader for golden.safetensors (test-only). */
public final class Fixtures {
    private Fixtures() {}

    public static Path root() {
        return Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    }

    public static Path fixture(String name) {
        return root().resolve("llm/src/test/resources/fixtures").resolve(name);
    }

    public static JsonNode golden(String name) throws IOException {
        return new ObjectMapper().readTree(fixture(name).resolve("golden.json").toFile());
    }

    /** Reads one F32 tensor of a safetensors file; returns its values, shape in {@code shapeOut[0]}. */
    public static float[] readF32(Path file, String tensor, int[][] shapeOut) throws IOException {
        byte[] all = Files.readAllBytes(file);
        ByteBuffer bb = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        long n = bb.getLong(0);
        JsonNode h = new ObjectMapper().readTree(new String(all, 8, (int) n, StandardCharsets.UTF_8));
        JsonNode t = h.get(tensor);
        if (t == null) throw new IllegalArgumentException("no tensor " + tensor + " in " + file);
        if (!t.get("dtype").asText().equals("F32")) throw new IllegalArgumentException(tensor + " is not F32");
        int[] shape = new int[t.get("shape").size()];
        for (int i = 0; i < shape.length; i++) shape[i] = t.get("shape").get(i).asInt();
        if (shapeOut != null) shapeOut[0] = shape;
        long begin = t.get("data_offsets").get(0).asLong(), end = t.get("data_offsets").get(1).asLong();
        float[] out = new float[(int) ((end - begin) / 4)];
        bb.position((int) (8 + n + begin));
        bb.asFloatBuffer().get(out);
        return out;
    }
}
