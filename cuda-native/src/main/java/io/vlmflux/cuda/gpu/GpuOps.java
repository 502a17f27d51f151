package io.vlmflux.cuda.gpu;

import io.vlmflux.cuda.Tuning;

/**
 * Typed launchers for the kernels of src/main/cuda, bound to one stream. Each method checks shapes, buffer sizes
 * and alignment before launching and names the op in its exception; launches are async on the stream (and
 * graph-capturable). Not thread-safe: one instance per stream, used from the stream's thread.
 *
 * <p>Conventions: activations / residual stream fp32, matmul inputs and weights bf16 (bit patterns), KV cache bf16
 * [kvHeads, maxSeq, headDim] per layer, positions / lengths / counters in device memory.
 */
public final class GpuOps implements AutoCloseable {
    private final GpuStream stream;
    private final KernelModule k;
    private final LaunchArgs a = new LaunchArgs();

    /** Launchers with the knobs of {@link Tuning#fromSystemProperties()}. */
    public GpuOps(GpuStream stream) {
        this(stream, Tuning.fromSystemProperties());
    }

    /** Launchers with {@code tuning}'s split-K GEMV and prefill-attention choices. */
    public GpuOps(GpuStream stream, Tuning tuning) {
        this(stream, stream.device().kernels(), tuning);
    }

    GpuOps(GpuStream stream, KernelModule module) {
        this(stream, module, Tuning.fromSystemProperties());
    }

    GpuOps(GpuStream stream, KernelModule module, Tuning tuning) {
        this.stream = stream;
        this.k = module;
        int sm = stream.device().multiProcessorCount();
        splitK = tuning.gemvSplitK();
        splitTarget = tuning.gemvSplitBlocksPerSm() * sm;
        mmaPrefill = tuning.prefillMma();
        pipelinedPrefill = tuning.prefillPipelined();
        vecDecode = tuning.decodeVecAttention();
        fusedCombine = vecDecode && tuning.decodeFusedCombine();
        fusedRope = vecDecode && tuning.decodeFusedRope();
        pdl = tuning.pdl() && module.pdlCapable();
        gemvPf = pdl && tuning.gemvPrefetch() ? "_pf" : "";
        long wsBytes = 4L * GEMV_MAX_SPLITS * GEMV_ROWS * splitTarget, ctrBytes = 4L * splitTarget;
        long attnBytes = fusedCombine ? 4L * ATTN_TICKETS : 0;
        splitArena = stream.device().newArena("gemv split-K workspace", wsBytes + ctrBytes + attnBytes + 1024);
        splitWs = splitArena.alloc("gemv split-K partials fp32 [splits, m]", wsBytes);
        splitCounters = splitArena.alloc("gemv split-K tile tickets uint32 [tiles]", ctrBytes);
        stream.memsetAsync(splitCounters, 0, ctrBytes);   // the kernel's last block per tile resets its ticket
        attnTickets = fusedCombine ? splitArena.alloc("decode attention group tickets int32", attnBytes) : null;
        megaSync = splitArena.alloc("persistent decode barrier counters uint32 [2]", 8);
        stream.memsetAsync(megaSync, 0, 8);   // every launch leaves them zero
        if (attnTickets != null) stream.memsetAsync(attnTickets, 0, attnBytes);   // reset by each group's last block
    }

    /**
     * Whether kernels for head dim {@code hd} exist among the specialised attention kernels: the 16-byte-load decode
     * split pass (and its fused-combine / fused-rope forms) and the tensor-core prefill are instantiated at 64 and 128.
     */
    static boolean specialisedHeadDim(int hd) { return hd == 64 || hd == 128; }

    /** Head groups (kv heads x groups of up to 8 query heads, times rows) a fused-combine decode attention can ticket. */
    static final int ATTN_TICKETS = 4096;
    private final boolean fusedCombine;                // Tuning.decodeFusedCombine (with vecDecode)
    private final String gemvPf;                       // "_pf": the GEMVs' weight-prefetching forms (Tuning.gemvPrefetch with pdl)
    private final boolean fusedRope;                   // Tuning.decodeFusedRope (with vecDecode)
    private final DeviceBuffer attnTickets;
    private final DeviceBuffer megaSync;               // decode_mega.cu's barrier {arrivals, exits}

    // Split-K GEMV (vf_gemv_bf16_splitk) for products with fewer row tiles than splitTarget blocks: preallocated
    // partials + per-tile tickets, owned here (one GpuOps per stream, so launches on it never overlap).
    private static final int GEMV_ROWS = 8 * 2;        // rows per block (VF_GEMV_WARPS * VF_GEMV_ROWS)
    private static final int GEMV_MAX_SPLITS = 32;
    private final boolean splitK;
    private final int splitTarget;                     // blocks to aim for (blocks per SM * SMs)
    private final DeviceArena splitArena;
    private final DeviceBuffer splitWs, splitCounters;

    /** Where the kernels came from (fatbin or NVRTC), for logs. */
    public String kernelOrigin() { return k.origin(); }

    public GpuStream stream() { return stream; }

    /** Query heads, kv heads, head dim, cache capacity (tokens). */
    public record AttnShape(int nq, int nkv, int headDim, int maxSeq) {
        public AttnShape {
            if (nq <= 0 || nkv <= 0 || nq % nkv != 0)
                throw new IllegalArgumentException("attention: " + nq + " query heads not a multiple of " + nkv + " kv heads");
            if (headDim <= 0 || headDim > 256 || headDim % 2 != 0)
                throw new IllegalArgumentException("attention: head dim " + headDim + " (must be even and <= 256)");
            if (maxSeq <= 0) throw new IllegalArgumentException("attention: maxSeq " + maxSeq);
        }

        long cacheBytes() { return 2L * nkv * maxSeq * headDim; }
    }

    private static void positive(String op, int... v) {
        for (int x : v) if (x <= 0) throw new IllegalArgumentException(op + ": non-positive dimension " + x);
    }

    // ---- embedding ----

    /** out fp32 [n, hidden] = table bf16 [vocab, hidden] rows ids int32 [n] (an id out of range gives NaN rows). */
    public void embedGather(DeviceBuffer out, DeviceBuffer table, DeviceBuffer ids, int n, int hidden, int vocab) {
        positive("embedGather", n, hidden, vocab);
        out.require(4L * n * hidden, "embedGather", "out fp32 [n, hidden]");
        table.require(2L * vocab * hidden, "embedGather", "table bf16 [vocab, hidden]");
        ids.require(4L * n, "embedGather", "ids int32 [n]");
        if (hidden % 8 == 0 && table.address() % 16 != 0) throw new IllegalArgumentException("embedGather: table not 16-byte aligned");
        launch("vf_embed_gather", n, 1, 1, 256, 0, stream, a.reset().ptr(out).ptr(table).ptr(ids).i32(n).i32(hidden).i32(vocab));
    }

    /**
     * The next single-sequence decode step's scalars on the device: {@code step} int32 [6+] (positions [3], the new key's
     * slot, the attention length, the token id) move one position on and take {@code chosen}'s id as the token.
     */
    public void decodeAdvance(DeviceBuffer step, DeviceBuffer chosen) {
        step.require(24, "decodeAdvance", "step int32 [6]");
        chosen.require(4, "decodeAdvance", "chosen id int32");
        launch("vf_decode_advance", 1, 1, 1, 32, 0, stream, a.reset().ptr(step).ptr(chosen));
    }

    /** dst fp32 rows [row0, row0 + rows) = src rows (fp32, or bf16 when {@code srcBf16}). */
    public void spliceRows(DeviceBuffer dst, int dstRows, DeviceBuffer src, boolean srcBf16, int row0, int rows, int hidden) {
        positive("spliceRows", rows, hidden);
        if (row0 < 0 || row0 + rows > dstRows)
            throw new IllegalArgumentException("spliceRows: rows [" + row0 + ", " + (row0 + rows) + ") outside " + dstRows + " rows");
        dst.require(4L * dstRows * hidden, "spliceRows", "dst fp32 [rows, hidden]");
        src.require((srcBf16 ? 2L : 4L) * rows * hidden, "spliceRows", "src [rows, hidden]");
        launch(srcBf16 ? "vf_splice_rows_bf16" : "vf_splice_rows_f32", rows, 1, 1, 256, 0, stream,
                a.reset().ptr(dst).ptr(src).i32(row0).i32(rows).i32(hidden));
    }

