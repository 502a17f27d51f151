package io.vlmflux.cuda.safetensors;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * All weights of a Hugging Face model folder: either one {@code model.safetensors} or shards listed by
 * {@code model.safetensors.index.json} ({@code {"weight_map": {"tensor": "shard file"}}}). Every file is
 * memory-mapped into one shared arena owned by the store; {@link #close()} unmaps them all, after which views are
 * invalid. Missing tensors are errors naming the folder/file and the tensor.
 *
 * <p>Use: {@code try (WeightStore w = WeightStore.open(dir)) { TensorView t = w.tensor("model.norm.weight"); }}.
 * A path to a single {@code .safetensors} file is accepted too.
 */
public final class WeightStore implements AutoCloseable {
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

    private final Path location;
    private final Arena arena;
    private final List<SafetensorsFile> files;
    private final Map<String, TensorView> tensors;

    private WeightStore(Path location, Arena arena, List<SafetensorsFile> files, Map<String, TensorView> tensors) {
        this.location = location;
        this.arena = arena;
        this.files = files;
        this.tensors = tensors;
    }

    /** Opens a model folder (single file or sharded) or one {@code .safetensors} file. */
    public static WeightStore open(Path dirOrFile) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            return open(dirOrFile, arena);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static WeightStore open(Path p, Arena arena) throws IOException {
        List<SafetensorsFile> files = new ArrayList<>();
        Map<String, TensorView> all = new LinkedHashMap<>();
        if (Files.isRegularFile(p)) {
            SafetensorsFile f = SafetensorsFile.open(p, arena);
            files.add(f);
            all.putAll(f.tensors());
            return new WeightStore(p, arena, files, Collections.unmodifiableMap(all));
        }
        if (!Files.isDirectory(p)) throw new java.nio.file.NoSuchFileException(p.toString(), null, "model folder or .safetensors file does not exist");
        Path index = p.resolve(INDEX);
        if (Files.isRegularFile(index)) {
            Object root;
            try {
                root = MiniJson.parse(Files.readString(index));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(index + ": not valid JSON: " + e.getMessage(), e);
            }
            if (!(root instanceof Map<?, ?> m) || !(m.get("weight_map") instanceof Map<?, ?> wm))
                throw new IllegalArgumentException(index + ": expected an object with a 'weight_map' object");
            Map<String, SafetensorsFile> shards = new TreeMap<>();
            for (Map.Entry<?, ?> e : wm.entrySet()) {
                if (!(e.getValue() instanceof String shard) || shard.contains("/") || shard.contains("\\") || shard.equals(".."))
                    throw new IllegalArgumentException(index + ": tensor '" + e.getKey() + "' maps to an invalid shard name " + e.getValue());
                SafetensorsFile f = shards.get(shard);
                if (f == null) {
                    Path sp = p.resolve(shard);
                    if (!Files.isRegularFile(sp))
                        throw new java.nio.file.NoSuchFileException(sp.toString(), null, "shard named by " + index + " for tensor '" + e.getKey() + "' is missing");
                    f = SafetensorsFile.open(sp, arena);
                    shards.put(shard, f);
                    files.add(f);
                }
                String name = (String) e.getKey();
                TensorView t = f.tensors().get(name);
                if (t == null)
                    throw new IllegalArgumentException(index + " maps tensor '" + name + "' to " + shard + ", which does not contain it");
                all.put(name, t);
            }
            for (SafetensorsFile f : files)
                for (String n : f.names())
                    if (!all.containsKey(n))
                        throw new IllegalArgumentException(f.path() + ": tensor '" + n + "' is not listed in " + index);
            return new WeightStore(p, arena, files, Collections.unmodifiableMap(all));
        }
        Path single = p.resolve(SINGLE);
        if (Files.isRegularFile(single)) {
            SafetensorsFile f = SafetensorsFile.open(single, arena);
            files.add(f);
            all.putAll(f.tensors());
            return new WeightStore(p, arena, files, Collections.unmodifiableMap(all));
        }
        throw new java.nio.file.NoSuchFileException(p.toString(), null, "no " + SINGLE + " or " + INDEX + " in the model folder");
    }

    public Path location() { return location; }

    public Map<String, TensorView> tensors() { return tensors; }

    public Set<String> names() { return tensors.keySet(); }

    public boolean has(String name) { return tensors.containsKey(name); }

    public Optional<TensorView> find(String name) { return Optional.ofNullable(tensors.get(name)); }

    /** The tensor, or an exception naming the model location and the tensor. */
    public TensorView tensor(String name) {
        TensorView t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException(location + ": missing tensor '" + name + "'");
        return t;
    }

    /** The tensor, checked to have exactly {@code shape}. */
    public TensorView tensor(String name, long... shape) { return tensor(name).requireShape(shape); }

    public List<SafetensorsFile> files() { return files; }

    /** Total bytes of tensor data. */
    public long totalBytes() {
        long b = 0;
        for (TensorView t : tensors.values()) b += t.byteSize();
        return b;
    }

    @Override public void close() {
        if (arena.scope().isAlive()) arena.close();
    }
}
