package io.vlmflux.cuda.gpu;

/**
 * Launchers for the graph-capturable batched decode kernels (the row variants in {@code rope.cu}, {@code attention.cu}
 * and the skinny GEMM in {@code gemv.cu}), bound to one stream: rope + KV
 * write and split attention for {@code n} rows whose caches are named by device tables, so a graph captured once per
 * batch size replays for any set of caches. Table layouts: {@code rows} int32 [n, {@link #ROW_INTS}] =
 * {pos t, pos h, pos w, cache slot, kv length, token id, cache capacity, 0}; {@code kv} uint64 [n, layers, 2] = the
 * row's per-layer K and V cache addresses (bf16 [kvHeads, capacity, hd]). Not thread-safe: the stream's thread.
 */
public final class BatchDecodeOps implements AutoCloseable {
    /** int32 scalars per row of the rows table. */
    public static final int ROW_INTS = 8;

    private final GpuStream stream;
    private final KernelModule mod;
    private final LaunchArgs a = new LaunchArgs();

    private final boolean vecDecode;   // Tuning.decodeVecAttention
    private final boolean fusedCombine;   // Tuning.decodeFusedCombine (with vecDecode)
    private final boolean fusedRope;      // Tuning.decodeFusedRope (with vecDecode)
    private final DeviceArena ticketArena;   // the fused combine's group tickets, zeroed once, reset by each group's last block
    private final DeviceBuffer tickets;

    public BatchDecodeOps(GpuStream stream) { this(stream, io.vlmflux.cuda.Tuning.fromSystemProperties()); }

    public BatchDecodeOps(GpuStream stream, io.vlmflux.cuda.Tuning tuning) {
        this.stream = stream;
        this.mod = stream.device().kernels();
        this.vecDecode = tuning.decodeVecAttention();
        this.fusedCombine = vecDecode && tuning.decodeFusedCombine();
        this.fusedRope = vecDecode && tuning.decodeFusedRope();
        if (fusedCombine) {
            ticketArena = stream.device().newArena("batched decode attention tickets", 4L * GpuOps.ATTN_TICKETS + 256);
            tickets = ticketArena.alloc("decode attention group tickets int32 [rows, kv heads, groups]", 4L * GpuOps.ATTN_TICKETS);
            stream.memsetAsync(tickets, 0, 4L * GpuOps.ATTN_TICKETS);
        } else { ticketArena = null; tickets = null; }
    }

    private static void check(String op, int n, int layer, int layers, DeviceBuffer rows, DeviceBuffer kv) {
        if (n <= 0) throw new IllegalArgumentException(op + ": non-positive row count " + n);
        if (layer < 0 || layer >= layers) throw new IllegalArgumentException(op + ": layer " + layer + " outside [0, " + layers + ")");
        rows.require(4L * ROW_INTS * n, op, "rows int32 [n, " + ROW_INTS + "]");
        kv.require(16L * n * layers, op, "kv addresses uint64 [n, layers, 2]");
    }

    /** As {@link GpuOps#ropeQkv} for one token per row, each row writing into its own cache (from the tables). */
    public void ropeQkvRows(DeviceBuffer qOut, DeviceBuffer kv, int layer, int layers, DeviceBuffer q, int qStride,
                            DeviceBuffer kk, int kStride, DeviceBuffer v, int vStride, DeviceBuffer rows, int sec1, int sec2,
                            DeviceBuffer invFreq, int n, int nq, int nkv, int hd, DeviceBuffer qNorm, DeviceBuffer kNorm, float eps) {
        check("ropeQkvRows", n, layer, layers, rows, kv);
        if (hd <= 0 || hd > 256 || hd % 2 != 0) throw new IllegalArgumentException("ropeQkvRows: head dim " + hd + " (even, <= 256)");
        GpuOps.checkSections("ropeQkvRows", sec1, sec2, hd);
        if (qStride < nq * hd || kStride < nkv * hd || vStride < nkv * hd)
            throw new IllegalArgumentException("ropeQkvRows: row strides " + qStride + "/" + kStride + "/" + vStride + " smaller than the heads");
        qOut.require(4L * n * nq * hd, "ropeQkvRows", "qOut fp32 [n, nq, hd]");
        q.require(4L * ((long) (n - 1) * qStride + nq * hd), "ropeQkvRows", "q fp32");
        kk.require(4L * ((long) (n - 1) * kStride + nkv * hd), "ropeQkvRows", "k fp32");
        v.require(4L * ((long) (n - 1) * vStride + nkv * hd), "ropeQkvRows", "v fp32");
        invFreq.require(4L * (hd / 2), "ropeQkvRows", "invFreq fp32 [hd/2]");
        if (qNorm != null) qNorm.require(2L * hd, "ropeQkvRows", "q norm bf16 [hd]");
        if (kNorm != null) kNorm.require(2L * hd, "ropeQkvRows", "k norm bf16 [hd]");
        mod.launch("vf_rope_qkv_rows", n, (nq + nkv + 3) / 4, 1, 128, 0, stream,
                a.reset().ptr(qOut).ptr(kv).i32(layer).i32(layers).ptr(q).ptr(kk).ptr(v).i32(qStride).i32(kStride).i32(vStride)
                        .ptr(rows).i32(sec1).i32(sec2).ptr(invFreq).i32(n).i32(nq).i32(nkv).i32(hd)
                        .ptr(qNorm).ptr(kNorm).f32(eps));
    }

