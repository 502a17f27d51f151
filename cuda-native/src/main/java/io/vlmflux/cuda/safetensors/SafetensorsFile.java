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
 * Tensors whose byte ranges overlap are rejected too (naming both).
 *
 * <p>Two ways to hold the data: {@link #open} maps the file (cheap; for backends that copy the weights once, like the
 * GPU upload), {@link #read} reads it with plain file reads into memory the process owns (for backends that read the
 * weights on every token, like the CPU decoder). A mapping dies with SIGBUS when the file is truncated or rewritten in
 * place while mapped; a read copy cannot: a file that shrinks or changes while it is being read is an
 * {@link IllegalStateException} naming it. The copy also scans float tensors for NaN/Inf (every element; the copy
 * touches them anyway). The file's size and modification time at open are kept: {@link #checkUnchanged()} says
 * whether it was replaced or rewritten since.
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
    private final FileStamp stamp;

    private SafetensorsFile(Path path, Arena arena, boolean ownsArena, MemorySegment mapping,
                            Map<String, TensorView> tensors, Map<String, String> metadata, FileStamp stamp) {
        this.stamp = stamp;
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

    /**
     * Reads {@code file} into memory allocated from {@code arena} (plain file reads, no mapping), scanning float
     * tensors for NaN/Inf; {@code progress} (nullable) is told the bytes read as they arrive.
     */
    public static SafetensorsFile read(Path file, Arena arena, java.util.function.LongConsumer progress) throws IOException {
        return open(file, arena, false, true, progress);
    }

    private static SafetensorsFile open(Path file, Arena arena, boolean owns) throws IOException {
        return open(file, arena, owns, false, null);
    }

    private static SafetensorsFile open(Path file, Arena arena, boolean owns, boolean copy,
                                        java.util.function.LongConsumer progress) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            FileStamp stamp = FileStamp.of(file);
            long size = ch.size();
            if (size < 8)
                throw new IllegalArgumentException(file + ": truncated safetensors file: " + size + " bytes, need at least the 8-byte header length");
            java.nio.ByteBuffer lb = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lb, 0, file);
            long n = lb.getLong(0);
            if (n < 2 || n > MAX_HEADER_BYTES)
                throw new IllegalArgumentException(file + ": header length " + Long.toUnsignedString(n) + " is not plausible (expected 2.." + MAX_HEADER_BYTES + " bytes); not a safetensors file?");
            if (n > size - 8)
                throw new IllegalArgumentException(file + ": truncated safetensors file: header declares " + n + " bytes but the file has only " + (size - 8) + " after the length");
            java.nio.ByteBuffer hb = java.nio.ByteBuffer.allocate((int) n);
            readFully(ch, hb, 8, file);
            long dataStart = 8 + n;
            long dataSize = size - dataStart;
            Header h = parseHeader(file, hb.flip(), dataSize);
            MemorySegment whole, data;
            if (copy) {
                try {
                    data = arena.allocate(Math.max(1, dataSize), 64).asSlice(0, dataSize);
                } catch (OutOfMemoryError e) {
                    throw new IllegalStateException(file + ": cannot allocate " + dataSize + " bytes to hold its weights in memory: " + e.getMessage(), e);
                }
                long chunk = 64L << 20;
                for (long off = 0; off < dataSize; off += chunk) {
                    long len = Math.min(chunk, dataSize - off);
                    readFully(ch, data.asSlice(off, len).asByteBuffer(), dataStart + off, file);
                    if (progress != null) progress.accept(len);
                }
                if (!stamp.equals(FileStamp.of(file)) || ch.size() != size)
                    throw new IllegalStateException(file + ": changed while it was being read (was " + stamp + ", now " + FileStamp.of(file)
                            + "); model files must be replaced atomically (write a new file, then rename it over the old one)");
                whole = data;
            } else {
                whole = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
                data = whole.asSlice(dataStart);
            }
            Map<String, TensorView> tensors = new LinkedHashMap<>();
            for (Entry e : h.entries()) {
                TensorView t = new TensorView(e.name(), e.dtype(), e.shape(), data.asSlice(e.begin(), e.end() - e.begin()), file);
                if (copy) requireFinite(t);
                tensors.put(e.name(), t);
            }
            return new SafetensorsFile(file, arena, owns, whole, Collections.unmodifiableMap(tensors),
                    Collections.unmodifiableMap(h.metadata()), stamp);
        }
    }

    private static void readFully(FileChannel ch, java.nio.ByteBuffer dst, long position, Path file) throws IOException {
        long pos = position;
        while (dst.hasRemaining()) {
            int r = ch.read(dst, pos);
            if (r < 0)
                throw new IllegalStateException(file + ": ends at byte " + pos + " while reading (" + dst.remaining()
                        + " more bytes expected): the file was truncated or replaced while loading; model files must be replaced atomically");
            pos += r;
        }
    }

    /** Rejects NaN and infinite values in a float tensor, naming the tensor and the first bad element. */
    static void requireFinite(TensorView t) {
        MemorySegment d = t.segment();
        long n = t.numel();
        long bad = -1;
        switch (t.dtype()) {
            case BF16 -> { for (long i = 0; i < n && bad < 0; i++) if ((d.get(ValueLayout.JAVA_SHORT_UNALIGNED, i * 2) & 0x7f80) == 0x7f80) bad = i; }
            case F16 -> { for (long i = 0; i < n && bad < 0; i++) if ((d.get(ValueLayout.JAVA_SHORT_UNALIGNED, i * 2) & 0x7c00) == 0x7c00) bad = i; }
            case F32 -> { for (long i = 0; i < n && bad < 0; i++) if ((d.get(ValueLayout.JAVA_INT_UNALIGNED, i * 4) & 0x7f800000) == 0x7f800000) bad = i; }
            case F64 -> { for (long i = 0; i < n && bad < 0; i++) if (!Double.isFinite(d.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, i * 8))) bad = i; }
            default -> { }
        }
        if (bad >= 0)
            throw new IllegalArgumentException(t.where() + ": element " + bad + " is " + t.get(bad) + "; weights must be finite (corrupt or badly converted checkpoint)");
    }

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {}

    private record Header(List<Entry> entries, Map<String, String> metadata) {}

    private static Header parseHeader(Path file, java.nio.ByteBuffer hb, long dataSize) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(hb).toString();
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
        List<Entry> entries = new java.util.ArrayList<>();
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
            catch (IllegalArgumentException ex) { throw new IllegalArgumentException(where + ": 'dtype' " + ex.getMessage(), ex); }
            if (!(info.get("shape") instanceof List<?> sl))
                throw new IllegalArgumentException(where + ": missing array field 'shape'");
            long[] shape = new long[sl.size()];
            for (int i = 0; i < shape.length; i++) {
                if (!(sl.get(i) instanceof Long d) || d < 0)
                    throw new IllegalArgumentException(where + ": 'shape' " + sl + " must hold non-negative integers");
                shape[i] = d;
            }
            if (!(info.get("data_offsets") instanceof List<?> ol) || ol.size() != 2
                    || !(ol.get(0) instanceof Long begin) || !(ol.get(1) instanceof Long end))
                throw new IllegalArgumentException(where + ": 'data_offsets' must be [begin, end] integers");
            long expect;
            try {
                expect = Math.multiplyExact(TensorView.numel(shape), (long) dtype.byteSize());
            } catch (ArithmeticException ex) {
                throw new IllegalArgumentException(where + ": 'shape' " + sl + " overflows", ex);
            }
            if (begin < 0 || end < begin || end > dataSize)
                throw new IllegalArgumentException(where + ": 'data_offsets' [" + begin + ", " + end + "] out of range: the data region holds "
                        + dataSize + " bytes (file truncated or header corrupt)");
            if (end - begin != expect)
                throw new IllegalArgumentException(where + ": 'data_offsets' span " + (end - begin) + " bytes but " + dtype + " 'shape' " + sl
                        + " needs " + expect);
            entries.add(new Entry(name, dtype, shape, begin, end));
        }
        List<Entry> byOffset = new java.util.ArrayList<>(entries);
        byOffset.removeIf(x -> x.end() == x.begin());
        byOffset.sort(java.util.Comparator.comparingLong(Entry::begin));
        for (int i = 1; i < byOffset.size(); i++) {
            Entry a = byOffset.get(i - 1), b = byOffset.get(i);
            if (b.begin() < a.end())
                throw new IllegalArgumentException(file + ": tensor '" + b.name() + "' 'data_offsets' [" + b.begin() + ", " + b.end()
                        + "] overlap tensor '" + a.name() + "' [" + a.begin() + ", " + a.end() + "] (header corrupt)");
        }
        return new Header(entries, metadata);
    }

    /** Size and modification time of a file, to notice that it was rewritten or replaced. */
    record FileStamp(long size, java.nio.file.attribute.FileTime modified, Object key) {
        static FileStamp of(Path p) throws IOException {
            var a = java.nio.file.Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class);
            return new FileStamp(a.size(), a.lastModifiedTime(), a.fileKey());
        }

        @Override public String toString() { return size + " bytes, modified " + modified; }
    }

    /**
     * Throws {@link IllegalStateException} naming the file when it no longer has the size, modification time and
     * identity it had at open (truncated, rewritten in place, or replaced by a rename).
     */
    public void checkUnchanged() {
        FileStamp now;
        try {
            now = FileStamp.of(path);
        } catch (IOException e) {
            throw new IllegalStateException(path + ": model file is gone or unreadable since it was opened (" + e + ")", e);
        }
        if (!now.equals(stamp))
            throw new IllegalStateException(path + ": model file changed since it was opened (was " + stamp + ", now " + now
                    + "); model files must be replaced atomically (write a new file, then rename it over the old one)");
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

    /** The whole mapping (header included) for {@link #open}; the data region for {@link #read}. */
    public MemorySegment mapping() { return mapping; }

    @Override public void close() {
        if (ownsArena && arena.scope().isAlive()) arena.close();
    }
}
