package io.vlmflux.cuda.gpu;

import java.util.ArrayList;
import java.util.List;

/**
 * Typed launchers for the vision kernels (Qwen2-VL, Qwen2.5-VL, Qwen3-VL towers) ({@code vision_encoder.cu}, {@code vision_preprocess.cu}), bound to one
 * stream. Each method checks shapes and buffer sizes before launching and names the op in its exceptions; launches
 * are async on the stream. Not thread-safe: one instance per stream, used from the stream's thread.
 *
 * <p>Conventions: residual stream fp32 {@code [n, d]}, GEMM inputs bf16, biases and norm weights fp32 (converted
 * from the checkpoint once), q/k/v/attention output bf16 {@code [n, heads*hd]}.
 */
public final class VisionGpuOps implements AutoCloseable {
    /** Queries per attention tile (4 warps x 16 rows), as vision_encoder.cu. */
    public static final int ATTN_TILE = 64;

    /** Activation codes of vision_encoder.cu. */
    public enum Act {
        SILU, QUICK_GELU, GELU, GELU_TANH;

        /** From a Hugging Face {@code hidden_act} name. */
        public static Act of(String hfName) {
            return switch (hfName) {
                case "silu", "swish" -> SILU;
                case "quick_gelu" -> QUICK_GELU;
                case "gelu" -> GELU;
                case "gelu_pytorch_tanh", "gelu_new" -> GELU_TANH;
                default -> throw new IllegalArgumentException("unsupported activation '" + hfName
                        + "' (supported: silu, quick_gelu, gelu, gelu_pytorch_tanh)");
            };
        }
    }

    private final GpuStream stream;
    private final KernelModule k;
    private final LaunchArgs a = new LaunchArgs();
    private final boolean fastElementwise;

    /** The launchers with the first kernels ({@code vlmflux.vision.fastElementwise} off). */
    public VisionGpuOps(GpuStream stream) {
        this(stream, false);
    }

    /**
     * {@code fastElementwise} ({@code vlmflux.vision.fastElementwise}): norms of rows up to {@value #NORM_WARP_MAX}
     * values run one warp a row with the row in registers ({@code vf_vis_norm_warpV}), and the rotary split of bf16 qkv
     * moves 16 bytes a load and store ({@code vf_vis_rope_split_x8}, same bits) where head dims are multiples of 16.
     */
    public VisionGpuOps(GpuStream stream, boolean fastElementwise) {
        this.stream = stream;
        this.k = stream.device().kernels();
        this.fastElementwise = fastElementwise;
    }

    /** The widest row the one-warp norm takes (16 vectors of 4 fp32 a lane). */
    public static final int NORM_WARP_MAX = 128 * 16;

    /** The one-warp norm's instances: 16-byte vectors a lane (vision_encoder.cu VF_VIS_NORM_WARP). */
    private static final int[] NORM_WARP_VECTORS = {8, 10, 12, 16};

    /** The one-warp norm's kernel for rows of {@code hidden} values (the fewest vectors a lane that hold it), or null. */
    static String normWarpKernel(int hidden) {
        if (hidden % 4 != 0) return null;
        for (int v : NORM_WARP_VECTORS) if (128 * v >= hidden) return "vf_vis_norm_warp" + v;
        return null;
    }

    public GpuStream stream() { return stream; }

    private static void positive(String op, int... v) {
        for (int x : v) if (x <= 0) throw new IllegalArgumentException(op + ": non-positive dimension " + x);
    }