    /** dst fp32 rows [row0, row0 + rows) += src fp32 rows [rows, hidden] (DeepStack features, Qwen3-VL). */
    public void addRows(DeviceBuffer dst, int dstRows, DeviceBuffer src, int row0, int rows, int hidden) {
        positive("addRows", rows, hidden);
        if (row0 < 0 || row0 + rows > dstRows)
            throw new IllegalArgumentException("addRows: rows [" + row0 + ", " + (row0 + rows) + ") outside " + dstRows + " rows");
        dst.require(4L * dstRows * hidden, "addRows", "dst fp32 [rows, hidden]");
        src.require(4L * rows * hidden, "addRows", "src fp32 [rows, hidden]");
        launch("vf_add_rows_f32", rows, 1, 1, 256, 0, stream, a.reset().ptr(dst).ptr(src).i32(row0).i32(rows).i32(hidden));
    }

    // ---- norms / elementwise ----

    /** If delta != null: x += delta (in place). Then out bf16 = rmsnorm(x) * w. x fp32 [rows, hidden], w bf16 [hidden]. */
    public void rmsNorm(DeviceBuffer out, DeviceBuffer x, DeviceBuffer delta, DeviceBuffer w, int rows, int hidden, float eps) {
        positive("rmsNorm", rows, hidden);
        out.require(2L * rows * hidden, "rmsNorm", "out bf16 [rows, hidden]");
        x.require(4L * rows * hidden, "rmsNorm", "x fp32 [rows, hidden]");
        if (delta != null) delta.require(4L * rows * hidden, "rmsNorm", "delta fp32 [rows, hidden]");
        w.require(2L * hidden, "rmsNorm", "weight bf16 [hidden]");
        launch("vf_rmsnorm", rows, 1, 1, hidden >= 2048 ? 1024 : 256, 0, stream,
                a.reset().ptr(out).ptr(x).ptr(delta).ptr(w).i32(hidden).f32(eps));
    }

    /** out fp32 = rmsnorm(x) * w. */
    public void rmsNormF32(DeviceBuffer out, DeviceBuffer x, DeviceBuffer w, int rows, int hidden, float eps) {
        positive("rmsNormF32", rows, hidden);
        out.require(4L * rows * hidden, "rmsNormF32", "out fp32 [rows, hidden]");
        x.require(4L * rows * hidden, "rmsNormF32", "x fp32 [rows, hidden]");
        w.require(2L * hidden, "rmsNormF32", "weight bf16 [hidden]");
        launch("vf_rmsnorm_f32", rows, 1, 1, hidden >= 2048 ? 1024 : 256, 0, stream,
                a.reset().ptr(out).ptr(x).ptr(w).i32(hidden).f32(eps));
    }

    /** out bf16 [rows, inter] = silu(gate) * up; gate/up fp32 rows with strides (elements) to allow one fused buffer. */
    public void siluMul(DeviceBuffer out, DeviceBuffer gate, int gateStride, DeviceBuffer up, int upStride, int rows, int inter) {
        siluMul("siluMul", "vf_silu_mul", 4, out, gate, gateStride, up, upStride, rows, inter);
    }

    /** {@link #siluMul} with bf16 gate and up ({@code vf_silu_mul_bf16}): a prefill's gate/up product written as bf16. */
    public void siluMulBf16(DeviceBuffer out, DeviceBuffer gate, int gateStride, DeviceBuffer up, int upStride, int rows, int inter) {
        siluMul("siluMulBf16", "vf_silu_mul_bf16", 2, out, gate, gateStride, up, upStride, rows, inter);
    }

    private void siluMul(String op, String kernel, int inBytes, DeviceBuffer out, DeviceBuffer gate, int gateStride, DeviceBuffer up, int upStride,
                         int rows, int inter) {
        positive(op, rows, inter, gateStride, upStride);
        String type = inBytes == 4 ? "fp32" : "bf16";
        out.require(2L * rows * inter, op, "out bf16 [rows, inter]");
        gate.require((long) inBytes * ((long) (rows - 1) * gateStride + inter), op, "gate " + type);
        up.require((long) inBytes * ((long) (rows - 1) * upStride + inter), op, "up " + type);
        launch(kernel, (inter + 255) / 256, rows, 1, 256, 0, stream,
                a.reset().ptr(out).ptr(gate).ptr(up).i32(inter).i32(gateStride).i32(upStride));
    }

    /**
     * Pulls {@code bytes} of {@code region} from {@code offset} into L2 and changes nothing (vf_l2_prefetch): run on a
     * side stream, it overlaps the reads of weights that a later product will need with kernels that leave DRAM idle.
     * On sm_90+ the start must be 16-byte aligned (bulk prefetches).
     */
    public void prefetchL2(DeviceBuffer region, long offset, long bytes) {
        if (bytes <= 0) return;
        region.require(offset + bytes, "prefetchL2", "region");
        long start = region.address() + offset;
        if ((start & 15) != 0) throw new IllegalArgumentException("prefetchL2: " + region.name() + " + " + offset + " is not 16-byte aligned");
        long chunks = (bytes + 16383) / 16384;
        int blocks = (int) Math.min((chunks + 127) / 128, 2L * stream.device().multiProcessorCount());
        launch("vf_l2_prefetch", blocks, 1, 1, 128, 0, stream, a.reset().ptr(start).i64(bytes));
    }

    /** x += y (fp32, n elements). */
    public void add(DeviceBuffer x, DeviceBuffer y, long n) {
        x.require(4L * n, "add", "x fp32 [n]");
        y.require(4L * n, "add", "y fp32 [n]");
        launch("vf_add_f32", gridFor(n), 1, 1, 256, 0, stream, a.reset().ptr(x).ptr(y).i64(n));
    }

    public void toBf16(DeviceBuffer out, DeviceBuffer in, long n) {
        out.require(2L * n, "toBf16", "out bf16 [n]");
        in.require(4L * n, "toBf16", "in fp32 [n]");
        launch("vf_f32_to_bf16", gridFor(n), 1, 1, 256, 0, stream, a.reset().ptr(out).ptr(in).i64(n));
    }

    public void toF32(DeviceBuffer out, DeviceBuffer in, long n) {
        out.require(4L * n, "toF32", "out fp32 [n]");
        in.require(2L * n, "toF32", "in bf16 [n]");
        launch("vf_bf16_to_f32", gridFor(n), 1, 1, 256, 0, stream, a.reset().ptr(out).ptr(in).i64(n));
    }

    private int gridFor(long n) {
        return (int) Math.max(1, Math.min((n + 255) / 256, 132L * 16));
    }

    // ---- matrix-vector (decode) ----

    /**
     * y fp32 [m] = W bf16 [m, k] * x bf16 [k] (+ bias fp32 [m]) (+ residual fp32 [m], may be y itself).
     * Needs k % 8 == 0 and 16-byte aligned W and x (16-byte loads); use {@link Blas#matmulNT} otherwise.
     */
    public void gemv(DeviceBuffer y, DeviceBuffer w, DeviceBuffer x, DeviceBuffer bias, DeviceBuffer residual, int m, int k8) {
        gemv(y, w, x, bias, residual, m, k8, -1);
    }

    /** {@link #gemv} with the split count forced (tests): -1 by shape, 0/1 unsplit kernel, n >= 2 about n K chunks. */
    void gemv(DeviceBuffer y, DeviceBuffer w, DeviceBuffer x, DeviceBuffer bias, DeviceBuffer residual, int m, int k8, int forcedSplits) {
        positive("gemv", m, k8);
        if (k8 % 8 != 0) throw new IllegalArgumentException("gemv: k=" + k8 + " is not a multiple of 8");
        if (w.address() % 16 != 0 || x.address() % 16 != 0)
            throw new IllegalArgumentException("gemv: W '" + w.name() + "' or x '" + x.name() + "' not 16-byte aligned");
        y.require(4L * m, "gemv", "y fp32 [m]");
        w.require(2L * m * k8, "gemv", "W bf16 [" + m + ", " + k8 + "]");
        x.require(2L * k8, "gemv", "x bf16 [k]");
        if (bias != null) bias.require(4L * m, "gemv", "bias fp32 [m]");
        if (residual != null) residual.require(4L * m, "gemv", "residual fp32 [m]");
        int chunk8 = splitChunk(m, k8, forcedSplits);
        if (chunk8 > 0) {
            launchSplitK(y, w, x, null, 0, 0, 0f, bias, residual, m, k8, chunk8, 0);
            return;
        }
        launch("vf_gemv_bf16" + gemvPf, (m + GEMV_ROWS - 1) / GEMV_ROWS, 1, 1, 256, 0, stream,
                a.reset().ptr(y).ptr(w).ptr(x).ptr(bias).ptr(residual).i32(m).i32(k8));
    }

