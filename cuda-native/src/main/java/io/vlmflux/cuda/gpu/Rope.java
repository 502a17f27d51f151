package io.vlmflux.cuda.gpu;

/** Inverse-frequency tables for {@link GpuOps#ropeQkv}: default RoPE and Llama 3 scaling (as transformers computes them). */
public final class Rope {
    private Rope() {}

    /** inv_freq[j] = theta^(-2j / dim), j < dim/2 (computed in double, stored fp32 like transformers' float64->float32). */
    public static float[] invFreq(int dim, double theta) {
        if (dim <= 0 || dim % 2 != 0) throw new IllegalArgumentException("rope dim " + dim + " must be even and positive");
        float[] f = new float[dim / 2];
        for (int j = 0; j < f.length; j++) f[j] = (float) (1.0 / Math.pow(theta, (2.0 * j) / dim));
        return f;
    }

    /** Llama 3 "rope_type: llama3" scaling of {@link #invFreq}. */
    public static float[] llama3InvFreq(int dim, double theta, double factor, double lowFreqFactor,
                                        double highFreqFactor, int originalMaxPositions) {
        float[] f = invFreq(dim, theta);
        double lowWavelen = originalMaxPositions / lowFreqFactor;
        double highWavelen = originalMaxPositions / highFreqFactor;
        for (int j = 0; j < f.length; j++) {
            double inv = f[j];
            double wavelen = 2 * Math.PI / inv;
            double v;
            if (wavelen < highWavelen) v = inv;
            else if (wavelen > lowWavelen) v = inv / factor;
            else {
                double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                v = (1 - smooth) * inv / factor + smooth * inv;
            }
            f[j] = (float) v;
        }
        return f;
    }
}