    /** Bytes of the fp32 partials {@link #attentionDecodeRows} needs for {@code n} rows. */
    public static long workspaceBytes(int n, int nq, int hd, int splits) { return 4L * n * nq * splits * (hd + 2); }

    /**
     * As {@link GpuOps#attentionDecode} for each of n rows against its own cache and kv length (from the tables).
     * q fp32 [n, nq, hd], out bf16 [n, nq, hd]; {@code splits} is fixed (it is baked into a captured graph).
     */
    public void attentionDecodeRows(DeviceBuffer out, DeviceBuffer q, DeviceBuffer kv, int layer, int layers, DeviceBuffer rows,
                                    int n, int nq, int nkv, int hd, int splits, DeviceBuffer workspace, float scale) {
        check("attentionDecodeRows", n, layer, layers, rows, kv);
        new GpuOps.AttnShape(nq, nkv, hd, 1);   // validates heads and head dim
        if (splits <= 0 || splits > GpuOps.MAX_DECODE_SPLITS)
            throw new IllegalArgumentException("attentionDecodeRows: splits " + splits + " outside [1, " + GpuOps.MAX_DECODE_SPLITS + "]");
        out.require(2L * n * nq * hd, "attentionDecodeRows", "out bf16 [n, nq, hd]");
        q.require(4L * n * nq * hd, "attentionDecodeRows", "q fp32 [n, nq, hd]");
        workspace.require(workspaceBytes(n, nq, hd, splits), "attentionDecodeRows", "partials fp32 [n, nq, splits, hd+2]");
        int groups = (nq / nkv + 7) / 8;
        if (fusedCombine && GpuOps.specialisedHeadDim(hd) && (long) n * nkv * groups <= GpuOps.ATTN_TICKETS) {   // one launch
            mod.launch("vf_attn_decode_rows_vf_h" + hd, n * nkv, splits, groups, 128, 0, stream,
                    a.reset().ptr(out).ptr(workspace).ptr(q).ptr(kv).i32(layer).i32(layers).ptr(rows).ptr(tickets)
                            .i32(nq).i32(nkv).i32(hd).f32(scale));
            return;
        }
        String split = vecDecode && GpuOps.specialisedHeadDim(hd) ? "vf_attn_decode_rows_v_h" + hd : "vf_attn_decode_rows_e" + (hd + 31) / 32;
        mod.launch(split, n * nkv, splits, groups, 128, 0, stream,
                a.reset().ptr(workspace).ptr(q).ptr(kv).i32(layer).i32(layers).ptr(rows).i32(nq).i32(nkv).i32(hd).f32(scale));
        mod.launch("vf_attn_decode_rows_combine", n * nq, 1, 1, 128, 0, stream,
                a.reset().ptr(out).ptr(workspace).ptr(rows).i32(nq).i32(splits).i32(hd));
    }

    /** Whether {@link #attentionDecodeRowsRope} takes head dim {@code hd} (decodeFusedRope on, 64 or 128). */
    public boolean canFuseRope(int hd) { return fusedRope && GpuOps.specialisedHeadDim(hd); }