    /**
     * K chunk (in 16-byte groups, a multiple of 32) for the split-K GEMV, or 0 for the one-block-per-row-tile
     * kernels. forcedSplits: -1 chooses by shape, 0/1 never splits, n >= 2 asks for about n splits (tests).
     * By shape (H100 A/B, docs/performance.md "after split-K"): split only when the row tiles fit in one wave (at most
     * one block per SM) and every chunk keeps at least {@link #SPLIT_MIN_CHUNK8} groups, towards splitTarget blocks.
     * That splits the 3B down product (2048 x 11008: 30.7 -> 25 µs) and leaves k <= 3072 alone: there the per-block
     * prologue and the ticket round trip cost more than the wider grid gains (3B q/k/v 23.7 -> 29.0 µs with 4
     * splits; 0.6B decode 724 -> 685 tok/s with every small product split).
     */
    private int splitChunk(int m, int k, int forcedSplits) {
        int tiles = (m + GEMV_ROWS - 1) / GEMV_ROWS, groups = k / 8;
        int want;
        if (forcedSplits < 0) {
            if (!splitK || tiles > stream.device().multiProcessorCount()) return 0;
            want = Math.min((splitTarget + tiles - 1) / tiles, groups / SPLIT_MIN_CHUNK8);
        } else {
            want = forcedSplits;
        }
        if (want < 2 || groups <= 32 || tiles > splitTarget) return 0;
        int chunk8 = roundUp((groups + want - 1) / want, 32);
        chunk8 = Math.max(chunk8, roundUp((groups + GEMV_MAX_SPLITS - 1) / GEMV_MAX_SPLITS, 32));
        return chunk8 >= groups ? 0 : chunk8;
    }

    /** Smallest K chunk (16-byte groups = 2,048 bf16) the shape-chosen split-K takes: 8 loads per row and lane. */
    private static final int SPLIT_MIN_CHUNK8 = 256;

    /** How many K chunks {@link #gemv} launches for this shape (1: the unsplit kernel); for tests and logs. */
    int gemvSplitCount(int m, int k, int forcedSplits) {
        int chunk8 = splitChunk(m, k, forcedSplits);
        return chunk8 == 0 ? 1 : (k / 8 + chunk8 - 1) / chunk8;
    }

    /** Largest m the split-K GEMV takes (its workspace bound: one ticket per row tile, up to the block target). */
    int gemvSplitMaxRows() { return GEMV_ROWS * splitTarget; }

    private static int roundUp(int v, int q) { return (v + q - 1) / q * q; }

    private void launchSplitK(DeviceBuffer y, DeviceBuffer w, DeviceBuffer x, DeviceBuffer normW, int mode, int upOff, float eps,
                              DeviceBuffer bias, DeviceBuffer residual, int m, int kd, int chunk8, int shared) {
        int tiles = (m + GEMV_ROWS - 1) / GEMV_ROWS, splits = (kd / 8 + chunk8 - 1) / chunk8;
        launch("vf_gemv_bf16_splitk" + gemvPf, tiles, splits, 1, 256, shared, stream,
                a.reset().ptr(y).ptr(w).ptr(x).ptr(normW).i32(mode).i32(upOff).f32(eps).ptr(bias).ptr(residual)
                        .i32(m).i32(kd).i32(chunk8).ptr(splitWs).ptr(splitCounters));
    }

    /** Largest k the fused GEMVs take (x staged as bf16 in shared memory, under the 48 KB static limit); larger: unfused ops. */
    public static final int FUSED_GEMV_MAX_K = 24000;

    /**
     * y fp32 [m] = W bf16 [m, k] . bf16(rmsnorm(x) * normW) (+ bias) (+ residual): {@link #rmsNorm} fused into
     * {@link #gemv} for one row. x fp32 [k] must not overlap y; k % 8 == 0 and k <= {@link #FUSED_GEMV_MAX_K}.
     */
    public void gemvRmsNorm(DeviceBuffer y, DeviceBuffer w, DeviceBuffer x, DeviceBuffer normW, float eps,
                            DeviceBuffer bias, DeviceBuffer residual, int m, int k) {
        gemvRmsNorm(y, w, x, normW, eps, bias, residual, m, k, -1);
    }

    /** {@link #gemvRmsNorm} with the split count forced (tests), as in {@link #gemv(DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, int, int, int)}. */
    void gemvRmsNorm(DeviceBuffer y, DeviceBuffer w, DeviceBuffer x, DeviceBuffer normW, float eps,
                     DeviceBuffer bias, DeviceBuffer residual, int m, int k, int forcedSplits) {
        normW.require(2L * k, "gemvRmsNorm", "norm weight bf16 [" + k + "]");
        gemvFused("gemvRmsNorm", 1, y, w, x, normW, 0, eps, bias, residual, m, k, 4L * k, forcedSplits);
    }

    /**
     * y fp32 [m] = W bf16 [m, k] . bf16(silu(gu[i]) * gu[upOffset + i]) (+ bias) (+ residual): {@link #siluMul} fused
     * into {@link #gemv} for one row. gu fp32 (gate at 0, up at upOffset elements) must not overlap y.
     */
    public void gemvSiluMul(DeviceBuffer y, DeviceBuffer w, DeviceBuffer gu, int upOffset,
                            DeviceBuffer bias, DeviceBuffer residual, int m, int k) {
        gemvSiluMul(y, w, gu, upOffset, bias, residual, m, k, -1);
    }

    /** {@link #gemvSiluMul} with the split count forced (tests). */
    void gemvSiluMul(DeviceBuffer y, DeviceBuffer w, DeviceBuffer gu, int upOffset,
                     DeviceBuffer bias, DeviceBuffer residual, int m, int k, int forcedSplits) {
        if (upOffset < k) throw new IllegalArgumentException("gemvSiluMul: up offset " + upOffset + " < k " + k + " (gate and up overlap)");
        gemvFused("gemvSiluMul", 2, y, w, gu, null, upOffset, 0f, bias, residual, m, k, 4L * ((long) upOffset + k), forcedSplits);
    }

    private void gemvFused(String op, int mode, DeviceBuffer y, DeviceBuffer w, DeviceBuffer xf, DeviceBuffer normW, int upOff,
                           float eps, DeviceBuffer bias, DeviceBuffer residual, int m, int kd, long xBytes, int forcedSplits) {
        positive(op, m, kd);
        if (kd % 8 != 0) throw new IllegalArgumentException(op + ": k=" + kd + " is not a multiple of 8");
        if (kd > FUSED_GEMV_MAX_K) throw new IllegalArgumentException(op + ": k=" + kd + " > " + FUSED_GEMV_MAX_K + " (use the unfused ops)");
        if (w.address() % 16 != 0 || xf.address() % 16 != 0 || upOff % 4 != 0 || (normW != null && normW.address() % 8 != 0))
            throw new IllegalArgumentException(op + ": W '" + w.name() + "' or x '" + xf.name()
                    + "' not 16-byte aligned, up offset " + upOff + " not a multiple of 4, or the norm weight not 8-byte aligned");
        y.require(4L * m, op, "y fp32 [m]");
        w.require(2L * m * kd, op, "W bf16 [" + m + ", " + kd + "]");
        xf.require(xBytes, op, "x fp32");
        if (bias != null) bias.require(4L * m, op, "bias fp32 [m]");
        if (residual != null) residual.require(4L * m, op, "residual fp32 [m]");
        if (y.address() < xf.address() + xBytes && xf.address() < y.address() + 4L * m)
            throw new IllegalArgumentException(op + ": y '" + y.name() + "' overlaps x '" + xf.name() + "'");
        int chunk8 = splitChunk(m, kd, forcedSplits);
        if (chunk8 > 0) {
            launchSplitK(y, w, xf, normW, mode, upOff, eps, bias, residual, m, kd, chunk8, 16 * chunk8);
            return;
        }
        int tiles = (m + GEMV_ROWS - 1) / GEMV_ROWS;
        int grid = Math.min(tiles, 8 * stream.device().multiProcessorCount());
        launch("vf_gemv_bf16_fused" + gemvPf, grid, 1, 1, 256, 2 * kd, stream,
                a.reset().ptr(y).ptr(w).ptr(xf).ptr(normW).i32(mode).i32(upOff).f32(eps).ptr(bias).ptr(residual).i32(m).i32(kd));
    }

