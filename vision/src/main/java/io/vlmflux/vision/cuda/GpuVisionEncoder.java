package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.gpu.Blas;
import io.vlmflux.cuda.gpu.CudaException;
import io.vlmflux.cuda.gpu.CudaGraph;
import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuDevice;
import io.vlmflux.cuda.gpu.GpuOps;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.cuda.gpu.VisionGpuOps;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Qwen2-VL / Qwen2.5-VL / Qwen3-VL vision tower + patch merger on the GPU (backend {@code cuda}). Weights live in one
 * device arena (matrices bf16 as stored, gate and up projections fused into one matrix; norm weights, biases and
 * Qwen3-VL's position table fp32);
 * GEMMs are cuBLAS bf16 with fp32 accumulation, the residual stream is fp32, attention runs on tensor cores over
 * {@code cu_seqlens}-style segments (one per frame, or per window for Qwen2.5-VL) with no padding.
 *
 * <p>Qwen3-VL as {@code CpuQwen3VLEncoder} defines it: patch embedding with bias plus the learned position table
 * blended per grid ({@link io.vlmflux.vision.qwen3vl.Qwen3VLPositions}, gathered on the device), LayerNorm blocks
 * with a {@code gelu_pytorch_tanh} MLP, the merger (LayerNorm per patch, 2x2 shuffle, fc1, exact GELU, fc2), and
 * after each {@code deepstack_visual_indexes} block a DeepStack merger (LayerNorm over the shuffled {@code 4 x hidden}
 * row) whose fp32 output stays on the device ({@link DeviceEmbeddings#deepstack()}).
 *
 * <p>Two outputs: {@link #encodeToDevice} leaves the embeddings in device buffers (fp32 and bf16) for a GPU decoder
 * to splice into its embedding rows; {@link #encode} downloads them for the CPU decoder. Several images in one call
 * share every GEMM and never attend across each other. One call at a time ({@code synchronized}); all work runs on
 * the encoder's stream. {@link #close()} frees the device memory (idempotent); a stream passed in is not closed.
 */
public final class GpuVisionEncoder implements VisionEncoder {
    private static final System.Logger LOG = System.getLogger("vlmflux.vision");
    private static final float NORM_EPS = 1e-6f;

    private final TowerSpec cfg;
    private final boolean q25;                   // Qwen2.5-VL: RMSNorm, gated MLP, windows
    private final GpuStream stream;
    private final boolean ownsStream;
    private final DeviceArena weights;
    private final Blas blas;                    // fp32-output products and the bf16-output ones (qkv, gate|up, merger fc1)
    private final java.util.Set<String> tunedShapes = new java.util.HashSet<>();   // tower shapes whose products ran once eagerly
    private final GpuOps ops;
    private final VisionGpuOps vops;
    private final VisionGpuOps.Act act;
    private final DeviceBuffer patchW;           // bf16 [d, patchDim]
    private final Block[] blocks;
    private final Merger merger;                 // norm over d (per patch) before the shuffle
    private final Merger[] deepMergers;          // Qwen3-VL DeepStack mergers, by slot; norm over d*m2 after the shuffle
    private final DeviceBuffer patchB;           // fp32 [d] (Qwen3-VL), else null
    private final DeviceBuffer posTable;         // fp32 [side*side, d] (Qwen3-VL), else null
    private final DeviceBuffer invFreq;          // fp32 [hd/4]
    private final long weightBytes;
    private final int ffn;                       // MLP width padded to a multiple of 64 (zero rows/columns): aligned GEMMs
    private DeviceArena scratch;                 // per-call activations, grown on demand
    private int scratchTokens;
    private TowerTables meta;                    // index tables of the last batch of grids
    private io.vlmflux.cuda.gpu.PinnedBuffer hostStage;  // pinned staging of downloads (grown on demand)
    private final Map<String, CudaGraph> graphs = new HashMap<>(); // keyed by grids + buffer addresses
    private boolean useGraphs;                   // Tuning.visionGraphs(); off after a failed capture
    private long generation;                     // bumped whenever scratch or index tables move
    private boolean closed;

    private record Block(DeviceBuffer n1W, DeviceBuffer n1B, DeviceBuffer n2W, DeviceBuffer n2B,
                         DeviceBuffer qkvW, DeviceBuffer qkvB, DeviceBuffer projW, DeviceBuffer projB,
                         DeviceBuffer upW, DeviceBuffer upB,   // [gate; up] fused (Qwen2.5-VL) or fc1
                         DeviceBuffer downW, DeviceBuffer downB, boolean fullAttention) {}

    /** A patch merger: norm (bias null for RMSNorm), fc1 bf16 [d*m2, d*m2] + fp32 bias, exact GELU, fc2 bf16 [out, d*m2] + fp32 bias. */
    private record Merger(DeviceBuffer normW, DeviceBuffer normB, DeviceBuffer fc1W, DeviceBuffer fc1B, DeviceBuffer fc2W, DeviceBuffer fc2B) {}

    /** Loads the tower of a model folder onto the default GPU, on a new stream, with {@link Tuning#fromSystemProperties()}. */
    public static GpuVisionEncoder load(Path modelDir) {
        return load(modelDir, Tuning.fromSystemProperties());
    }

    /** Loads the tower of a model folder onto the default GPU, on a new stream, with {@code tuning}'s knobs. */
    public static GpuVisionEncoder load(Path modelDir, Tuning tuning) {
        if (!Gpu.isAvailable()) throw new IllegalStateException("cuda vision encoder for " + modelDir + ": no GPU (" + Gpu.unavailableReason() + ")");
        GpuDevice dev = Gpu.device();
        GpuStream s = dev.newStream();
        try {
            return load(modelDir, s, true, tuning);
        } catch (RuntimeException e) {
            s.close();
            throw e;
        }
    }

    /** Loads the tower onto {@code stream}'s device; all work is enqueued on that stream (shared with a decoder). */
    public static GpuVisionEncoder load(Path modelDir, GpuStream stream) {
        return load(modelDir, stream, Tuning.fromSystemProperties());
    }

    /** As {@link #load(Path, GpuStream)} with {@code tuning}'s knobs (CUDA graphs, GEMV/attention choices). */
    public static GpuVisionEncoder load(Path modelDir, GpuStream stream, Tuning tuning) {
        return load(modelDir, stream, false, tuning);
    }

    private static GpuVisionEncoder load(Path modelDir, GpuStream stream, boolean ownsStream, Tuning tuning) {
        TowerSpec cfg = TowerSpec.load(modelDir);
        try (WeightStore store = WeightStore.open(modelDir)) {
            return new GpuVisionEncoder(cfg, store, stream, ownsStream, tuning);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the weights of " + modelDir + ": " + e.getMessage(), e);
        }
    }

    private GpuVisionEncoder(TowerSpec cfg, WeightStore store, GpuStream stream, boolean ownsStream, Tuning tuning) {
        this.cfg = cfg;
        this.useGraphs = tuning.visionGraphs();
        this.q25 = cfg.windowed();
        this.stream = stream;
        this.ownsStream = ownsStream;
        this.act = VisionGpuOps.Act.of(cfg.hiddenAct());
        String prefix = DeviceWeights.prefix(store);
        int[] deep = cfg.deepstackIndexes();
        if (store.has(prefix + "deepstack_merger_list." + deep.length + ".linear_fc1.weight"))
            throw new IllegalArgumentException(store.location() + ": the checkpoint has more DeepStack mergers than the " + deep.length
                    + " entries of vision_config field 'deepstack_visual_indexes' " + Arrays.toString(deep));
        long bytes = 32L << 20; // cuBLAS workspace
        this.ffn = (cfg.mlpHidden() + 63) / 64 * 64;
        bytes += (long) cfg.depth() * (ffn - cfg.mlpHidden()) * (6L * cfg.width() + 8) + 4096L * cfg.depth() + 4096L * deep.length;
        for (var e : store.tensors().entrySet())
            if (e.getKey().startsWith(prefix)) bytes += (e.getValue().rank() >= 2 ? 2 : 4) * e.getValue().numel() + 512;
        if (cfg.qwen3()) bytes += 2L * cfg.positionSide() * cfg.positionSide() * cfg.width();   // the position table stays fp32
        this.weights = stream.device().newArena("vision weights", bytes);
        DeviceWeights L = new DeviceWeights(store, prefix, weights, stream);
        try {
            int d = cfg.width(), m2 = cfg.mergeSize() * cfg.mergeSize(), f = cfg.mlpHidden(), fp = ffn;
            DeviceBuffer ws = weights.alloc("cublas workspace", 32L << 20);
            this.blas = new Blas(stream, ws, tuning.gemmTune());
            this.ops = new GpuOps(stream, tuning);
            this.vops = new VisionGpuOps(stream, tuning.visionFastElementwise());
            patchW = L.matrix("patch_embed.proj.weight", new long[] {d, cfg.inChannels(), cfg.temporalPatchSize(), cfg.patchSize(), cfg.patchSize()});
            patchB = cfg.qwen3() ? L.vector("patch_embed.proj.bias", d) : null;
            posTable = cfg.qwen3() ? L.fp32("pos_embed.weight", (long) cfg.positionSide() * cfg.positionSide(), d) : null;
            blocks = new Block[cfg.depth()];
            for (int b = 0; b < cfg.depth(); b++) {
                String p = "blocks." + b + ".";
                DeviceBuffer upW, upB;
                // rows f..fp-1 of [gate; up] / fc1 and columns f..fp-1 of down stay zero: the padded lanes compute 0
                if (q25) {
                    upW = weights.alloc(prefix + p + "mlp.[gate_proj;up_proj].weight", 4L * fp * d);
                    stream.memsetAsync(upW, 0, 4L * fp * d);
                    L.matrixInto(upW, 0, p + "mlp.gate_proj.weight", f, d);
                    L.matrixInto(upW, 2L * fp * d, p + "mlp.up_proj.weight", f, d);
                    upB = L.paddedBias(new String[] {p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias"}, f, fp);
                } else {
                    upW = weights.alloc(prefix + p + cfg.mlpIn() + ".weight", 2L * fp * d);
                    stream.memsetAsync(upW, 0, 2L * fp * d);
                    L.matrixInto(upW, 0, p + cfg.mlpIn() + ".weight", f, d);
                    upB = L.paddedBias(new String[] {p + cfg.mlpIn() + ".bias"}, f, fp);
                }
                blocks[b] = new Block(
                        L.vector(p + "norm1.weight", d), q25 ? null : L.vector(p + "norm1.bias", d),
                        L.vector(p + "norm2.weight", d), q25 ? null : L.vector(p + "norm2.bias", d),
                        L.matrix(p + "attn.qkv.weight", new long[] {3L * d, d}), L.optVector(p + "attn.qkv.bias", 3 * d),
                        L.matrix(p + "attn.proj.weight", new long[] {d, d}), L.optVector(p + "attn.proj.bias", d),
                        upW, upB,
                        L.paddedColumns(p + cfg.mlpOut() + ".weight", d, f, fp),
                        L.optVector(p + cfg.mlpOut() + ".bias", d),
                        cfg.fullAttention(b));
            }
            merger = merger(L, cfg.mergerNorm(), cfg.mergerIn(), cfg.mergerOut(), d);
            deepMergers = new Merger[deep.length];
            for (int k = 0; k < deep.length; k++) {
                String p = "deepstack_merger_list." + k + ".";
                deepMergers[k] = merger(L, p + "norm", p + "linear_fc1", p + "linear_fc2", d * m2);
            }
            float[] inv = io.vlmflux.cuda.cpu.Rope.defaultInvFreq(cfg.headDim() / 2, cfg.ropeTheta()); // [hd/4]
            invFreq = weights.alloc("vision rope invFreq", 4L * inv.length);
            stream.upload(invFreq, inv);
            weightBytes = weights.bytesInUse();
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
        LOG.log(System.Logger.Level.INFO, "vision encoder: cuda backend on " + stream.device() + ", " + cfg + ", "
                + weightBytes / (1 << 20) + " MiB of weights, kernels " + ops.kernelOrigin());
    }

    /** A merger's tensors: norm over {@code normWidth} (RMSNorm without bias for Qwen2.5-VL), fc1 and fc2 with optional biases. */
    private Merger merger(DeviceWeights L, String norm, String fc1, String fc2, int normWidth) {
        int w = cfg.width() * cfg.mergeSize() * cfg.mergeSize();
        return new Merger(L.vector(norm + ".weight", normWidth), q25 ? null : L.vector(norm + ".bias", normWidth),
                L.matrix(fc1 + ".weight", new long[] {w, w}), L.optVector(fc1 + ".bias", w),
                L.matrix(fc2 + ".weight", new long[] {cfg.outHidden(), w}), L.optVector(fc2 + ".bias", cfg.outHidden()));
    }

    @Override public int outHidden() { return cfg.outHidden(); }
    @Override public int mergeSize() { return cfg.mergeSize(); }
    @Override public int deepstackLayers() { return deepMergers.length; }
    @Override public String describe() { return "cuda " + cfg + " on " + stream.device(); }
    public GpuStream stream() { return stream; }
    /** Device bytes of the weights (plus the cuBLAS workspace). */
    public long weightBytes() { return weightBytes; }

    @Override
    public ImageEmbeddings encode(PixelValues pixels) {
        return encode(List.of(pixels)).getFirst();
    }

    @Override
    public synchronized List<ImageEmbeddings> encode(List<PixelValues> images) {
        if (images.isEmpty()) return List.of();
        DeviceEmbeddings de = encodeHost(images);
        float[] all = download(de.f32(), de.tokens() * de.hidden());
        List<float[]> deep = deepstackToHost(de);
        List<ImageEmbeddings> out = new ArrayList<>(images.size());
        int off = 0, m2 = cfg.mergeSize() * cfg.mergeSize(), o = cfg.outHidden();
        for (PixelValues pv : images) {
            int tk = pv.numPatches() / m2, from = off * o, to = (off + tk) * o;
            List<float[]> ds = deep.stream().map(f -> Arrays.copyOfRange(f, from, to)).toList();
            out.add(new ImageEmbeddings(Arrays.copyOfRange(all, from, to), tk, o, pv.gridT(), pv.gridH(), pv.gridW(), pv.contentHash(), ds));
            off += tk;
        }
        return out;
    }

    /**
     * Encodes several host inputs (images or clips) in one pass — every GEMM shared, no attention across inputs — into
     * device embeddings of all of them concatenated in order (DeepStack features: {@code [features, all tokens, hidden]}).
     */
    public synchronized DeviceEmbeddings encodeToDevice(List<PixelValues> inputs) {
        if (inputs.isEmpty()) throw new IllegalArgumentException("encodeToDevice: no inputs");
        return encodeHost(inputs);
    }

    /** Encodes host pixel values (uploaded, converted to bf16) into device embeddings (all images concatenated). */
    public synchronized DeviceEmbeddings encodeToDevice(PixelValues pixels) {
        return encodeHost(List.of(pixels));
    }

    private DeviceEmbeddings encodeHost(List<PixelValues> images) {
        check();
        int[][] grids = new int[images.size()][];
        for (int i = 0; i < images.size(); i++) {
            PixelValues pv = images.get(i);
            checkInput(i, pv.patchDim(), pv.gridH(), pv.gridW());
            grids[i] = new int[] {pv.gridT(), pv.gridH(), pv.gridW()};
        }
        int n = totalPatches(grids);
        ensureScratch(n);
        Scratch s = scratchBuffers(n);
        int pd = cfg.patchDim();
        long off = 0;
        for (PixelValues pv : images) {
            DeviceBuffer dst = s.xf32.slice(off * 4, 4L * pv.data().length, "pixel values");
            stream.upload(dst, pv.data());
            off += pv.data().length;
        }
        ops.toBf16(s.xbf16, s.xf32, (long) n * pd);
        PixelValues first = images.getFirst();
        return run(s, grids, images.size() == 1 ? first.contentHash() : 0L);
    }

    /** Encodes pixels already on the device (from {@link GpuImageProcessor}); nothing crosses to the host. */
    public synchronized DeviceEmbeddings encodeToDevice(GpuPixels pixels) {
        check();
        checkInput(0, pixels.patchDim(), pixels.gridH(), pixels.gridW());
        int[][] grids = {{pixels.gridT(), pixels.gridH(), pixels.gridW()}};
        int n = pixels.numPatches();
        ensureScratch(n);
        Scratch s = scratchBuffers(n);
        return run(s.withInput(pixels.data()), grids, pixels.contentHash());
    }

    /**
     * Encodes several inputs whose bf16 patches lie side by side in {@code patches} (grids {t, h, w} in order; e.g. live
     * groups preprocessed on the device by {@link GpuImageProcessor#processInto}) in one pass, as
     * {@link #encodeToDevice(List)} does for host pixels: all of them concatenated in order.
     */
    public synchronized DeviceEmbeddings encodeToDevice(DeviceBuffer patches, int[][] grids, long contentHash) {
        check();
        if (grids.length == 0) throw new IllegalArgumentException("encodeToDevice: no inputs");
        for (int i = 0; i < grids.length; i++) checkInput(i, cfg.patchDim(), grids[i][1], grids[i][2]);
        int n = totalPatches(grids);
        if (patches.bytes() < 2L * n * cfg.patchDim())
            throw new IllegalArgumentException("encodeToDevice: patches '" + patches.name() + "' hold " + patches.bytes() + " bytes, "
                    + n + " patches of " + cfg.patchDim() + " bf16 need " + 2L * n * cfg.patchDim());
        ensureScratch(n);
        Scratch s = scratchBuffers(n);
        return run(s.withInput(patches), grids, contentHash);
    }

    /** Downloads device embeddings, with their DeepStack features, as an {@link ImageEmbeddings} (synchronizes the stream). */
    public synchronized ImageEmbeddings toHost(DeviceEmbeddings e) {
        check();
        float[] v = download(e.f32(), e.tokens() * e.hidden());
        return new ImageEmbeddings(v, e.tokens(), e.hidden(), e.gridT(), e.gridH(), e.gridW(), e.contentHash(), deepstackToHost(e));
    }

    /**
     * The DeepStack features of device embeddings on the host, one {@code [tokens, hidden]} array per feature in
     * decoder-layer order (one copy, synchronizes the stream); empty for towers without DeepStack.
     */
    public synchronized List<float[]> deepstackToHost(DeviceEmbeddings e) {
        check();
        if (e.deepstackLayers() == 0) return List.of();
        int per = Math.multiplyExact(e.tokens(), e.hidden());
        float[] all = download(e.deepstack(), Math.multiplyExact(per, e.deepstackLayers()));
        List<float[]> out = new ArrayList<>(e.deepstackLayers());
        for (int k = 0; k < e.deepstackLayers(); k++) out.add(Arrays.copyOfRange(all, k * per, (k + 1) * per));
        return Collections.unmodifiableList(out);
    }

    /** fp32 device values to a new array through pinned staging (an async copy at full bus speed, then one memcpy). */
    private float[] download(DeviceBuffer src, int count) {
        long bytes = 4L * count;
        if (hostStage == null || hostStage.bytes() < bytes) {
            if (hostStage != null) hostStage.close();
            hostStage = new io.vlmflux.cuda.gpu.PinnedBuffer(Math.max(bytes, 1L << 20));
        }
        stream.copyAsync(hostStage, 0, src, bytes);
        stream.synchronize();
        float[] out = new float[count];
        java.lang.foreign.MemorySegment.copy(java.lang.foreign.MemorySegment.ofAddress(hostStage.address()).reinterpret(bytes),
                ValueLayout.JAVA_FLOAT, 0, out, 0, count);
        return out;
    }

    private void check() {
        if (closed) throw new IllegalStateException("vision encoder was closed");
    }

    private void checkInput(int i, int patchDim, int gh, int gw) {
        int m = cfg.mergeSize();
        if (patchDim != cfg.patchDim())
            throw new IllegalArgumentException("pixel values of image " + i + " have " + patchDim + " values per patch, the "
                    + cfg.modelType() + " vision tower expects " + cfg.patchDim() + " (channels " + cfg.inChannels() + " x temporal "
                    + cfg.temporalPatchSize() + " x patch " + cfg.patchSize() + "^2)");
        if (gh % m != 0 || gw % m != 0)
            throw new IllegalArgumentException("grid " + gh + "x" + gw + " of image " + i + " is not divisible by spatial_merge_size " + m);
    }

    private static int totalPatches(int[][] grids) {
        int n = 0;
        for (int[] g : grids) n = Math.addExact(n, Math.multiplyExact(g[0], Math.multiplyExact(g[1], g[2])));
        return n;
    }

    // ---- activations ----

    /** Per-call buffers; {@code wide} and {@code deep} only for towers with DeepStack (else null). */
    private record Scratch(DeviceBuffer xf32, DeviceBuffer xbf16, DeviceBuffer h, DeviceBuffer tmp, DeviceBuffer normed,
                           DeviceBuffer qkv, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer attn,
                           DeviceBuffer mlp, DeviceBuffer actb, DeviceBuffer mid, DeviceBuffer midb, DeviceBuffer merged,
                           DeviceBuffer outF32, DeviceBuffer outBf16, DeviceBuffer wide, DeviceBuffer deep) {
        Scratch withInput(DeviceBuffer bf16) {
            return new Scratch(xf32, bf16, h, tmp, normed, qkv, q, k, v, attn, mlp, actb, mid, midb, merged, outF32, outBf16, wide, deep);
        }
    }

    private long scratchBytes(int n) {
        long d = cfg.width(), pd = cfg.patchDim(), f = ffn, m2 = (long) cfg.mergeSize() * cfg.mergeSize();
        long t = n / m2, o = cfg.outHidden(), ds = deepMergers.length;
        long b = 4 * n * pd + 2 * n * pd        // pixels fp32 + bf16
                + 4 * n * d * 2 + 2 * n * d      // h, tmp, normed
                + 4 * n * 3 * d + 2 * n * d * 4  // qkv, q, k, v, attn
                + 4 * n * (q25 ? 2 : 1) * f + 2 * n * f
                + 4 * t * d * m2 + 2 * t * d * m2 + 4 * t * o * 2 + 2 * t * o
                + (ds == 0 ? 0 : 2 * n * d + 4 * ds * t * o);   // DeepStack: shuffled norm bf16, features fp32
        return b + 64 * 256;
    }

    private void ensureScratch(int n) {
        if (scratch != null && n <= scratchTokens) return;
        if (scratch != null) { stream.synchronize(); dropGraphs(); scratch.close(); scratch = null; }
        int cap = Math.max(n, scratchTokens * 3 / 2);
        scratch = stream.device().newArena("vision activations", scratchBytes(cap));
        scratchTokens = cap;
    }

    private Scratch scratchBuffers(int n) {
        scratch.reset(0);
        long d = cfg.width(), pd = cfg.patchDim(), f = ffn, m2 = (long) cfg.mergeSize() * cfg.mergeSize();
        long t = n / m2, o = cfg.outHidden(), ds = deepMergers.length;
        DeviceArena a = scratch;
        return new Scratch(a.alloc("pixels fp32", 4 * n * pd), a.alloc("pixels bf16", 2 * n * pd),
                a.alloc("hidden fp32", 4 * n * d), a.alloc("delta fp32", 4 * n * d), a.alloc("normed bf16", 2 * n * d),
                a.alloc("qkv fp32", 12 * n * d), a.alloc("q bf16", 2 * n * d), a.alloc("k bf16", 2 * n * d),
                a.alloc("v bf16", 2 * n * d), a.alloc("attn bf16", 2 * n * d),
                a.alloc("mlp fp32", 4 * n * (q25 ? 2 : 1) * f), a.alloc("mlp act bf16", 2 * n * f),
                a.alloc("merger mid fp32", 4 * t * d * m2), a.alloc("merger mid bf16", 2 * t * d * m2),
                a.alloc("merger out fp32", 4 * t * o), a.alloc("embeddings fp32", 4 * t * o), a.alloc("embeddings bf16", 2 * t * o),
                ds == 0 ? null : a.alloc("deepstack normed bf16", 2 * n * d),
                ds == 0 ? null : a.alloc("deepstack features fp32 [" + ds + ", tokens, out]", 4 * ds * t * o));
    }

    // ---- index tables ----

    private TowerTables meta(int[][] grids, int n) {
        String key = TowerTables.key(grids);
        if (meta != null && meta.key().equals(key)) return meta;
        if (meta != null) { stream.synchronize(); dropGraphs(); meta.close(); meta = null; }
        meta = TowerTables.build(cfg, grids, n, stream);
        return meta;
    }

    // ---- the tower ----

    private void dropGraphs() {
        for (CudaGraph g : graphs.values()) g.close();
        graphs.clear();
        generation++;
    }

    /**
     * Runs the tower: the first call per (grids, buffers) captures it into a CUDA graph, later calls replay it
     * (one launch instead of ~10 per block). {@code -Dvlmflux.vision.noGraphs=true} runs eagerly; a failed capture
     * logs the reason and falls back to eager launches for the rest of the encoder's life.
     */
    private DeviceEmbeddings run(Scratch s, int[][] grids, long hash) {
        int n = totalPatches(grids);
        TowerTables mt = meta(grids, n);
        if (useGraphs) {
            String key = mt.key() + "@" + Long.toHexString(s.xbf16.address()) + "#" + generation;
            CudaGraph g = graphs.get(key);
            if (g == null) {
                try {
                    if (graphs.size() >= 8) dropGraphs();
                    // with GEMM tuning, one eager pass first: its products are timed and chosen there (a capture cannot time)
                    if (blas.tunes() && tunedShapes.add(mt.key())) enqueue(s, mt, n);
                    g = CudaGraph.capture("vision tower " + mt.key(), stream, () -> enqueue(s, mt, n));
                    graphs.put(key, g);
                } catch (CudaException e) {
                    useGraphs = false;
                    LOG.log(System.Logger.Level.WARNING, "vision encoder: CUDA graph capture failed, running eagerly from now on: " + e.getMessage());
                }
            }
            if (g != null) g.launch(stream);
            else enqueue(s, mt, n);
        } else {
            enqueue(s, mt, n);
        }
        int[] g0 = grids[0];
        return new DeviceEmbeddings(s.outF32, s.outBf16, n / (cfg.mergeSize() * cfg.mergeSize()), cfg.outHidden(), g0[0], g0[1], g0[2], hash,
                s.deep, deepMergers.length);
    }

    /** Set while {@link #profile} runs: every op is marked on it; null when running normally. */
    private io.vlmflux.cuda.gpu.GpuTimeline timeline;

    private void op(String name, Runnable r) {
        r.run();
        if (timeline != null) timeline.mark(name);
    }

    /**
     * Runs the tower once eagerly with a timing event after every op ({@link io.vlmflux.cuda.gpu.GpuTimeline}: nothing
     * synchronized in between, each op's launch gap counted with it) and returns milliseconds per op kind — a
     * diagnostic for benchmarks; the eager launches' gaps make the sum exceed a graph replay's latency somewhat.
     */
    public synchronized Map<String, Double> profile(GpuPixels pixels) {
        check();
        checkInput(0, pixels.patchDim(), pixels.gridH(), pixels.gridW());
        int n = pixels.numPatches();
        ensureScratch(n);
        Scratch s = scratchBuffers(n).withInput(pixels.data());
        int[][] grids = {{pixels.gridT(), pixels.gridH(), pixels.gridW()}};
        TowerTables mt = meta(grids, n);
        stream.synchronize();
        timeline = new io.vlmflux.cuda.gpu.GpuTimeline(stream);
        try {
            enqueue(s, mt, n);
            Map<String, Double> ms = new java.util.LinkedHashMap<>();
            timeline.totals().forEach((k, v) -> ms.put(k, v[0]));
            return ms;
        } finally {
            timeline.close();
            timeline = null;
        }
    }

    private void enqueue(Scratch s, TowerTables mt, int n) {
        int d = cfg.width(), f = ffn;
        int heads = cfg.heads(), hd = cfg.headDim();
        boolean rms = q25;
        float scale = (float) (1.0 / Math.sqrt(hd));
        // patch embedding (Conv3d, stride = kernel: a GEMM over flattened patches), window permutation of units
        if (mt.unitIndex() != null) {
            int m2 = cfg.mergeSize() * cfg.mergeSize();
            op("patch embed gemm", () -> blas.matmulNT(s.tmp, s.xbf16, patchW, n, d, cfg.patchDim(), false));
            op("window permute", () -> vops.gatherUnits(s.h, s.tmp, mt.unitIndex(), n / m2, m2 * d));
        } else {
            op("patch embed gemm", () -> blas.matmulNT(s.h, s.xbf16, patchW, n, d, cfg.patchDim(), false));
        }
        if (posTable != null)   // Qwen3-VL: conv bias + interpolated position embeddings
            op("position embeddings", () -> vops.posEmbedAdd(s.h, patchB, posTable, cfg.positionSide() * cfg.positionSide(),
                    mt.posIndex(), mt.posWeight(), n, d));
        Block prev = null;
        // pending[0]: the last product (a block's down, or its proj) is still in s.tmp, its bias not added; false where
        // cuBLASLt added it to the residual stream with its bias in one call (Blas#matmulNTBias, with gemmTune)
        final boolean[] pending = {false};
        for (int bi = 0; bi < blocks.length; bi++) {
            final Block b = blocks[bi], pb = prev;
            // norm1 folds the previous block's MLP output into the residual stream (unless its product already did)
            final boolean foldDown = pb != null && pending[0];
            op("norm", () -> vops.norm(s.normed, s.h, foldDown ? s.tmp : null, foldDown ? pb.downB : null, b.n1W, b.n1B, n, d, NORM_EPS, rms));
            if (bi > 0) deepstack(s, bi - 1, n);   // h now holds block bi-1's output
            op("qkv gemm", () -> blas.matmulNTbf16(s.qkv, s.normed, b.qkvW, n, 3 * d, d));
            op("rope split", () -> vops.ropeSplit(s.q, s.k, s.v, s.qkv, true, b.qkvB, mt.pos(), invFreq, n, heads, hd));
            if (b.fullAttention) op("attention full", () -> vops.attention(s.attn, s.q, s.k, s.v, mt.fullTiles(), mt.fullTileCount(), n, heads, hd, scale));
            else op("attention window", () -> vops.attention(s.attn, s.q, s.k, s.v, mt.winTiles(), mt.winTileCount(), n, heads, hd, scale));
            op("proj gemm", () -> pending[0] = product(s, s.attn, b.projW, b.projB, n, d, d));
            final boolean foldProj = pending[0];
            op("norm", () -> vops.norm(s.normed, s.h, foldProj ? s.tmp : null, foldProj ? b.projB : null, b.n2W, b.n2B, n, d, NORM_EPS, rms));
            int width = q25 ? 2 * f : f;
            // a tanh-GELU MLP (Qwen3-VL): with gemmTune, bias and GELU in cuBLASLt's epilogue straight into actb
            final boolean geluEpilogue = !q25 && act == VisionGpuOps.Act.GELU_TANH && b.upB != null;
            final boolean[] actDone = {false};
            op("gate|up gemm", () -> {
                actDone[0] = geluEpilogue && blas.matmulNTbf16BiasGelu(s.actb, s.normed, b.upW, b.upB, n, f, d);
                if (!actDone[0]) blas.matmulNTbf16(s.mlp, s.normed, b.upW, n, width, d);
            });
            if (!actDone[0]) op("mlp act", () -> vops.biasAct(s.actb, s.mlp, true, b.upB, n, f, width, act, q25));
            op("down gemm", () -> pending[0] = product(s, s.actb, b.downW, b.downB, n, d, f));
            prev = b;
        }
        // patch merger: norm per patch (folding the last residual), m^2 neighbouring patches concatenated (contiguous rows)
        final Block last = prev;
        final boolean foldLast = pending[0];
        op("merger", () -> vops.norm(s.normed, s.h, foldLast ? s.tmp : null, foldLast ? last.downB : null, merger.normW, merger.normB, n, d, NORM_EPS, rms));
        deepstack(s, blocks.length - 1, n);
        op("merger", () -> mergerMlp(s, merger, s.normed, s.outF32, s.outBf16, mt.unitIndex(), n));
    }

    /**
     * A block's proj or down product into the residual stream: h += in W^T + bias in one cuBLASLt call where the encoder
     * tunes its products (false: done), else in W^T into s.tmp (true: the next norm adds it and the bias).
     */
    private boolean product(Scratch s, DeviceBuffer in, DeviceBuffer w, DeviceBuffer bias, int n, int m, int k) {
        if (blas.matmulNTBias(s.h, in, w, bias, n, m, k, true)) return false;
        blas.matmulNT(s.tmp, in, w, n, m, k, false);
        return true;
    }

    /**
     * The DeepStack merger fed by block {@code block}, if any: LayerNorm over the shuffled {@code d*m^2}-wide rows of
     * the residual stream {@code h} (that block's output), then the merger MLP into feature slot k of {@code s.deep}
     * (block order: {@link TowerSpec#deepstackFeature}).
     */
    private void deepstack(Scratch s, int block, int n) {
        int slot = cfg.deepstackSlot(block);
        if (slot < 0) return;
        Merger mg = deepMergers[slot];
        int k = cfg.deepstackFeature(block);
        int w = cfg.width() * cfg.mergeSize() * cfg.mergeSize(), units = n / (cfg.mergeSize() * cfg.mergeSize()), o = cfg.outHidden();
        op("deepstack merger", () -> {
            vops.norm(s.wide, s.h, null, null, mg.normW, mg.normB, units, w, NORM_EPS, false);
            mergerMlp(s, mg, s.wide, s.deep.slice(4L * k * units * o, 4L * units * o, "deepstack feature " + k), null, null, n);
        });
    }

    /** fc1 (bf16 out), bias + exact GELU, fc2, bias, scattered back to input order ({@code index}, Qwen2.5-VL windows). */
    private void mergerMlp(Scratch s, Merger mg, DeviceBuffer normed, DeviceBuffer outF32, DeviceBuffer outBf16, DeviceBuffer index, int n) {
        int m2 = cfg.mergeSize() * cfg.mergeSize(), w = cfg.width() * m2, units = n / m2, o = cfg.outHidden();
        blas.matmulNTbf16(s.mid, normed, mg.fc1W, units, w, w);
        vops.biasAct(s.midb, s.mid, true, mg.fc1B, units, w, w, VisionGpuOps.Act.GELU, false);
        blas.matmulNT(s.merged, s.midb, mg.fc2W, units, o, w, false);
        vops.biasScatter(outF32, outBf16, s.merged, mg.fc2B, index, units, o);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            stream.synchronize();
        } finally {
            dropGraphs();
            vops.close();
            ops.close();
            blas.close();
            if (scratch != null) scratch.close();
            if (meta != null) meta.close();
            if (hostStage != null) hostStage.close();
            weights.close();
            if (ownsStream) stream.close();
        }
    }
}
