package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulAlgo_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerPointer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The products of {@link Blas} with enough rows to be worth it, through cuBLASLt with a timed choice of algorithm
 * (TensorRT's "tactic selection" for the one operation cuBLAS runs for us): the first time a shape is met outside a
 * graph capture, each of the heuristic's candidates (up to {@value #CANDIDATES}, those that fit the workspace) runs on
 * a scratch output and the fastest is kept for the rest of the process — for every handle on the same device, so two
 * decoders or encoders of one process compute the same bits. A shape is (rows rounded up to a power of two, output
 * columns, inner size, output stride, output type, accumulate, a bias in the epilogue or not, the operands'
 * alignments): a prefill of 300 tokens reuses what a prefill of 280 chose (after {@code cublasLtMatmulAlgoCheck} says it
 * applies). Fewer than {@link #MIN_ROWS} rows (decode rows, batched decode in graphs), an untuned shape met while the
 * stream is being captured, or a shape cuBLASLt has no algorithm for stay on cuBLAS's own choice ({@link #matmul}
 * returns false).
 */
final class TunedGemm implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.cuda");
    /** Products with fewer rows keep cuBLAS's own choice. */
    static final int MIN_ROWS = 64;
    static final int CANDIDATES = 16;
    private static final int WARMUP = 2, REPS = 10;
    /** Scratch outputs above this are not allocated: the heuristic's first candidate is taken untimed. */
    private static final long SCRATCH_MAX = 256L << 20;
    private static final int PLANS = 64;

    /** What cuBLASLt's epilogue does after the product: nothing, + bias (fp32 [m]), or GELU (tanh form) of the sum with it. */
    enum Epilogue {
        NONE(cublas.CUBLASLT_EPILOGUE_DEFAULT, ""), BIAS(cublas.CUBLASLT_EPILOGUE_BIAS, " +bias"), GELU_BIAS(cublas.CUBLASLT_EPILOGUE_GELU_BIAS, " gelu(+bias)");

        final int code;
        final String tag;

        Epilogue(int code, String tag) { this.code = code; this.tag = tag; }
    }

    /** A tuned shape. */
    record Key(String device, int bucket, Shape shape) {}

    /** A product but for its row count: out / in features, output stride and type, accumulate, epilogue, operand alignments. */
    record Shape(int m, int k, int ldy, boolean bf16Out, boolean accumulate, Epilogue epilogue, int alignW, int alignX, int alignY) {}

    /**
     * What a shape's tuning chose: the algorithm's 8 words (null: cuBLASLt offered none, cuBLAS's own path), its index
     * among the candidates, times in µs (NaN: untimed).
     */
    record Choice(long[] algo, int index, int candidates, double bestMicros, double firstMicros, int timedRows) {
        String describe() {
            if (algo == null) return "no cuBLASLt algorithm: cuBLAS's own choice";
            if (Double.isNaN(bestMicros)) return "candidate " + index + " of " + candidates + " (untimed)";
            return String.format(java.util.Locale.ROOT, "candidate %d of %d: %.1f us (the heuristic's first: %.1f us, %.2fx) at %d rows",
                    index, candidates, bestMicros, firstMicros, firstMicros / bestMicros, timedRows);
        }
    }

    private static final Map<Key, Choice> CHOSEN = new ConcurrentHashMap<>();

    /** The smallest power of two >= n (n >= 1): shapes whose row counts share it share a tuning. */
    static int bucket(int n) {
        if (n < 1) throw new IllegalArgumentException("rows " + n);
        return n == 1 ? 1 : Integer.highestOneBit(n - 1) << 1;
    }

    /** The alignment an operand at {@code address} has, as cuBLASLt's preferences count it (a power of two, at most 256). */
    static int alignment(long address) {
        long low = Long.lowestOneBit(address);
        return low == 0 || low > 256 ? 256 : (int) low;
    }

    /** Every shape tuned in this process so far, one line each (for benchmark records). */
    static List<String> report() {
        List<String> r = new ArrayList<>();
        CHOSEN.forEach((key, c) -> {
            Shape k = key.shape();
            r.add("rows<=" + key.bucket() + " m=" + k.m() + " k=" + k.k() + (k.ldy() != k.m() ? " ldy=" + k.ldy() : "")
                    + (k.bf16Out() ? " bf16" : " fp32") + (k.accumulate() ? " +=" : "") + k.epilogue().tag + ": " + c.describe());
        });
        r.sort(null);
        return r;
    }

    /** One exact product: its rows and shape. */
    private record PlanKey(int n, Shape s) {}

    /** Layouts of one exact shape and the algorithm it runs. */
    private static final class Plan {
        final cublasLtMatrixLayoutOpaque_t a, b, c;
        cublasLtMatmulAlgo_t algo;   // null until chosen
        boolean viaCublas;           // cuBLASLt offers no algorithm: cuBLAS's own path

        Plan(cublasLtMatrixLayoutOpaque_t a, cublasLtMatrixLayoutOpaque_t b, cublasLtMatrixLayoutOpaque_t c) { this.a = a; this.b = b; this.c = c; }

        void close() {
            cublas.cublasLtMatrixLayoutDestroy(a);
            cublas.cublasLtMatrixLayoutDestroy(b);
            cublas.cublasLtMatrixLayoutDestroy(c);
            if (algo != null) algo.close();
        }
    }

    private final GpuStream stream;
    private final DeviceBuffer workspace;
    private final String device;
    private final cublasLtContext lt = new cublasLtContext();
    private final cublasLtMatmulDescOpaque_t[] descs = new cublasLtMatmulDescOpaque_t[Epilogue.values().length];   // one per epilogue
    private final LongPointer biasAddress = new LongPointer(1);
    private final FloatPointer one = new FloatPointer(1f), zero = new FloatPointer(0f);
    private final Map<PlanKey, Plan> plans = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<PlanKey, Plan> e) {
            if (size() <= PLANS) return false;
            e.getValue().close();
            return true;
        }
    };
    private boolean warnedCapture, closed;

    TunedGemm(GpuStream stream, DeviceBuffer workspace) {
        this.stream = stream;
        this.workspace = workspace;
        this.device = stream.device().ordinal() + ":" + stream.device().name();
        Cuda.checkBlas(cublas.cublasLtCreate(lt), "cublasLtCreate");
        try {
            for (Epilogue e : Epilogue.values()) descs[e.ordinal()] = matmulDesc(e);
        } catch (RuntimeException e) {
            for (cublasLtMatmulDescOpaque_t d : descs) if (d != null) cublas.cublasLtMatmulDescDestroy(d);
            cublas.cublasLtDestroy(lt);
            throw e;
        }
    }

    /** bf16 x bf16 -> fp32 accumulation, A (W) transposed, with this epilogue (its bias fp32 whatever the output type). */
    private static cublasLtMatmulDescOpaque_t matmulDesc(Epilogue epilogue) {
        cublasLtMatmulDescOpaque_t d;
        try (PointerPointer<?> pp = new PointerPointer<>(1)) {
            Cuda.checkBlas(cublas.cublasLtMatmulDescCreate(pp, cublas.CUBLAS_COMPUTE_32F, cudart.CUDA_R_32F), "cublasLtMatmulDescCreate");
            d = new cublasLtMatmulDescOpaque_t(pp.get(0));
        }
        try (IntPointer opT = new IntPointer(new int[] {cublas.CUBLAS_OP_T}); IntPointer ep = new IntPointer(new int[] {epilogue.code});
             IntPointer bt = new IntPointer(new int[] {cudart.CUDA_R_32F})) {
            Cuda.checkBlas(cublas.cublasLtMatmulDescSetAttribute(d, cublas.CUBLASLT_MATMUL_DESC_TRANSA, opT, 4), "cublasLtMatmulDescSetAttribute(TRANSA)");
            Cuda.checkBlas(cublas.cublasLtMatmulDescSetAttribute(d, cublas.CUBLASLT_MATMUL_DESC_EPILOGUE, ep, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)");
            if (epilogue != Epilogue.NONE)
                Cuda.checkBlas(cublas.cublasLtMatmulDescSetAttribute(d, cublas.CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, bt, 4), "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)");
        }
        return d;
    }

    /**
     * Y (bf16 or fp32) [n, ldy] (+)= X bf16 [n, k] W bf16 [m, k]^T (then + bias fp32 [m] in the epilogue, and GELU of
     * that when {@code gelu}), as {@link Blas}'s cuBLAS call would, with the tuned algorithm; false (nothing enqueued)
     * where the product keeps cuBLAS's own choice.
     */
    boolean matmul(DeviceBuffer y, int ldy, boolean bf16Out, DeviceBuffer x, DeviceBuffer w, int n, int m, int k, boolean accumulate,
                   DeviceBuffer bias, boolean gelu) {
        if (closed) throw new IllegalStateException("tuned GEMM closed");
        if (gelu && bias == null) throw new IllegalArgumentException("tuned GEMM: the GELU epilogue takes a bias");
        if (n < MIN_ROWS) return false;
        if (bias != null && bias.address() % 16 != 0) return false;   // the epilogue reads the bias 16 bytes at a time
        int aw = alignment(w.address()), ax = alignment(x.address()), ay = alignment(y.address());
        Epilogue ep = bias == null ? Epilogue.NONE : gelu ? Epilogue.GELU_BIAS : Epilogue.BIAS;
        PlanKey pk = new PlanKey(n, new Shape(m, k, ldy, bf16Out, accumulate, ep, aw, ax, ay));
        Plan p = plans.get(pk);
        if (p == null) {
            p = new Plan(layout(cudart.CUDA_R_16BF, k, m, k), layout(cudart.CUDA_R_16BF, k, n, k),
                    layout(bf16Out ? cudart.CUDA_R_16BF : cudart.CUDA_R_32F, m, n, ldy));
            plans.put(pk, p);
        }
        if (p.viaCublas) return false;
        if (p.algo == null) {
            Key key = new Key(device, bucket(n), pk.s());
            Choice c = CHOSEN.get(key);
            if (c == null) {
                if (stream.capturing()) {   // timing needs the work to run: this capture keeps cuBLAS's own choice
                    if (!warnedCapture) LOG.log(System.Logger.Level.DEBUG, "gemm tuning: untuned shape n=" + n + " m=" + m + " k=" + k
                            + " met in a graph capture keeps cuBLAS's choice (run it once outside a capture first)");
                    warnedCapture = true;
                    return false;
                }
                c = tune(p, pk, x, w, bias);
                Choice won = CHOSEN.putIfAbsent(key, c);
                if (won == null) LOG.log(System.Logger.Level.INFO, "gemm tuning: rows " + n + " (<= " + key.bucket() + ") m=" + m + " k=" + k
                        + (bf16Out ? " bf16 out" : " fp32 out") + (accumulate ? " accumulate" : "") + ep.tag + ": " + c.describe());
                else c = won;
            }
            cublasLtMatmulAlgo_t a = c.algo() == null ? null : algo(c.algo());
            if (a != null && !applies(p, pk, a)) {   // the bucket's choice does not run at this row count: the heuristic's first here
                a.close();
                List<long[]> first = candidates(p, pk, 1);
                a = first.isEmpty() ? null : algo(first.get(0));
            }
            if (a == null) {   // cuBLASLt has nothing for this shape: cuBLAS's own path from now on
                p.viaCublas = true;
                return false;
            }
            p.algo = a;
        }
        int rc = run(p, pk, p.algo, y, x, w, accumulate, bias);
        Cuda.checkBlas(rc, "cublasLtMatmul(bf16 NT" + (bf16Out ? " -> bf16" : "") + ", m=" + m + " n=" + n + " k=" + k + ", W '" + w.name() + "')");
        return true;
    }

    private int run(Plan p, PlanKey pk, cublasLtMatmulAlgo_t algo, DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, boolean accumulate,
                    DeviceBuffer bias) {
        if (pk.s().epilogue() != Epilogue.NONE) {   // the epilogue's bias pointer is read when the call is made (and recorded by a capture)
            biasAddress.put(0, bias.address());
            Cuda.checkBlas(cublas.cublasLtMatmulDescSetAttribute(desc(pk), cublas.CUBLASLT_MATMUL_DESC_BIAS_POINTER, biasAddress, 8),
                    "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
        }
        return cublas.cublasLtMatmul(lt, desc(pk), one, w.pointer(), p.a, x.pointer(), p.b, accumulate ? one : zero,
                y.pointer(), p.c, y.pointer(), p.c, algo, workspace.pointer(), workspace.bytes(), stream.handle());
    }

    private cublasLtMatmulDescOpaque_t desc(PlanKey pk) { return descs[pk.s().epilogue().ordinal()]; }

    private cublasLtMatrixLayoutOpaque_t layout(int type, long rows, long cols, long ld) {
        try (PointerPointer<?> pp = new PointerPointer<>(1)) {
            Cuda.checkBlas(cublas.cublasLtMatrixLayoutCreate(pp, type, rows, cols, ld),
                    "cublasLtMatrixLayoutCreate(" + rows + " x " + cols + ", ld " + ld + ")");
            return new cublasLtMatrixLayoutOpaque_t(pp.get(0));
        }
    }

    private static cublasLtMatmulAlgo_t algo(long[] words) {
        cublasLtMatmulAlgo_t a = new cublasLtMatmulAlgo_t();
        for (int i = 0; i < words.length; i++) a.data(i, words[i]);
        return a;
    }

    private static long[] words(cublasLtMatmulAlgo_t a) {
        long[] w = new long[8];
        for (int i = 0; i < w.length; i++) w[i] = a.data(i);
        return w;
    }

    /** Up to {@code max} candidates for the plan's shape that fit the workspace, in the heuristic's order (best guess first). */
    private List<long[]> candidates(Plan p, PlanKey pk, int max) {
        List<long[]> r = new ArrayList<>();
        cublasLtMatmulPreferenceOpaque_t pref;
        try (PointerPointer<?> pp = new PointerPointer<>(1)) {
            Cuda.checkBlas(cublas.cublasLtMatmulPreferenceCreate(pp), "cublasLtMatmulPreferenceCreate");
            pref = new cublasLtMatmulPreferenceOpaque_t(pp.get(0));
        }
        try (LongPointer wsBytes = new LongPointer(new long[] {workspace.bytes()});
             IntPointer aw = new IntPointer(new int[] {pk.s().alignW()});
             IntPointer ax = new IntPointer(new int[] {pk.s().alignX()});
             IntPointer ay = new IntPointer(new int[] {pk.s().alignY()});
             cublasLtMatmulHeuristicResult_t res = new cublasLtMatmulHeuristicResult_t(max);
             IntPointer count = new IntPointer(1)) {
            Cuda.checkBlas(cublas.cublasLtMatmulPreferenceSetAttribute(pref, cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, wsBytes, 8),
                    "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
            // A is W, B is X, C and D are Y: candidates that need more alignment than the operands have are left out
            Cuda.checkBlas(cublas.cublasLtMatmulPreferenceSetAttribute(pref, cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, aw, 4), "MIN_ALIGNMENT_A");
            Cuda.checkBlas(cublas.cublasLtMatmulPreferenceSetAttribute(pref, cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, ax, 4), "MIN_ALIGNMENT_B");
            Cuda.checkBlas(cublas.cublasLtMatmulPreferenceSetAttribute(pref, cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, ay, 4), "MIN_ALIGNMENT_C");
            Cuda.checkBlas(cublas.cublasLtMatmulPreferenceSetAttribute(pref, cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, ay, 4), "MIN_ALIGNMENT_D");
            int rc = cublas.cublasLtMatmulAlgoGetHeuristic(lt, desc(pk), p.a, p.b, p.c, p.c, pref, max, res, count);
            if (rc != cublas.CUBLAS_STATUS_SUCCESS) return r;   // e.g. NOT_SUPPORTED for this shape: cuBLAS's own path
            for (int i = 0; i < count.get(); i++) {
                cublasLtMatmulHeuristicResult_t ri = res.getPointer(i);
                if (ri.state() == cublas.CUBLAS_STATUS_SUCCESS && ri.workspaceSize() <= workspace.bytes()) r.add(words(ri.algo()));
            }
            return r;
        } finally {
            cublas.cublasLtMatmulPreferenceDestroy(pref);
        }
    }

    /** Whether {@code a} runs this plan's exact shape within the workspace. */
    private boolean applies(Plan p, PlanKey pk, cublasLtMatmulAlgo_t a) {
        try (cublasLtMatmulHeuristicResult_t res = new cublasLtMatmulHeuristicResult_t()) {
            return cublas.cublasLtMatmulAlgoCheck(lt, desc(pk), p.a, p.b, p.c, p.c, a, res) == cublas.CUBLAS_STATUS_SUCCESS
                    && res.workspaceSize() <= workspace.bytes();
        }
    }

    /**
     * Times every candidate for this shape on a scratch output (W and X are only read), {@value #WARMUP} runs then
     * {@value #REPS} timed; a choice without an algorithm where cuBLASLt has no candidate (cuBLAS's own path).
     */
    private Choice tune(Plan p, PlanKey pk, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias) {
        List<long[]> cands = candidates(p, pk, CANDIDATES);
        if (cands.isEmpty()) return new Choice(null, -1, 0, Double.NaN, Double.NaN, pk.n());
        long bytes = (pk.s().bf16Out() ? 2L : 4L) * ((long) (pk.n() - 1) * pk.s().ldy() + pk.s().m());
        if (cands.size() == 1 || bytes > SCRATCH_MAX) return new Choice(cands.get(0), 0, cands.size(), Double.NaN, Double.NaN, pk.n());
        double[] us = new double[cands.size()];
        DeviceArena scratch;
        try {
            scratch = stream.device().newArena("gemm tuning scratch", bytes);
        } catch (CudaException e) {   // no room for a scratch output (a small device): the heuristic's first, untimed
            LOG.log(System.Logger.Level.INFO, "gemm tuning: no " + (bytes >> 20) + " MiB scratch output for n=" + pk.n() + " m=" + pk.s().m()
                    + " k=" + pk.s().k() + " (" + e.getMessage() + "): the heuristic's first candidate, untimed");
            return new Choice(cands.get(0), 0, cands.size(), Double.NaN, Double.NaN, pk.n());
        }
        try (scratch) {
            DeviceBuffer out = scratch.alloc("gemm tuning output [" + pk.n() + ", " + pk.s().ldy() + "]", bytes);
            stream.memsetAsync(out, 0, bytes);
            for (int i = 0; i < cands.size(); i++) {
                us[i] = Double.POSITIVE_INFINITY;
                try (cublasLtMatmulAlgo_t a = algo(cands.get(i))) {
                    if (!applies(p, pk, a)) continue;
                    int rc = 0;
                    for (int r = 0; r < WARMUP && rc == 0; r++) rc = run(p, pk, a, out, x, w, pk.s().accumulate(), bias);
                    if (rc != 0) continue;
                    int[] bad = {0};
                    float ms = stream.time(() -> {
                        for (int r = 0; r < REPS; r++) bad[0] |= run(p, pk, a, out, x, w, pk.s().accumulate(), bias);
                    });
                    if (bad[0] == 0) us[i] = 1000.0 * ms / REPS;
                }
            }
            stream.synchronize();
        }
        int best = 0;
        for (int i = 1; i < us.length; i++) if (us[i] < us[best]) best = i;
        if (Double.isInfinite(us[best])) return new Choice(cands.get(0), 0, cands.size(), Double.NaN, Double.NaN, pk.n());
        return new Choice(cands.get(best), best, cands.size(), us[best], us[0], pk.n());
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (Plan p : plans.values()) p.close();
        plans.clear();
        for (cublasLtMatmulDescOpaque_t d : descs) cublas.cublasLtMatmulDescDestroy(d);
        biasAddress.close();
        cublas.cublasLtDestroy(lt);
        one.close();
        zero.close();
    }
}
