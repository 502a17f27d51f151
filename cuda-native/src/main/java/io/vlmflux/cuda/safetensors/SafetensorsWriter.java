package io.vlmflux.cuda.safetensors;

import io.vlmflux.cuda.DType;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a safetensors file from values produced on the fly (no whole-tensor buffers), so tests and benchmarks can
 * make checkpoints of any size: {@code new SafetensorsWriter().add("w", DType.BF16, new long[]{4, 8}, i -> ...)
 * .write(path)}. Floats are rounded to the target dtype (bf16/f16 round-to-nearest-even); integer dtypes take
 * {@code (long) value}. The header is padded with spaces to a multiple of 8 bytes, like the reference writer.
 */
public final class SafetensorsWriter {
    /** Value of flat element {@code index}. */
    @FunctionalInterface
    public interface Values { float at(long index); }

    private record Entry(String name, DType dtype, long[] shape, Values values, long[] exact) {
        Entry(String name, DType dtype, long[] shape, Values values) { this(name, dtype, shape, values, null); }
    }

    private final List<Entry> entries = new ArrayList<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    public SafetensorsWriter add(String name, DType dtype, long[] shape, Values values) {
        for (Entry e : entries) if (e.name.equals(name)) throw new IllegalArgumentException("duplicate tensor '" + name + "'");
        entries.add(new Entry(name, dtype, shape.clone(), values));
        return this;
    }

    public SafetensorsWriter add(String name, DType dtype, long[] shape, float[] values) {
        if (TensorView.numel(shape) != values.length)
            throw new IllegalArgumentException("tensor '" + name + "': " + values.length + " values for shape " + java.util.Arrays.toString(shape));
        return add(name, dtype, shape, i -> values[(int) i]);
    }

    /**
     * An integer tensor ({@code I32}, {@code I64}, {@code I16}, {@code I8}, {@code U8}) from exact values (packed int32
     * words do not survive a trip through float).
     */
    public SafetensorsWriter addExact(String name, DType dtype, long[] shape, long[] values) {
        if (dtype.isFloating() || dtype == DType.BOOL) throw new IllegalArgumentException("tensor '" + name + "': addExact takes integer dtypes, not " + dtype);
        if (TensorView.numel(shape) != values.length)
            throw new IllegalArgumentException("tensor '" + name + "': " + values.length + " values for shape " + java.util.Arrays.toString(shape));
        for (Entry e : entries) if (e.name.equals(name)) throw new IllegalArgumentException("duplicate tensor '" + name + "'");
        entries.add(new Entry(name, dtype, shape.clone(), null, values.clone()));
        return this;
    }

    public SafetensorsWriter metadata(String key, String value) { metadata.put(key, value); return this; }

    /** The JSON header this writer produces (unpadded). */
    public String header() {
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        if (!metadata.isEmpty()) {
            sb.append("\"__metadata__\":{");
            boolean f2 = true;
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                if (!f2) sb.append(',');
                f2 = false;
                sb.append(quote(m.getKey())).append(':').append(quote(m.getValue()));
            }
            sb.append('}');
            first = false;
        }
        long off = 0;
        for (Entry e : entries) {
            long bytes = TensorView.numel(e.shape) * e.dtype.byteSize();
            if (!first) sb.append(',');
            first = false;
            sb.append(quote(e.name)).append(":{\"dtype\":\"").append(e.dtype.safetensorsName()).append("\",\"shape\":[");
            for (int i = 0; i < e.shape.length; i++) sb.append(i == 0 ? "" : ",").append(e.shape[i]);
            sb.append("],\"data_offsets\":[").append(off).append(',').append(off + bytes).append("]}");
            off += bytes;
        }
        return sb.append('}').toString();
    }

    private static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }

    public void write(Path file) throws IOException {
        byte[] h = header().getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) / 8 * 8;
        ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(padded).put(h);
            while (head.hasRemaining()) head.put((byte) ' ');
            head.flip();
            while (head.hasRemaining()) ch.write(head);
            for (Entry e : entries) {
                long n = TensorView.numel(e.shape);
                for (long i = 0; i < n; i++) {
                    if (buf.remaining() < 8) { buf.flip(); while (buf.hasRemaining()) ch.write(buf); buf.clear(); }
                    if (e.exact != null) {
                        long x = e.exact[(int) i];
                        switch (e.dtype) {
                            case I64 -> buf.putLong(x);
                            case I32 -> buf.putInt((int) x);
                            case I16 -> buf.putShort((short) x);
                            default -> buf.put((byte) x);
                        }
                        continue;
                    }
                    float v = e.values.at(i);
                    switch (e.dtype) {
                        case F32 -> buf.putFloat(v);
                        case F64 -> buf.putDouble(v);
                        case BF16 -> buf.putShort(DType.floatToBf16(v));
                        case F16 -> buf.putShort(DType.floatToF16(v));
                        case I64 -> buf.putLong((long) v);
                        case I32 -> buf.putInt((int) v);
                        case I16 -> buf.putShort((short) v);
                        case I8, U8, BOOL -> buf.put((byte) v);
                    }
                }
            }
            buf.flip();
            while (buf.hasRemaining()) ch.write(buf);
        }
    }
}
