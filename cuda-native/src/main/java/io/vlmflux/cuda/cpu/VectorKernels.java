package io.vlmflux.cuda.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * {@link CpuKernels} on the Vector API ({@code jdk.incubator.vector}) at the platform's preferred width. Loaded only
 * reflectively by {@link CpuKernels.Select} when the module is in the boot layer.
 *
 * <p>bf16 widening: a block of {@code 2L} bf16 values (L = float lanes) is loaded as {@code L} ints; the even element
 * of each pair is {@code int << 16}, the odd one {@code int & 0xFFFF0000}, both already float bits. The input is
 * de-interleaved to match ({@link #prepareBf16}), so each block is one load, two lane-wise ops and two FMAs.
 * Matmuls over several inputs use a 2-row x 4-input register tile (8 accumulators): each weight vector feeds four
 * FMAs, each input vector two.
 */
final class VectorKernels implements CpuKernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final int B = 2 * L;                          // bf16 values per block
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int HI = 0xFFFF0000;

    VectorKernels() {
        if (I.length() != L) throw new IllegalStateException("int and float species differ: " + I + " vs " + F);
    }

    @Override public String describe() { return "Vector API, " + F.vectorBitSize() + "-bit (" + L + " float lanes)"; }

    @Override public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            s0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), s0);
            s1 = FloatVector.fromArray(F, a, aOff + i + L).fma(FloatVector.fromArray(F, b, bOff + i + L), s1);
            s2 = FloatVector.fromArray(F, a, aOff + i + 2 * L).fma(FloatVector.fromArray(F, b, bOff + i + 2 * L), s2);
            s3 = FloatVector.fromArray(F, a, aOff + i + 3 * L).fma(FloatVector.fromArray(F, b, bOff + i + 3 * L), s3);
        }
        for (; i + L <= n; i += L) s0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), s0);
        float s = s0.add(s1).add(s2.add(s3)).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) s += a[aOff + i] * b[bOff + i];
        return s;
    }

    @Override public void axpy(float[] y, int yOff, float a, float[] x, int xOff, int n) {
        FloatVector av = FloatVector.broadcast(F, a);
        int i = 0;
        for (; i + L <= n; i += L)
            FloatVector.fromArray(F, x, xOff + i).fma(av, FloatVector.fromArray(F, y, yOff + i)).intoArray(y, yOff + i);
        for (; i < n; i++) y[yOff + i] += a * x[xOff + i];
    }

    @Override public float sumSquares(float[] x, int off, int n) {
        FloatVector s0 = FloatVector.zero(F), s1 = s0;
        int i = 0;
        for (; i + 2 * L <= n; i += 2 * L) {
            FloatVector v0 = FloatVector.fromArray(F, x, off + i), v1 = FloatVector.fromArray(F, x, off + i + L);
            s0 = v0.fma(v0, s0);
            s1 = v1.fma(v1, s1);
        }
        for (; i + L <= n; i += L) { FloatVector v = FloatVector.fromArray(F, x, off + i); s0 = v.fma(v, s0); }
        float s = s0.add(s1).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) s += x[off + i] * x[off + i];
        return s;
    }

    @Override public void scaleMul(float[] out, int outOff, float[] x, int xOff, float s, float[] w, int n) {
        int i = 0;
        for (; i + L <= n; i += L)
            FloatVector.fromArray(F, x, xOff + i).mul(s).mul(FloatVector.fromArray(F, w, i)).intoArray(out, outOff + i);
        for (; i < n; i++) out[outOff + i] = w[i] * (x[xOff + i] * s);
    }

    @Override public void siluMul(float[] g, float[] u, int off, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector v = FloatVector.fromArray(F, g, off + i);
            FloatVector e = v.neg().lanewise(VectorOperators.EXP);
            v.div(e.add(1f)).mul(FloatVector.fromArray(F, u, off + i)).intoArray(g, off + i);
        }
        for (; i < n; i++) g[off + i] = CpuOps.silu(g[off + i]) * u[off + i];
    }

    @Override public void add(float[] a, float[] b, int off, int n) {
        int i = 0;
        for (; i + L <= n; i += L)
            FloatVector.fromArray(F, a, off + i).add(FloatVector.fromArray(F, b, off + i)).intoArray(a, off + i);
        for (; i < n; i++) a[off + i] += b[off + i];
    }

    @Override public int bf16Block() { return B; }

    @Override public void prepareBf16(float[] x, int xOff, float[] dst, int dstOff, int cols) {
        int full = cols - cols % B;
        for (int k = 0; k < full; k += B) {
            for (int j = 0; j < L; j++) {
                dst[dstOff + k + j] = x[xOff + k + 2 * j];
                dst[dstOff + k + L + j] = x[xOff + k + 2 * j + 1];
            }
        }
        System.arraycopy(x, xOff + full, dst, dstOff + full, cols - full);
    }

    private static float bf16(MemorySegment w, long off) { return Float.intBitsToFloat(w.get(SHORT, off) << 16); }

    @Override public void rowsBf16(MemorySegment w, int cols, int rLo, int rHi, float[] xp, int n, float[] out, int outStride, int outOff, float[] bias) {
        if (n == 1) {
            for (int r = rLo; r < rHi; r++) out[outOff + r] = dotBf16(w, (long) r * cols * 2, cols, xp, 0) + (bias == null ? 0f : bias[r]);
            return;
        }
        // tile: rows in L2-sized groups, inputs in fours, two rows at a time
        int tileRows = Math.max(2, 65536 / (2 * cols));
        for (int r0 = rLo; r0 < rHi; r0 += tileRows) {
            int r1 = Math.min(rHi, r0 + tileRows);
            int t = 0;
            for (; t + 4 <= n; t += 4) {
                int r = r0;
                for (; r + 2 <= r1; r += 2) tile2x4(w, cols, r, xp, t, out, outStride, outOff, bias);
                for (; r < r1; r++) {
                    long base = (long) r * cols * 2;
                    float b = bias == null ? 0f : bias[r];
                    for (int k = t; k < t + 4; k++) out[k * outStride + outOff + r] = dotBf16(w, base, cols, xp, k * cols) + b;
                }
            }
            for (; t < n; t++)
                for (int r = r0; r < r1; r++)
                    out[t * outStride + outOff + r] = dotBf16(w, (long) r * cols * 2, cols, xp, t * cols) + (bias == null ? 0f : bias[r]);
        }
    }

    private static float dotBf16(MemorySegment w, long base, int cols, float[] xp, int xo) {
        int full = cols - cols % B;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        for (; i + 2 * B <= full; i += 2 * B) {
            IntVector w0 = IntVector.fromMemorySegment(I, w, base + 2L * i, LE);
            IntVector w1 = IntVector.fromMemorySegment(I, w, base + 2L * (i + B), LE);
            a0 = w0.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, xo + i), a0);
            a1 = w0.and(HI).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, xo + i + L), a1);
            a2 = w1.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, xo + i + B), a2);
            a3 = w1.and(HI).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, xo + i + B + L), a3);
        }
        if (i < full) {
            IntVector w0 = IntVector.fromMemorySegment(I, w, base + 2L * i, LE);
            a0 = w0.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, xo + i), a0);
            a1 = w0.and(HI).reinterpretAsFloats().fma(FloatVector.fromArray(F, xp, xo + i + L), a1);
        }
        float s = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
        for (int j = full; j < cols; j++) s += bf16(w, base + 2L * j) * xp[xo + j];
        return s;
    }

    /** Rows {@code r, r+1} x inputs {@code t..t+3}. */
    private static void tile2x4(MemorySegment w, int cols, int r, float[] xp, int t, float[] out, int outStride, int outOff, float[] bias) {
        int full = cols - cols % B;
        long b0 = (long) r * cols * 2, b1 = b0 + 2L * cols;
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        for (int i = 0; i < full; i += B) {
            IntVector p = IntVector.fromMemorySegment(I, w, b0 + 2L * i, LE);
            IntVector q = IntVector.fromMemorySegment(I, w, b1 + 2L * i, LE);
            FloatVector pe = p.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats(), po = p.and(HI).reinterpretAsFloats();
            FloatVector qe = q.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats(), qo = q.and(HI).reinterpretAsFloats();
            FloatVector xe = FloatVector.fromArray(F, xp, x0 + i), xo = FloatVector.fromArray(F, xp, x0 + i + L);
            c00 = po.fma(xo, pe.fma(xe, c00));
            c10 = qo.fma(xo, qe.fma(xe, c10));
            xe = FloatVector.fromArray(F, xp, x1 + i); xo = FloatVector.fromArray(F, xp, x1 + i + L);
            c01 = po.fma(xo, pe.fma(xe, c01));
            c11 = qo.fma(xo, qe.fma(xe, c11));
            xe = FloatVector.fromArray(F, xp, x2 + i); xo = FloatVector.fromArray(F, xp, x2 + i + L);
            c02 = po.fma(xo, pe.fma(xe, c02));
            c12 = qo.fma(xo, qe.fma(xe, c12));
            xe = FloatVector.fromArray(F, xp, x3 + i); xo = FloatVector.fromArray(F, xp, x3 + i + L);
            c03 = po.fma(xo, pe.fma(xe, c03));
            c13 = qo.fma(xo, qe.fma(xe, c13));
        }
        float s00 = c00.reduceLanes(VectorOperators.ADD), s01 = c01.reduceLanes(VectorOperators.ADD);
        float s02 = c02.reduceLanes(VectorOperators.ADD), s03 = c03.reduceLanes(VectorOperators.ADD);
        float s10 = c10.reduceLanes(VectorOperators.ADD), s11 = c11.reduceLanes(VectorOperators.ADD);
        float s12 = c12.reduceLanes(VectorOperators.ADD), s13 = c13.reduceLanes(VectorOperators.ADD);
        for (int j = full; j < cols; j++) {
            float wp = bf16(w, b0 + 2L * j), wq = bf16(w, b1 + 2L * j);
            s00 += wp * xp[x0 + j]; s01 += wp * xp[x1 + j]; s02 += wp * xp[x2 + j]; s03 += wp * xp[x3 + j];
            s10 += wq * xp[x0 + j]; s11 += wq * xp[x1 + j]; s12 += wq * xp[x2 + j]; s13 += wq * xp[x3 + j];
        }
        float bp = bias == null ? 0f : bias[r], bq = bias == null ? 0f : bias[r + 1];
        int o = outOff + r;
        out[t * outStride + o] = s00 + bp;       out[t * outStride + o + 1] = s10 + bq;
        out[(t + 1) * outStride + o] = s01 + bp; out[(t + 1) * outStride + o + 1] = s11 + bq;
        out[(t + 2) * outStride + o] = s02 + bp; out[(t + 2) * outStride + o + 1] = s12 + bq;
        out[(t + 3) * outStride + o] = s03 + bp; out[(t + 3) * outStride + o + 1] = s13 + bq;
    }

    @Override public void rowsF32(MemorySegment w, int cols, int rLo, int rHi, float[] x, int n, float[] out, int outStride, int outOff, float[] bias) {
        for (int r = rLo; r < rHi; r++) {
            long base = (long) r * cols * 4;
            float b = bias == null ? 0f : bias[r];
            for (int t = 0; t < n; t++) {
                int xo = t * cols;
                FloatVector a0 = FloatVector.zero(F), a1 = a0;
                int i = 0;
                for (; i + 2 * L <= cols; i += 2 * L) {
                    a0 = FloatVector.fromMemorySegment(F, w, base + 4L * i, LE).fma(FloatVector.fromArray(F, x, xo + i), a0);
                    a1 = FloatVector.fromMemorySegment(F, w, base + 4L * (i + L), LE).fma(FloatVector.fromArray(F, x, xo + i + L), a1);
                }
                float s = a0.add(a1).reduceLanes(VectorOperators.ADD);
                for (; i < cols; i++) s += w.get(FLOAT, base + 4L * i) * x[xo + i];
                out[t * outStride + outOff + r] = s + b;
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
        int end = t0 + cnt, full = out - out % L;
        int t = t0;
        for (; t + 4 <= end; t += 4) {
            int y0 = t * out, y1 = y0 + out, y2 = y1 + out, y3 = y2 + out;
            int x0 = t * in, x1 = x0 + in, x2 = x1 + in, x3 = x2 + in;
            // output strip by strip: four accumulators stay in registers over the whole input
            for (int r = 0; r < full; r += L) {
                FloatVector c0 = bias == null ? FloatVector.zero(F) : FloatVector.fromArray(F, bias, r), c1 = c0, c2 = c0, c3 = c0;
                for (int c = 0; c < in; c++) {
                    FloatVector wv = FloatVector.fromArray(F, wt, c * out + r);
                    c0 = wv.fma(FloatVector.broadcast(F, x[x0 + c]), c0);
                    c1 = wv.fma(FloatVector.broadcast(F, x[x1 + c]), c1);
                    c2 = wv.fma(FloatVector.broadcast(F, x[x2 + c]), c2);
                    c3 = wv.fma(FloatVector.broadcast(F, x[x3 + c]), c3);
                }
                c0.intoArray(y, y0 + r); c1.intoArray(y, y1 + r); c2.intoArray(y, y2 + r); c3.intoArray(y, y3 + r);
            }
            for (int r = full; r < out; r++) {
                float b = bias == null ? 0f : bias[r], s0 = b, s1 = b, s2 = b, s3 = b;
                for (int c = 0; c < in; c++) {
                    float wv = wt[c * out + r];
                    s0 += x[x0 + c] * wv; s1 += x[x1 + c] * wv; s2 += x[x2 + c] * wv; s3 += x[x3 + c] * wv;
                }
                y[y0 + r] = s0; y[y1 + r] = s1; y[y2 + r] = s2; y[y3 + r] = s3;
            }
        }
        for (; t < end; t++) {
            int yo = t * out, xo = t * in;
            if (bias != null) System.arraycopy(bias, 0, y, yo, out);
            else java.util.Arrays.fill(y, yo, yo + out, 0f);
            for (int c = 0; c < in; c++) axpy(y, yo, x[xo + c], wt, c * out, out);
        }
    }

    // ---- INT4: a vector of `lanes` packed ints holds 8 nibbles per lane; nibble j of lane l is canonical column
    // block + 8l + j, which the prepared input holds at block + j*lanes + l (Int4Weights.prepare).

    private static final ScalarKernels SCALAR = new ScalarKernels();

    @Override public void rowsInt4(Int4Weights w, int rLo, int rHi, float[] xp, float[] xsum, int n, float[] out, int outStride, float[] bias) {
        // one copy per width: the Vector API compiles to SIMD only when the species is a constant
        switch (w.lanes()) {
            case 16 -> rowsInt4x16(w, rLo, rHi, xp, xsum, n, out, outStride, bias);
            case 8 -> rowsInt4x8(w, rLo, rHi, xp, xsum, n, out, outStride, bias);
            case 4 -> rowsInt4x4(w, rLo, rHi, xp, xsum, n, out, outStride, bias);
            default -> SCALAR.rowsInt4(w, rLo, rHi, xp, xsum, n, out, outStride, bias);
        }
    }

    private static final VectorSpecies<Integer> I16 = IntVector.SPECIES_512, I8 = IntVector.SPECIES_256, I4 = IntVector.SPECIES_128;
    private static final VectorSpecies<Float> F16 = FloatVector.SPECIES_512, F8 = FloatVector.SPECIES_256, F4 = FloatVector.SPECIES_128;

    /** Widest int4 layout worth using: never wider than the hardware's vectors (wider species are emulated, slowly). */
    @Override public int int4Lanes() { return Math.min(16, L); }

    private static void rowsInt4x8(Int4Weights w, int rLo, int rHi, float[] xp, float[] xsum, int n, float[] out, int outStride, float[] bias) {
        final int cols = w.cols(), groups = w.groups(), per = cols / 8, lanes = 8, blk = 8 * lanes;
        final int[] packed = w.packed, gs = w.groupStart;
        final float[] sc = w.scales, zs = w.zeros;
        for (int r = rLo; r < rHi; r++) {
            float b = bias == null ? 0f : bias[r];
            int ro = r * per, so = r * groups;
            int t = 0;
            for (; t + 4 <= n; t += 4) {
                int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
                FloatVector y0 = FloatVector.zero(F8), y1 = y0, y2 = y0, y3 = y0;
                float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
                for (int g = 0; g < groups; g++) {
                    FloatVector a0 = FloatVector.zero(F8), a1 = a0, a2 = a0, a3 = a0;
                    for (int c = gs[g]; c < gs[g + 1]; c += blk) {
                        IntVector iv = IntVector.fromArray(I8, packed, ro + (c >>> 3));
                        for (int j = 0; j < 8; j++) {
                            FloatVector q = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            int xi = c + j * lanes;
                            a0 = q.fma(FloatVector.fromArray(F8, xp, x0 + xi), a0);
                            a1 = q.fma(FloatVector.fromArray(F8, xp, x1 + xi), a1);
                            a2 = q.fma(FloatVector.fromArray(F8, xp, x2 + xi), a2);
                            a3 = q.fma(FloatVector.fromArray(F8, xp, x3 + xi), a3);
                        }
                    }
                    float s = sc[so + g], zsv = zs[so + g] * s;
                    FloatVector sv = FloatVector.broadcast(F8, s);
                    y0 = a0.fma(sv, y0); y1 = a1.fma(sv, y1); y2 = a2.fma(sv, y2); y3 = a3.fma(sv, y3);
                    int xs = t * groups + g;
                    c0 += zsv * xsum[xs]; c1 += zsv * xsum[xs + groups]; c2 += zsv * xsum[xs + 2 * groups]; c3 += zsv * xsum[xs + 3 * groups];
                }
                out[t * outStride + r] = y0.reduceLanes(VectorOperators.ADD) - c0 + b;
                out[(t + 1) * outStride + r] = y1.reduceLanes(VectorOperators.ADD) - c1 + b;
                out[(t + 2) * outStride + r] = y2.reduceLanes(VectorOperators.ADD) - c2 + b;
                out[(t + 3) * outStride + r] = y3.reduceLanes(VectorOperators.ADD) - c3 + b;
            }
            for (; t < n; t++) {
                int x0 = t * cols;
                FloatVector y0 = FloatVector.zero(F8);
                float c0 = 0;
                for (int g = 0; g < groups; g++) {
                    FloatVector a0 = FloatVector.zero(F8), a1 = a0;
                    for (int c = gs[g]; c < gs[g + 1]; c += blk) {
                        IntVector iv = IntVector.fromArray(I8, packed, ro + (c >>> 3));
                        for (int j = 0; j < 8; j += 2) {
                            FloatVector q0 = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            FloatVector q1 = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j + 4).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            int xi = x0 + c + j * lanes;
                            a0 = q0.fma(FloatVector.fromArray(F8, xp, xi), a0);
                            a1 = q1.fma(FloatVector.fromArray(F8, xp, xi + lanes), a1);
                        }
                    }
                    float s = sc[so + g];
                    y0 = a0.add(a1).fma(FloatVector.broadcast(F8, s), y0);
                    c0 += zs[so + g] * s * xsum[t * groups + g];
                }
                out[t * outStride + r] = y0.reduceLanes(VectorOperators.ADD) - c0 + b;
            }
        }
    }
    private static void rowsInt4x16(Int4Weights w, int rLo, int rHi, float[] xp, float[] xsum, int n, float[] out, int outStride, float[] bias) {
        final int cols = w.cols(), groups = w.groups(), per = cols / 8, lanes = 16, blk = 8 * lanes;
        final int[] packed = w.packed, gs = w.groupStart;
        final float[] sc = w.scales, zs = w.zeros;
        for (int r = rLo; r < rHi; r++) {
            float b = bias == null ? 0f : bias[r];
            int ro = r * per, so = r * groups;
            int t = 0;
            for (; t + 4 <= n; t += 4) {
                int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
                FloatVector y0 = FloatVector.zero(F16), y1 = y0, y2 = y0, y3 = y0;
                float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
                for (int g = 0; g < groups; g++) {
                    FloatVector a0 = FloatVector.zero(F16), a1 = a0, a2 = a0, a3 = a0;
                    for (int c = gs[g]; c < gs[g + 1]; c += blk) {
                        IntVector iv = IntVector.fromArray(I16, packed, ro + (c >>> 3));
                        for (int j = 0; j < 8; j++) {
                            FloatVector q = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            int xi = c + j * lanes;
                            a0 = q.fma(FloatVector.fromArray(F16, xp, x0 + xi), a0);
                            a1 = q.fma(FloatVector.fromArray(F16, xp, x1 + xi), a1);
                            a2 = q.fma(FloatVector.fromArray(F16, xp, x2 + xi), a2);
                            a3 = q.fma(FloatVector.fromArray(F16, xp, x3 + xi), a3);
                        }
                    }
                    float s = sc[so + g], zsv = zs[so + g] * s;
                    FloatVector sv = FloatVector.broadcast(F16, s);
                    y0 = a0.fma(sv, y0); y1 = a1.fma(sv, y1); y2 = a2.fma(sv, y2); y3 = a3.fma(sv, y3);
                    int xs = t * groups + g;
                    c0 += zsv * xsum[xs]; c1 += zsv * xsum[xs + groups]; c2 += zsv * xsum[xs + 2 * groups]; c3 += zsv * xsum[xs + 3 * groups];
                }
                out[t * outStride + r] = y0.reduceLanes(VectorOperators.ADD) - c0 + b;
                out[(t + 1) * outStride + r] = y1.reduceLanes(VectorOperators.ADD) - c1 + b;
                out[(t + 2) * outStride + r] = y2.reduceLanes(VectorOperators.ADD) - c2 + b;
                out[(t + 3) * outStride + r] = y3.reduceLanes(VectorOperators.ADD) - c3 + b;
            }
            for (; t < n; t++) {
                int x0 = t * cols;
                FloatVector y0 = FloatVector.zero(F16);
                float c0 = 0;
                for (int g = 0; g < groups; g++) {
                    FloatVector a0 = FloatVector.zero(F16), a1 = a0;
                    for (int c = gs[g]; c < gs[g + 1]; c += blk) {
                        IntVector iv = IntVector.fromArray(I16, packed, ro + (c >>> 3));
                        for (int j = 0; j < 8; j += 2) {
                            FloatVector q0 = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            FloatVector q1 = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j + 4).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            int xi = x0 + c + j * lanes;
                            a0 = q0.fma(FloatVector.fromArray(F16, xp, xi), a0);
                            a1 = q1.fma(FloatVector.fromArray(F16, xp, xi + lanes), a1);
                        }
                    }
                    float s = sc[so + g];
                    y0 = a0.add(a1).fma(FloatVector.broadcast(F16, s), y0);
                    c0 += zs[so + g] * s * xsum[t * groups + g];
                }
                out[t * outStride + r] = y0.reduceLanes(VectorOperators.ADD) - c0 + b;
            }
        }
    }
    private static void rowsInt4x4(Int4Weights w, int rLo, int rHi, float[] xp, float[] xsum, int n, float[] out, int outStride, float[] bias) {
        final int cols = w.cols(), groups = w.groups(), per = cols / 8, lanes = 4, blk = 8 * lanes;
        final int[] packed = w.packed, gs = w.groupStart;
        final float[] sc = w.scales, zs = w.zeros;
        for (int r = rLo; r < rHi; r++) {
            float b = bias == null ? 0f : bias[r];
            int ro = r * per, so = r * groups;
            int t = 0;
            for (; t + 4 <= n; t += 4) {
                int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
                FloatVector y0 = FloatVector.zero(F4), y1 = y0, y2 = y0, y3 = y0;
                float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
                for (int g = 0; g < groups; g++) {
                    FloatVector a0 = FloatVector.zero(F4), a1 = a0, a2 = a0, a3 = a0;
                    for (int c = gs[g]; c < gs[g + 1]; c += blk) {
                        IntVector iv = IntVector.fromArray(I4, packed, ro + (c >>> 3));
                        for (int j = 0; j < 8; j++) {
                            FloatVector q = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            int xi = c + j * lanes;
                            a0 = q.fma(FloatVector.fromArray(F4, xp, x0 + xi), a0);
                            a1 = q.fma(FloatVector.fromArray(F4, xp, x1 + xi), a1);
                            a2 = q.fma(FloatVector.fromArray(F4, xp, x2 + xi), a2);
                            a3 = q.fma(FloatVector.fromArray(F4, xp, x3 + xi), a3);
                        }
                    }
                    float s = sc[so + g], zsv = zs[so + g] * s;
                    FloatVector sv = FloatVector.broadcast(F4, s);
                    y0 = a0.fma(sv, y0); y1 = a1.fma(sv, y1); y2 = a2.fma(sv, y2); y3 = a3.fma(sv, y3);
                    int xs = t * groups + g;
                    c0 += zsv * xsum[xs]; c1 += zsv * xsum[xs + groups]; c2 += zsv * xsum[xs + 2 * groups]; c3 += zsv * xsum[xs + 3 * groups];
                }
                out[t * outStride + r] = y0.reduceLanes(VectorOperators.ADD) - c0 + b;
                out[(t + 1) * outStride + r] = y1.reduceLanes(VectorOperators.ADD) - c1 + b;
                out[(t + 2) * outStride + r] = y2.reduceLanes(VectorOperators.ADD) - c2 + b;
                out[(t + 3) * outStride + r] = y3.reduceLanes(VectorOperators.ADD) - c3 + b;
            }
            for (; t < n; t++) {
                int x0 = t * cols;
                FloatVector y0 = FloatVector.zero(F4);
                float c0 = 0;
                for (int g = 0; g < groups; g++) {
                    FloatVector a0 = FloatVector.zero(F4), a1 = a0;
                    for (int c = gs[g]; c < gs[g + 1]; c += blk) {
                        IntVector iv = IntVector.fromArray(I4, packed, ro + (c >>> 3));
                        for (int j = 0; j < 8; j += 2) {
                            FloatVector q0 = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            FloatVector q1 = (FloatVector) iv.lanewise(VectorOperators.LSHR, 4 * j + 4).lanewise(VectorOperators.AND, 15)
                                    .convert(VectorOperators.I2F, 0);
                            int xi = x0 + c + j * lanes;
                            a0 = q0.fma(FloatVector.fromArray(F4, xp, xi), a0);
                            a1 = q1.fma(FloatVector.fromArray(F4, xp, xi + lanes), a1);
                        }
                    }
                    float s = sc[so + g];
                    y0 = a0.add(a1).fma(FloatVector.broadcast(F4, s), y0);
                    c0 += zs[so + g] * s * xsum[t * groups + g];
                }
                out[t * outStride + r] = y0.reduceLanes(VectorOperators.ADD) - c0 + b;
            }
        }
    }
}