    /**
     * If delta != null: x += delta (+ dbias) in place. Then out bf16 = norm(x) * w (+ b): RMSNorm when {@code rms},
     * else LayerNorm. x, delta fp32 [rows, hidden]; w, b, dbias fp32 [hidden].
     */
    public void norm(DeviceBuffer out, DeviceBuffer x, DeviceBuffer delta, DeviceBuffer dbias, DeviceBuffer w,
                     DeviceBuffer b, int rows, int hidden, float eps, boolean rms) {
        positive("vision norm", rows, hidden);
        out.require(2L * rows * hidden, "vision norm", "out bf16 [rows, hidden]");
        x.require(4L * rows * hidden, "vision norm", "x fp32 [rows, hidden]");
        if (delta != null) delta.require(4L * rows * hidden, "vision norm", "delta fp32 [rows, hidden]");
        if (dbias != null) dbias.require(4L * hidden, "vision norm", "delta bias fp32 [hidden]");
        w.require(4L * hidden, "vision norm", "weight fp32 [hidden]");
        if (b != null) b.require(4L * hidden, "vision norm", "bias fp32 [hidden]");
        if (hidden % 4 == 0)
            for (DeviceBuffer buf : new DeviceBuffer[] {x, delta, dbias})
                if (buf != null && buf.address() % 16 != 0)
                    throw new IllegalArgumentException("vision norm: buffer '" + buf.name() + "' is not 16-byte aligned");
        String warp = fastElementwise ? normWarpKernel(hidden) : null;
        if (warp != null && w.address() % 16 == 0 && (b == null || b.address() % 16 == 0) && out.address() % 8 == 0) {
            k.launch(warp, (rows + 7) / 8, 1, 1, 256, 0, stream,
                    a.reset().ptr(out).ptr(x).ptr(delta).ptr(dbias).ptr(w).ptr(b).i32(rows).i32(hidden).f32(eps).i32(rms ? 1 : 0));
            return;
        }
        k.launch("vf_vis_norm", rows, 1, 1, 256, 0, stream,
                a.reset().ptr(out).ptr(x).ptr(delta).ptr(dbias).ptr(w).ptr(b).i32(hidden).f32(eps).i32(rms ? 1 : 0));
    }

    /**
     * out bf16 [rows, cols] = act(in + bias), or when {@code gated} act(gate + bg) * (up + bu) with
     * in rows = [gate (cols) | up (cols)] and bias fp32 [2*cols]. in fp32 with row stride {@code inStride}.
     */
    public void biasAct(DeviceBuffer out, DeviceBuffer in, DeviceBuffer bias, int rows, int cols, int inStride, Act act, boolean gated) {
        biasAct(out, in, false, bias, rows, cols, inStride, act, gated);
    }

    /** As {@link #biasAct(DeviceBuffer, DeviceBuffer, DeviceBuffer, int, int, int, Act, boolean)}; {@code inBf16}: in holds bf16. */
    public void biasAct(DeviceBuffer out, DeviceBuffer in, boolean inBf16, DeviceBuffer bias, int rows, int cols, int inStride, Act act, boolean gated) {
        positive("vision biasAct", rows, cols, inStride);
        int width = gated ? 2 * cols : cols;
        if (inStride < width) throw new IllegalArgumentException("vision biasAct: row stride " + inStride + " < " + width);
        out.require(2L * rows * cols, "vision biasAct", "out bf16 [rows, cols]");
        in.require((inBf16 ? 2L : 4L) * ((long) (rows - 1) * inStride + width), "vision biasAct", "in [rows, stride]");
        if (bias != null) bias.require(4L * width, "vision biasAct", "bias fp32 [" + width + "]");
        if (inBf16 && cols % 8 == 0 && inStride % 8 == 0 && in.address() % 16 == 0 && out.address() % 16 == 0) {
            k.launch("vf_vis_bias_act_x8", (cols / 8 + 255) / 256, rows, 1, 256, 0, stream,
                    a.reset().ptr(out).ptr(in).ptr(bias).i32(cols).i32(inStride).i32(act.ordinal()).i32(gated ? 1 : 0));
            return;
        }
        k.launch("vf_vis_bias_act", (cols + 255) / 256, rows, 1, 256, 0, stream,
                a.reset().ptr(out).ptr(in).ptr(bias).i32(cols).i32(inStride).i32(act.ordinal()).i32(gated ? 1 : 0).i32(inBf16 ? 1 : 0));
    }

    /**
     * out fp32 row index[r] (or r when index == null) = in row r (+ bias); optional bf16 copy into outBf16.
     * in [rows, cols] fp32, index int32 [rows] (a permutation of 0..rows-1).
     */
    public void biasScatter(DeviceBuffer out, DeviceBuffer outBf16, DeviceBuffer in, DeviceBuffer bias, DeviceBuffer index,
                            int rows, int cols) {
        positive("vision biasScatter", rows, cols);
        out.require(4L * rows * cols, "vision biasScatter", "out fp32 [rows, cols]");
        if (outBf16 != null) outBf16.require(2L * rows * cols, "vision biasScatter", "out bf16 [rows, cols]");
        in.require(4L * rows * cols, "vision biasScatter", "in fp32 [rows, cols]");
        if (bias != null) bias.require(4L * cols, "vision biasScatter", "bias fp32 [cols]");
        if (index != null) index.require(4L * rows, "vision biasScatter", "index int32 [rows]");
        k.launch("vf_vis_bias_scatter", (cols + 255) / 256, rows, 1, 256, 0, stream,
                a.reset().ptr(out).ptr(outBf16).ptr(in).ptr(bias).ptr(index).i32(cols));
    }

