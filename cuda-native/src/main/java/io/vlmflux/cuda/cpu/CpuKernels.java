package io.vlmflux.cuda.cpu;

import java.lang.foreign.MemorySegment;

/**
 * The innermost loops of the CPU backend, in two implementations chosen once at class-init time by {@link #INSTANCE}:
 * {@link VectorKernels} (the {@code jdk.incubator.vector} module, when the runtime has it: run with
 * {@code --add-modules jdk.incubator.vector}) and {@link ScalarKernels} (plain Java, always available). Nothing outside
 * {@code VectorKernels} names a Vector-API class, so a runtime without the module never loads one. System property
 * {@code vlmflux.cpu.simd=false} forces the scalar path.
 *
 * <p>bf16 matmuls take the input in a kernel-specific "prepared" layout ({@link #prepareBf16}) made once per call
 * and shared by all rows: the vector path de-interleaves each block of {@link #bf16Block()} values into even and odd
 * halves so that a bf16 pair loaded as one int widens with a shift and a mask, with no cross-lane shuffles.
 */
interface CpuKernels {
    CpuKernels INSTANCE = Select.choose();

    String describe();

    /** {@code sum a[aOff+i] * b[bOff+i]}, {@code i < n}. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** {@code y[yOff+i] += a * x[xOff+i]}. */
    void axpy(float[] y, int yOff, float a, float[] x, int xOff, int n);

    /** {@code sum x[off+i]^2}. */
    float sumSquares(float[] x, int off, int n);

    /** {@code out[outOff+i] = w[i] * (x[xOff+i] * s)}. */
    void scaleMul(float[] out, int outOff, float[] x, int xOff, float s, float[] w, int n);

    /** {@code g[off+i] = silu(g[off+i]) * u[off+i]}. */
    void siluMul(float[] g, float[] u, int off, int n);

    /** {@code a[off+i] += b[off+i]}. */
    void add(float[] a, float[] b, int off, int n);

    /** Width of the de-interleaved blocks of a prepared bf16 input; 0 when the input is used as is. */
    int bf16Block();

    /** Writes {@code x[xOff .. xOff+cols)} to {@code dst[dstOff..]} in the prepared layout. */
    void prepareBf16(float[] x, int xOff, float[] dst, int dstOff, int cols);

    /**
     * For rows {@code r in [rLo, rHi)} of a row-major bf16 matrix {@code w [*, cols]} and inputs {@code t < n} of
     * the prepared {@code xp [n, cols]}: {@code out[t*outStride + outOff + r] = dot(w[r], x[t]) + (bias ? bias[r] : 0)}.
     */
    void rowsBf16(MemorySegment w, int cols, int rLo, int rHi, float[] xp, int n, float[] out, int outStride, int outOff, float[] bias);

    /** As {@link #rowsBf16} for an f32 matrix in a (native) segment, with the plain input {@code x [n, cols]}. */
    void rowsF32(MemorySegment w, int cols, int rLo, int rHi, float[] x, int n, float[] out, int outStride, int outOff, float[] bias);

    /** As {@link #rowsF32} for an f32 matrix in a heap array. */
    void rowsF32(float[] w, int cols, int rLo, int rHi, float[] x, int n, float[] out, int outStride, int outOff, float[] bias);

    /**
     * Transposed-weight linear for tokens {@code [t0, t0+cnt)}: {@code y[t, r] = b[r] + sum_c x[t, c] * wt[c, r]} with
     * {@code wt [in, out]}, {@code x [*, in]}, {@code y [*, out]}; bias may be null.
     */
    void linearTransposed(float[] y, float[] x, int t0, int cnt, float[] wt, int in, int out, float[] bias);

    /**
     * INT4 rows {@code [rLo, rHi)} of {@code w} against inputs prepared by {@link Int4Weights#prepare} ({@code xp [n, cols]},
     * {@code xsum [n, groups]}): {@code out[t*outStride + r] = sum_c w[r, c] x[t, c] + (bias ? bias[r] : 0)}.
     */
    void rowsInt4(Int4Weights w, int rLo, int rHi, float[] xp, float[] xsum, int n, float[] out, int outStride, float[] bias);

    /** The widest prepared int4 layout ({@link Int4Weights#lanes()}) this implementation runs fast: 16, 8 or 4. */
    default int int4Lanes() { return 8; }

    /** Picks the implementation once and logs which. */
    final class Select {
        private Select() {}

        static CpuKernels choose() {
            System.Logger log = System.getLogger("vlmflux.cpu");
            boolean wanted = io.vlmflux.cuda.Tuning.process().cpuSimd();
            boolean present = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
            CpuKernels k;
            String why;
            if (!wanted) { k = new ScalarKernels(); why = "vlmflux.cpu.simd=false"; }
            else if (!present) { k = new ScalarKernels(); why = "module jdk.incubator.vector not in the runtime (add --add-modules jdk.incubator.vector)"; }
            else {
                try {
                    k = (CpuKernels) Class.forName("io.vlmflux.cuda.cpu.VectorKernels").getDeclaredConstructor().newInstance();
                    why = "jdk.incubator.vector present";
                } catch (ReflectiveOperationException | LinkageError e) {
                    k = new ScalarKernels();
                    why = "Vector API failed to initialise: " + e;
                }
            }
            log.log(System.Logger.Level.INFO, "CPU kernels: {0} ({1})", k.describe(), why);
            return k;
        }
    }
}