    // ---- RoPE + cache write ----

    /**
     * Rotary embedding (rotate-half) on q and k of n tokens, optional per-head RMSNorm first (qNorm/kNorm bf16
     * [headDim], null to skip), K and V written to the cache at slots cacheStart[0] + t.
     *
     * @param q         fp32, token t's heads at q + t*qStride (elements); same for k, v
     * @param pos       int32 device positions: component c of token t at pos[c*posStride + t] (posStride 0: plain)
     * @param sec1      first frequency index using component 1 (M-RoPE); headDim/2 for plain RoPE; negative for
     *                  interleaved M-RoPE (see {@link #interleavedSections})
     * @param sec2      first frequency index using component 2; headDim/2 for plain RoPE
     * @param invFreq   fp32 [headDim/2] (see {@link Rope})
     * @param cacheStart int32 device scalar: cache slot of token 0
     * @param qOut      fp32 [n, nq, headDim]
     */
    public void ropeQkv(DeviceBuffer qOut, DeviceBuffer kCache, DeviceBuffer vCache,
                        DeviceBuffer q, int qStride, DeviceBuffer kk, int kStride, DeviceBuffer v, int vStride,
                        DeviceBuffer pos, int posStride, int sec1, int sec2, DeviceBuffer invFreq, DeviceBuffer cacheStart,
                        int n, AttnShape s, DeviceBuffer qNorm, DeviceBuffer kNorm, float eps) {
        positive("ropeQkv", n);
        int hd = s.headDim();
        checkSections("ropeQkv", sec1, sec2, hd);
        if (qStride < s.nq() * hd || kStride < s.nkv() * hd || vStride < s.nkv() * hd)
            throw new IllegalArgumentException("ropeQkv: row strides " + qStride + "/" + kStride + "/" + vStride + " smaller than the heads");
        qOut.require(4L * n * s.nq() * hd, "ropeQkv", "qOut fp32 [n, nq, hd]");
        kCache.require(s.cacheBytes(), "ropeQkv", "K cache bf16 [nkv, maxSeq, hd]");
        vCache.require(s.cacheBytes(), "ropeQkv", "V cache bf16 [nkv, maxSeq, hd]");
        q.require(4L * ((long) (n - 1) * qStride + s.nq() * hd), "ropeQkv", "q fp32");
        kk.require(4L * ((long) (n - 1) * kStride + s.nkv() * hd), "ropeQkv", "k fp32");
        v.require(4L * ((long) (n - 1) * vStride + s.nkv() * hd), "ropeQkv", "v fp32");
        pos.require(4L * (posStride == 0 ? n : 2L * posStride + n), "ropeQkv", "positions int32");
        invFreq.require(4L * (hd / 2), "ropeQkv", "invFreq fp32 [hd/2]");
        cacheStart.require(4, "ropeQkv", "cacheStart int32");
        if (qNorm != null) qNorm.require(2L * hd, "ropeQkv", "q norm bf16 [hd]");
        if (kNorm != null) kNorm.require(2L * hd, "ropeQkv", "k norm bf16 [hd]");
        launch("vf_rope_qkv", n, (s.nq() + s.nkv() + 3) / 4, 1, 128, 0, stream,
                a.reset().ptr(qOut).ptr(kCache).ptr(vCache).ptr(q).ptr(kk).ptr(v).i32(qStride).i32(kStride).i32(vStride)
                        .ptr(pos).i32(posStride).i32(sec1).i32(sec2).ptr(invFreq).ptr(cacheStart)
                        .i32(n).i32(s.nq()).i32(s.nkv()).i32(hd).i32(s.maxSeq()).ptr(qNorm).ptr(kNorm).f32(eps));
    }

    /**
     * The {sec1, sec2} that make the rope kernels use interleaved M-RoPE (Qwen3-VL, transformers'
     * {@code apply_interleaved_mrope}) for {@code mrope_section} {t, h, w}: frequency j uses h when
     * {@code j % 3 == 1 && j < 3*h}, w when {@code j % 3 == 2 && j < 3*w}, t otherwise. Encoded as
     * {@code {-1 - 3*h, -1 - 3*w}} (negative: contiguous sections are never negative).
     */
    public static int[] interleavedSections(int[] section) {
        if (section == null || section.length != 3 || section[0] < 0 || section[1] < 0 || section[2] < 0)
            throw new IllegalArgumentException("interleaved M-RoPE needs mrope_section {t, h, w} >= 0, got " + java.util.Arrays.toString(section));
        return new int[] {-1 - 3 * section[1], -1 - 3 * section[2]};
    }

    /** Checks rope sections: contiguous {@code 0 <= sec1 <= sec2 <= hd/2}, or interleaved (both negative). */
    static void checkSections(String op, int sec1, int sec2, int hd) {
        if (sec1 < 0 || sec2 < 0) {
            if (sec1 >= 0 || sec2 >= 0)
                throw new IllegalArgumentException(op + ": interleaved M-RoPE needs both sections negative (interleavedSections), got " + sec1 + ", " + sec2);
            return;
        }
        if (sec1 > sec2 || sec2 > hd / 2)
            throw new IllegalArgumentException(op + ": sections " + sec1 + ", " + sec2 + " outside [0, " + hd / 2 + "]");
    }

    // ---- attention ----

    /** Kernel instance for a head dim: ceil(hd / 32) elements per lane (any even hd <= 256, checked by AttnShape). */
    private static int epl(AttnShape s, String op) {
        return (s.headDim() + 31) / 32;
    }

    /** Head dims 64 and 128 use the tensor-core prefill kernel unless {@link Tuning#prefillMma()} is off. */
    private final boolean mmaPrefill, pipelinedPrefill, vecDecode;
    private final boolean pdl;   // Tuning.pdl on a module with the PDL prologue: PDL-ready kernels launch with it

    /** Every launch of these ops: {@link KernelModule#PDL_READY} kernels with programmatic dependent launch when on. */
    private void launch(String name, int gx, int gy, int gz, int block, int sharedBytes, GpuStream st, LaunchArgs args) {
        k.launch(name, gx, gy, gz, block, sharedBytes, st, args, pdl);
    }

    /** Splits a decode attention would use for a cache of {@code maxSeq}: enough blocks to fill the GPU. */
    public int decodeSplits(AttnShape s) {
        int sms = stream.device().multiProcessorCount();
        int want = Math.max(1, (2 * sms) / (s.nkv() * ((s.nq() / s.nkv() + 7) / 8)));
        int maxUseful = Math.max(1, s.maxSeq() / 16);   // >= 16 keys a split (4 a warp); the kernels drop splits past kvLen
        return Math.min(want, Math.min(maxUseful, 256));
    }

    /** Most splits {@link #attentionDecode} takes (the combine kernel's shared weights). */
    public static final int MAX_DECODE_SPLITS = 1024;

    /** Bytes of the fp32 partials workspace {@link #attentionDecode} needs. */
    public static long decodeWorkspaceBytes(AttnShape s, int splits) {
        return 4L * s.nq() * splits * (s.headDim() + 2);
    }

