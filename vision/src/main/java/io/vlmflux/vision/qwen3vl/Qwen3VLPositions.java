package io.vlmflux.vision.qwen3vl;

/**
 * transformers' {@code Qwen3VLVisionModel.fast_pos_embed_interpolate} as tables: for every patch of one frame, the
 * four rows of the learned {@code side x side} position table it blends and their bilinear weights, in the
 * merge-window order of the patches ({@code (h/m, w/m, m, m)}, as the pixel values and the encoder's hidden states).
 * The CPU tower applies the tables on the host, the GPU tower uploads them once per set of grids and gathers on the
 * device, so both blend exactly the same rows with the same float32 weights. Stateless and thread-safe.
 */
public final class Qwen3VLPositions {
    private Qwen3VLPositions() {}

    /**
     * The tables of one {@code gridH x gridW} frame.
     *
     * @param index  int32 {@code [gridH*gridW, 4]}: rows of the position table, in the order top-left, top-right,
     *               bottom-left, bottom-right (transformers sums them in this order)
     * @param weight float32 {@code [gridH*gridW, 4]}: {@code (1-dh)(1-dw), (1-dh)dw, dh(1-dw), dh*dw}
     */
    public record Table(int gridH, int gridW, int[] index, float[] weight) {
        public int rows() { return gridH * gridW; }
    }

    /** The tables of a {@code gridH x gridW} frame for a {@code side x side} table and merge size {@code merge}. */
    public static Table of(int side, int merge, int gridH, int gridW) {
        if (side <= 0 || merge <= 0 || gridH <= 0 || gridW <= 0 || gridH % merge != 0 || gridW % merge != 0)
            throw new IllegalArgumentException("position tables need a positive side and a grid divisible by the merge size, got side " + side
                    + ", merge " + merge + ", grid " + gridH + "x" + gridW);
        float[] hs = linspace(side - 1, gridH), ws = linspace(side - 1, gridW);
        int n = Math.multiplyExact(gridH, gridW);
        int[] index = new int[Math.multiplyExact(n, 4)];
        float[] weight = new float[4 * n];
        int row = 0;
        for (int bh = 0; bh < gridH / merge; bh++)
            for (int bw = 0; bw < gridW / merge; bw++)
                for (int mh = 0; mh < merge; mh++)
                    for (int mw = 0; mw < merge; mw++, row++) {
                        int y = bh * merge + mh, x = bw * merge + mw;
                        int hf = (int) hs[y], hc = Math.min(hf + 1, side - 1), wf = (int) ws[x], wc = Math.min(wf + 1, side - 1);
                        float dh = hs[y] - hf, dw = ws[x] - wf;
                        int o = 4 * row;
                        index[o] = hf * side + wf;
                        index[o + 1] = hf * side + wc;
                        index[o + 2] = hc * side + wf;
                        index[o + 3] = hc * side + wc;
                        weight[o] = (1 - dh) * (1 - dw);
                        weight[o + 1] = (1 - dh) * dw;
                        weight[o + 2] = dh * (1 - dw);
                        weight[o + 3] = dh * dw;
                    }
        return new Table(gridH, gridW, index, weight);
    }

    /**
     * {@code h[row0 + r] += blend(r)} for the rows {@code [lo, hi)} of one frame's table: the four table rows of
     * {@code posEmbed} ({@code [side*side, hidden]}) times their weights, summed left to right in float32.
     */
    public static void addTo(float[] h, int row0, Table t, float[] posEmbed, int hidden, int lo, int hi) {
        for (int r = lo; r < hi; r++) {
            int a = t.index[4 * r] * hidden, b = t.index[4 * r + 1] * hidden, c = t.index[4 * r + 2] * hidden, e = t.index[4 * r + 3] * hidden;
            float w0 = t.weight[4 * r], w1 = t.weight[4 * r + 1], w2 = t.weight[4 * r + 2], w3 = t.weight[4 * r + 3];
            int o = (row0 + r) * hidden;
            for (int k = 0; k < hidden; k++)
                h[o + k] += posEmbed[a + k] * w0 + posEmbed[b + k] * w1 + posEmbed[c + k] * w2 + posEmbed[e + k] * w3;
        }
    }

    /**
     * {@code torch.linspace(0, end, steps)} in float32 as torch's CPU kernel computes it: the first half counts up
     * from 0, the second half down from {@code end}, so both ends are exact.
     */
    public static float[] linspace(float end, int steps) {
        float[] r = new float[steps];
        if (steps == 1) return r;
        float step = end / (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++) r[i] = i < halfway ? step * i : end - step * (steps - i - 1);
        return r;
    }
}
