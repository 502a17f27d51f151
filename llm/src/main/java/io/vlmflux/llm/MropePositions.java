package io.vlmflux.llm;

import java.util.List;

/**
 * 3-D rotary position ids (t, h, w) for Qwen2-VL / Qwen2.5-VL prompts, computed as transformers'
 * {@code get_rope_index}: text positions advance by one on all axes; an image span of grid {@code t x h x w} patches
 * (merged to {@code h/m x w/m} tokens) gets {@code (start + t', start + row, start + col)}, where {@code start} is the
 * position after the preceding text; text after an image continues at the span's max position + 1. For Qwen2.5-VL
 * videos the temporal index is scaled ({@link Temporal}); for Qwen3-VL every temporal group of a grid starts its own
 * block (see {@link #compute(int, List, int, boolean, double, boolean)}). {@link #videoGroups} and {@link #nextAfter}
 * give the ids of one video span group by group, for callers that append temporal groups to a KV cache.
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
            Temporal time = new Temporal(timeScaled, s.secondPerGridT(), tokensPerSecond);
            if (perGroup) {   // every temporal patch its own block (one grid of t = 1 each)
                for (int g = 0; g < t; g++) {
                    put(p, k, videoGroups(next, 0, 1, s.gridH(), s.gridW(), merge, time));
                    k += h * w;
                    next = nextAfter(next, 1, s.gridH(), s.gridW(), merge, time);
                }
            } else {
                put(p, k, videoGroups(next, 0, t, s.gridH(), s.gridW(), merge, time));
                next = nextAfter(next, t, s.gridH(), s.gridW(), merge, time);
            }
            i = s.end();
        }
        for (; i < n; i++, next++) { p[0][i] = next; p[1][i] = next; p[2][i] = next; }
        return new MropePositions(p, next - n);
    }

    private static void put(int[][] p, int at, int[][] block) {
        for (int a = 0; a < 3; a++) System.arraycopy(block[a], 0, p[a], at, block[a].length);
    }

    // ---- one video span, group by group (live sessions append temporal groups to a KV cache) ----------------------

    /**
     * How the temporal index of a video span advances. Qwen2-VL (and images, Qwen3-VL): by one per temporal patch.
     * Qwen2.5-VL ({@code timeScaled}): as transformers 5.17's {@code get_rope_index}, temporal patch {@code t} gets
     * {@code (long) (t * (long) secondPerGridT * tokensPerSecond)} — {@code second_per_grid_t} is first cast to the
     * integer dtype of the index range (truncated: 0.5 s per group at 4 fps gives 0, so every group shares one
     * temporal id; 1.0 s at 2 fps with {@code tokens_per_second} 2 gives 0, 2, 4, ...).
     *
     * @param secondPerGridT  seconds per temporal patch, {@code temporal_patch_size / fps} ({@code second_per_grid_ts})
     * @param tokensPerSecond {@code vision_config.tokens_per_second}
     */
    public record Temporal(boolean timeScaled, double secondPerGridT, double tokensPerSecond) {
        public Temporal {
            if (timeScaled && !(secondPerGridT >= 0 && Double.isFinite(secondPerGridT) && tokensPerSecond > 0 && Double.isFinite(tokensPerSecond)))
                throw new IllegalArgumentException("second_per_grid_t must be >= 0 and tokens_per_second > 0, got " + secondPerGridT + ", " + tokensPerSecond);
        }

        /** One step per temporal patch (Qwen2-VL, images). */
        public static final Temporal UNSCALED = new Temporal(false, 0, 1);

        /** The rule of {@code config}'s family ({@code qwen2_5_vl}: scaled) for a video of {@code secondPerGridT}. */
        public static Temporal of(ModelConfig config, double secondPerGridT) {
            return config.modelType().startsWith("qwen2_5_vl") ? new Temporal(true, secondPerGridT, config.tokensPerSecond()) : UNSCALED;
        }

        /** Temporal offset of temporal patch {@code t} from the span's base position. */
        public int index(int t) {
            if (t < 0) throw new IllegalArgumentException("temporal index must be >= 0, got " + t);
            if (!timeScaled) return t;
            long whole = (long) secondPerGridT;   // torch.as_tensor(second_per_grid_t, dtype=int64): truncation
            double v = (double) t * whole * tokensPerSecond;
            if (v > Integer.MAX_VALUE / 2.0) throw new IllegalArgumentException("temporal position " + v + " of patch " + t + " overflows");
            return (int) v;
        }
    }

    /**
     * M-RoPE ids {@code [3][count * h/m * w/m]} of temporal patches {@code [fromT, fromT + count)} of ONE vision span
     * (grid {@code gridT x gridH x gridW} before the spatial merge) whose block starts at {@code base} — the first free
     * position after the text before the span (for a prompt: the index of the first pad token when nothing but text
     * precedes it). Token {@code (t, r, c)} (merged row/column) gets {@code (base + time.index(t), base + r, base + c)},
     * tokens in the span's order (t, then rows, then columns). Calling it for groups 0..g-1 one at a time gives the
     * same ids as for the whole span at once: what a live session appends with a single temporal group at temporal
     * index {@code fromT}. The grid's {@code gridT} does not enter: only {@code fromT + count} patches are assumed.
     */
    public static int[][] videoGroups(int base, int fromT, int count, int gridH, int gridW, int merge, Temporal time) {
        if (base < 0 || fromT < 0 || count <= 0) throw new IllegalArgumentException("need base >= 0, fromT >= 0, count > 0, got " + base + ", " + fromT + ", " + count);
        if (merge <= 0 || gridH <= 0 || gridW <= 0 || gridH % merge != 0 || gridW % merge != 0)
            throw new IllegalArgumentException("grid " + gridH + "x" + gridW + " is not divisible by the spatial merge size " + merge);
        int h = gridH / merge, w = gridW / merge;
        int[][] p = new int[3][Math.multiplyExact(count, Math.multiplyExact(h, w))];
        int k = 0;
        for (int tt = fromT; tt < fromT + count; tt++) {
            int ti = base + time.index(tt);
            for (int r = 0; r < h; r++)
                for (int c = 0; c < w; c++, k++) { p[0][k] = ti; p[1][k] = base + r; p[2][k] = base + c; }
        }
        return p;
    }

    /**
     * The first free position after temporal patches {@code [0, groups)} of a span as in {@link #videoGroups}:
     * {@code base + max(time.index(groups - 1), h/m - 1, w/m - 1) + 1}. Text after the span continues there, one
     * position per token on all three axes ({@link #text}); a decode step at cache index {@code i} then uses
     * {@code i + delta} with {@code delta = nextAfter(...) - (index after the span)}.
     */
    public static int nextAfter(int base, int groups, int gridH, int gridW, int merge, Temporal time) {
        if (groups <= 0) throw new IllegalArgumentException("need at least one temporal group, got " + groups);
        if (merge <= 0 || gridH % merge != 0 || gridW % merge != 0)
            throw new IllegalArgumentException("grid " + gridH + "x" + gridW + " is not divisible by the spatial merge size " + merge);
        int spatial = Math.max(gridH / merge, gridW / merge) - 1;
        return base + Math.max(time.index(groups - 1), spatial) + 1;
    }

    /** M-RoPE ids {@code [3][count]} of {@code count} text tokens starting at position {@code next} (equal on all axes). */
    public static int[][] text(int next, int count) {
        int[][] p = new int[3][count];
        for (int i = 0; i < count; i++) { p[0][i] = next + i; p[1][i] = next + i; p[2][i] = next + i; }
        return p;
    }
}
