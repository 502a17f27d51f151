package io.vlmflux.cuda.gpu;

import io.vlmflux.cuda.Tuning;

/**
 * Launchers for the W4A16 kernels of {@code int4.cu}, bound to one stream: the decode GEMV (1..{@link #MAX_ROWS} rows,
 * dequantization fused into the weight loads, graph-capturable) and the prefill dequantization to a bf16 scratch
 * matrix that feeds cuBLAS. Act-order weights gather their input through the permutation (one copy per permutation
 * part of a fused matrix, {@link Int4Device.Layout#partStarts()}) into a scratch buffer owned here (sized at
 * construction for inputs of up to {@code maxCols} columns and {@link Int4Device#MAX_PERM_PARTS} parts, so nothing is
 * allocated while capturing); the GEMV's row blocks read the copy of their part, all in one launch (one gather and one
 * GEMV per fused matrix, as with one permutation). Matrices whose groups span whole 128-column blocks and whose zero
 * points are integers ({@link Int4Device#mmaShape()}, every published format) take the tensor-core GEMV
 * ({@link Tuning#int4Mma()}); stored in tiles ({@link Int4Device#tiled()}, {@link Tuning#int4Tiled()}) they take its
 * tiled form, whatever this launcher's tuning; with {@link Tuning#int4Ring()} on a module with native sm_90+ code, the
 * ring form ({@code vf_int4_gemv_ring}: each warp's stripes of 16 rows streamed through shared memory by bulk copies).
 * Not thread-safe: the stream's thread.
 */
public final class Int4Ops implements AutoCloseable {
    /** Most rows the GEMV takes (batched decode); more rows go through {@link #dequantize} and a GEMM. */
    public static final int MAX_ROWS = 8;
    private static final int ROWS_PER_BLOCK = 8 * 2;   // VF_INT4_WARPS * VF_INT4_ROWS
    private static final int MMA_MAX_WARPS = 16;        // VF_INT4M_MAX_WARPS

    private final GpuStream stream;
    private final KernelModule mod;
    private final LaunchArgs a = new LaunchArgs();
    private final int maxCols;
    private final boolean mma;   // Tuning.int4Mma: vf_int4_gemv_mma where the matrix allows it (Int4Device.mmaShape)
    private final boolean pdl;   // Tuning.pdl on a module with the PDL prologue
    private final boolean persistent;   // Tuning.int4Persistent: the tensor-core GEMV's resident-block form
    private final String mmaKernel, mmaTiledKernel;   // the tensor-core GEMV's entries for row-major and tiled q (by persistent)
    private final int smCount;
    /** The ring GEMV's launch: warps a block, and its dynamic shared memory (int4.cu int4r_smem_bytes(W, 4, 4)). */
    static final int RING_WARPS = 8, RING_SMEM = RING_WARPS * (4 * 4 * 1024 + 4 * 8);
    /** The ring GEMV's forms: a warp a stripe, and a block a stripe with K split over its warps (int4.cu SPLIT). */
    static final String RING = "vf_int4_gemv_ring", RING_SPLIT = "vf_int4_gemv_ring_s";
    private final int ringBlocks, ringSplitBlocks;   // resident blocks of each form on the device, 0: the ring form is off
    private String ringOnly;   // tests: this form for every tiled matrix (null: by stripes, ringKernel)
    private final int[][] persistentBlocksPerSm = new int[2][MMA_MAX_WARPS + 1];   // [row-major, tiled][warps a block]; 0: not asked yet
    private DeviceArena gatherArena;
    private DeviceBuffer gathered;

    /** With the system properties' tuning ({@link Tuning#fromSystemProperties()}). */
    public Int4Ops(GpuStream stream, int maxCols) {
        this(stream, maxCols, Tuning.fromSystemProperties());
    }