    /** out unit k = in unit index[k], units of {@code unit} fp32 values; index int32 [units]. */
    public void gatherUnits(DeviceBuffer out, DeviceBuffer in, DeviceBuffer index, int units, int unit) {
        positive("vision gatherUnits", units, unit);
        out.require(4L * units * unit, "vision gatherUnits", "out fp32 [units, unit]");
        in.require(4L * units * unit, "vision gatherUnits", "in fp32 [units, unit]");
        index.require(4L * units, "vision gatherUnits", "index int32 [units]");
        k.launch("vf_vis_gather_units", (unit + 255) / 256, units, 1, 256, 0, stream,
                a.reset().ptr(out).ptr(in).ptr(index).i32(unit));
    }

    /**
     * Qwen3-VL: h fp32 [rows, hidden] += bias fp32 [hidden] (null: none) + the bilinear blend of four rows of
     * {@code table} fp32 [positions, hidden] per row: index int32 [rows, 4] (each in [0, positions)), weight fp32
     * [rows, 4] (from {@code Qwen3VLPositions}).
     */
    public void posEmbedAdd(DeviceBuffer h, DeviceBuffer bias, DeviceBuffer table, int positions, DeviceBuffer index, DeviceBuffer weight,
                            int rows, int hidden) {
        positive("vision posEmbedAdd", rows, hidden, positions);
        h.require(4L * rows * hidden, "vision posEmbedAdd", "h fp32 [rows, hidden]");
        if (bias != null) bias.require(4L * hidden, "vision posEmbedAdd", "bias fp32 [hidden]");
        table.require(4L * positions * hidden, "vision posEmbedAdd", "position table fp32 [positions, hidden]");
        index.require(16L * rows, "vision posEmbedAdd", "index int32 [rows, 4]");
        weight.require(16L * rows, "vision posEmbedAdd", "weight fp32 [rows, 4]");
        k.launch("vf_vis_pos_embed_add", rows, (hidden + 255) / 256, 1, 256, 0, stream,
                a.reset().ptr(h).ptr(bias).ptr(table).ptr(index).ptr(weight).i32(hidden));
    }

    /**
     * q, k, v bf16 [n, heads*hd] = the thirds of qkv fp32 [n, 3*heads*hd] (+ bias fp32 [3*heads*hd]), with the
     * 2-D rotate-half rotary on q and k: pos int32 [n, 2] (row, column), invFreq fp32 [hd/4].
     */
    public void ropeSplit(DeviceBuffer q, DeviceBuffer kk, DeviceBuffer v, DeviceBuffer qkv, DeviceBuffer bias,
                          DeviceBuffer pos, DeviceBuffer invFreq, int n, int heads, int hd) {
        ropeSplit(q, kk, v, qkv, false, bias, pos, invFreq, n, heads, hd);
    }

    /** As above; {@code qkvBf16}: qkv holds bf16 (a GEMM with bf16 output). */
    public void ropeSplit(DeviceBuffer q, DeviceBuffer kk, DeviceBuffer v, DeviceBuffer qkv, boolean qkvBf16, DeviceBuffer bias,
                          DeviceBuffer pos, DeviceBuffer invFreq, int n, int heads, int hd) {
        positive("vision ropeSplit", n, heads, hd);
        if (hd % 4 != 0 || hd > 256) throw new IllegalArgumentException("vision ropeSplit: head dim " + hd + " is not a multiple of 4 up to 256");
        long d = (long) heads * hd;
        for (DeviceBuffer b : new DeviceBuffer[] {q, kk, v}) b.require(2L * n * d, "vision ropeSplit", "q/k/v bf16 [n, heads*hd]");
        qkv.require((qkvBf16 ? 2L : 4L) * n * 3 * d, "vision ropeSplit", "qkv [n, 3*heads*hd]");
        if (bias != null) bias.require(4L * 3 * d, "vision ropeSplit", "qkv bias fp32 [3*heads*hd]");
        pos.require(8L * n, "vision ropeSplit", "positions int32 [n, 2]");
        invFreq.require(4L * (hd / 4), "vision ropeSplit", "invFreq fp32 [hd/4]");
        if (fastElementwise && qkvBf16 && hd % 16 == 0 && (bias == null || bias.address() % 16 == 0)
                && q.address() % 16 == 0 && kk.address() % 16 == 0 && v.address() % 16 == 0 && qkv.address() % 16 == 0) {
            k.launch("vf_vis_rope_split_x8", n, 1, 1, 128, 0, stream,
                    a.reset().ptr(q).ptr(kk).ptr(v).ptr(qkv).ptr(bias).ptr(pos).ptr(invFreq).i32(heads).i32(hd));
            return;
        }
        k.launch("vf_vis_rope_split", n, 1, 1, 128, 0, stream,
                a.reset().ptr(q).ptr(kk).ptr(v).ptr(qkv).ptr(bias).ptr(pos).ptr(invFreq).i32(heads).i32(hd).i32(qkvBf16 ? 1 : 0));
    }