    /**
     * {@link #ropeQkvRows} followed by {@link #attentionDecodeRows}, in the attention's split pass: row r's raw q/k/v
     * product starts at {@code qkv + r * qkvStride} floats (q at 0, k at {@code kOff}, v at {@code vOff}); positions and
     * slots come from the rows table. Same bits as the two ops.
     */
    public void attentionDecodeRowsRope(DeviceBuffer out, DeviceBuffer qkv, int qkvStride, int kOff, int vOff, DeviceBuffer kv,
                                        int layer, int layers, DeviceBuffer rows, int sec1, int sec2, DeviceBuffer invFreq,
                                        DeviceBuffer qNorm, DeviceBuffer kNorm, float eps, int n, int nq, int nkv, int hd, int splits,
                                        DeviceBuffer workspace, float scale) {
        check("attentionDecodeRowsRope", n, layer, layers, rows, kv);
        new GpuOps.AttnShape(nq, nkv, hd, 1);   // validates heads and head dim
        if (!canFuseRope(hd))
            throw new IllegalStateException("attentionDecodeRowsRope: needs vlmflux.cuda.decodeFusedRope with the 16-byte decode attention and head dim 64 or 128 (got " + hd + ")");
        if (splits <= 0 || splits > GpuOps.MAX_DECODE_SPLITS)
            throw new IllegalArgumentException("attentionDecodeRowsRope: splits " + splits + " outside [1, " + GpuOps.MAX_DECODE_SPLITS + "]");
        GpuOps.checkSections("attentionDecodeRowsRope", sec1, sec2, hd);
        if (kOff < nq * hd || vOff < kOff + nkv * hd || qkvStride < vOff + nkv * hd)
            throw new IllegalArgumentException("attentionDecodeRowsRope: row layout q 0, k " + kOff + ", v " + vOff + ", stride " + qkvStride
                    + " does not hold " + nq + " + 2 x " + nkv + " heads of " + hd);
        out.require(2L * n * nq * hd, "attentionDecodeRowsRope", "out bf16 [n, nq, hd]");
        qkv.require(4L * ((long) (n - 1) * qkvStride + vOff + nkv * hd), "attentionDecodeRowsRope", "qkv fp32 rows");
        invFreq.require(4L * (hd / 2), "attentionDecodeRowsRope", "invFreq fp32 [hd/2]");
        if (qNorm != null) qNorm.require(2L * hd, "attentionDecodeRowsRope", "q norm bf16 [hd]");
        if (kNorm != null) kNorm.require(2L * hd, "attentionDecodeRowsRope", "k norm bf16 [hd]");
        workspace.require(workspaceBytes(n, nq, hd, splits), "attentionDecodeRowsRope", "partials fp32 [n, nq, splits, hd+2]");
        int groups = (nq / nkv + 7) / 8;
        boolean fuseCombine = fusedCombine && (long) n * nkv * groups <= GpuOps.ATTN_TICKETS;
        mod.launch("vf_attn_decode_rows_vr_h" + hd, n * nkv, splits, groups, 128, 0, stream,
                a.reset().ptr(out).ptr(workspace).ptr(qkv).i32(qkvStride).i32(kOff).i32(vOff).ptr(kv).i32(layer).i32(layers).ptr(rows)
                        .i32(sec1).i32(sec2).ptr(invFreq).ptr(qNorm).ptr(kNorm).f32(eps).ptr(fuseCombine ? tickets : null)
                        .i32(nq).i32(nkv).f32(scale));
        if (!fuseCombine)
            mod.launch("vf_attn_decode_rows_combine", n * nq, 1, 1, 128, 0, stream,
                    a.reset().ptr(out).ptr(workspace).ptr(rows).i32(nq).i32(splits).i32(hd));
    }

    /** Most rows {@link #gemvRows} takes. */
    public static final int GEMV_MAX_ROWS = 8;

    /**
     * y fp32 [rows, m] = x bf16 [rows, k] W^T (+ y when {@code accumulate}) (+ bias fp32 [m]); W bf16 [m, k] read once for
     * all rows. 2 <= rows <= {@link #GEMV_MAX_ROWS}, k % 8 == 0, W and x 16-byte aligned.
     */
    public void gemvRows(DeviceBuffer y, DeviceBuffer w, DeviceBuffer x, DeviceBuffer bias, boolean accumulate, int rows, int m, int k) {
        if (rows < 2 || rows > GEMV_MAX_ROWS) throw new IllegalArgumentException("gemvRows: " + rows + " rows outside [2, " + GEMV_MAX_ROWS + "]");
        if (m <= 0 || k <= 0 || k % 8 != 0) throw new IllegalArgumentException("gemvRows: m=" + m + ", k=" + k + " (k must be a positive multiple of 8)");
        y.require(4L * rows * m, "gemvRows", "y fp32 [rows, m]");
        w.require(2L * m * k, "gemvRows", "W bf16 [m, k]");
        x.require(2L * rows * k, "gemvRows", "x bf16 [rows, k]");
        if (bias != null) bias.require(4L * m, "gemvRows", "bias fp32 [m]");
        if (w.address() % 16 != 0 || x.address() % 16 != 0)
            throw new IllegalArgumentException("gemvRows: W '" + w.name() + "' or x '" + x.name() + "' is not 16-byte aligned");
        mod.launch("vf_gemv_rows_b" + rows, (m + 7) / 8, 1, 1, 256, 0, stream,
                a.reset().ptr(y).ptr(w).ptr(x).ptr(bias).i32(accumulate ? 1 : 0).i32(m).i32(k));
    }

    @Override public void close() {
        a.close();
        if (ticketArena != null) ticketArena.close();
    }
}
