package io.vlmflux.cuda.safetensors;

import io.vlmflux.cuda.DType;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * One {@code .safetensors} file, memory-mapped read-only with FFM ({@code FileChannel.map(.., Arena)}); nothing is
 * copied to the heap. Layout: 8-byte little-endian header length N, N bytes of JSON
 * ({@code {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}}), then the
 * data region, offsets relative to its start. The header is validated completely at {@link #open}: every problem
 * (truncated file, non-JSON header, unknown dtype, offsets outside the file, byte count not matching the shape) is an
 * {@link IllegalArgumentException} naming the file and the tensor.
 *
 * <p>Use: {@code try (var f = SafetensorsFile.open(path)) { TensorView t = f.tensor("x"); ... }}. Views die with the
 * file: {@link #close()} unmaps (the owned shared arena is closed).
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Headers above this size are rejected (published checkpoints stay far below). */
    public static final long MAX_HEADER_BYTES = 100L << 20;

    private final Path path;
    private final Arena arena;
    private final boolean ownsArena;
    private final MemorySegment mapping;
    private final Map<String, TensorView> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, boolean ownsArena, MemorySegment mapping,
                            Map<String, TensorView> tensors, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.ownsArena = ownsArena;
        this.mapping = mapping;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Maps {@code file} in its own shared arena (closed by {@link #close()}). */
    public static SafetensorsFile open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            return open(file, arena, true);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Maps {@code file} into the caller's arena; {@link #close()} then leaves the arena open. */
    public static SafetensorsFile open(Path file, Arena arena) throws IOException {
        return open(file, arena, false);
    }

    private static SafetensorsFile open(Path file, Arena arena, boolean owns) throws IOException {
        MemorySegment map;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8)
                throw new IllegalArgumentException(file + ": truncated safetensors file: " + size + " bytes, need at least the 8-byte header length");
            map = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
        }
        long size = map.byteSize();
        long n = map.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 0);
        if (n < 2 || n > MAX_HEADER_BYTES)
            throw new IllegalArgumentException(file + ": header length " + Long.toUnsignedString(n) + " is not plausible (expected 2.." + MAX_HEADER_BYTES + " bytes); not a safetensors file?");
        if (n > size - 8)
            throw new IllegalArgumentException(file + ": truncated safetensors file: header declares " + n + " bytes but the file has only " + (size - 8) + " after the length");
        byte[] hb = map.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(hb)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(file + ": safetensors header is not valid UTF-8", e);
        }
        Object root;
        try {
            root = MiniJson.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": safetensors header is not valid JSON: " + e.getMessage(), e);
        }
        if (!(root instanceof Map<?, ?> header))
            throw new IllegalArgumentException(file + ": safetensors header must be a JSON object");
        long dataStart = 8 + n;
        long dataSize = size - dataStart;
        Map<String, TensorView> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : header.entrySet()) {
            String name = (String) e.getKey();
            if (name.equals("__metadata__")) {
                if (e.getValue() instanceof Map<?, ?> md)
                    for (Map.Entry<?, ?> m : md.entrySet()) metadata.put((String) m.getKey(), String.valueOf(m.getValue()));
                else if (e.getValue() != null)
                    throw new IllegalArgumentException(file + ": __metadata__ must be an object");
                continue;
            }
            String where = file + ": tensor '" + name + "'";
            if (!(e.getValue() instanceof Map<?, ?> info))
                throw new IllegalArgumentException(where + ": header entry must be an object with dtype, shape, data_offsets");
            if (!(info.get("dtype") instanceof String ds))
                throw new IllegalArgumentException(where + ": missing string field 'dtype'");
            DType dtype;
            try { dtype = DType.fromSafetensors(ds); }
            catch (IllegalArgumentException ex) { throw new IllegalArgumentException(where + ": " + ex.getMessage(), ex); }
            if (!(info.get("shape") instanceof List<?> sl))
                throw new IllegalArgumentException(where + ": missing array field 'shape'");
            long[] shape = new long[sl.size()];
            for (int i = 0; i < shape.length; i++) {
                if (!(sl.get(i) instanceof Long d) || d < 0)
                    throw new IllegalArgumentException(where + ": shape " + sl + " must hold non-negative integers");
                shape[i] = d;
            }
            if (!(info.get("data_offsets") instanceof List<?> ol) || ol.size() != 2
                    || !(ol.get(0) instanceof Long begin) || !(ol.get(1) instanceof Long end))
                throw new IllegalArgumentException(where + ": 'data_offsets' must be [begin, end] integers");
            long expect;
            try {
                expect = Math.multiplyExact(TensorView.numel(shape), (long) dtype.byteSize());
            } catch (ArithmeticException ex) {
                throw new IllegalArgumentException(where + ": shape " + sl + " overflows", ex);
            }
            if (begin < 0 || end < begin || end > dataSize)
                throw new IllegalArgumentException(where + ": data_offsets [" + begin + ", " + end + "] out of range: the data region holds "
                        + dataSize + " bytes (file truncated or header corrupt)");
            if (end - begin != expect)
                throw new IllegalArgumentException(where + ": data_offsets span " + (end - begin) + " bytes but " + dtype + " shape " + sl
                        + " needs " + expect);
            tensors.put(name, new TensorView(name, dtype, shape, map.asSlice(dataStart + begin, end - begin), file));
        }
        return new SafetensorsFile(file, arena, owns, map, Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
    }

    public Path path() { return path; }

    /** Tensors in header order. */
    public Map<String, TensorView> tensors() { return tensors; }

    public Set<String> names() { return tensors.keySet(); }

    public Map<String, String> metadata() { return metadata; }

    public Optional<TensorView> find(String name) { return Optional.ofNullable(tensors.get(name)); }

    /** The tensor, or an exception naming the file and the tensor. */
    public TensorView tensor(String name) {
        TensorView t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException(path + ": no tensor '" + name + "' (file has " + tensors.size() + " tensors)");
        return t;
    }

    /** The whole mapping (header included). */
    public MemorySegment mapping() { return mapping; }

    @Override public void close() {
        if (ownsArena && arena.scope().isAlive()) arena.close();
    }
}