    /**
     * One query token against kvLen[0] cached keys (device scalar, >= 1). q fp32 [nq, hd], out bf16 [nq, hd].
     * Flash-decoding: {@code splits} blocks per kv head along the sequence, then a combine pass.
     */
    public void attentionDecode(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kCache, DeviceBuffer vCache,
                                DeviceBuffer kvLen, AttnShape s, int splits, DeviceBuffer workspace, float scale) {
        int e = epl(s, "attentionDecode");
        if (splits <= 0 || splits > MAX_DECODE_SPLITS)
            throw new IllegalArgumentException("attentionDecode: splits " + splits + " outside [1, " + MAX_DECODE_SPLITS + "]");
        out.require(2L * s.nq() * s.headDim(), "attentionDecode", "out bf16 [nq, hd]");
        q.require(4L * s.nq() * s.headDim(), "attentionDecode", "q fp32 [nq, hd]");
        kCache.require(s.cacheBytes(), "attentionDecode", "K cache");
        vCache.require(s.cacheBytes(), "attentionDecode", "V cache");
        kvLen.require(4, "attentionDecode", "kvLen int32");
        workspace.require(decodeWorkspaceBytes(s, splits), "attentionDecode", "partials fp32 [nq, splits, hd+2]");
        int groups = (s.nq() / s.nkv() + 7) / 8;
        if (fusedCombine && specialisedHeadDim(s.headDim()) && s.nkv() * groups <= ATTN_TICKETS) {   // one launch
            launch("vf_attn_decode_vf_h" + s.headDim(), s.nkv(), splits, groups, 128, 0, stream,
                    a.reset().ptr(out).ptr(workspace).ptr(q).ptr(kCache).ptr(vCache).ptr(kvLen).ptr(attnTickets)
                            .i32(s.nq()).i32(s.nkv()).i32(s.maxSeq()).f32(scale));
            return;
        }
        if (vecDecode && specialisedHeadDim(s.headDim()))   // 16-byte loads, HD/8 lanes per key
            launch("vf_attn_decode_v_h" + s.headDim(), s.nkv(), splits, groups, 128, 0, stream,
                    a.reset().ptr(workspace).ptr(q).ptr(kCache).ptr(vCache).ptr(kvLen)
                            .i32(s.nq()).i32(s.nkv()).i32(s.maxSeq()).f32(scale));
        else
            launch("vf_attn_decode_e" + e, s.nkv(), splits, groups, 128, 0, stream,
                    a.reset().ptr(workspace).ptr(q).ptr(kCache).ptr(vCache).ptr(kvLen)
                            .i32(s.nq()).i32(s.nkv()).i32(s.maxSeq()).i32(s.headDim()).f32(scale));
        launch("vf_attn_decode_combine", s.nq(), 1, 1, 128, 0, stream,
                a.reset().ptr(out).ptr(workspace).ptr(kvLen).i32(splits).i32(s.headDim()));
    }

    /** Whether {@link #attentionDecodeRope} takes this shape (decodeFusedRope on, head dim 64 or 128). */
    public boolean canFuseRope(AttnShape s) { return fusedRope && specialisedHeadDim(s.headDim()); }

    /**
     * {@link #ropeQkv} for one token followed by {@link #attentionDecode}, in the attention's split pass: q/k/v are the
     * raw q/k/v product of the token (fp32, nq / nkv heads of hd), pos as {@link #ropeQkv} reads it for token 0, and
     * the new K/V row is written at slot kvLen[0] - 1 (the decode step's cache start). Same bits as the two ops.
     */
    public void attentionDecodeRope(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kk, DeviceBuffer v, DeviceBuffer pos, int posStride,
                                    int sec1, int sec2, DeviceBuffer invFreq, DeviceBuffer qNorm, DeviceBuffer kNorm, float eps,
                                    DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer kvLen, AttnShape s, int splits,
                                    DeviceBuffer workspace, float scale) {
        if (!canFuseRope(s))
            throw new IllegalStateException("attentionDecodeRope: needs vlmflux.cuda.decodeFusedRope with the 16-byte decode attention and head dim 64 or 128 (got " + s.headDim() + ")");
        if (splits <= 0 || splits > MAX_DECODE_SPLITS)
            throw new IllegalArgumentException("attentionDecodeRope: splits " + splits + " outside [1, " + MAX_DECODE_SPLITS + "]");
        int hd = s.headDim();
        checkSections("attentionDecodeRope", sec1, sec2, hd);
        out.require(2L * s.nq() * hd, "attentionDecodeRope", "out bf16 [nq, hd]");
        q.require(4L * s.nq() * hd, "attentionDecodeRope", "q fp32 [nq, hd]");
        kk.require(4L * s.nkv() * hd, "attentionDecodeRope", "k fp32 [nkv, hd]");
        v.require(4L * s.nkv() * hd, "attentionDecodeRope", "v fp32 [nkv, hd]");
        pos.require(4L * (2L * posStride + 1), "attentionDecodeRope", "positions int32");
        invFreq.require(4L * (hd / 2), "attentionDecodeRope", "invFreq fp32 [hd/2]");
        if (qNorm != null) qNorm.require(2L * hd, "attentionDecodeRope", "q norm bf16 [hd]");
        if (kNorm != null) kNorm.require(2L * hd, "attentionDecodeRope", "k norm bf16 [hd]");
        kCache.require(s.cacheBytes(), "attentionDecodeRope", "K cache");
        vCache.require(s.cacheBytes(), "attentionDecodeRope", "V cache");
        kvLen.require(4, "attentionDecodeRope", "kvLen int32");
        workspace.require(decodeWorkspaceBytes(s, splits), "attentionDecodeRope", "partials fp32 [nq, splits, hd+2]");
        int groups = (s.nq() / s.nkv() + 7) / 8;
        boolean fuseCombine = fusedCombine && s.nkv() * groups <= ATTN_TICKETS;
        launch("vf_attn_decode_vr_h" + hd, s.nkv(), splits, groups, 128, 0, stream,
                a.reset().ptr(out).ptr(workspace).ptr(q).ptr(kk).ptr(v).ptr(kCache).ptr(vCache).ptr(kvLen).ptr(pos).i32(posStride)
                        .i32(sec1).i32(sec2).ptr(invFreq).ptr(qNorm).ptr(kNorm).f32(eps).ptr(fuseCombine ? attnTickets : null)
                        .i32(s.nq()).i32(s.nkv()).i32(s.maxSeq()).f32(scale));
        if (!fuseCombine)
            launch("vf_attn_decode_combine", s.nq(), 1, 1, 128, 0, stream,
                    a.reset().ptr(out).ptr(workspace).ptr(kvLen).i32(splits).i32(hd));
    }

    /**
     * KV-cache eviction in one launch: in each of {@code nbuf} buffers spaced {@code bufStride} bytes apart from
     * {@code region}'s start (the K and V caches of every layer), each of {@code heads} heads {@code headStride} bytes
     * apart, positions {@code [from + count, from + count + tail)} of {@code rowBytes} each move down to
     * {@code [from, from + tail)}. Overlap is allowed. {@code region} must span every byte touched.
     */
    public void kvShift(DeviceBuffer region, int nbuf, long bufStride, int heads, long headStride, int rowBytes, int from, int count, int tail) {
        if (nbuf <= 0 || heads <= 0 || rowBytes <= 0 || rowBytes % 16 != 0 || from < 0 || count < 0 || tail < 0)
            throw new IllegalArgumentException("kvShift: bad geometry nbuf " + nbuf + " heads " + heads + " rowBytes " + rowBytes
                    + " from " + from + " count " + count + " tail " + tail);
        if (count == 0 || tail == 0) return;
        long end = (nbuf - 1L) * bufStride + (heads - 1L) * headStride + ((long) from + count + tail) * rowBytes;
        region.require(end, "kvShift", "the cache region");
        if (headStride < ((long) from + count + tail) * rowBytes || (nbuf > 1 && bufStride < heads * headStride))
            throw new IllegalArgumentException("kvShift: heads " + headStride + " bytes apart or buffers " + bufStride + " bytes apart overlap "
                    + (from + count + tail) + " positions of " + rowBytes + " bytes x " + heads + " heads");
        launch("vf_kv_shift", nbuf * heads, 1, 1, 256, 0, stream,
                a.reset().ptr(region).i64(bufStride).i32(heads).i64(headStride).i32(rowBytes).i32(from).i32(count).i32(tail));
    }

    /**
     * Causal attention for n new tokens at cache slots start[0] .. start[0]+n-1 (already written by
     * {@link #ropeQkv}); token i sees keys [0, start + i]. q fp32 [n, nq, hd], out bf16 [n, nq, hd]. One pass over the
     * keys per block ({@link #attentionPrefill(DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, int, AttnShape, float, int, DeviceBuffer)}
     * with one split).
     */
    public void attentionPrefill(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kCache, DeviceBuffer vCache,
                                 DeviceBuffer start, int n, AttnShape s, float scale) {
        attentionPrefill(out, q, kCache, vCache, start, n, s, scale, 1, null);
    }

    /** Most key shares {@link #attentionPrefill} splits into (the combine kernel's shared weights). */
    public static final int MAX_PREFILL_SPLITS = 64;

