package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;

/**
 * cuBLAS bound to one stream, with a fixed workspace (so GEMMs can be captured in CUDA graphs). Row-major view:
 * {@link #matmulNT} computes Y[n, m] = X[n, k] * W[m, k]^T (+ beta * Y), the shape of every linear layer. With
 * tuning ({@code vlmflux.cuda.gemmTune}) products of {@value TunedGemm#MIN_ROWS} rows or more run through cuBLASLt
 * with the algorithm timed fastest for their shape in this process ({@link TunedGemm}).
 */
public final class Blas implements AutoCloseable {
    private final cublasContext handle = new cublasContext();
    private final FloatPointer one = new FloatPointer(1f);
    private final FloatPointer zero = new FloatPointer(0f);
    private final TunedGemm tuned;
    private boolean closed;

    /** {@code workspace} (e.g. 32 MiB from an arena) must outlive this handle. cuBLAS's own algorithm choice. */
    public Blas(GpuStream stream, DeviceBuffer workspace) {
        this(stream, workspace, false);
    }

    /**
     * {@code workspace} (e.g. 32 MiB from an arena) must outlive this handle; {@code tune}: products of
     * {@value TunedGemm#MIN_ROWS} rows or more take the algorithm timed fastest for their shape (the first such product
     * of a shape, outside a graph capture, times the candidates; {@link #tuningReport()}).
     */
    public Blas(GpuStream stream, DeviceBuffer workspace, boolean tune) {
        stream.device().makeCurrent();
        Cuda.checkBlas(cublas.cublasCreate_v2(handle), "cublasCreate");
        Cuda.checkBlas(cublas.cublasSetStream_v2(handle, stream.handle()), "cublasSetStream");
        Cuda.checkBlas(cublas.cublasSetWorkspace_v2(handle, workspace.pointer(), workspace.bytes()), "cublasSetWorkspace");
        Cuda.checkBlas(cublas.cublasSetMathMode(handle, cublas.CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
        TunedGemm t = null;
        if (tune) {
            try {
                t = new TunedGemm(stream, workspace);
            } catch (RuntimeException | LinkageError e) {   // no usable cuBLASLt: cuBLAS's own choice, said once per handle
                System.getLogger("vlmflux.cuda").log(System.Logger.Level.WARNING,
                        "vlmflux.cuda.gemmTune: cuBLASLt is not usable here (" + e + "); cuBLAS chooses the algorithms");
            }
        }
        this.tuned = t;
    }

    /** Whether products of enough rows take a timed algorithm choice. */
    public boolean tunes() { return tuned != null; }

    /** Every shape whose algorithm this process chose by timing, one line each: the choice and what it saved. */
    public static java.util.List<String> tuningReport() { return TunedGemm.report(); }

    /**
     * Y = X W^T (+ Y when accumulate): X bf16 [n, k], W bf16 [m, k] (row-major, as stored in checkpoints),
     * Y fp32 [n, m]; fp32 accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F).
     */
    public void matmulNT(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, int n, int m, int k, boolean accumulate) {
        gemmNT("matmulNT", y, m, false, x, w, n, m, k, accumulate);
    }

    /**
     * As {@link #matmulNT} into columns of a wider Y: Y fp32 [n, ldy] whose first m columns (from {@code y}'s start)
     * are written, the rest untouched (ldy >= m): a slice of W's rows updates the matching slice of Y's columns.
     */
    public void matmulNT(DeviceBuffer y, int ldy, DeviceBuffer x, DeviceBuffer w, int n, int m, int k, boolean accumulate) {
        if (ldy < m) throw new IllegalArgumentException("matmulNT: ldy " + ldy + " < m " + m);
        gemmNT("matmulNT", y, ldy, false, x, w, n, m, k, accumulate);
    }

    /**
     * Y = X W^T with Y bf16 [n, m] (fp32 accumulation, one rounding at the store): for products whose output is only
     * read by an elementwise kernel (a prefill's gate/up), half the bytes of {@link #matmulNT}'s fp32 output.
     */
    public void matmulNTbf16(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, int n, int m, int k) {
        gemmNT("matmulNTbf16", y, m, true, x, w, n, m, k, false);
    }

    /**
     * Y fp32 [n, m] = X W^T + bias (+ Y when accumulate; bias fp32 [m], or none when null) in one cuBLASLt call, the bias
     * added in its epilogue — e.g. a residual stream updated by a linear layer without a separate add — where this handle
     * tunes and cuBLASLt takes the product (see {@link TunedGemm}); false, with nothing enqueued, otherwise (the caller
     * computes it its own way).
     */
    public boolean matmulNTBias(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, int n, int m, int k, boolean accumulate) {
        if (tuned == null) return false;
        requireOperands("matmulNTBias", y, m, false, x, w, bias, n, m, k);
        return tuned.matmul(y, m, false, x, w, n, m, k, accumulate, bias, false);
    }

    /**
     * Y bf16 [n, m] = GELU(X W^T + bias) (the tanh form, {@code gelu_pytorch_tanh}; bias fp32 [m]) in one cuBLASLt call,
     * the bias and the activation in its epilogue, rounded to bf16 once — an MLP's first product — where this handle
     * tunes and cuBLASLt takes the product; false, with nothing enqueued, otherwise.
     */
    public boolean matmulNTbf16BiasGelu(DeviceBuffer y, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, int n, int m, int k) {
        if (tuned == null) return false;
        if (bias == null) throw new IllegalArgumentException("matmulNTbf16BiasGelu: no bias");
        requireOperands("matmulNTbf16BiasGelu", y, m, true, x, w, bias, n, m, k);
        return tuned.matmul(y, m, true, x, w, n, m, k, false, bias, true);
    }

    /** Y (fp32, or bf16 when {@code bf16Out}) = X W^T (+ Y): cublasGemmEx, bf16 inputs, fp32 accumulation. */
    private void gemmNT(String op, DeviceBuffer y, int ldy, boolean bf16Out, DeviceBuffer x, DeviceBuffer w, int n, int m, int k, boolean accumulate) {
        requireOperands(op, y, ldy, bf16Out, x, w, null, n, m, k);
        if (tuned != null && tuned.matmul(y, ldy, bf16Out, x, w, n, m, k, accumulate, null, false)) return;
        // Column-major: Y^T[m, n] = W[m, k] * X^T[k, n]; W row-major is W^T column-major (lda = k).
        int rc = cublas.cublasGemmEx(handle, cublas.CUBLAS_OP_T, cublas.CUBLAS_OP_N, m, n, k, one,
                w.pointer(), cudart.CUDA_R_16BF, k, x.pointer(), cudart.CUDA_R_16BF, k,
                accumulate ? one : zero, y.pointer(), bf16Out ? cudart.CUDA_R_16BF : cudart.CUDA_R_32F, ldy,
                cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT);
        Cuda.checkBlas(rc, "cublasGemmEx(bf16 NT" + (bf16Out ? " -> bf16" : "") + ", m=" + m + " n=" + n + " k=" + k + ", W '" + w.name() + "')");
    }

    /** Every product's checks: a positive shape, X bf16 [n, k], W bf16 [m, k], Y [n, ldy] of its type, bias fp32 [m]. */
    private static void requireOperands(String op, DeviceBuffer y, int ldy, boolean bf16Out, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias,
                                        int n, int m, int k) {
        if (n <= 0 || m <= 0 || k <= 0) throw new IllegalArgumentException(op + ": bad shape n=" + n + " m=" + m + " k=" + k);
        x.require(2L * n * k, op, "X bf16 [" + n + ", " + k + "]");
        w.require(2L * m * k, op, "W bf16 [" + m + ", " + k + "]");
        y.require((bf16Out ? 2L : 4L) * ((long) (n - 1) * ldy + m), op, "Y " + (bf16Out ? "bf16" : "fp32") + " [" + n + ", " + ldy + "]");
        if (bias != null) bias.require(4L * m, op, "bias fp32 [" + m + "]");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (tuned != null) tuned.close();
        cublas.cublasDestroy_v2(handle);
        one.close();
        zero.close();
    }
}
