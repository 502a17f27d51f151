package io.vlmflux.llm;

import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.cpu.CpuDecoderBackend;
import io.vlmflux.llm.llama.LlamaFamily;
import io.vlmflux.llm.qwen2.Qwen2Family;
import io.vlmflux.llm.qwen2vl.Qwen2VlFamily;
import io.vlmflux.llm.qwen3.Qwen3Family;
import io.vlmflux.llm.qwen3vl.Qwen3VlFamily;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/**
 * The registry of model families, keyed by {@code architectures} (then {@code model_type}), and the entry point to
 * load a decoder: {@code Decoder d = Models.load(dir, "cpu");}. Unsupported architectures fail naming what the
 * config says and what is supported.
 */
public final class Models {
    private static final System.Logger LOG = System.getLogger("vlmflux.llm");
    private static final List<ModelFamily> FAMILIES = List.of(new Qwen2Family(), new Qwen3Family(), new LlamaFamily(), new Qwen2VlFamily(),
            new Qwen3VlFamily());

    private Models() {}

    public static List<ModelFamily> families() { return FAMILIES; }

    /** The family for {@code config}. */
    public static ModelFamily family(ModelConfig config) {
        for (String a : config.architectures())
            for (ModelFamily f : FAMILIES) if (f.architectures().contains(a)) return f;
        if (config.architectures().isEmpty())
            for (ModelFamily f : FAMILIES) if (f.modelTypes().contains(config.modelType())) return f;
        StringBuilder sb = new StringBuilder();
        for (ModelFamily f : FAMILIES) sb.append(sb.isEmpty() ? "" : ", ").append(String.join(", ", f.architectures()));
        throw new IllegalArgumentException("unsupported architectures " + config.architectures() + " (model_type '" + config.modelType()
                + "'); supported: " + sb);
    }

    /**
     * Loads {@code dir} (config.json + safetensors) on {@code backend}: "cpu", "cuda", or "auto" (cuda when
     * {@link io.vlmflux.llm.cuda.CudaDecoderBackend#available()}, else cpu; the choice and its reason are logged).
     */
    public static Decoder load(Path dir, String backend) throws IOException { return load(dir, "config.json", backend); }

    /** Like {@link #load(Path, String)} with another config file name (e.g. {@code config.hub.json}). */
    public static Decoder load(Path dir, String configFile, String backend) throws IOException {
        return load(dir, configFile, Backend.parse(backend == null ? "cpu" : backend), null, null);
    }

    /**
     * Loads the text model of {@code dir} on {@code backend} ({@code AUTO} resolves first); on CUDA all its work is
     * enqueued on {@code stream} (shared with the vision encoder of a runtime; null: a stream of its own), with the
     * per-model knobs of {@code tuning} (null: read from the system properties now).
     */
    public static Decoder load(Path dir, String configFile, Backend backend, io.vlmflux.cuda.gpu.GpuStream stream, io.vlmflux.cuda.Tuning tuning)
            throws IOException {
        ModelConfig config = ModelConfig.load(dir, configFile);
        if (!"silu".equals(config.hiddenAct()))
            throw new IllegalArgumentException(dir.resolve(configFile) + ": hidden_act '" + config.hiddenAct() + "' not supported (silu)");
        ModelFamily family;
        try {
            family = family(config);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(dir.resolve(configFile) + ": " + e.getMessage(), e);
        }
        Backend resolved = backend.resolve().backend();
        // 4-bit (W4A16) checkpoints run on both backends (cpu: Int4Weights kernels, cuda: int4.cu).
        family.checkBackend(resolved, dir.resolve(configFile));
        DecoderBackend b = backend(resolved);
        // The CPU backend reads weights on every token: it gets its own copy (a mapped file truncated or rewritten in
        // place would kill the JVM with SIGBUS). The GPU backend uploads once from the mapping.
        WeightStore store = b.name().equals("cpu") ? WeightStore.read(dir) : WeightStore.open(dir);
        try {
            TextModelSpec spec = family.spec(config, store.names());
            try {
                spec.validate(config, store);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(e.getMessage() + " (config: " + dir.resolve(configFile) + ")", e);
            }
            LOG.log(System.Logger.Level.INFO, "loading {0} ({1} layers, hidden {2}) from {3} on backend {4}",
                    family.name(), config.numLayers(), config.hiddenSize(), dir, b.name());
            Decoder d = b.load(config, spec, store, stream, tuning);
            try {
                store.checkUnchanged();   // weights are in memory now; a file changed while loading may have torn them
            } catch (IllegalStateException e) {
                d.close();
                throw e;
            }
            return d;
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    /**
     * The concrete backend name for {@code name} (null: "cpu"): "auto" becomes "cuda" where a usable GPU exists and "cpu"
     * otherwise, logging which and why ({@link Backend#resolve()}).
     */
    public static String resolve(String name) {
        return Backend.parse(name == null ? "cpu" : name).resolve().backend().wire();
    }

    /** The backend named {@code name} ("cpu", "cuda"; "auto" resolves first, see {@link Backend#resolve}). */
    public static DecoderBackend backend(String name) {
        return backend(Backend.parse(name == null ? "cpu" : name));
    }

    /** The decoder factory of {@code b} ({@code AUTO} resolves first). */
    public static DecoderBackend backend(Backend b) {
        Backend r = b.resolve().backend();
        if (r == Backend.CPU) return new CpuDecoderBackend();
        try {
            return new io.vlmflux.llm.cuda.CudaDecoderBackend();
        } catch (LinkageError e) {
            throw new IllegalStateException("backend 'cuda' failed to start: the CUDA runtime classes cannot load: " + e, e);
        }
    }

    static Set<String> set(String... s) { return Set.of(s); }
}
