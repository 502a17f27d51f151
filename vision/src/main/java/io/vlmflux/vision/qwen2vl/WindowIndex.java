package io.vlmflux.vision.qwen2vl;

import java.util.ArrayList;
import java.util.List;

/** Qwen2.5-VL's window order of merged units, shared by the CPU tower and the GPU tower's index tables. */
public final class WindowIndex {
    private WindowIndex() {}

    /**
     * Qwen2.5-VL {@code get_window_index} (the CPU tower and the GPU tower's index tables share it): merged units of
     * each {@code t x h x w} patch grid grouped into windows of {@code windowUnits} units square (the grid padded up to
     * whole windows; padding dropped), window by window in raster order, grid after grid. Returns
     * {@code {index, cuWindowSeqlens}}: {@code index[k]} = original merged unit at permuted position k, boundaries in
     * patches with empty windows removed.
     */
    public static List<int[]> of(int[][] grids, int merge, int windowUnits) {
        int m = merge, m2 = m * m, vmw = windowUnits;
        int totalUnits = 0;
        for (int[] g : grids) totalUnits += g[0] * g[1] * g[2] / m2;
        int[] index = new int[totalUnits];
        List<Integer> cu = new ArrayList<>();
        cu.add(0);
        int k = 0, base = 0, last = 0;
        for (int[] g : grids) {
            int lh = g[1] / m, lw = g[2] / m;
            int nwh = (lh + vmw - lh % vmw) / vmw, nww = (lw + vmw - lw % vmw) / vmw;
            for (int t = 0; t < g[0]; t++)
                for (int wh = 0; wh < nwh; wh++)
                    for (int ww = 0; ww < nww; ww++) {
                        int count = 0;
                        for (int y = wh * vmw; y < Math.min((wh + 1) * vmw, lh); y++)
                            for (int x = ww * vmw; x < Math.min((ww + 1) * vmw, lw); x++) {
                                index[k++] = base + t * lh * lw + y * lw + x;
                                count++;
                            }
                        if (count > 0) { last += count * m2; cu.add(last); }
                    }
            base += g[0] * lh * lw;
        }
        return List.of(index, cu.stream().mapToInt(Integer::intValue).toArray());
    }
}