    /** Bytes of the fp32 partials {@link #attentionPrefill} with {@code splits} shares needs for {@code n} rows. */
    public static long prefillWorkspaceBytes(AttnShape s, int n, int splits) {
        return splits <= 1 ? 0 : 4L * n * s.nq() * splits * (s.headDim() + 2);
    }

    /**
     * Key shares for a prefill of {@code n} rows after {@code start} cached positions: 1 when the grid of 64-query tiles
     * times heads already covers the GPU twice, else enough shares to fill it (at least two key tiles of 64 each),
     * within {@code workspaceBytes} of partials. Only the tensor-core kernel (hd 64 and 128) splits. (The decoder asks
     * only with {@link Tuning#prefillSplitKv()} on.)
     */
    public int prefillSplits(AttnShape s, int n, int start, long workspaceBytes) {
        if (!(specialisedHeadDim(s.headDim()) && mmaPrefill) || n <= 0) return 1;
        long blocks = (long) ((n + 63) / 64) * s.nq();
        int sms = stream.device().multiProcessorCount();
        if (blocks >= 2L * sms) return 1;
        int tiles = (start + n + 63) / 64;
        long want = Math.min((2L * sms + blocks - 1) / blocks, Math.max(1, tiles / 2));
        long fit = workspaceBytes / (4L * n * s.nq() * (s.headDim() + 2));   // shares whose partials fit
        want = Math.min(want, Math.min(MAX_PREFILL_SPLITS, fit));
        return (int) Math.max(1, want);
    }

    /**
     * {@link #attentionPrefill(DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, int, AttnShape, float)}
     * with the keys split into {@code splits} shares (tensor-core kernel only; {@link #prefillSplits} chooses), merged
     * by a combine pass through {@code workspace} ({@link #prefillWorkspaceBytes}). Same result up to fp32 rounding.
     */
    public void attentionPrefill(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kCache, DeviceBuffer vCache,
                                 DeviceBuffer start, int n, AttnShape s, float scale, int splits, DeviceBuffer workspace) {
        positive("attentionPrefill", n);
        int e = epl(s, "attentionPrefill");
        out.require(2L * n * s.nq() * s.headDim(), "attentionPrefill", "out bf16 [n, nq, hd]");
        q.require(4L * n * s.nq() * s.headDim(), "attentionPrefill", "q fp32 [n, nq, hd]");
        kCache.require(s.cacheBytes(), "attentionPrefill", "K cache");
        vCache.require(s.cacheBytes(), "attentionPrefill", "V cache");
        start.require(4, "attentionPrefill", "start int32");
        if (splits < 1 || splits > MAX_PREFILL_SPLITS)
            throw new IllegalArgumentException("attentionPrefill: splits " + splits + " outside [1, " + MAX_PREFILL_SPLITS + "]");
        int hd = s.headDim();
        boolean mma = specialisedHeadDim(hd) && mmaPrefill;
        if (splits > 1 && !mma) throw new IllegalArgumentException("attentionPrefill: only the tensor-core kernel (hd 64, 128) splits the keys, hd " + hd);
        if (mma) {   // tensor-core FlashAttention-2 kernel, 64 queries per block
            if (splits > 1) {
                if (workspace == null) throw new IllegalArgumentException("attentionPrefill: " + splits + " splits need a workspace");
                workspace.require(prefillWorkspaceBytes(s, n, splits), "attentionPrefill", "partials fp32 [n, nq, splits, hd+2]");
            }
            launch((pipelinedPrefill ? "vf_attn_prefill_fa2_h" : "vf_attn_prefill_mma_h") + hd, (n + 63) / 64, s.nq(), splits, 128, 0, stream,
                    a.reset().ptr(out).ptr(q).ptr(kCache).ptr(vCache).ptr(start)
                            .i32(n).i32(s.nq()).i32(s.nkv()).i32(s.maxSeq()).f32(scale).ptr(splits > 1 ? workspace : null));
            if (splits > 1)
                launch("vf_attn_prefill_combine", n * s.nq(), 1, 1, 128, 0, stream, a.reset().ptr(out).ptr(workspace).i32(splits).i32(hd));
            return;
        }
        int qb = 4 * (e >= 8 ? 3 : 4);  // queries per block, as attention.cu
        launch("vf_attn_prefill_e" + e, (n + qb - 1) / qb, s.nq(), 1, 128, 0, stream,
                a.reset().ptr(out).ptr(q).ptr(kCache).ptr(vCache).ptr(start)
                        .i32(n).i32(s.nq()).i32(s.nkv()).i32(s.maxSeq()).i32(s.headDim()).f32(scale));
    }

    // ---- token selection ----

    /** outId int32[0] = argmax(logits fp32 [n]) (lowest index on ties). */
    public void argmax(DeviceBuffer outId, DeviceBuffer logits, int n) {
        positive("argmax", n);
        outId.require(4, "argmax", "out int32");
        logits.require(4L * n, "argmax", "logits fp32 [n]");
        launch("vf_argmax", 1, 1, 1, 1024, 0, stream, a.reset().ptr(outId).ptr(logits).i32(n));
    }

    /**
     * Constrained decoding: {@code logits[i] = -inf} for every id whose bit is clear in {@code bits} (uint64 words
     * {@code [(n + 63) / 64]}, id {@code i} = bit {@code i % 64} of word {@code i / 64}).
     */
    public void maskLogits(DeviceBuffer logits, DeviceBuffer bits, int n) {
        positive("maskLogits", n);
        logits.require(4L * n, "maskLogits", "logits fp32 [n]");
        bits.require(8L * ((n + 63) / 64), "maskLogits", "allowed bits uint64 [(n + 63) / 64]");
        launch("vf_mask_logits", (n + 255) / 256, 1, 1, 256, 0, stream, a.reset().ptr(logits).ptr(bits).i32(n));
    }

    /** Parts of the two-stage {@link #argmax(DeviceBuffer, DeviceBuffer, int, DeviceBuffer)}. */
    public static final int ARGMAX_PARTS = 128;

    /** Blocks of the two-stage argmax's first stage for {@code n} logits (about 1,024 a block, at most {@link #ARGMAX_PARTS}). */
    static int argmaxParts(int n) { return Math.max(1, Math.min(ARGMAX_PARTS, (n + 1023) / 1024)); }

    /** Bytes of the workspace the two-stage argmax needs. */
    public static long argmaxWorkspaceBytes() { return 8L * ARGMAX_PARTS; }

    /**
     * Two-stage argmax (many blocks, then one warp): the fast path for large vocabularies. Same result as
     * {@link #argmax(DeviceBuffer, DeviceBuffer, int)} (lowest index on ties).
     */
    public void argmax(DeviceBuffer outId, DeviceBuffer logits, int n, DeviceBuffer workspace) {
        positive("argmax", n);
        outId.require(4, "argmax", "out int32");
        logits.require(4L * n, "argmax", "logits fp32 [n]");
        workspace.require(argmaxWorkspaceBytes(), "argmax", "partials [" + ARGMAX_PARTS + "] x (fp32, int32)");
        int parts = argmaxParts(n);
        DeviceBuffer pv = workspace.slice(0, 4L * ARGMAX_PARTS, workspace.name() + ".values");
        DeviceBuffer pi = workspace.slice(4L * ARGMAX_PARTS, 4L * ARGMAX_PARTS, workspace.name() + ".indices");
        launch("vf_argmax_partial", parts, 1, 1, 256, 0, stream, a.reset().ptr(pv).ptr(pi).ptr(logits).i32(n));
        launch("vf_argmax_final", 1, 1, 1, 32, 0, stream, a.reset().ptr(outId).ptr(pv).ptr(pi).i32(parts));
    }

    /** y fp32 [rows, m] += bias fp32 [m] (per row). */
    public void addBiasRows(DeviceBuffer y, DeviceBuffer bias, int rows, int m) {
        positive("addBiasRows", rows, m);
        y.require(4L * rows * m, "addBiasRows", "y fp32 [rows, m]");
        bias.require(4L * m, "addBiasRows", "bias fp32 [m]");
        launch("vf_add_bias_rows", gridFor((long) rows * m), 1, 1, 256, 0, stream, a.reset().ptr(y).ptr(bias).i32(rows).i32(m));
    }

