package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.cuda.gpu.VisionGpuOps;
import io.vlmflux.vision.qwen3vl.Qwen3VLPositions;

import java.util.Arrays;
import java.util.List;

/**
 * The device index tables of one batch of grids, built on the host and uploaded once into an arena of their own
 * (kept by the encoder while the grids repeat, as with a camera): rotary positions, attention tiles (one segment per
 * frame; Qwen2.5-VL also per window, with the window permutation of merge units), and for Qwen3-VL the rows and
 * weights of the interpolated position embeddings. Patches are in merge-window order throughout.
 *
 * @param key          the grids, {@code t x h x w;} per input
 * @param pos          int32 {@code [n, 2]}: (row, column) of every patch, in the order the blocks see them
 * @param unitIndex    int32 {@code [n / m^2]}: the window permutation of merge units (Qwen2.5-VL), else null
 * @param posIndex     int32 {@code [n, 4]}: position-table rows per patch (Qwen3-VL), else null
 * @param posWeight    fp32 {@code [n, 4]}: their bilinear weights (Qwen3-VL), else null
 */
record TowerTables(String key, int n, DeviceArena arena, DeviceBuffer pos, DeviceBuffer fullTiles, int fullTileCount,
                   DeviceBuffer winTiles, int winTileCount, DeviceBuffer unitIndex, DeviceBuffer posIndex, DeviceBuffer posWeight)
        implements AutoCloseable {

    static String key(int[][] grids) {
        StringBuilder kb = new StringBuilder();
        for (int[] g : grids) kb.append(g[0]).append('x').append(g[1]).append('x').append(g[2]).append(';');
        return kb.toString();
    }

    /** Builds and uploads the tables of {@code grids} ({t, h, w} per input, {@code n} patches in all) on {@code stream}. */
    static TowerTables build(TowerSpec spec, int[][] grids, int n, GpuStream stream) {
        int m = spec.mergeSize(), m2 = m * m;
        int units = n / m2;
        int[] pos = new int[2 * n];
        int[] fullCu = new int[1 + Arrays.stream(grids).mapToInt(g -> g[0]).sum()];
        int row = 0, seg = 0;
        for (int[] g : grids) {
            for (int t = 0; t < g[0]; t++) {
                for (int bh = 0; bh < g[1] / m; bh++)
                    for (int bw = 0; bw < g[2] / m; bw++)
                        for (int mh = 0; mh < m; mh++)
                            for (int mw = 0; mw < m; mw++, row++) {
                                pos[2 * row] = bh * m + mh;
                                pos[2 * row + 1] = bw * m + mw;
                            }
                fullCu[seg + 1] = fullCu[seg] + g[1] * g[2];
                seg++;
            }
        }
        int[] index = null, winCu = null;
        if (spec.windowed()) {
            List<int[]> w = io.vlmflux.vision.qwen2vl.WindowIndex.of(grids, spec.mergeSize(),
                    spec.windowSize() / spec.mergeSize() / spec.patchSize());
            index = w.get(0);
            winCu = w.get(1);
            if (index.length != units) throw new IllegalStateException("window index of " + index.length + " units for " + units);
            int[] permuted = new int[2 * n];
            for (int u = 0; u < units; u++) System.arraycopy(pos, 2 * index[u] * m2, permuted, 2 * u * m2, 2 * m2);
            pos = permuted;
        }
        int[] posIndex = null;
        float[] posWeight = null;
        if (spec.qwen3()) {   // the frame's table repeated per temporal patch, as transformers' pos_embed.repeat(t, 1)
            posIndex = new int[4 * n];
            posWeight = new float[4 * n];
            int r = 0;
            for (int[] g : grids) {
                Qwen3VLPositions.Table tb = Qwen3VLPositions.of(spec.positionSide(), m, g[1], g[2]);
                for (int t = 0; t < g[0]; t++, r += tb.rows()) {
                    System.arraycopy(tb.index(), 0, posIndex, 4 * r, 4 * tb.rows());
                    System.arraycopy(tb.weight(), 0, posWeight, 4 * r, 4 * tb.rows());
                }
            }
        }
        int[] fullTiles = VisionGpuOps.attentionTiles(fullCu);
        int[] winTiles = winCu == null ? null : VisionGpuOps.attentionTiles(winCu);
        long bytes = 4L * pos.length + 4L * fullTiles.length + (winTiles == null ? 0 : 4L * winTiles.length + 4L * units)
                + (posIndex == null ? 0 : 32L * n) + 6 * 256;
        DeviceArena arena = stream.device().newArena("vision index tables", bytes);
        try {
            DeviceBuffer dPos = upload(arena, stream, "rotary positions", pos);
            DeviceBuffer dFull = upload(arena, stream, "full-attention tiles", fullTiles);
            DeviceBuffer dWin = winTiles == null ? null : upload(arena, stream, "window tiles", winTiles);
            DeviceBuffer dIndex = index == null ? null : upload(arena, stream, "window index", index);
            DeviceBuffer dPosIndex = posIndex == null ? null : upload(arena, stream, "position-table rows", posIndex);
            DeviceBuffer dPosWeight = null;
            if (posWeight != null) {
                dPosWeight = arena.alloc("position-table weights", 4L * posWeight.length);
                stream.upload(dPosWeight, posWeight);
            }
            return new TowerTables(key(grids), n, arena, dPos, dFull, fullTiles.length / 4, dWin, winTiles == null ? 0 : winTiles.length / 4,
                    dIndex, dPosIndex, dPosWeight);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static DeviceBuffer upload(DeviceArena arena, GpuStream stream, String name, int[] v) {
        DeviceBuffer b = arena.alloc(name, 4L * v.length);
        stream.upload(b, v);
        return b;
    }

    @Override public void close() { arena.close(); }
}
