package io.vlmflux.cuda.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Plain-Java {@link CpuKernels}: the fallback for runtimes without {@code jdk.incubator.vector}. */
final class ScalarKernels implements CpuKernels {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    @Override public String describe() { return "scalar Java"; }

    @Override public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 3 < n; i += 4) {
            s0 += a[aOff + i] * b[bOff + i];
            s1 += a[aOff + i + 1] * b[bOff + i + 1];
            s2 += a[aOff + i + 2] * b[bOff + i + 2];
            s3 += a[aOff + i + 3] * b[bOff + i + 3];
        }
        for (; i < n; i++) s0 += a[aOff + i] * b[bOff + i];
        return (s0 + s1) + (s2 + s3);
    }

    @Override public void axpy(float[] y, int yOff, float a, float[] x, int xOff, int n) {
        for (int i = 0; i < n; i++) y[yOff + i] += a * x[xOff + i];
    }

    @Override public float sumSquares(float[] x, int off, int n) {
        float s = 0;
        for (int i = 0; i < n; i++) { float v = x[off + i]; s += v * v; }
        return s;
    }

    @Override public void scaleMul(float[] out, int outOff, float[] x, int xOff, float s, float[] w, int n) {
        for (int i = 0; i < n; i++) out[outOff + i] = w[i] * (x[xOff + i] * s);
    }

    @Override public void siluMul(float[] g, float[] u, int off, int n) {
        for (int i = off; i < off + n; i++) g[i] = CpuOps.silu(g[i]) * u[i];
    }

    @Override public void add(float[] a, float[] b, int off, int n) {
        for (int i = off; i < off + n; i++) a[i] += b[i];
    }

    @Override public int bf16Block() { return 0; }

    @Override public void prepareBf16(float[] x, int xOff, float[] dst, int dstOff, int cols) {
        System.arraycopy(x, xOff, dst, dstOff, cols);
    }

    @Override public void rowsBf16(MemorySegment w, int cols, int rLo, int rHi, float[] xp, int n, float[] out, int outStride, int outOff, float[] bias) {
        for (int r = rLo; r < rHi; r++) {
            long base = (long) r * cols * 2;
            float b = bias == null ? 0f : bias[r];
            for (int t = 0; t < n; t++) {
                int xo = t * cols;
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                int i = 0;
                for (; i + 3 < cols; i += 4) {
                    long o = base + 2L * i;
                    s0 += Float.intBitsToFloat(w.get(SHORT, o) << 16) * xp[xo + i];
                    s1 += Float.intBitsToFloat(w.get(SHORT, o + 2) << 16) * xp[xo + i + 1];
                    s2 += Float.intBitsToFloat(w.get(SHORT, o + 4) << 16) * xp[xo + i + 2];
                    s3 += Float.intBitsToFloat(w.get(SHORT, o + 6) << 16) * xp[xo + i + 3];
                }
                for (; i < cols; i++) s0 += Float.intBitsToFloat(w.get(SHORT, base + 2L * i) << 16) * xp[xo + i];
                out[t * outStride + outOff + r] = (s0 + s1) + (s2 + s3) + b;
            }
        }
    }

    @Override public void rowsF32(MemorySegment w, int cols, int rLo, int rHi, float[] x, int n, float[] out, int outStride, int outOff, float[] bias) {
        for (int r = rLo; r < rHi; r++) {
            long base = (long) r * cols * 4;
            float b = bias == null ? 0f : bias[r];
            for (int t = 0; t < n; t++) {
                int xo = t * cols;
                float s0 = 0, s1 = 0;
                int i = 0;
                for (; i + 1 < cols; i += 2) {
                    s0 += w.get(FLOAT, base + 4L * i) * x[xo + i];
                    s1 += w.get(FLOAT, base + 4L * i + 4) * x[xo + i + 1];
                }
                for (; i < cols; i++) s0 += w.get(FLOAT, base + 4L * i) * x[xo + i];
                out[t * outStride + outOff + r] = s0 + s1 + b;
            }
        }
    }

    @Override public void rowsF32(float[] w, int cols, int rLo, int rHi, float[] x, int n, float[] out, int outStride, int outOff, float[] bias) {
        for (int r = rLo; r < rHi; r++) {
            float b = bias == null ? 0f : bias[r];
            for (int t = 0; t < n; t++) out[t * outStride + outOff + r] = dot(w, r * cols, x, t * cols, cols) + b;
        }
    }

    @Override public void linearTransposed(float[] y, float[] x, int t0, int cnt, float[] wt, int in, int out, float[] bias) {
        for (int t = t0; t < t0 + cnt; t++) {
            if (bias != null) System.arraycopy(bias, 0, y, t * out, out);
            else java.util.Arrays.fill(y, t * out, (t + 1) * out, 0f);
        }
        int t = t0;
        for (; t + 3 < t0 + cnt; t += 4) {
            // four tokens share each weight row: a quarter of the weight traffic
            int y0 = t * out, y1 = y0 + out, y2 = y1 + out, y3 = y2 + out;
            int x0 = t * in, x1 = x0 + in, x2 = x1 + in, x3 = x2 + in;
            for (int c = 0; c < in; c++) {
                float a0 = x[x0 + c], a1 = x[x1 + c], a2 = x[x2 + c], a3 = x[x3 + c];
                int wo = c * out;
                for (int r = 0; r < out; r++) {
                    float wv = wt[wo + r];
                    y[y0 + r] += a0 * wv;
                    y[y1 + r] += a1 * wv;
                    y[y2 + r] += a2 * wv;
                    y[y3 + r] += a3 * wv;
                }
            }
        }
        for (; t < t0 + cnt; t++) {
            int yo = t * out, xo = t * in;
            for (int c = 0; c < in; c++) axpy(y, yo, x[xo + c], wt, c * out, out);
        }
    }

    @Override public void rowsInt4(Int4Weights w, int rLo, int rHi, float[] xp, float[] xsum, int n, float[] out, int outStride, float[] bias) {
        int cols = w.cols(), groups = w.groups(), per = cols / 8, lanes = w.lanes();
        int[] packed = w.packed, gs = w.groupStart;
        for (int r = rLo; r < rHi; r++) {
            float b = bias == null ? 0f : bias[r];
            for (int t = 0; t < n; t++) {
                int xo = t * cols;
                float acc = 0;
                for (int g = 0; g < groups; g++) {
                    float d = 0;
                    for (int p = gs[g] >>> 3; p < gs[g + 1] >>> 3; p++) {
                        int v = packed[r * per + p];
                        int c0 = p * 8;
                        for (int j = 0; j < 8; j++) {
                            int xi;
                            if (lanes == 0) xi = c0 + j;
                            else { int blk = 8 * lanes, base = c0 - c0 % blk; xi = base + j * lanes + (c0 - base) / 8; }
                            d += ((v >>> (4 * j)) & 15) * xp[xo + xi];
                        }
                    }
                    acc += w.scales[r * groups + g] * (d - w.zeros[r * groups + g] * xsum[t * groups + g]);
                }
                out[t * outStride + r] = acc + b;
            }
        }
    }
}
