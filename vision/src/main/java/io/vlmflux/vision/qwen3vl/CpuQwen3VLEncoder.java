package io.vlmflux.vision.qwen3vl;

import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.cpu.Parallel;
import io.vlmflux.cuda.cpu.Rope;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.qwen2vl.Linear;
import io.vlmflux.vision.qwen2vl.TowerWeights;
import io.vlmflux.vision.qwen2vl.SegmentAttention;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * CPU float32 reference of the Qwen3-VL vision tower as transformers 5.17 computes it: patch embedding (Conv3d with
 * bias), learned position embeddings bilinearly interpolated to each input's patch grid, ViT blocks (LayerNorm, 2-D
 * rotary attention within each frame, {@code linear_fc1}/{@code linear_fc2} MLP), the patch merger, and the DeepStack
 * mergers that turn the outputs of the {@code deepstack_visual_indexes} blocks into extra features for the decoder.
 *
 * <p>Owns the {@link WeightStore} it was given; {@link #close()} unmaps it. Small towers are copied to float32 at load,
 * towers above {@code vlmflux.vision.fp32MaxBytes} (default 1 GiB as float32) stay mapped. One call at a time; each
 * call spreads its work over all cores. Several inputs in one call form one sequence (every matmul sees all their
 * patches); attention never crosses a frame boundary.
 */
final class CpuQwen3VLEncoder implements VisionEncoder {
    private static final System.Logger LOG = System.getLogger("vlmflux.vision");
    private static final float NORM_EPS = 1e-6f;

    private final Qwen3VLVisionConfig cfg;
    private final WeightStore store;
    private final TowerWeights weights;
    private final Linear patchEmbed;       // [hidden, C*T*P*P] with bias
    private final float[] posEmbed;        // [side*side, hidden]
    private final Block[] blocks;
    private final Merger merger;           // norm over hidden before the 2x2 shuffle
    private final Merger[] deepstackMergers; // by position in deepstack_visual_indexes; norm after the shuffle
    private final int[] deepstackIndexes;
    private final float[] invFreq;         // [headDim/4]
    private volatile boolean closed;

    private record Block(float[] norm1W, float[] norm1B, float[] norm2W, float[] norm2B,
                         Linear qkv, Linear proj, Linear fc1, Linear fc2) {}

    /** A patch merger: LayerNorm (over one patch or over the m^2 concatenated patches), fc1, exact GELU, fc2. */
    private record Merger(float[] normW, float[] normB, boolean postShuffle, Linear fc1, Linear fc2) {}

    CpuQwen3VLEncoder(Qwen3VLVisionConfig cfg, WeightStore store) {
        this.cfg = cfg;
        this.store = store;
        this.weights = new TowerWeights(store);   // prefix, parameter count, float32 copies or the mapping
        int d = cfg.hidden(), wide = d * cfg.mergeSize() * cfg.mergeSize();

        TensorView pe = weights.tensor("patch_embed.proj.weight",
                d, cfg.inChannels(), cfg.temporalPatchSize(), cfg.patchSize(), cfg.patchSize());
        this.patchEmbed = Linear.transposed(pe.toFloatArray(), weights.vec("patch_embed.proj.bias", d), d, cfg.patchDim());
        this.posEmbed = weights.tensor("pos_embed.weight", cfg.numPositions(), d).toFloatArray();
        this.blocks = new Block[cfg.depth()];
        for (int b = 0; b < cfg.depth(); b++) {
            String p = "blocks." + b + ".";
            blocks[b] = new Block(weights.vec(p + "norm1.weight", d), weights.vec(p + "norm1.bias", d), weights.vec(p + "norm2.weight", d), weights.vec(p + "norm2.bias", d),
                    weights.linear(p + "attn.qkv", 3 * d, d), weights.linear(p + "attn.proj", d, d),
                    weights.linear(p + "mlp.linear_fc1", cfg.intermediate(), d), weights.linear(p + "mlp.linear_fc2", d, cfg.intermediate()));
        }
        this.merger = merger("merger.", false, d, wide);
        this.deepstackIndexes = cfg.deepstackIndexes();
        this.deepstackMergers = new Merger[deepstackIndexes.length];
        for (int k = 0; k < deepstackMergers.length; k++) deepstackMergers[k] = merger("deepstack_merger_list." + k + ".", true, d, wide);
        if (store.has(weights.prefix() + "deepstack_merger_list." + deepstackMergers.length + ".linear_fc1.weight"))
            throw new IllegalArgumentException(store.location() + ": the checkpoint has more DeepStack mergers than the " + deepstackIndexes.length
                    + " entries of vision_config field 'deepstack_visual_indexes' " + Arrays.toString(deepstackIndexes));
        this.invFreq = Rope.defaultInvFreq(cfg.headDim() / 2, cfg.ropeTheta());
        LOG.log(System.Logger.Level.INFO, "vision encoder: cpu backend, " + cfg + ", " + weights.describe() + ", " + Parallel.threads() + " threads");
    }

    private Merger merger(String p, boolean post, int d, int wide) {
        int nw = post ? wide : d;
        return new Merger(weights.vec(p + "norm.weight", nw), weights.vec(p + "norm.bias", nw), post,
                weights.linear(p + "linear_fc1", wide, wide), weights.linear(p + "linear_fc2", cfg.outHidden(), wide));
    }



    @Override public int outHidden() { return cfg.outHidden(); }
    @Override public int mergeSize() { return cfg.mergeSize(); }
    @Override public String describe() { return "cpu " + cfg; }
    @Override public int deepstackLayers() { return deepstackIndexes.length; }

    @Override
    public ImageEmbeddings encode(PixelValues pixels) {
        return encode(List.of(pixels)).getFirst();
    }

    @Override
    public synchronized List<ImageEmbeddings> encode(List<PixelValues> images) {
        if (closed) throw new IllegalStateException("vision encoder was closed");
        if (images.isEmpty()) return List.of();
        int m = cfg.mergeSize(), m2 = m * m, d = cfg.hidden(), pd = cfg.patchDim();
        int n = 0, frames = 0;
        for (int i = 0; i < images.size(); i++) {
            PixelValues pv = images.get(i);
            if (pv.patchDim() != pd)
                throw new IllegalArgumentException("pixel values of image " + i + " have " + pv.patchDim() + " values per patch, the qwen3_vl vision tower expects "
                        + pd + " (channels " + cfg.inChannels() + " x temporal " + cfg.temporalPatchSize() + " x patch " + cfg.patchSize() + "^2)");
            if (pv.gridH() % m != 0 || pv.gridW() % m != 0)
                throw new IllegalArgumentException("grid " + pv.gridH() + "x" + pv.gridW() + " of image " + i + " is not divisible by spatial_merge_size " + m);
            n = Math.addExact(n, pv.numPatches());
            frames += pv.gridT();
        }
        Math.multiplyExact(n, Math.max(Math.max(pd, 3 * d), cfg.intermediate())); // the largest buffer must fit an array
        // 1. patch embedding (Conv3d with stride = kernel == matmul on flattened patches)
        float[] x = PixelValues.concat(images);
        float[] h = new float[n * d];
        patchEmbed.apply(h, x, n);

        // 2. + interpolated position embeddings; rotary tables; one attention segment per frame
        int half = cfg.headDim() / 2, quarter = half / 2;
        float[] cos = new float[n * half], sin = new float[n * half];
        int[] cu = new int[frames + 1];
        int row = 0, seg = 0;
        for (PixelValues pv : images) {
            Qwen3VLPositions.Table pos = Qwen3VLPositions.of(cfg.gridSide(), m, pv.gridH(), pv.gridW());
            for (int t = 0; t < pv.gridT(); t++) {
                final int row0 = row;
                Parallel.forRange(pos.rows(), 16, (lo, hi) -> Qwen3VLPositions.addTo(h, row0, pos, posEmbed, d, lo, hi));
                for (int bh = 0; bh < pv.gridH() / m; bh++)
                    for (int bw = 0; bw < pv.gridW() / m; bw++)
                        for (int mh = 0; mh < m; mh++)
                            for (int mw = 0; mw < m; mw++, row++) {
                                int hp = bh * m + mh, wp = bw * m + mw;
                                for (int f = 0; f < quarter; f++) {
                                    float ah = hp * invFreq[f], aw = wp * invFreq[f];
                                    cos[row * half + f] = (float) Math.cos(ah);
                                    sin[row * half + f] = (float) Math.sin(ah);
                                    cos[row * half + quarter + f] = (float) Math.cos(aw);
                                    sin[row * half + quarter + f] = (float) Math.sin(aw);
                                }
                            }
                cu[seg + 1] = cu[seg] + pv.gridH() * pv.gridW();
                seg++;
            }
        }

        // 3. ViT blocks; DeepStack features after the listed blocks, in block order (as transformers appends them)
        int tokens = n / m2, out = cfg.outHidden();
        float[] normed = new float[n * d], qkv = new float[n * 3 * d], attn = new float[n * d], tmp = new float[n * d];
        float[] mlp = new float[n * cfg.intermediate()];
        float[] wideBuf = new float[tokens * d * m2], mid = new float[tokens * d * m2];
        List<float[]> deep = new ArrayList<>();
        for (int b = 0; b < blocks.length; b++) {
            Block blk = blocks[b];
            CpuOps.layerNormRows(normed, h, n, d, blk.norm1W, blk.norm1B, NORM_EPS);
            blk.qkv.apply(qkv, normed, n);
            final float[] c = cos, s = sin;
            Parallel.forRange(n, 32, (lo, hi) -> {
                for (int i = lo; i < hi; i++)
                    for (int hd = 0; hd < cfg.numHeads(); hd++) {
                        int qo = i * 3 * d + hd * cfg.headDim();
                        CpuOps.ropeRotateHalf(qkv, qo, half, c, s, i * half);
                        CpuOps.ropeRotateHalf(qkv, qo + d, half, c, s, i * half);
                    }
            });
            SegmentAttention.attend(qkv, n, cfg.numHeads(), cfg.headDim(), cu, attn);
            blk.proj.apply(tmp, attn, n);
            CpuOps.addInPlace(h, tmp, n * d);
            CpuOps.layerNormRows(normed, h, n, d, blk.norm2W, blk.norm2B, NORM_EPS);
            blk.fc1.apply(mlp, normed, n);
            String act = cfg.hiddenAct();
            Parallel.forRange(mlp.length, 4096, (lo, hi) -> { for (int i = lo; i < hi; i++) mlp[i] = activation(act, mlp[i]); });
            blk.fc2.apply(tmp, mlp, n);
            CpuOps.addInPlace(h, tmp, n * d);
            int k = indexOf(deepstackIndexes, b);
            if (k >= 0) {
                float[] f = new float[tokens * out];
                merge(deepstackMergers[k], h, tokens, wideBuf, mid, f);
                deep.add(f);
            }
        }

        // 4. patch merger
        float[] main = new float[tokens * out];
        merge(merger, h, tokens, wideBuf, mid, main);

        // 5. split per input
        List<ImageEmbeddings> result = new ArrayList<>(images.size());
        int tokOff = 0;
        for (PixelValues pv : images) {
            int tk = pv.numPatches() / m2, from = tokOff * out, to = (tokOff + tk) * out;
            List<float[]> ds = new ArrayList<>(deep.size());
            for (float[] f : deep) ds.add(Arrays.copyOfRange(f, from, to));
            result.add(new ImageEmbeddings(Arrays.copyOfRange(main, from, to), tk, out, pv.gridT(), pv.gridH(), pv.gridW(), pv.contentHash(), ds));
            tokOff += tk;
        }
        return result;
    }

    /** {@code merger(h)}: h is {@code [tokens*m^2, hidden]}, i.e. {@code [tokens, hidden*m^2]} once viewed wide. */
    private void merge(Merger mg, float[] h, int tokens, float[] normed, float[] mid, float[] out) {
        int d = cfg.hidden(), wide = d * cfg.mergeSize() * cfg.mergeSize();
        if (mg.postShuffle) CpuOps.layerNormRows(normed, h, tokens, wide, mg.normW, mg.normB, NORM_EPS);
        else CpuOps.layerNormRows(normed, h, tokens * (wide / d), d, mg.normW, mg.normB, NORM_EPS);
        mg.fc1.apply(mid, normed, tokens);
        Parallel.forRange(tokens * wide, 4096, (lo, hi) -> { for (int i = lo; i < hi; i++) mid[i] = CpuOps.geluErf(mid[i]); });
        mg.fc2.apply(out, mid, tokens);
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) if (a[i] == v) return i;
        return -1;
    }

    private static float activation(String act, float v) {
        return switch (act) {
            case "gelu_pytorch_tanh", "gelu_new" -> CpuOps.geluTanh(v);
            case "gelu" -> CpuOps.geluErf(v);
            case "quick_gelu" -> CpuOps.quickGelu(v);
            default -> CpuOps.silu(v); // silu, swish (validated by the config)
        };
    }

    @Override
    public synchronized void close() {
        closed = true;
        store.close();
    }
}
