package io.vlmflux.llm;

/** Comparisons of logit rows shared by the CPU golden tests and the GPU parity tests. */
public final class LogitRows {
    private LogitRows() {}

    /** max |a[i]| over a row. */
    public static float maxAbs(float[] a, int off, int n) {
        float m = 0;
        for (int i = 0; i < n; i++) m = Math.max(m, Math.abs(a[off + i]));
        return m;
    }

    /** max |a[i] - b[i]| over two rows. */
    public static float maxDiff(float[] a, int aOff, float[] b, int bOff, int n) {
        float m = 0;
        for (int i = 0; i < n; i++) m = Math.max(m, Math.abs(a[aOff + i] - b[bOff + i]));
        return m;
    }

    /** top-1 minus top-2 of a row: below the tolerance the argmax is a near-tie. */
    public static float gap(float[] l, int off, int n) {
        float a = Float.NEGATIVE_INFINITY, b = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) { float v = l[off + i]; if (v > a) { b = a; a = v; } else if (v > b) b = v; }
        return a - b;
    }
}