    /**
     * outId int32[0] = a token drawn from softmax(logits / temperature) restricted to top-k (k <= 0: off) and top-p
     * (p >= 1: off). temperature <= 0 or topK == 1 is argmax. counter: device uint64, incremented per call, hashed
     * with {@code seed} for the uniform draw.
     */
    public void sample(DeviceBuffer outId, DeviceBuffer logits, int n, float temperature, int topK, float topP,
                       long seed, DeviceBuffer counter) {
        positive("sample", n);
        if (!(topP > 0f)) throw new IllegalArgumentException("sample: topP " + topP + " must be > 0");
        outId.require(4, "sample", "out int32");
        logits.require(4L * n, "sample", "logits fp32 [n]");
        counter.require(8, "sample", "counter uint64");
        launch("vf_sample", 1, 1, 1, 1024, 0, stream,
                a.reset().ptr(outId).ptr(logits).i32(n).f32(temperature).i32(topK).f32(topP).i64(seed).ptr(counter));
    }

    /** Most blocks of the multi-block sampler's first stages (one contiguous vocabulary chunk each). */
    public static final int SAMPLE_PARTS = 128;
    private static final long SW_HIST = 2048, SW_SEG = SW_HIST + 8L * 4096;
    /**
     * Where in the sampling workspace the last sampled call leaves int32 [4] = (lowest histogram bin holding a min-p
     * survivor, the kept set's floor: tokens whose order-preserving key is {@code >=} it are kept, the kept mass
     * sum exp((l - max) / T) as fp32 bits, the candidates the final block read). For tests and diagnostics.
     */
    public static final long SAMPLE_INFO_OFFSET = 1536;

    /** Bytes of the workspace {@link #sample(DeviceBuffer, DeviceBuffer, int, float, int, float, float, long, DeviceBuffer, DeviceBuffer)} needs for {@code n} logits. */
    public static long sampleWorkspaceBytes(int n) { return SW_SEG + 12L * n; }

    /** Blocks of the multi-block sampler for {@code n} logits (about 1,024 logits a block, at most {@link #SAMPLE_PARTS}). */
    public static int sampleParts(int n) { return Math.max(1, Math.min(SAMPLE_PARTS, (n + 1023) / 1024)); }

    /**
     * Multi-block sampling (sampling.cu: max, histogram, compaction over {@link #sampleParts} blocks, then one block
     * over the candidates only): outId int32[0] = a token drawn from softmax(logits / temperature) restricted to top-k
     * (k <= 0: off), top-p (p >= 1: off) and min-p (0: off), in that order, as the CPU Sampler. temperature <= 0 or
     * topK == 1 is the two-stage argmax (the counter is then left as is). counter: device uint64, incremented per
     * sampled call and hashed with {@code seed}; no host sync, so it can be captured in a graph. workspace:
     * {@link #sampleWorkspaceBytes}(n) bytes, reusable by calls on the same stream.
     */
    public void sample(DeviceBuffer outId, DeviceBuffer logits, int n, float temperature, int topK, float topP, float minP,
                       long seed, DeviceBuffer counter, DeviceBuffer workspace) {
        positive("sample", n);
        if (!(topP > 0f)) throw new IllegalArgumentException("sample: topP " + topP + " must be > 0");
        if (!(minP >= 0f && minP <= 1f)) throw new IllegalArgumentException("sample: minP " + minP + " must be in [0, 1]");
        outId.require(4, "sample", "out int32");
        logits.require(4L * n, "sample", "logits fp32 [n]");
        counter.require(8, "sample", "counter uint64");
        workspace.require(sampleWorkspaceBytes(n), "sample", "sampling workspace (" + sampleWorkspaceBytes(n) + " bytes for " + n + " logits)");
        if (temperature <= 0f || topK == 1) {
            argmax(outId, logits, n, workspace.slice(0, argmaxWorkspaceBytes(), workspace.name() + ".argmax"));
            return;
        }
        int parts = sampleParts(n);
        String w = workspace.name();
        DeviceBuffer pmax = workspace.slice(0, 512, w + ".pmax"), pmass = workspace.slice(512, 512, w + ".pmass"),
                cnt = workspace.slice(1024, 512, w + ".cnt"), misc = workspace.slice(1536, 16, w + ".misc"),
                hcnt = workspace.slice(SW_HIST, 4L * 4096, w + ".hcnt"), hmass = workspace.slice(SW_HIST + 4L * 4096, 4L * 4096, w + ".hmass"),
                seg = workspace.slice(SW_SEG, 4L * n, w + ".seg"), cidx = workspace.slice(SW_SEG + 4L * n, 4L * n, w + ".cidx"),
                cval = workspace.slice(SW_SEG + 8L * n, 4L * n, w + ".cval");
        float invT = 1f / temperature;
        launch("vf_sample_max", parts, 1, 1, 256, 0, stream, a.reset().ptr(pmax).ptr(hcnt).ptr(hmass).ptr(misc).ptr(logits).i32(n));
        launch("vf_sample_hist", parts, 1, 1, 256, 0, stream,
                a.reset().ptr(hcnt).ptr(hmass).ptr(misc).ptr(pmass).ptr(pmax).ptr(logits).i32(n).f32(invT).f32(minP));
        launch("vf_sample_compact", parts, 1, 1, 256, 0, stream,
                a.reset().ptr(seg).ptr(cnt).ptr(hcnt).ptr(hmass).ptr(misc).ptr(pmass).ptr(logits).i32(n).i32(topK).f32(topP).f32(minP));
        launch("vf_sample_final", 1, 1, 1, 1024, 0, stream,
                a.reset().ptr(outId).ptr(counter).ptr(cidx).ptr(cval).ptr(seg).ptr(cnt).ptr(pmax).ptr(pmass).i32(parts)
                        .ptr(logits).i32(n).f32(invT).i32(topK).f32(topP).f32(minP).i64(seed).ptr(misc));
    }

    /** Bytes of a row of {@link #selectRows}'s settings table (sampling.cu VfSampleRow). */
    public static final int SELECT_ROW_BYTES = 32;

    /**
     * Writes row {@code row} of a {@link #selectRows} settings table at {@code b}'s offset {@code off}: greedy (the
     * argmax) where {@code temperature <= 0} or {@code topK == 1}, else sampled as {@link #sample(DeviceBuffer,
     * DeviceBuffer, int, float, int, float, float, long, DeviceBuffer, DeviceBuffer)} with the counter value
     * {@code counter + draw} ({@code draw}: how many sampled rows come before this one). Returns whether the row samples.
     */
    public static boolean putSelectRow(java.nio.ByteBuffer b, int off, float temperature, int topK, float topP, float minP, long seed, int draw) {
        if (!(topP > 0f)) throw new IllegalArgumentException("selectRows: topP " + topP + " must be > 0");
        if (!(minP >= 0f && minP <= 1f)) throw new IllegalArgumentException("selectRows: minP " + minP + " must be in [0, 1]");
        boolean sampled = temperature > 0f && topK != 1;
        b.putFloat(off, sampled ? 1f / temperature : 0f).putInt(off + 4, topK).putFloat(off + 8, topP).putFloat(off + 12, minP)
                .putLong(off + 16, seed).putInt(off + 24, draw).putInt(off + 28, sampled ? 1 : 0);
        return sampled;
    }

