package io.vlmflux.vision.qwen2vl;

import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.cpu.Parallel;
import io.vlmflux.cuda.cpu.Rope;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * CPU float32 reference of the Qwen2-VL and Qwen2.5-VL vision towers (patch embedding, 2-D rotary ViT blocks,
 * window attention for Qwen2.5-VL, patch merger), computed from the checkpoint's bf16/f16/f32 weights.
 *
 * <p>Owns the {@link WeightStore} (memory-mapped) it was given; {@link #close()} unmaps it. Small towers are copied
 * to float32 at load (faster matmuls); towers above {@code vlmflux.vision.fp32MaxBytes} (default 1 GiB as float32)
 * stay memory-mapped and are converted on the fly. One call at a time ({@code encode} is synchronized); each call
 * spreads its work over all cores through {@link Parallel}.
 *
 * <p>Several images in one call are concatenated into one sequence, as transformers does: every matmul sees all
 * their patches, attention never crosses an image (or a frame, or a window) boundary.
 */
final class CpuVisionEncoder implements VisionEncoder {
    private static final System.Logger LOG = System.getLogger("vlmflux.vision");
    private static final float NORM_EPS = 1e-6f;

    private final VisionConfig cfg;
    private final WeightStore store;
    private final TowerWeights weights;
    private final Linear patchEmbed;      // [embed, C*T*P*P]
    private final Block[] blocks;
    private final float[] lnQW, lnQB;     // [embed] (bias null for RMSNorm)
    private final Linear merger0, merger2; // [embed*m^2, embed*m^2], [out, embed*m^2]
    private final float[] invFreq;        // [headDim/4]
    private volatile boolean closed;

    private record Block(float[] norm1W, float[] norm1B, float[] norm2W, float[] norm2B,
                         Linear qkv, Linear proj,
                         Linear up,     // fc1 (Qwen2-VL) or up_proj (Qwen2.5-VL)
                         Linear gate,   // null for Qwen2-VL
                         Linear down) {} // fc2 or down_proj

    CpuVisionEncoder(VisionConfig cfg, WeightStore store) {
        this.cfg = cfg;
        this.store = store;
        this.weights = new TowerWeights(store);   // prefix, parameter count, float32 copies or the mapping
        int d = cfg.embedDim(), m2 = cfg.mergeSize() * cfg.mergeSize();
        boolean q25 = cfg.family() == VisionConfig.Family.QWEN2_5_VL;

        TensorView pe = weights.tensor("patch_embed.proj.weight",
                d, cfg.inChannels(), cfg.temporalPatchSize(), cfg.patchSize(), cfg.patchSize());
        this.patchEmbed = Linear.transposed(pe.toFloatArray(), null, d, cfg.patchDim());
        this.blocks = new Block[cfg.depth()];
        for (int b = 0; b < cfg.depth(); b++) {
            String p = "blocks." + b + ".";
            blocks[b] = new Block(
                    weights.vec(p + "norm1.weight", d), q25 ? null : weights.vec(p + "norm1.bias", d),
                    weights.vec(p + "norm2.weight", d), q25 ? null : weights.vec(p + "norm2.bias", d),
                    weights.linear(p + "attn.qkv", 3 * d, d), weights.linear(p + "attn.proj", d, d),
                    weights.linear(p + (q25 ? "mlp.up_proj" : "mlp.fc1"), cfg.mlpHidden(), d),
                    q25 ? weights.linear(p + "mlp.gate_proj", cfg.mlpHidden(), d) : null,
                    weights.linear(p + (q25 ? "mlp.down_proj" : "mlp.fc2"), d, cfg.mlpHidden()));
        }
        this.lnQW = weights.vec("merger.ln_q.weight", d);
        this.lnQB = q25 ? null : weights.vec("merger.ln_q.bias", d);
        this.merger0 = weights.linear("merger.mlp.0", d * m2, d * m2);
        this.merger2 = weights.linear("merger.mlp.2", cfg.outHidden(), d * m2);
        this.invFreq = Rope.defaultInvFreq(cfg.headDim() / 2, cfg.ropeTheta());
        LOG.log(System.Logger.Level.INFO, "vision encoder: cpu backend, " + cfg + ", " + weights.describe() + ", " + Parallel.threads() + " threads");
    }



    @Override public int outHidden() { return cfg.outHidden(); }
    @Override public int mergeSize() { return cfg.mergeSize(); }
    @Override public String describe() { return "cpu " + cfg; }
    VisionConfig config() { return cfg; }

    @Override
    public ImageEmbeddings encode(PixelValues pixels) {
        return encode(List.of(pixels)).getFirst();
    }

    @Override
    public synchronized List<ImageEmbeddings> encode(List<PixelValues> images) {
        if (closed) throw new IllegalStateException("vision encoder was closed");
        if (images.isEmpty()) return List.of();
        int m = cfg.mergeSize(), m2 = m * m, d = cfg.embedDim(), pd = cfg.patchDim();
        int n = 0;
        for (int i = 0; i < images.size(); i++) {
            PixelValues pv = images.get(i);
            if (pv.patchDim() != pd)
                throw new IllegalArgumentException("pixel values of image " + i + " have " + pv.patchDim() + " values per patch, the "
                        + cfg.family().modelType() + " vision tower expects " + pd + " (channels " + cfg.inChannels() + " x temporal "
                        + cfg.temporalPatchSize() + " x patch " + cfg.patchSize() + "^2)");
            if (pv.gridH() % m != 0 || pv.gridW() % m != 0)
                throw new IllegalArgumentException("grid " + pv.gridH() + "x" + pv.gridW() + " of image " + i + " is not divisible by spatial_merge_size " + m);
            n = Math.addExact(n, pv.numPatches());
        }
        // 1. patch embedding (Conv3d with stride = kernel == matmul on flattened patches)
        float[] x = PixelValues.concat(images);
        float[] h = new float[n * d];
        patchEmbed.apply(h, x, n);

        // 2. rotary tables (per patch: h positions then w positions) and attention segments
        int half = cfg.headDim() / 2, quarter = half / 2;
        float[] cos = new float[n * half], sin = new float[n * half];
        int[] fullCu = new int[1 + images.stream().mapToInt(PixelValues::gridT).sum()];
        int row = 0, seg = 0;
        for (PixelValues pv : images) {
            for (int t = 0; t < pv.gridT(); t++) {
                for (int bh = 0; bh < pv.gridH() / m; bh++)
                    for (int bw = 0; bw < pv.gridW() / m; bw++)
                        for (int mh = 0; mh < m; mh++)
                            for (int mw = 0; mw < m; mw++, row++) {
                                float hp = bh * m + mh, wp = bw * m + mw;
                                for (int f = 0; f < quarter; f++) {
                                    float ah = hp * invFreq[f], aw = wp * invFreq[f];
                                    cos[row * half + f] = (float) Math.cos(ah);
                                    sin[row * half + f] = (float) Math.sin(ah);
                                    cos[row * half + quarter + f] = (float) Math.cos(aw);
                                    sin[row * half + quarter + f] = (float) Math.sin(aw);
                                }
                            }
                fullCu[seg + 1] = fullCu[seg] + pv.gridH() * pv.gridW();
                seg++;
            }
        }
        int[] windowCu = null, windowIndex = null;
        if (cfg.family() == VisionConfig.Family.QWEN2_5_VL) {
            List<int[]> wi = windowIndex(images);
            windowIndex = wi.get(0);
            windowCu = wi.get(1);
            h = permuteUnits(h, windowIndex, m2 * d);
            cos = permuteUnits(cos, windowIndex, m2 * half);
            sin = permuteUnits(sin, windowIndex, m2 * half);
        }

        // 3. ViT blocks
        float[] normed = new float[n * d], qkv = new float[n * 3 * d], attn = new float[n * d], tmp = new float[n * d];
        float[] mlpA = new float[n * cfg.mlpHidden()], mlpB = cfg.family() == VisionConfig.Family.QWEN2_5_VL ? new float[n * cfg.mlpHidden()] : null;
        for (int b = 0; b < blocks.length; b++) {
            Block blk = blocks[b];
            norm(normed, h, n, blk.norm1W, blk.norm1B);
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
            SegmentAttention.attend(qkv, n, cfg.numHeads(), cfg.headDim(), cfg.isFullAttention(b) ? fullCu : windowCu, attn);
            blk.proj.apply(tmp, attn, n);
            CpuOps.addInPlace(h, tmp, n * d);
            norm(normed, h, n, blk.norm2W, blk.norm2B);
            mlp(blk, normed, n, mlpA, mlpB, tmp);
            CpuOps.addInPlace(h, tmp, n * d);
        }

        // 4. patch merger: norm each patch, concatenate m^2 neighbours, MLP with exact GELU
        norm(normed, h, n, lnQW, lnQB);
        int tokens = n / m2, wide = d * m2;
        float[] mid = new float[tokens * wide];
        merger0.apply(mid, normed, tokens);
        Parallel.forRange(mid.length, 4096, (lo, hi) -> { for (int i = lo; i < hi; i++) mid[i] = CpuOps.geluErf(mid[i]); });
        float[] out = new float[tokens * cfg.outHidden()];
        merger2.apply(out, mid, tokens);
        if (windowIndex != null) out = unpermuteUnits(out, windowIndex, cfg.outHidden());

        // 5. split per image
        List<ImageEmbeddings> result = new ArrayList<>(images.size());
        int tokOff = 0;
        for (PixelValues pv : images) {
            int tk = pv.numPatches() / m2;
            float[] e = Arrays.copyOfRange(out, tokOff * cfg.outHidden(), (tokOff + tk) * cfg.outHidden());
            result.add(new ImageEmbeddings(e, tk, cfg.outHidden(), pv.gridT(), pv.gridH(), pv.gridW(), pv.contentHash()));
            tokOff += tk;
        }
        return result;
    }

    private void norm(float[] out, float[] x, int n, float[] w, float[] b) {
        if (cfg.family() == VisionConfig.Family.QWEN2_5_VL) CpuOps.rmsNormRows(out, x, n, cfg.embedDim(), w, NORM_EPS);
        else CpuOps.layerNormRows(out, x, n, cfg.embedDim(), w, b, NORM_EPS);
    }

    private void mlp(Block blk, float[] x, int n, float[] a, float[] g, float[] out) {
        blk.up.apply(a, x, n);
        int len = n * cfg.mlpHidden();
        String act = cfg.hiddenAct();
        if (blk.gate != null) {
            blk.gate.apply(g, x, n);
            Parallel.forRange(len, 4096, (lo, hi) -> { for (int i = lo; i < hi; i++) a[i] = activation(act, g[i]) * a[i]; });
        } else {
            Parallel.forRange(len, 4096, (lo, hi) -> { for (int i = lo; i < hi; i++) a[i] = activation(act, a[i]); });
        }
        blk.down.apply(out, a, n);
    }

    private static float activation(String act, float v) {
        return switch (act) {
            case "quick_gelu" -> CpuOps.quickGelu(v);
            case "gelu" -> CpuOps.geluErf(v);
            case "gelu_pytorch_tanh", "gelu_new" -> CpuOps.geluTanh(v);
            default -> CpuOps.silu(v); // silu, swish (validated by VisionConfig)
        };
    }

    /** Qwen2.5-VL {@code get_window_index} of these inputs ({@link WindowIndex#of}): {@code {index, cuWindowSeqlens}}. */
    List<int[]> windowIndex(List<PixelValues> images) {
        int[][] grids = images.stream().map(pv -> new int[] {pv.gridT(), pv.gridH(), pv.gridW()}).toArray(int[][]::new);
        return WindowIndex.of(grids, cfg.mergeSize(), cfg.windowSize() / cfg.mergeSize() / cfg.patchSize());
    }

    /** out[k] = in[index[k]] for units of {@code unit} floats. */
    private static float[] permuteUnits(float[] in, int[] index, int unit) {
        float[] out = new float[in.length];
        for (int k = 0; k < index.length; k++) System.arraycopy(in, index[k] * unit, out, k * unit, unit);
        return out;
    }

    /** out[index[k]] = in[k] (the argsort of the window index). */
    private static float[] unpermuteUnits(float[] in, int[] index, int unit) {
        float[] out = new float[in.length];
        for (int k = 0; k < index.length; k++) System.arraycopy(in, k * unit, out, index[k] * unit, unit);
        return out;
    }

    @Override
    public synchronized void close() {
        closed = true;
        store.close();
    }
}
