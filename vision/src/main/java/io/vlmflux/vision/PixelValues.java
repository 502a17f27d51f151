package io.vlmflux.vision;

/**
 * Preprocessed pixels of one image or one video clip, ready for a vision encoder.
 *
 * @param data        {@code [numPatches, patchDim]} row-major, patches in the processor's merge-window order
 *                    (grid_t, grid_h/m, grid_w/m, m, m), each patch flattened as (channel, temporal, row, column)
 * @param patchDim    values per patch: {@code channels * temporalPatchSize * patchSize^2}
 * @param gridT       temporal patches (1 for a still image)
 * @param gridH       patch rows
 * @param gridW       patch columns
 * @param contentHash a 64-bit hash of the values and the grid (a cache key for embeddings; not cryptographic)
 */
public record PixelValues(float[] data, int patchDim, int gridT, int gridH, int gridW, long contentHash) {
    public PixelValues {
        if (data == null) throw new IllegalArgumentException("pixel values are null");
        if (patchDim <= 0 || gridT <= 0 || gridH <= 0 || gridW <= 0)
            throw new IllegalArgumentException("patchDim and grid must be positive, got patchDim " + patchDim + ", grid " + gridT + "x" + gridH + "x" + gridW);
        if (data.length != (long) gridT * gridH * gridW * patchDim)
            throw new IllegalArgumentException("pixel values hold " + data.length + " floats, grid " + gridT + "x" + gridH + "x" + gridW
                    + " with patchDim " + patchDim + " needs " + (long) gridT * gridH * gridW * patchDim);
    }

    /** Wraps values (not copied) and computes their content hash. */
    public static PixelValues of(float[] data, int patchDim, int gridT, int gridH, int gridW) {
        return new PixelValues(data, patchDim, gridT, gridH, gridW, hash(data, gridT, gridH, gridW));
    }

    public int numPatches() { return gridT * gridH * gridW; }

    /** Image tokens after a {@code mergeSize x mergeSize} patch merger. */
    public int numTokens(int mergeSize) { return numPatches() / (mergeSize * mergeSize); }

    static long hash(float[] v, int t, int h, int w) {
        long acc = 0x9E3779B97F4A7C15L ^ ((long) t << 40) ^ ((long) h << 20) ^ w;
        for (int i = 0; i < v.length; i++) {
            acc ^= Float.floatToRawIntBits(v[i]) & 0xFFFFFFFFL;
            acc *= 0xFF51AFD7ED558CCDL;
            acc ^= acc >>> 29;
        }
        acc ^= acc >>> 33;
        acc *= 0xC4CEB9FE1A85EC53L;
        return acc ^ (acc >>> 33);
    }

    @Override
    public String toString() {
        return "PixelValues[" + numPatches() + "x" + patchDim + ", grid " + gridT + "x" + gridH + "x" + gridW + ", hash " + Long.toHexString(contentHash) + "]";
    }

    /** The patches of several images one after another ({@code [sum of patches, patchDim]}); one image: its own array. */
    public static float[] concat(java.util.List<PixelValues> images) {
        if (images.size() == 1) return images.getFirst().data();
        long n = 0;
        for (PixelValues pv : images) n += pv.data().length;
        float[] x = new float[Math.toIntExact(n)];
        int off = 0;
        for (PixelValues pv : images) { System.arraycopy(pv.data(), 0, x, off, pv.data().length); off += pv.data().length; }
        return x;
    }
}
