package io.vlmflux.vision.qwen2vl;

import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.cpu.Parallel;

/**
 * Bidirectional multi-head attention restricted to segments of the sequence (the {@code cu_seqlens} of the
 * Hugging Face vision towers: one segment per image frame, or per window). No mask inside a segment, nothing across
 * segments. Float32, parallel over (segment, head, query rows). Shared with the Qwen3-VL tower. A candidate for {@code io.vlmflux.cuda.cpu}.
 */
public final class SegmentAttention {
    private SegmentAttention() {}

    /**
     * @param qkv   {@code [n, 3*heads*headDim]}: q, k, v blocks per row (rotary already applied to q and k)
     * @param cu    segment boundaries, {@code cu[0] = 0 <= ... <= cu[last] = n} (empty segments allowed)
     * @param out   {@code [n, heads*headDim]}
     */
    public static void attend(float[] qkv, int n, int heads, int headDim, int[] cu, float[] out) {
        int d = heads * headDim, row = 3 * d;
        float scale = (float) (1.0 / Math.sqrt(headDim));
        if (cu[0] != 0 || cu[cu.length - 1] != n) throw new IllegalArgumentException("segments " + java.util.Arrays.toString(cu) + " do not cover " + n + " rows");
        int[] segOf = new int[n];
        for (int s = 0; s + 1 < cu.length; s++) {
            if (cu[s + 1] < cu[s]) throw new IllegalArgumentException("segment bounds decrease: " + java.util.Arrays.toString(cu));
            for (int i = cu[s]; i < cu[s + 1]; i++) segOf[i] = s;
        }
        // work item = (query row i, head h)
        Parallel.forRange(n * heads, 8, (lo, hi) -> {
            float[] scores = null;
            for (int item = lo; item < hi; item++) {
                int i = item / heads, h = item % heads;
                int s0 = cu[segOf[i]], s1 = cu[segOf[i] + 1], len = s1 - s0;
                if (scores == null || scores.length < len) scores = new float[Math.max(len, 64)];
                int qo = i * row + h * headDim;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < len; j++) {
                    int ko = (s0 + j) * row + d + h * headDim;
                    float sum = CpuOps.dot(qkv, qo, qkv, ko, headDim) * scale;
                    scores[j] = sum;
                    if (sum > max) max = sum;
                }
                float total = 0f;
                for (int j = 0; j < len; j++) { float e = (float) Math.exp(scores[j] - max); scores[j] = e; total += e; }
                float inv = 1f / total;
                int oo = i * d + h * headDim;
                java.util.Arrays.fill(out, oo, oo + headDim, 0f);
                for (int j = 0; j < len; j++) CpuOps.axpy(out, oo, scores[j] * inv, qkv, (s0 + j) * row + 2 * d + h * headDim, headDim);
            }
        });
    }
}
