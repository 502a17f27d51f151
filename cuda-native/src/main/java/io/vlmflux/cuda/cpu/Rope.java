package io.vlmflux.cuda.cpu;

/**
 * Rotary-embedding frequency tables computed as Hugging Face does (float32): {@code inv_freq[i] = 1 / theta^(2i/dim)},
 * optionally rescaled ({@link #llama3}, {@link #linear}), and per-position cos/sin rows with
 * {@code angle = (float) pos * inv_freq[i]} in float before {@code cos}/{@code sin}, so long positions round like the
 * reference. Apply with {@link CpuOps#ropeRotateHalf}.
 */
public final class Rope {
    private Rope() {}

    /** {@code dim/2} inverse frequencies for head width {@code dim} ({@code rope_type: default}). */
    public static float[] defaultInvFreq(int dim, double theta) {
        if (dim <= 0 || (dim & 1) != 0) throw new IllegalArgumentException("rope dimension must be even and positive, got " + dim);
        float[] f = new float[dim / 2];
        for (int i = 0; i < f.length; i++) {
            float exponent = (float) (2 * i) / (float) dim;       // torch: arange(0, dim, 2).float() / dim
            f[i] = (float) (1.0 / Math.pow(theta, exponent));
        }
        return f;
    }

    /** {@code rope_type: linear}: frequencies divided by {@code factor}. */
    public static float[] linear(float[] invFreq, double factor) {
        float[] f = invFreq.clone();
        for (int i = 0; i < f.length; i++) f[i] = (float) (f[i] / factor);
        return f;
    }

    /**
     * {@code rope_type: llama3}: long wavelengths divided by {@code factor}, short ones kept, the band between blended
     * (transformers {@code _compute_llama3_parameters}).
     */
    public static float[] llama3(float[] invFreq, double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {
        float[] f = new float[invFreq.length];
        double lowWavelen = originalMaxPositions / lowFreqFactor;
        double highWavelen = originalMaxPositions / highFreqFactor;
        for (int i = 0; i < f.length; i++) {
            double freq = invFreq[i];
            double wavelen = 2 * Math.PI / freq;
            if (wavelen > lowWavelen) f[i] = (float) (freq / factor);
            else if (wavelen < highWavelen) f[i] = (float) freq;
            else {
                double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                f[i] = (float) ((1 - smooth) * freq / factor + smooth * freq);
            }
        }
        return f;
    }

    /** Writes {@code cos/sin(pos * invFreq[i])} into {@code cos[off+i]}, {@code sin[off+i]}. */
    public static void table(float[] invFreq, long pos, float[] cos, float[] sin, int off) {
        float p = (float) pos;
        for (int i = 0; i < invFreq.length; i++) {
            float a = p * invFreq[i];
            cos[off + i] = (float) Math.cos(a);
            sin[off + i] = (float) Math.sin(a);
        }
    }
}