    /**
     * The tile table of {@link #attention} for segment bounds {@code cu} (cu[0] = 0 <= ... <= cu[last] = n; empty
     * segments allowed): int32 [tiles, 4] = (first query, segment start, segment end, 0), 64 queries per tile.
     */
    public static int[] attentionTiles(int[] cu) {
        if (cu.length < 2 || cu[0] != 0) throw new IllegalArgumentException("segment bounds must start at 0: " + java.util.Arrays.toString(cu));
        List<int[]> t = new ArrayList<>();
        for (int s = 0; s + 1 < cu.length; s++) {
            if (cu[s + 1] < cu[s]) throw new IllegalArgumentException("segment bounds decrease: " + java.util.Arrays.toString(cu));
            for (int q = cu[s]; q < cu[s + 1]; q += ATTN_TILE) t.add(new int[] {q, cu[s], cu[s + 1], 0});
        }
        int[] out = new int[4 * t.size()];
        for (int i = 0; i < t.size(); i++) System.arraycopy(t.get(i), 0, out, 4 * i, 4);
        return out;
    }

    /** Largest head dim the attention kernels take. */
    public static final int MAX_ATTN_HEAD_DIM = 256;

    /**
     * Bidirectional attention within segments: out, q, k, v bf16 [n, heads*hd]; tiles int32 [numTiles, 4] from
     * {@link #attentionTiles}. Tensor cores (mma.sync bf16, fp32 accumulation and softmax); hd a multiple of 4 up to 256.
     */
    public void attention(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kk, DeviceBuffer v, DeviceBuffer tiles, int numTiles,
                          int n, int heads, int hd, float scale) {
        positive("vision attention", numTiles, n, heads, hd);
        if (hd % 4 != 0 || hd > MAX_ATTN_HEAD_DIM)
            throw new IllegalArgumentException("vision attention: head dim " + hd + " unsupported (a multiple of 4 up to " + MAX_ATTN_HEAD_DIM + ")");
        long d = (long) heads * hd;
        for (DeviceBuffer b : new DeviceBuffer[] {out, q, kk, v}) b.require(2L * n * d, "vision attention", "bf16 [n, heads*hd]");
        tiles.require(16L * numTiles, "vision attention", "tiles int32 [numTiles, 4]");
        int hdp = (hd + 15) / 16 * 16;
        if (hdp > 128 && hdp < 160) hdp = 160;
        else if (hdp > 160 && hdp <= 192) hdp = 192;
        else if (hdp > 192) hdp = 256;
        float scaleLog2 = (float) (scale / Math.log(2.0));
        k.launch("vf_vis_attn_hd" + hdp, numTiles, heads, 1, 128, 0, stream,
                a.reset().ptr(out).ptr(q).ptr(kk).ptr(v).ptr(tiles).i32(hd).i32((int) d).f32(scaleLog2));
    }

    // ---- preprocessing ----

    /** Where the pixels of an uploaded frame lie: format code (PixelFormat ordinal), plane offsets and strides. */
    public record FrameLayout(int format, int width, int height, long off0, long off1, long off2, int s0, int s1, int s2) {
        public FrameLayout {
            if (format < 0 || format > 6) throw new IllegalArgumentException("pixel format code " + format);
            if (width <= 0 || height <= 0) throw new IllegalArgumentException("frame size " + width + "x" + height);
        }

        /** Bytes the layout spans from offset 0 (the upload must be at least this long). */
        public long spanBytes() {
            int ch = (height + 1) / 2, cw = (width + 1) / 2;
            return switch (format) {
                case 0, 1 -> off0 + (long) s0 * (height - 1) + 3L * width;
                case 2, 3 -> off0 + (long) s0 * (height - 1) + 4L * width;
                case 4 -> off0 + (long) s0 * (height - 1) + width;
                case 5 -> Math.max(off0 + (long) s0 * (height - 1) + width, off1 + (long) s1 * (ch - 1) + 2L * cw);
                default -> Math.max(off0 + (long) s0 * (height - 1) + width,
                        Math.max(off1 + (long) s1 * (ch - 1) + cw, off2 + (long) s2 * (ch - 1) + cw));
            };
        }
    }