    /**
     * The token of each of {@code rows} logits rows ([rows, n] fp32) in one launch per stage instead of a
     * {@link #argmax(DeviceBuffer, DeviceBuffer, int, DeviceBuffer)} or {@link #sample(DeviceBuffer, DeviceBuffer, int,
     * float, int, float, float, long, DeviceBuffer, DeviceBuffer)} call per row: outIds int32 [rows]; table: {@code rows}
     * rows of {@link #SELECT_ROW_BYTES} written by {@link #putSelectRow}; {@code sampledRows} of them sample (then the
     * counter advances by that many, as that many single calls would), the others take the argmax. workspace:
     * {@link #selectRowsWorkspaceBytes}. Same tokens, kept sets and counter as the calls one row after another.
     */
    public void selectRows(DeviceBuffer outIds, DeviceBuffer logits, int n, int rows, DeviceBuffer table, int sampledRows,
                           DeviceBuffer counter, DeviceBuffer workspace) {
        positive("selectRows", n, rows);
        if (sampledRows < 0 || sampledRows > rows) throw new IllegalArgumentException("selectRows: " + sampledRows + " sampled rows of " + rows);
        outIds.require(4L * rows, "selectRows", "out int32 [rows]");
        logits.require(4L * rows * n, "selectRows", "logits fp32 [rows, n]");
        table.require((long) SELECT_ROW_BYTES * rows, "selectRows", "row settings [rows] x " + SELECT_ROW_BYTES + " bytes");
        counter.require(8, "selectRows", "counter uint64");
        long stride = sampleWorkspaceBytes(n);
        workspace.require(selectRowsWorkspaceBytes(n, rows), "selectRows", "workspace (" + stride + " bytes a row)");
        if (sampledRows < rows) {   // the greedy rows (the kernels skip the sampled ones, and the other way round)
            int parts = argmaxParts(n);
            launch("vf_argmax_partial_rows", parts, rows, 1, 256, 0, stream, a.reset().ptr(workspace).i64(stride).ptr(table).ptr(logits).i32(n));
            launch("vf_argmax_final_rows", 1, rows, 1, 32, 0, stream, a.reset().ptr(outIds).ptr(workspace).i64(stride).ptr(table).i32(parts));
        }
        if (sampledRows > 0) {
            int parts = sampleParts(n);
            for (String stage : new String[] {"vf_sample_max_rows", "vf_sample_hist_rows", "vf_sample_compact_rows"})
                launch(stage, parts, rows, 1, 256, 0, stream, a.reset().ptr(workspace).i64(stride).ptr(table).ptr(logits).i32(n));
            launch("vf_sample_final_rows", 1, rows, 1, 1024, 0, stream,
                    a.reset().ptr(outIds).ptr(counter).ptr(workspace).i64(stride).ptr(table).i32(parts).ptr(logits).i32(n));
            launch("vf_sample_count", 1, 1, 1, 32, 0, stream, a.reset().ptr(counter).i32(sampledRows));
        }
    }

    /** Bytes of the workspace {@link #selectRows} needs: {@link #sampleWorkspaceBytes} a row. */
    public static long selectRowsWorkspaceBytes(int n, int rows) { return sampleWorkspaceBytes(n) * rows; }

    // ---- the persistent decode step (decode_mega.cu, Tuning.decodeMegakernel) ----

    /** Threads of a persistent decode block (VF_MEGA_THREADS). */
    static final int MEGA_THREADS = 256;
    /** Largest hidden, q or intermediate width its shared-memory x holds (VF_MEGA_MAX_K). */
    public static final int MEGA_MAX_K = 22528;

    /** Bytes of one layer's row of the persistent decode's layer table (10 device addresses, VfMegaLayer). */
    public static final int MEGA_LAYER_BYTES = 80;

    /**
     * Why {@link #decodeMega} cannot run a decoder of this shape, or null when it can: head dim a power of two from 8 to
     * 256, hidden / q / intermediate widths multiples of 8 of at most {@link #MEGA_MAX_K}, and a block per SM resident.
     */
    public String megaUnsupported(int hd, int hidden, int q, int inter) {
        String why = megaShapeUnsupported(hd, hidden, q, inter);
        if (why == null && megaGrid(hd) < 1) why = "no block of " + megaKernel(hd) + " fits an SM";
        return why;
    }

    /** The shape half of {@link #megaUnsupported} (no device needed). */
    static String megaShapeUnsupported(int hd, int hidden, int q, int inter) {
        if (Integer.bitCount(hd) != 1 || hd < 8 || hd > 256) return "head dim " + hd + " is not a power of two from 8 to 256";
        String[] names = {"hidden", "q", "intermediate"};
        int[] widths = {hidden, q, inter};
        for (int i = 0; i < 3; i++)
            if (widths[i] % 8 != 0 || widths[i] > MEGA_MAX_K)
                return names[i] + " width " + widths[i] + " is not a multiple of 8 of at most " + MEGA_MAX_K;
        return null;
    }

    /** Blocks of a persistent decode launch: one per SM (never more than can be resident at once). */
    public int megaGrid(int hd) {
        int i = Integer.numberOfTrailingZeros(hd);
        if (megaGrids[i] < 0) megaGrids[i] = k.activeBlocksPerSm(megaKernel(hd), MEGA_THREADS, 0) < 1 ? 0 : stream.device().multiProcessorCount();
        return megaGrids[i];
    }

    /** The persistent step's kernel at head dim {@code hd}. */
    public String megaKernel(int hd) {
        return "vf_decode_mega_h" + hd;
    }

    private final int[] megaGrids = {-1, -1, -1, -1, -1, -1, -1, -1, -1};   // by log2(hd): blocks, 0 if none fits

    /** Key splits of the persistent decode's attention: one work item per block where the heads allow, 16+ keys a split. */
    public static int megaSplits(int grid, int nq, int nkv, int maxSeq, int maxSplits) {
        int items = nkv * ((nq / nkv + 3) / 4);
        return Math.max(1, Math.min(Math.min(grid / items, Math.max(1, maxSeq / 16)), maxSplits));
    }

    /**
     * One decode step in one persistent cooperative launch (decode_mega.cu): every layer and the lm head, from the
     * token's embedding in x (fp32 [hidden]) to logits (fp32 [vocab]). layers: the device table of
     * {@link #MEGA_LAYER_BYTES} per layer; step: int32 {p0, p1, p2, slot, kvLen}; the K cache of layer l at kBase + l *
     * kvLayerStride, its V vOffset bytes after it (bf16 [nkv, maxSeq, hd]); part: fp32 [nq, splits, hd + 2]. The kernel
     * runs decode_mega.cu's VF_MEGA_FORM_LIB, compiled in: each stage's first weight / cached K/V loads (and the
     * attention's q / k norm weights) are issued between the grid barrier's arrival and its wait, RoPE's cos / sin are
     * computed once a launch. Shapes as {@link #megaUnsupported}.
     */
    public void decodeMega(DeviceBuffer layers, int L, DeviceBuffer finalNorm, DeviceBuffer lmHead, DeviceBuffer x, DeviceBuffer qkv,
                           DeviceBuffer part, DeviceBuffer att, DeviceBuffer act, DeviceBuffer logits, DeviceBuffer step, DeviceBuffer invFreq,
                           long kBase, long kvLayerStride, long vOffset, int hidden, int nq, int nkv, int hd, int inter, int vocab,
                           int maxSeq, int splits, int sec1, int sec2, float eps, float scale) {
        String why = megaUnsupported(hd, hidden, nq * hd, inter);
        if (why != null) throw new IllegalArgumentException("decodeMega: " + why);
        int q = nq * hd, qkvRows = q + 2 * nkv * hd;
        layers.require((long) MEGA_LAYER_BYTES * L, "decodeMega", "layer table [" + L + "]");
        x.require(4L * hidden, "decodeMega", "x fp32 [hidden]");
        qkv.require(4L * qkvRows, "decodeMega", "qkv fp32 [q + 2 kv]");
        part.require(4L * nq * splits * (hd + 2), "decodeMega", "partials fp32 [nq, splits, hd + 2]");
        att.require(2L * q, "decodeMega", "att bf16 [q]");
        act.require(2L * inter, "decodeMega", "act bf16 [inter]");
        logits.require(4L * vocab, "decodeMega", "logits fp32 [vocab]");
        lmHead.require(2L * vocab * hidden, "decodeMega", "lm head bf16 [vocab, hidden]");
        step.require(20, "decodeMega", "step int32 {p0, p1, p2, slot, kvLen}");
        if (splits < 1 || splits > MAX_DECODE_SPLITS) throw new IllegalArgumentException("decodeMega: splits " + splits + " outside [1, " + MAX_DECODE_SPLITS + "]");
        int grid = megaGrid(hd);
        k.launchCooperative(megaKernel(hd), grid, MEGA_THREADS, 0, stream,
                a.reset().ptr(layers).ptr(finalNorm).ptr(lmHead).ptr(x).ptr(qkv).ptr(part).ptr(att).ptr(act).ptr(logits).ptr(step)
                        .ptr(invFreq).ptr(megaSync).ptr(kBase).i64(kvLayerStride).i64(vOffset).i32(L).i32(hidden).i32(nq)
                        .i32(nkv).i32(inter).i32(vocab).i32(maxSeq).i32(splits).i32(sec1).i32(sec2).f32(eps).f32(scale));
    }

    @Override
    public void close() {
        a.close();
        splitArena.close();
    }
}