    public Int4Ops(GpuStream stream, int maxCols, Tuning tuning) {
        this.stream = stream;
        this.mod = stream.device().kernels();
        this.maxCols = maxCols;
        this.mma = tuning.int4Mma();
        this.pdl = tuning.pdl() && mod.pdlCapable();
        this.persistent = tuning.int4Persistent();
        this.mmaKernel = persistent ? "vf_int4_gemv_mma_p4" : "vf_int4_gemv_mma";
        this.mmaTiledKernel = persistent ? "vf_int4_gemv_mma_t_p4" : "vf_int4_gemv_mma_t";
        this.smCount = stream.device().multiProcessorCount();
        int rb = 0, rs = 0;
        if (tuning.int4Ring() && mod.pdlCapable()) {   // native sm_90+ code: the bulk copies exist (the kernels trap below sm_90)
            try {
                mod.maxDynamicShared(RING, RING_SMEM);   // here, not while a graph captures
                mod.maxDynamicShared(RING_SPLIT, RING_SMEM);
                rb = mod.activeBlocksPerSm(RING, 32 * RING_WARPS, RING_SMEM) * smCount;
                rs = mod.activeBlocksPerSm(RING_SPLIT, 32 * RING_WARPS, RING_SMEM) * smCount;
            } catch (CudaException e) {   // a device without the shared memory: the tensor-core GEMV, said once a launcher
                System.getLogger("vlmflux.cuda").log(System.Logger.Level.WARNING,
                        "vlmflux.cuda.int4Ring: the ring GEMV does not fit this device (" + e.getMessage() + "); the tensor-core GEMV instead");
            }
            if (rb == 0 || rs == 0) rb = rs = 0;
        }
        this.ringBlocks = rb;
        this.ringSplitBlocks = rs;
    }

    /**
     * The ring form for a matrix of {@code stripes} 16-row stripes: a warp a stripe where there are at least two for
     * every resident warp (7B gate/up), else a block a stripe with K split over its warps (q/k/v, o, down; one warp
     * walking a whole stripe alone is bound by its own dependent products).
     */
    String ringKernel(int stripes) {
        if (ringOnly != null) return ringOnly;
        return stripes >= 2L * ringBlocks * RING_WARPS ? RING : RING_SPLIT;
    }

    /** Tests: every tiled matrix takes ring form {@code name} ({@link #RING} or {@link #RING_SPLIT}; null: by shape). */
    void ringOnly(String name) { ringOnly = name; }

    /** Whether tiled matrices take the ring GEMV here ({@link Tuning#int4Ring()} on a device and module that have it). */
    public boolean ring() { return ringBlocks > 0; }

    /** Allocates the act-order gather scratch now (call before capturing graphs when any weight is act-order). */
    public void reserveGather() {
        if (gathered == null) {
            long bytes = 2L * Int4Device.MAX_PERM_PARTS * MAX_ROWS * maxCols;
            gatherArena = stream.device().newArena("int4 act-order gather", bytes + 512);
            gathered = gatherArena.alloc("int4 gathered x bf16 [" + Int4Device.MAX_PERM_PARTS + ", " + MAX_ROWS + ", " + maxCols + "]", bytes);
        }
    }