    /** One resample axis on the device: first int32 [out], count int32 [out], weights int32 [out, taps]. */
    public record ResampleAxis(DeviceBuffer first, DeviceBuffer count, DeviceBuffer weights, int out, int taps, int precision) {}

    /**
     * mid uint8 [height, outW, 3] = horizontal antialiased bicubic (fixed point) of the frame converted to RGB
     * ({@code axis == null}: width unchanged, plain conversion). yuv = {ys, y0, rv, gu, gv, bu} (ignored for RGB formats).
     */
    public void preprocessHorizontal(DeviceBuffer mid, DeviceBuffer src, FrameLayout f, double[] yuv, ResampleAxis axis, int outW) {
        positive("preprocessHorizontal", outW);
        if (axis == null && outW != f.width()) throw new IllegalArgumentException("preprocessHorizontal: no axis for " + f.width() + " -> " + outW);
        if (axis != null && axis.out() != outW) throw new IllegalArgumentException("preprocessHorizontal: axis has " + axis.out() + " outputs, want " + outW);
        if (yuv.length != 6) throw new IllegalArgumentException("preprocessHorizontal: yuv matrix needs 6 values");
        mid.require(3L * f.height() * outW, "preprocessHorizontal", "mid uint8 [h, outW, 3]");
        src.require(f.spanBytes(), "preprocessHorizontal", "frame bytes");
        a.reset().ptr(mid).ptr(src).i64(f.off0()).i64(f.off1()).i64(f.off2()).i32(f.s0()).i32(f.s1()).i32(f.s2()).i32(f.format());
        for (double d : yuv) a.i64(Double.doubleToRawLongBits(d));
        a.i32(outW);
        if (axis == null) a.ptr(0L).ptr(0L).ptr(0L).i32(0).i32(0);
        else a.ptr(axis.first()).ptr(axis.count()).ptr(axis.weights()).i32(axis.taps()).i32(axis.precision());
        k.launch("vf_vis_pre_hpass", (outW + 127) / 128, f.height(), 1, 128, 0, stream, a);
    }

    /**
     * Vertical pass of mid [inH, outW, 3] to outH rows ({@code axis == null}: height unchanged), normalised
     * through lut fp32 [3, 256], written as patches of temporal patch {@code t} into temporal slots
     * [slot0, slot0 + slots): out [(t+1)*rows, 3*temporal*patch^2] bf16 ({@code bf16}) or fp32.
     */
    public void preprocessVerticalPatchify(DeviceBuffer out, boolean bf16, DeviceBuffer mid, int outW, int outH, ResampleAxis axis,
                                           DeviceBuffer lut, int patch, int merge, int temporal, int t, int slot0, int slots) {
        positive("preprocessVerticalPatchify", outW, outH, patch, merge, temporal, slots);
        if (outW % (patch * merge) != 0 || outH % (patch * merge) != 0)
            throw new IllegalArgumentException("preprocessVerticalPatchify: " + outW + "x" + outH + " not a multiple of patch*merge " + patch * merge);
        if (slot0 < 0 || slot0 + slots > temporal || t < 0)
            throw new IllegalArgumentException("preprocessVerticalPatchify: slots [" + slot0 + ", " + (slot0 + slots) + ") of " + temporal);
        if (axis != null && axis.out() != outH) throw new IllegalArgumentException("preprocessVerticalPatchify: axis has " + axis.out() + " outputs, want " + outH);
        long rows = (long) (outW / patch) * (outH / patch);
        long patchDim = 3L * temporal * patch * patch;
        out.require((bf16 ? 2L : 4L) * (t + 1) * rows * patchDim, "preprocessVerticalPatchify", "patches [rows, patchDim]");
        lut.require(4L * 3 * 256, "preprocessVerticalPatchify", "lut fp32 [3, 256]");
        long total = rows * 3 * patch * patch;
        a.reset().ptr(out).ptr(mid).i32(outW).i32(outH);
        if (axis == null) a.ptr(0L).ptr(0L).ptr(0L).i32(0).i32(0);
        else a.ptr(axis.first()).ptr(axis.count()).ptr(axis.weights()).i32(axis.taps()).i32(axis.precision());
        a.ptr(lut).i32(patch).i32(merge).i32(temporal).i32(t).i32(slot0).i32(slots).i32(bf16 ? 1 : 0);
        k.launch("vf_vis_pre_vpass_patchify", (int) ((total + 255) / 256), 1, 1, 256, 0, stream, a);
    }

    @Override
    public void close() {
        a.close();
    }
}
