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
 *
 * <p>{@link #open} maps the files (the GPU backends upload from the mapping once). {@link #read} reads them into
 * memory the store owns instead, for the CPU backends, which read weights on every token: a mapped file truncated or
 * rewritten in place under a running process kills the JVM with SIGBUS, a copy cannot. {@code read} first checks
 * that the weights fit in the memory available (an {@link IllegalStateException} saying how much is needed and
 * available otherwise), scans float tensors for NaN/Inf, and reports progress on the {@code vlmflux.weights} logger
 * when loading takes more than a second. {@link #checkUnchanged()} says whether a file changed since it was opened.
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
        return open(dirOrFile, false);
    }

    /**
     * Like {@link #open} but reads every file into memory owned by the store (see the class comment). The system
     * property {@code vlmflux.weights=map} maps instead (no copy, no protection against files changed in place).
     */
    public static WeightStore read(Path dirOrFile) throws IOException {
        return open(dirOrFile, !"map".equalsIgnoreCase(System.getProperty("vlmflux.weights", "")));
    }

    private static WeightStore open(Path dirOrFile, boolean copy) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            return open(dirOrFile, arena, copy ? new Loader(dirOrFile) : null);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Reads files for {@link #read}: checks the total against available memory, logs progress after a second. */
    private static final class Loader {
        private final Path location;
        private LoadProgress progress;
        private int files, filesDone;

        Loader(Path location) { this.location = location; }

        /** Called once with all files before any is read. */
        void plan(List<Path> paths) throws IOException {
            long t = 0;
            for (Path p : paths) t += Files.size(p);
            files = paths.size();
            progress = new LoadProgress("loading weights of " + location, t);
            long avail = availableMemory();
            if (avail > 0 && t > avail)
                throw new IllegalStateException(location + ": the weights take " + mib(t) + " MiB but only " + mib(avail)
                        + " MiB of memory is available to copy them into (the CPU backend holds its own copy of the weights"
                        + " so that a model file changed on disk cannot crash the process); free memory, use a smaller or"
                        + " quantized checkpoint, or -Dvlmflux.weights=map to read from a mapping (then replace model files only atomically)");
        }

        SafetensorsFile read(Path file, Arena arena) throws IOException {
            SafetensorsFile f = SafetensorsFile.read(file, arena, b -> progress.advance(b, "file " + (filesDone + 1) + " of " + files));
            if (++filesDone == files) progress.finish();
            return f;
        }

        private static long mib(long b) { return b >> 20; }
    }

    /**
     * Memory this process can still get: the larger of the OS's free figure and Linux's MemAvailable (0: unknown).
     * The OS figure needs the {@code jdk.management} module, which a jlink'd runtime (the GPU bundle, a Jetson
     * image) may leave out: then only MemAvailable counts.
     */
    static long availableMemory() {
        long free = 0;
        try {
            if (java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os)
                free = os.getFreeMemorySize();
        } catch (LinkageError noJdkManagement) {
            // a runtime without jdk.management (or java.management): /proc/meminfo below
        }
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo")))
                if (line.startsWith("MemAvailable:"))
                    free = Math.max(free, Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024);
        } catch (IOException | RuntimeException ignored) {
            // not Linux: the OS figure stands
        }
        return free;
    }

    private static SafetensorsFile openFile(Path f, Arena arena, Loader loader) throws IOException {
        return loader == null ? SafetensorsFile.open(f, arena) : loader.read(f, arena);
    }

    private static WeightStore open(Path p, Arena arena, Loader loader) throws IOException {
        List<SafetensorsFile> files = new ArrayList<>();
        Map<String, TensorView> all = new LinkedHashMap<>();
        if (Files.isRegularFile(p)) {
            if (loader != null) loader.plan(List.of(p));
            SafetensorsFile f = openFile(p, arena, loader);
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
            java.util.Set<String> shardNames = new java.util.LinkedHashSet<>();
            for (Map.Entry<?, ?> e : wm.entrySet()) {
                if (!(e.getValue() instanceof String shard) || shard.contains("/") || shard.contains("\\") || shard.equals(".."))
                    throw new IllegalArgumentException(index + ": tensor '" + e.getKey() + "' maps to an invalid shard name " + e.getValue());
                Path sp = p.resolve(shard);
                if (!Files.isRegularFile(sp))
                    throw new java.nio.file.NoSuchFileException(sp.toString(), null, "shard named by " + index + " for tensor '" + e.getKey() + "' is missing");
                shardNames.add(shard);
            }
            if (loader != null) loader.plan(shardNames.stream().map(p::resolve).toList());
            for (Map.Entry<?, ?> e : wm.entrySet()) {
                String shard = (String) e.getValue();
                SafetensorsFile f = shards.get(shard);
                if (f == null) {
                    Path sp = p.resolve(shard);
                    f = openFile(sp, arena, loader);
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
            if (loader != null) loader.plan(List.of(single));
            SafetensorsFile f = openFile(single, arena, loader);
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

    /** Throws {@link IllegalStateException} naming the first file that changed since it was opened. */
    public void checkUnchanged() {
        for (SafetensorsFile f : files) f.checkUnchanged();
    }

    @Override public void close() {
        if (arena.scope().isAlive()) arena.close();
    }
}