    /**
     * y fp32 [rows, ldy] = x bf16 [rows, ldx] W^T (+ bias fp32 [m]) (+ residual fp32 [rows, ldy], may alias y), W = w
     * dequantized, m = w.rows(), k = w.cols(); 1 <= rows <= {@link #MAX_ROWS}; x 16-byte aligned, ldx % 8 == 0.
     */
    public void gemv(DeviceBuffer y, int ldy, Int4Device w, DeviceBuffer x, int ldx, DeviceBuffer bias, DeviceBuffer residual, int rows) {
        int m = w.rows(), k = w.cols();
        String op = "int4 gemv (" + w.layout().name() + ")";
        if (rows < 1 || rows > MAX_ROWS) throw new IllegalArgumentException(op + ": " + rows + " rows outside [1, " + MAX_ROWS + "]");
        if (ldy < m || ldx < k || ldx % 8 != 0) throw new IllegalArgumentException(op + ": ldy " + ldy + " < m " + m + " or ldx " + ldx + " < k " + k + " / not a multiple of 8");
        if (x.address() % 16 != 0) throw new IllegalArgumentException(op + ": x '" + x.name() + "' is not 16-byte aligned");
        y.require(4L * ((long) (rows - 1) * ldy + m), op, "y fp32 [rows, ldy]");
        x.require(2L * ((long) (rows - 1) * ldx + k), op, "x bf16 [rows, ldx]");
        if (bias != null) bias.require(4L * m, op, "bias fp32 [m]");
        if (residual != null) residual.require(4L * ((long) (rows - 1) * ldy + m), op, "residual fp32 [rows, ldy]");
        DeviceBuffer in = x;
        int ld = ldx;
        long xps = 0;   // elements between the gathered copies of the permutation parts
        if (w.perm() != null) {
            int parts = w.layout().permParts();
            if (k > maxCols) throw new IllegalArgumentException(op + ": k " + k + " > the gather scratch's " + maxCols + " columns");
            if (parts > Int4Device.MAX_PERM_PARTS) throw new IllegalArgumentException(op + ": " + parts + " permutation parts > " + Int4Device.MAX_PERM_PARTS);
            reserveGather();
            mod.launch("vf_int4_gather_rows", (k + 255) / 256, rows, parts, 256, 0, stream,
                    a.reset().ptr(gathered).ptr(x).i32(ldx).ptr(w.perm()).i32(k));
            in = gathered;
            ld = k;
            if (parts > 1) xps = (long) rows * k;
        }
        // tensor cores: 16 rows a block, K split over its warps; a tiled matrix (Int4Device) always takes the tiled
        // form (its warp's 16 x 128 block is 1 KB of contiguous memory), whatever this launcher's tuning
        if (w.tiled() && ringBlocks > 0) {   // (RING: warp w of block b takes stripe w * grid + b first, so few stripes spread over every SM)
            int stripes = (m + 15) / 16;
            String name = ringKernel(stripes);
            int grid = Math.min(name.equals(RING) ? ringBlocks : ringSplitBlocks, stripes);
            mod.launch(name, grid, 1, 1, 32 * RING_WARPS, RING_SMEM, stream,
                    a.reset().ptr(y).i32(ldy).ptr(w.q()).ptr(w.sz()).ptr(in).i32(ld).ptr(bias).ptr(residual).i32(m).i32(k)
                            .i32(w.layout().groupSize()).i32(rows), pdl);
            return;
        }
        if (w.tiled() || (xps == 0 && mma && w.mmaShape())) {
            int warps = mmaWarps(k), tiles = (m + 15) / 16;
            String name = w.tiled() ? mmaTiledKernel : mmaKernel;
            int grid = persistent ? persistentGrid(name, w.tiled(), warps, tiles) : tiles;
            mod.launch(name, grid, 1, 1, 32 * warps, 0, stream,
                    a.reset().ptr(y).i32(ldy).ptr(w.q()).ptr(w.sz()).ptr(in).i32(ld).ptr(bias).ptr(residual).i32(m).i32(k)
                            .i32(w.layout().groupSize()).i32(rows), pdl);
            return;
        }
        int blocks = (m + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
        if (xps == 0) {
            mod.launch("vf_int4_gemv_b" + rows, blocks, 1, 1, 256, 0, stream,
                    a.reset().ptr(y).i32(ldy).ptr(w.q()).ptr(w.sz()).ptr(in).i32(ld).ptr(bias).ptr(residual).i32(m).i32(k)
                            .i32(w.layout().groupSize()));
        } else {   // parts with their own permutations: each row reads its part's gathered copy
            int[] s = partStarts(w.layout());
            mod.launch("vf_int4_gemv_parts_b" + rows, blocks, 1, 1, 256, 0, stream,
                    a.reset().ptr(y).i32(ldy).ptr(w.q()).ptr(w.sz()).ptr(in).i32(ld).i64(xps).i32(s[0]).i32(s[1]).i32(s[2])
                            .ptr(bias).ptr(residual).i32(m).i32(k).i32(w.layout().groupSize()));
        }
    }

    /**
     * Blocks of the persistent GEMV {@code name} (int4.cu int4p_gemv) at {@code warps} a block: as many as the SMs hold
     * at once, at most one a tile (the occupancy asked once for each form and warp count).
     */
    private int persistentGrid(String name, boolean tiled, int warps, int tiles) {
        int[] perSm = persistentBlocksPerSm[tiled ? 1 : 0];
        if (perSm[warps] == 0) perSm[warps] = Math.max(1, mod.activeBlocksPerSm(name, 32 * warps, 0));
        return Math.min(tiles, perSm[warps] * smCount);
    }

    /**
     * Warps a block of {@code vf_int4_gemv_mma} splits {@code k} columns over: about one round of its 4 blocks of 128
     * columns each (the product kernel's depth), between 4 and 16 (VF_INT4M_MAX_WARPS): a long K gets more warps in flight, not more
     * dependent rounds; a short one leaves warps idle (their sums are zero).
     */
    static int mmaWarps(int k) {
        return Math.clamp((k / 128 + 3) / 4, 4, 16);
    }

    /** First rows of permutation parts 1..3 as the kernels take them (s1, s2, s3; the row count for absent parts). */
    static int[] partStarts(Int4Device.Layout l) {
        int[] ps = l.partStarts();
        int[] s = new int[Int4Device.MAX_PERM_PARTS - 1];
        for (int i = 0; i < s.length; i++) s[i] = l.perm() != null && i + 1 < ps.length ? ps[i + 1] : l.rows();
        return s;
    }

    /** out bf16 [m, k] = w dequantized, input columns in checkpoint order (prefill: feeds a bf16 GEMM). */
    public void dequantize(DeviceBuffer out, Int4Device w) {
        int m = w.rows(), k = w.cols();
        String op = "int4 dequantize (" + w.layout().name() + ")";
        out.require(2L * m * k, op, "W bf16 [" + m + ", " + k + "]");
        if (out.address() % 16 != 0) throw new IllegalArgumentException(op + ": out '" + out.name() + "' is not 16-byte aligned");
        if (w.perm() == null) {
            dequantX4(out, w, w.q(), w.sz(), m);
            return;
        }
        long words = (long) m * (k / 8);   // act-order: one word a thread, scattered through its part's permutation
        int[] s = partStarts(w.layout());
        mod.launch(w.tiled() ? "vf_int4_dequant_bf16_t" : "vf_int4_dequant_bf16", Math.toIntExact((words + 255) / 256), 1, 1, 256, 0, stream,
                a.reset().ptr(out).ptr(w.q()).ptr(w.sz()).ptr(w.perm()).i32(s[0]).i32(s[1]).i32(s[2]).i32(m).i32(k).i32(w.layout().groupSize()));
    }

    /**
     * Rows [r0, r1) of w dequantized to bf16 [r1 - r0, k] into {@code out} (as {@link #dequantize} for those rows): a
     * matrix without act-order permutation; tiled matrices take whole 16-row stripes (r0 % 16 == 0). For a prefill that
     * dequantizes a matrix in slices small enough to stay in L2 until their GEMM reads them.
     */
    public void dequantizeRows(DeviceBuffer out, Int4Device w, int r0, int r1) {
        int m = w.rows(), k = w.cols(), n = r1 - r0, g = k / w.layout().groupSize();
        String op = "int4 dequantize rows [" + r0 + ", " + r1 + ") (" + w.layout().name() + ")";
        if (r0 < 0 || r1 > m || n <= 0) throw new IllegalArgumentException(op + ": outside [0, " + m + ")");
        if (w.perm() != null) throw new IllegalArgumentException(op + ": act-order matrices dequantize whole (dequantize)");
        if (w.tiled() && r0 % 16 != 0) throw new IllegalArgumentException(op + ": a tiled matrix's slice starts on a 16-row stripe");
        out.require(2L * n * k, op, "W bf16 [" + n + ", " + k + "]");
        if (out.address() % 16 != 0) throw new IllegalArgumentException(op + ": out '" + out.name() + "' is not 16-byte aligned");
        long qOff = 4L * r0 * (k / 8), szOff = 4L * r0 * g;   // tiled: stripe r0 / 16 starts at word (r0 / 16) * 16 * (k / 8)
        dequantX4(out, w, w.q().slice(qOff, w.q().bytes() - qOff, "rows " + r0 + ".. of " + w.q().name()),
                w.sz().slice(szOff, w.sz().bytes() - szOff, "rows " + r0 + ".. of " + w.sz().name()), n);
    }

    /** The first {@code rows} rows of w's words q and scales sz (no permutation) to bf16: four packed words a thread, 32 apart. */
    private void dequantX4(DeviceBuffer out, Int4Device w, DeviceBuffer q, DeviceBuffer sz, int rows) {
        int k = w.cols();
        long words = (long) rows * (k / 8);
        mod.launch(w.tiled() ? "vf_int4_dequant_bf16_x4_t" : "vf_int4_dequant_bf16_x4", Math.toIntExact((words + 1023) / 1024), 1, 1, 256, 0, stream,
                a.reset().ptr(out).ptr(q).ptr(sz).i32(rows).i32(k).i32(w.layout().groupSize()));
    }

    @Override public void close() {
        a.close();
        if (gatherArena != null) gatherArena.close();
    }
}
