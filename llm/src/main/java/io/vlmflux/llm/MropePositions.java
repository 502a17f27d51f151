package io.vlmflux.llm;

import java.util.List;

/**
 * 3-D rotary position ids (t, h, w) for Qwen2-VL / Qwen2.5-VL prompts, computed as transformers'
 * {@code get_rope_index}: text positions advance by one on all axes; an image span of grid {@code t x h x w} patches
 * (merged to {@code h/m x w/m} tokens) gets {@code (start + t', start + row, start + col)}, where {@code start} is the
 * position after the preceding text; text after an image continues at the span's max position + 1. For Qwen2.5-VL
 * videos the temporal index is scaled by {@code secondPerGridT * tokensPerSecond}; for Qwen3-VL every temporal group
 * of a grid starts its own block (see {@link #compute(int, List, int, boolean, double, boolean)}).
 *
 * @param positions {@code [3][n]}
 * @param delta     {@code max position + 1 - n}: decode step at cache position p uses {@code p + delta}
 */
public record MropePositions(int[][] positions, int delta) {

    /** Positions for {@code prompt} under {@code config} (its spatial merge size and time scaling). */
    public static MropePositions compute(MultimodalPrompt prompt, ModelConfig config) {
        boolean timeScaled = config.modelType().startsWith("qwen2_5_vl");
        boolean perGroup = config.modelType().startsWith("qwen3_vl");
        return compute(prompt.length(), prompt.spans(), config.spatialMergeSize(), timeScaled, config.tokensPerSecond(), perGroup);
    }

    public static MropePositions compute(int n, List<EmbeddingSpan> spans, int merge, boolean timeScaled, double tokensPerSecond) {
        return compute(n, spans, merge, timeScaled, tokensPerSecond, false);
    }

    /**
     * @param perGroup Qwen3-VL: its {@code get_rope_index} splits a grid {@code t x h x w} into {@code t} grids of one
     *                 temporal patch (its video prompts write a timestamp before each group), so every group starts a
     *                 fresh block {@code (base, base + row, base + col)} after the previous one's max position + 1
     */
    public static MropePositions compute(int n, List<EmbeddingSpan> spans, int merge, boolean timeScaled, double tokensPerSecond, boolean perGroup) {
        int[][] p = new int[3][n];
        int next = 0;   // next free position (max so far + 1)
        int i = 0;      // next token index
        for (EmbeddingSpan s : spans) {
            for (; i < s.start(); i++, next++) { p[0][i] = next; p[1][i] = next; p[2][i] = next; }
            if (s.gridH() % merge != 0 || s.gridW() % merge != 0)
                throw new IllegalArgumentException("span at " + s.start() + ": grid " + s.gridH() + "x" + s.gridW() + " is not divisible by the spatial merge size " + merge);
            int h = s.gridH() / merge, w = s.gridW() / merge, t = s.gridT();
            if ((long) t * h * w != s.length())
                throw new IllegalArgumentException("span at " + s.start() + " has " + s.length() + " embeddings but grid " + t + "x" + s.gridH() + "x"
                        + s.gridW() + " merged by " + merge + " gives " + (long) t * h * w);
            int k = s.start();
            int groups = perGroup ? t : 1, perT = perGroup ? 1 : t;
            for (int g = 0; g < groups; g++) {
                int base = next, max = next - 1;
                for (int tt = 0; tt < perT; tt++) {
                    int ti = timeScaled ? (int) (tt * s.secondPerGridT() * tokensPerSecond) : tt;
                    for (int r = 0; r < h; r++)
                        for (int c = 0; c < w; c++, k++) {
                            p[0][k] = base + ti; p[1][k] = base + r; p[2][k] = base + c;
                            max = Math.max(max, Math.max(p[0][k], Math.max(p[1][k], p[2][k])));
                        }
                }
                next = max + 1;
            }
            i = s.end();
        }
        for (; i < n; i++, next++) { p[0][i] = next; p[1][i] = next; p[2][i] = next; }
        return new MropePositions(p, next - n);
    }
}
