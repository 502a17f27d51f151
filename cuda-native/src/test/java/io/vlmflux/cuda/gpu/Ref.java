package io.vlmflux.cuda.gpu;

import java.util.Random;

/** CPU references and helpers for the GPU kernel tests (double precision where it matters). */
final class Ref {
    private Ref() {}

    static short bf16(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (short) ((u >>> 16) | 0x40);
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    static float f(short b) {
        return Float.intBitsToFloat((b & 0xffff) << 16);
    }

    static float roundBf16(float x) {
        return f(bf16(x));
    }

    static float[] randn(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian() * scale;
        return a;
    }

    static short[] bf16(float[] a) {
        short[] s = new short[a.length];
        for (int i = 0; i < a.length; i++) s[i] = bf16(a[i]);
        return s;
    }

    static float[] f(short[] a) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) r[i] = f(a[i]);
        return r;
    }

    /** Rounds every element to bf16 in place and returns the array (inputs the GPU sees exactly). */
    static float[] bfRound(float[] a) {
        for (int i = 0; i < a.length; i++) a[i] = roundBf16(a[i]);
        return a;
    }

    /** ||got - want|| / ||want||; NaN anywhere fails. */
    static double relErr(float[] got, double[] want) {
        if (got.length < want.length) throw new AssertionError("length " + got.length + " < " + want.length);
        double num = 0, den = 0;
        for (int i = 0; i < want.length; i++) {
            if (Float.isNaN(got[i])) return Double.POSITIVE_INFINITY;
            double d = got[i] - want[i];
            num += d * d;
            den += want[i] * want[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }

    static double[] d(float[] a) {
        double[] r = new double[a.length];
        for (int i = 0; i < a.length; i++) r[i] = a[i];
        return r;
    }

    static void assertRel(String what, float[] got, double[] want, double tol) {
        double e = relErr(got, want);
        if (!(e <= tol)) throw new AssertionError(what + ": relative error " + e + " > " + tol);
    }

    /** Causal / decode attention reference: q [n, nq, hd], caches [nkv, maxSeq, hd], token i sees keys [0, start+i]. */
    static double[] attention(float[] q, float[] kc, float[] vc, int n, int nq, int nkv, int hd, int maxSeq,
                              int start, float scale) {
        double[] out = new double[n * nq * hd];
        int g = nq / nkv;
        for (int i = 0; i < n; i++) {
            for (int h = 0; h < nq; h++) {
                int hk = h / g;
                int keys = start + i + 1;
                double[] s = new double[keys];
                double mx = Double.NEGATIVE_INFINITY;
                for (int t = 0; t < keys; t++) {
                    double acc = 0;
                    for (int d = 0; d < hd; d++)
                        acc += (double) q[(i * nq + h) * hd + d] * kc[(hk * maxSeq + t) * hd + d];
                    s[t] = acc * scale;
                    mx = Math.max(mx, s[t]);
                }
                double z = 0;
                for (int t = 0; t < keys; t++) { s[t] = Math.exp(s[t] - mx); z += s[t]; }
                for (int d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int t = 0; t < keys; t++) acc += s[t] * vc[(hk * maxSeq + t) * hd + d];
                    out[(i * nq + h) * hd + d] = acc / z;
                }
            }
        }
        return out;
    }

    /**
     * Reference RoPE of the q and k heads of fused rows {@code qkv} ([n, (nq + 2 nkv) hd]) after the optional q/k
     * RMSNorm ({@code qn}/{@code kn} null: none): frequency j of token t turns by {@code pos[axis(j) * n + t] * inv[j]}
     * (axis 0 for plain RoPE; the M-RoPE section or interleaving rule otherwise). Returns {q [n, nq, hd], k [n, nkv, hd]}.
     */
    static double[][] ropeQk(float[] qkv, int n, int nq, int nkv, int hd, float[] qn, float[] kn, float eps, int[] pos,
                             java.util.function.IntUnaryOperator axis, float[] inv) {
        int qs = (nq + 2 * nkv) * hd, half = hd / 2;
        double[] wq = new double[n * nq * hd], wk = new double[n * nkv * hd];
        for (int t = 0; t < n; t++)
            for (int h = 0; h < nq + nkv; h++) {
                boolean isQ = h < nq;
                int off = t * qs + h * hd;
                double[] x = new double[hd];
                double ss = 0;
                for (int d = 0; d < hd; d++) { x[d] = qkv[off + d]; ss += x[d] * x[d]; }
                float[] w = isQ ? qn : kn;
                if (w != null) {
                    double r = 1 / Math.sqrt(ss / hd + eps);
                    for (int d = 0; d < hd; d++) x[d] = x[d] * r * w[d];
                }
                double[] dst = isQ ? wq : wk;
                int base = isQ ? (t * nq + h) * hd : (t * nkv + h - nq) * hd;
                for (int j = 0; j < half; j++) {
                    float ang = (float) pos[axis.applyAsInt(j) * n + t] * inv[j];
                    double co = Math.cos(ang), si = Math.sin(ang);
                    dst[base + j] = x[j] * co - x[j + half] * si;
                    dst[base + j + half] = x[j + half] * co + x[j] * si;
                }
            }
        return new double[][]{wq, wk};
    }

    /** Rows [start, start + n) of every kv head of a [nkv, maxSeq, hd] cache, as [n, nkv, hd]. */
    static float[] cacheRows(float[] cache, int n, int nkv, int hd, int maxSeq, int start) {
        float[] out = new float[n * nkv * hd];
        for (int t = 0; t < n; t++)
            for (int hk = 0; hk < nkv; hk++)
                System.arraycopy(cache, (hk * maxSeq + start + t) * hd, out, (t * nkv + hk) * hd, hd);
        return out;
    }
}
