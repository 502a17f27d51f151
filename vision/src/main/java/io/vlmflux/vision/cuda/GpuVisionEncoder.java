package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.DType;
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
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.qwen2vl.VisionConfig;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Qwen2-VL / Qwen2.5-VL vision tower + patch merger on the GPU (backend {@code cuda}). Weights live in one device
 * arena (matrices bf16 as stored, gate and up projections fused into one matrix; norm weights and biases fp32);
 * GEMMs are cuBLAS bf16 with fp32 accumulation, the residual stream is fp32, attention runs on tensor cores over
 * {@code cu_seqlens}-style segments (one per frame, or per window for Qwen2.5-VL) with no padding.
 *
 * <p>Two outputs: {@link #encodeToDevice} leaves the embeddings in device buffers (fp32 and bf16) for a GPU decoder
 * to splice into its embedding rows; {@link #encode} downloads them for the CPU decoder. Several images in one call
 * share every GEMM and never attend across each other. One call at a time ({@code synchronized}); all work runs on
 * the encoder's stream. {@link #close()} frees the device memory (idempotent); a stream passed in is not closed.
 */
public final class GpuVisionEncoder implements VisionEncoder {
    private static final System.Logger LOG = System.getLogger("vlmflux.vision");
    private static final float NORM_EPS = 1e-6f;

    private final VisionConfig cfg;
    private final boolean q25;
    private final GpuStream stream;
    private final boolean ownsStream;
    private final DeviceArena weights;
    private final Blas blas;
    private final VisionGpuOps.Gemm gemm16;     // bf16-output GEMMs (qkv, gate|up)
    private final GpuOps ops;
    private final VisionGpuOps vops;
    private final VisionGpuOps.Act act;
    private final DeviceBuffer patchW;           // bf16 [d, patchDim]
    private final Block[] blocks;
    private final DeviceBuffer lnQW, lnQB;       // fp32 [d] (bias null for RMSNorm)
    private final DeviceBuffer m0W, m0B, m2W, m2B; // bf16 [d*m2, d*m2], fp32 [d*m2], bf16 [out, d*m2], fp32 [out]
    private final DeviceBuffer invFreq;          // fp32 [hd/4]
    private final long weightBytes;
    private final int ffn;                       // MLP width padded to a multiple of 64 (zero rows/columns): aligned GEMMs
    private DeviceArena scratch;                 // per-call activations, grown on demand
    private int scratchTokens;
    private Meta meta;                           // index tables of the last batch of grids
    private DeviceArena metaArena;
    private io.vlmflux.cuda.gpu.PinnedBuffer hostStage;  // pinned staging of downloads (grown on demand)
    private final Map<String, CudaGraph> graphs = new HashMap<>(); // keyed by grids + buffer addresses
    private boolean useGraphs;                   // Tuning.visionGraphs(); off after a failed capture
    private long generation;                     // bumped whenever scratch or index tables move
    private boolean closed;

    private record Block(DeviceBuffer n1W, DeviceBuffer n1B, DeviceBuffer n2W, DeviceBuffer n2B,
                         DeviceBuffer qkvW, DeviceBuffer qkvB, DeviceBuffer projW, DeviceBuffer projB,
                         DeviceBuffer upW, DeviceBuffer upB,   // [gate; up] fused (Qwen2.5-VL) or fc1
                         DeviceBuffer downW, DeviceBuffer downB, boolean fullAttention) {}

    /** Index tables of one batch of grids (kept while the grids repeat, as with a camera). */
    private record Meta(String key, int n, DeviceBuffer pos, DeviceBuffer fullTiles, int fullTileCount,
                        DeviceBuffer winTiles, int winTileCount, DeviceBuffer unitIndex) {}

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
        VisionConfig cfg = VisionConfig.load(modelDir);
        try (WeightStore store = WeightStore.open(modelDir)) {
            return new GpuVisionEncoder(cfg, store, stream, ownsStream, tuning);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the weights of " + modelDir + ": " + e.getMessage(), e);
        }
    }

    private GpuVisionEncoder(VisionConfig cfg, WeightStore store, GpuStream stream, boolean ownsStream, Tuning tuning) {
        this.cfg = cfg;
        this.useGraphs = tuning.visionGraphs();
        this.q25 = cfg.family() == VisionConfig.Family.QWEN2_5_VL;
        this.stream = stream;
        this.ownsStream = ownsStream;
        this.act = VisionGpuOps.Act.of(cfg.hiddenAct());
        String prefix;
        if (store.has("model.visual.patch_embed.proj.weight")) prefix = "model.visual.";
        else if (store.has("visual.patch_embed.proj.weight")) prefix = "visual.";
        else throw new IllegalArgumentException(store.location() + ": no vision tower weights (neither 'model.visual.patch_embed.proj.weight' nor 'visual.patch_embed.proj.weight')");
        long bytes = 32L << 20; // cuBLAS workspace
        this.ffn = (cfg.mlpHidden() + 63) / 64 * 64;
        bytes += (long) cfg.depth() * (ffn - cfg.mlpHidden()) * (6L * cfg.embedDim() + 8) + 4096L * cfg.depth();
        for (var e : store.tensors().entrySet())
            if (e.getKey().startsWith(prefix)) bytes += (e.getValue().rank() >= 2 ? 2 : 4) * e.getValue().numel() + 512;
        this.weights = stream.device().newArena("vision weights", bytes);
        Loader L = new Loader(store, prefix);
        try {
            int d = cfg.embedDim(), m2 = cfg.mergeSize() * cfg.mergeSize(), f = cfg.mlpHidden(), fp = ffn;
            DeviceBuffer ws = weights.alloc("cublas workspace", 32L << 20);
            this.blas = new Blas(stream, ws);
            this.gemm16 = new VisionGpuOps.Gemm(stream, ws); // same stream: the two handles never run at once
            this.ops = new GpuOps(stream, tuning);
            this.vops = new VisionGpuOps(stream);
            patchW = L.matrix("patch_embed.proj.weight", new long[] {d, cfg.inChannels(), cfg.temporalPatchSize(), cfg.patchSize(), cfg.patchSize()});
            blocks = new Block[cfg.depth()];
            List<Integer> full = Arrays.stream(cfg.fullAttBlocks()).boxed().toList();
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
                    upW = weights.alloc(prefix + p + "mlp.fc1.weight", 2L * fp * d);
                    stream.memsetAsync(upW, 0, 2L * fp * d);
                    L.matrixInto(upW, 0, p + "mlp.fc1.weight", f, d);
                    upB = L.paddedBias(new String[] {p + "mlp.fc1.bias"}, f, fp);
                }
                blocks[b] = new Block(
                        L.vector(p + "norm1.weight", d), q25 ? null : L.vector(p + "norm1.bias", d),
                        L.vector(p + "norm2.weight", d), q25 ? null : L.vector(p + "norm2.bias", d),
                        L.matrix(p + "attn.qkv.weight", new long[] {3L * d, d}), L.optVector(p + "attn.qkv.bias", 3 * d),
                        L.matrix(p + "attn.proj.weight", new long[] {d, d}), L.optVector(p + "attn.proj.bias", d),
                        upW, upB,
                        L.paddedColumns(p + (q25 ? "mlp.down_proj.weight" : "mlp.fc2.weight"), d, f, fp),
                        L.optVector(p + (q25 ? "mlp.down_proj.bias" : "mlp.fc2.bias"), d),
                        !q25 || full.contains(b));
            }
            lnQW = L.vector("merger.ln_q.weight", d);
            lnQB = q25 ? null : L.vector("merger.ln_q.bias", d);
            m0W = L.matrix("merger.mlp.0.weight", new long[] {(long) d * m2, (long) d * m2});
            m0B = L.optVector("merger.mlp.0.bias", d * m2);
            m2W = L.matrix("merger.mlp.2.weight", new long[] {cfg.outHidden(), (long) d * m2});
            m2B = L.optVector("merger.mlp.2.bias", cfg.outHidden());
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

    /** Uploads checkpoint tensors: matrices as bf16 (converted when stored otherwise), vectors as fp32. */
    private final class Loader {
        final WeightStore store;
        final String prefix;

        Loader(WeightStore store, String prefix) { this.store = store; this.prefix = prefix; }

        DeviceBuffer matrix(String name, long[] shape) {
            TensorView t = store.tensor(prefix + name, shape);
            DeviceBuffer b = weights.alloc(prefix + name, 2L * t.numel());
            upload(b, 0, t);
            return b;
        }

        void matrixInto(DeviceBuffer dst, long offset, String name, long rows, long cols) {
            TensorView t = store.tensor(prefix + name, rows, cols);
            upload(dst, offset, t);
        }

        private void upload(DeviceBuffer dst, long offset, TensorView t) {
            DeviceBuffer target = dst.slice(offset, 2L * t.numel(), t.name());
            if (t.dtype() == DType.BF16) {
                stream.uploadFromAddress(target, t.segment().address(), 2L * t.numel());
            } else {
                if (t.numel() > Integer.MAX_VALUE) throw new IllegalArgumentException(t.where() + " is too large to convert to bf16");
                float[] v = t.toFloatArray();
                short[] s = new short[v.length];
                for (int i = 0; i < v.length; i++) s[i] = DType.floatToBf16(v[i]);
                stream.upload(target, s);
            }
        }

        DeviceBuffer vector(String name, int len) {
            float[] v = store.tensor(prefix + name, len).toFloatArray();
            DeviceBuffer b = weights.alloc(prefix + name, 4L * len);
            stream.upload(b, v);
            return b;
        }

        DeviceBuffer optVector(String name, int len) {
            return store.has(prefix + name) ? vector(name, len) : null;
        }

        /** Biases of {@code names} (each [len], absent = zeros) at offsets 0, pad, 2*pad.. of one fp32 vector. */
        DeviceBuffer paddedBias(String[] names, int len, int pad) {
            boolean any = false;
            float[] v = new float[names.length * pad];
            for (int i = 0; i < names.length; i++) {
                if (!store.has(prefix + names[i])) continue;
                any = true;
                System.arraycopy(store.tensor(prefix + names[i], len).toFloatArray(), 0, v, i * pad, len);
            }
            if (!any) return null;
            DeviceBuffer b = weights.alloc(prefix + names[0] + " (padded)", 4L * v.length);
            stream.upload(b, v);
            return b;
        }

        /** A [rows, cols] matrix as bf16 [rows, colsPad], the extra columns zero. */
        DeviceBuffer paddedColumns(String name, int rows, int cols, int colsPad) {
            TensorView t = store.tensor(prefix + name, rows, cols);
            short[] out = new short[Math.multiplyExact(rows, colsPad)];
            if (t.dtype() == DType.BF16) {
                for (int r = 0; r < rows; r++)
                    java.lang.foreign.MemorySegment.copy(t.segment(), ValueLayout.JAVA_SHORT_UNALIGNED, 2L * r * cols, out, r * colsPad, cols);
            } else {
                float[] v = t.toFloatArray();
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) out[r * colsPad + c] = DType.floatToBf16(v[r * cols + c]);
            }
            DeviceBuffer b = weights.alloc(prefix + name + " (padded)", 2L * out.length);
            stream.upload(b, out);
            return b;
        }
    }

    @Override public int outHidden() { return cfg.outHidden(); }
    @Override public int mergeSize() { return cfg.mergeSize(); }
    @Override public String describe() { return "cuda " + cfg + " on " + stream.device(); }
    public VisionConfig config() { return cfg; }
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
        List<ImageEmbeddings> out = new ArrayList<>(images.size());
        int off = 0, m2 = cfg.mergeSize() * cfg.mergeSize(), o = cfg.outHidden();
        for (PixelValues pv : images) {
            int tk = pv.numPatches() / m2;
            out.add(new ImageEmbeddings(Arrays.copyOfRange(all, off * o, (off + tk) * o), tk, o, pv.gridT(), pv.gridH(), pv.gridW(), pv.contentHash()));
            off += tk;
        }
        return out;
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

    /** Downloads device embeddings as an {@link ImageEmbeddings} (synchronizes the stream). */
    public synchronized ImageEmbeddings toHost(DeviceEmbeddings e) {
        check();
        float[] v = download(e.f32(), e.tokens() * e.hidden());
        return new ImageEmbeddings(v, e.tokens(), e.hidden(), e.gridT(), e.gridH(), e.gridW(), e.contentHash());
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
                    + cfg.family().modelType() + " vision tower expects " + cfg.patchDim() + " (channels " + cfg.inChannels() + " x temporal "
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

    private record Scratch(DeviceBuffer xf32, DeviceBuffer xbf16, DeviceBuffer h, DeviceBuffer tmp, DeviceBuffer normed,
                           DeviceBuffer qkv, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer attn,
                           DeviceBuffer mlp, DeviceBuffer actb, DeviceBuffer mid, DeviceBuffer midb, DeviceBuffer merged,
                           DeviceBuffer outF32, DeviceBuffer outBf16) {
        Scratch withInput(DeviceBuffer bf16) {
            return new Scratch(xf32, bf16, h, tmp, normed, qkv, q, k, v, attn, mlp, actb, mid, midb, merged, outF32, outBf16);
        }
    }

    private long scratchBytes(int n) {
        long d = cfg.embedDim(), pd = cfg.patchDim(), f = ffn, m2 = (long) cfg.mergeSize() * cfg.mergeSize();
        long t = n / m2, o = cfg.outHidden();
        long b = 4 * n * pd + 2 * n * pd        // pixels fp32 + bf16
                + 4 * n * d * 2 + 2 * n * d      // h, tmp, normed
                + 4 * n * 3 * d + 2 * n * d * 4  // qkv, q, k, v, attn
                + 4 * n * (q25 ? 2 : 1) * f + 2 * n * f
                + 4 * t * d * m2 + 2 * t * d * m2 + 4 * t * o * 2 + 2 * t * o;
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
        long d = cfg.embedDim(), pd = cfg.patchDim(), f = ffn, m2 = (long) cfg.mergeSize() * cfg.mergeSize();
        long t = n / m2, o = cfg.outHidden();
        DeviceArena a = scratch;
        return new Scratch(a.alloc("pixels fp32", 4 * n * pd), a.alloc("pixels bf16", 2 * n * pd),
                a.alloc("hidden fp32", 4 * n * d), a.alloc("delta fp32", 4 * n * d), a.alloc("normed bf16", 2 * n * d),
                a.alloc("qkv fp32", 12 * n * d), a.alloc("q bf16", 2 * n * d), a.alloc("k bf16", 2 * n * d),
                a.alloc("v bf16", 2 * n * d), a.alloc("attn bf16", 2 * n * d),
                a.alloc("mlp fp32", 4 * n * (q25 ? 2 : 1) * f), a.alloc("mlp act bf16", 2 * n * f),
                a.alloc("merger mid fp32", 4 * t * d * m2), a.alloc("merger mid bf16", 2 * t * d * m2),
                a.alloc("merger out fp32", 4 * t * o), a.alloc("embeddings fp32", 4 * t * o), a.alloc("embeddings bf16", 2 * t * o));
    }

    // ---- index tables ----

    private Meta meta(int[][] grids, int n) {
        StringBuilder kb = new StringBuilder();
        for (int[] g : grids) kb.append(g[0]).append('x').append(g[1]).append('x').append(g[2]).append(';');
        String key = kb.toString();
        if (meta != null && meta.key.equals(key)) return meta;
        int m = cfg.mergeSize(), m2 = m * m;
        int units = n / m2;
        // positions (row, column) per patch in merge-window order, full-attention segments = one per frame
        int[] pos = new int[2 * n];
        int[] fullCu = new int[1 + Arrays.stream(grids).mapToInt(g -> g[0]).sum()];
        int row = 0, seg = 0;
        for (int[] g : grids) {
            for (int t = 0; t < g[0]; t++) {
                for (int bh = 0; bh < g[1] / m; bh++)
                    for (int bw = 0; bw < g[2] / m; bw++)
                        for (int mh = 0; mh < m; mh++)
                            for (int mw = 0; mw < m; mw++, row++) {
                                pos[2 * row] = bh * m + mh;
                                pos[2 * row + 1] = bw * m + mw;
                            }
                fullCu[seg + 1] = fullCu[seg] + g[1] * g[2];
                seg++;
            }
        }
        int[] index = null, winCu = null;
        if (q25) {
            int vmw = cfg.windowSize() / m / cfg.patchSize();
            index = new int[units];
            List<Integer> cu = new ArrayList<>();
            cu.add(0);
            int k = 0, base = 0, last = 0;
            for (int[] g : grids) {
                int lh = g[1] / m, lw = g[2] / m;
                int nwh = (lh + vmw - lh % vmw) / vmw, nww = (lw + vmw - lw % vmw) / vmw;
                for (int t = 0; t < g[0]; t++)
                    for (int wh = 0; wh < nwh; wh++)
                        for (int ww = 0; ww < nww; ww++) {
                            int count = 0;
                            for (int y = wh * vmw; y < Math.min((wh + 1) * vmw, lh); y++)
                                for (int x = ww * vmw; x < Math.min((ww + 1) * vmw, lw); x++) {
                                    index[k++] = base + t * lh * lw + y * lw + x;
                                    count++;
                                }
                            if (count > 0) { last += count * m2; cu.add(last); }
                        }
                base += g[0] * lh * lw;
            }
            winCu = cu.stream().mapToInt(Integer::intValue).toArray();
            int[] permuted = new int[2 * n];
            for (int u = 0; u < units; u++) System.arraycopy(pos, 2 * index[u] * m2, permuted, 2 * u * m2, 2 * m2);
            pos = permuted;
        }
        int[] fullTiles = VisionGpuOps.attentionTiles(fullCu);
        int[] winTiles = winCu == null ? null : VisionGpuOps.attentionTiles(winCu);
        if (metaArena != null) { stream.synchronize(); dropGraphs(); metaArena.close(); }
        long bytes = 4L * pos.length + 4L * fullTiles.length + (winTiles == null ? 0 : 4L * winTiles.length + 4L * units) + 4 * 256;
        metaArena = stream.device().newArena("vision index tables", bytes);
        DeviceBuffer dPos = metaArena.alloc("rotary positions", 4L * pos.length);
        stream.upload(dPos, pos);
        DeviceBuffer dFull = metaArena.alloc("full-attention tiles", 4L * fullTiles.length);
        stream.upload(dFull, fullTiles);
        DeviceBuffer dWin = null, dIndex = null;
        if (winTiles != null) {
            dWin = metaArena.alloc("window tiles", 4L * winTiles.length);
            stream.upload(dWin, winTiles);
            dIndex = metaArena.alloc("window index", 4L * units);
            stream.upload(dIndex, index);
        }
        meta = new Meta(key, n, dPos, dFull, fullTiles.length / 4, dWin, winTiles == null ? 0 : winTiles.length / 4, dIndex);
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
        Meta mt = meta(grids, n);
        if (useGraphs) {
            String key = mt.key + "@" + Long.toHexString(s.xbf16.address()) + "#" + generation;
            CudaGraph g = graphs.get(key);
            if (g == null) {
                try {
                    if (graphs.size() >= 8) dropGraphs();
                    g = CudaGraph.capture("vision tower " + mt.key, stream, () -> enqueue(s, mt, n));
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
        return new DeviceEmbeddings(s.outF32, s.outBf16, n / (cfg.mergeSize() * cfg.mergeSize()), cfg.outHidden(), g0[0], g0[1], g0[2], hash);
    }

    /** Per-op timing sink of {@link #profile}; null when running normally. */
    private Map<String, Double> timing;

    private void op(String name, Runnable r) {
        if (timing == null) { r.run(); return; }
        float ms = stream.time(r);
        timing.merge(name, (double) ms, Double::sum);
    }

    /**
     * Runs the tower once eagerly with CUDA events around every op and returns milliseconds per op kind
     * (a diagnostic for benchmarks: each op is synchronized, so the sum exceeds the graph's latency).
     */
    public synchronized Map<String, Double> profile(GpuPixels pixels) {
        check();
        checkInput(0, pixels.patchDim(), pixels.gridH(), pixels.gridW());
        int n = pixels.numPatches();
        ensureScratch(n);
        Scratch s = scratchBuffers(n).withInput(pixels.data());
        int[][] grids = {{pixels.gridT(), pixels.gridH(), pixels.gridW()}};
        Meta mt = meta(grids, n);
        timing = new java.util.LinkedHashMap<>();
        try {
            enqueue(s, mt, n);
            return timing;
        } finally {
            timing = null;
        }
    }

    private void enqueue(Scratch s, Meta mt, int n) {
        int d = cfg.embedDim(), m = cfg.mergeSize(), m2 = m * m, f = ffn, o = cfg.outHidden();
        int heads = cfg.numHeads(), hd = cfg.headDim(), units = n / m2;
        boolean rms = q25;
        float scale = (float) (1.0 / Math.sqrt(hd));
        // patch embedding (Conv3d, stride = kernel: a GEMM over flattened patches), window permutation of units
        if (mt.unitIndex != null) {
            op("patch embed gemm", () -> blas.matmulNT(s.tmp, s.xbf16, patchW, n, d, cfg.patchDim(), false));
            op("window permute", () -> vops.gatherUnits(s.h, s.tmp, mt.unitIndex, units, m2 * d));
        } else {
            op("patch embed gemm", () -> blas.matmulNT(s.h, s.xbf16, patchW, n, d, cfg.patchDim(), false));
        }
        Block prev = null;
        for (Block b : blocks) {
            final Block pb = prev;
            if (pb == null) op("norm", () -> vops.norm(s.normed, s.h, null, null, b.n1W, b.n1B, n, d, NORM_EPS, rms));
            else op("norm", () -> vops.norm(s.normed, s.h, s.tmp, pb.downB, b.n1W, b.n1B, n, d, NORM_EPS, rms));
            op("qkv gemm", () -> gemm16.matmulNTbf16(s.qkv, s.normed, b.qkvW, n, 3 * d, d));
            op("rope split", () -> vops.ropeSplit(s.q, s.k, s.v, s.qkv, true, b.qkvB, mt.pos, invFreq, n, heads, hd));
            if (b.fullAttention) op("attention full", () -> vops.attention(s.attn, s.q, s.k, s.v, mt.fullTiles, mt.fullTileCount, n, heads, hd, scale));
            else op("attention window", () -> vops.attention(s.attn, s.q, s.k, s.v, mt.winTiles, mt.winTileCount, n, heads, hd, scale));
            op("proj gemm", () -> blas.matmulNT(s.tmp, s.attn, b.projW, n, d, d, false));
            op("norm", () -> vops.norm(s.normed, s.h, s.tmp, b.projB, b.n2W, b.n2B, n, d, NORM_EPS, rms));
            int width = q25 ? 2 * f : f;
            op("gate|up gemm", () -> gemm16.matmulNTbf16(s.mlp, s.normed, b.upW, n, width, d));
            op("mlp act", () -> vops.biasAct(s.actb, s.mlp, true, b.upB, n, f, width, act, q25));
            op("down gemm", () -> blas.matmulNT(s.tmp, s.actb, b.downW, n, d, f, false));
            prev = b;
        }
        // patch merger: norm, m^2 neighbouring patches concatenated (contiguous rows), MLP with exact GELU
        final Block last = prev;
        op("merger", () -> {
            vops.norm(s.normed, s.h, s.tmp, last.downB, lnQW, lnQB, n, d, NORM_EPS, rms);
            gemm16.matmulNTbf16(s.mid, s.normed, m0W, units, d * m2, d * m2);
            vops.biasAct(s.midb, s.mid, true, m0B, units, d * m2, d * m2, VisionGpuOps.Act.GELU, false);
            blas.matmulNT(s.merged, s.midb, m2W, units, o, d * m2, false);
            vops.biasScatter(s.outF32, s.outBf16, s.merged, m2B, mt.unitIndex, units, o);
        });
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
            gemm16.close();
            if (scratch != null) scratch.close();
            if (metaArena != null) metaArena.close();
            if (hostStage != null) hostStage.close();
            weights.close();
            if (ownsStream) stream.close();
        }
    }
}
