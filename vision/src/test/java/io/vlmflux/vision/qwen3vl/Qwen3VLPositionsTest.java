package io.vlmflux.vision.qwen3vl;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The position-interpolation tables (what the GPU tower uploads and the CPU tower applies) against a line-by-line
 * port of transformers' {@code fast_pos_embed_interpolate}: raster-order index and weight lists, the blend summed
 * corner by corner, then the {@code view(t, h/m, m, w/m, m).permute(0, 1, 3, 2, 4)} reorder into merge windows.
 */
class Qwen3VLPositionsTest {

    /** transformers' formula for one frame: {@code [4][h*w]} indices and weights in raster order. */
    private static Object[] transformers(int side, int gh, int gw) {
        float[] hIdx = Qwen3VLPositions.linspace(side - 1, gh), wIdx = Qwen3VLPositions.linspace(side - 1, gw);
        int[][] idx = new int[4][gh * gw];
        float[][] wt = new float[4][gh * gw];
        for (int y = 0; y < gh; y++)
            for (int x = 0; x < gw; x++) {
                int hFloor = (int) hIdx[y], wFloor = (int) wIdx[x];                       // h_idxs.int()
                int hCeil = Math.min(hFloor + 1, side - 1), wCeil = Math.min(wFloor + 1, side - 1); // .clip(max=side-1)
                float dh = hIdx[y] - hFloor, dw = wIdx[x] - wFloor;
                int baseH = hFloor * side, baseHCeil = hCeil * side, i = y * gw + x;     // (base_h[None].T + w[None]).flatten()
                idx[0][i] = baseH + wFloor;
                idx[1][i] = baseH + wCeil;
                idx[2][i] = baseHCeil + wFloor;
                idx[3][i] = baseHCeil + wCeil;
                wt[0][i] = (1 - dh) * (1 - dw);
                wt[1][i] = (1 - dh) * dw;
                wt[2][i] = dh * (1 - dw);
                wt[3][i] = dh * dw;
            }
        return new Object[]{idx, wt};
    }

    /** Raster index of the r-th patch in merge-window order. */
    private static int raster(int r, int m, int gw) {
        int mw = r % m, mh = (r / m) % m, win = r / (m * m), bw = win % (gw / m), bh = win / (gw / m);
        return (bh * m + mh) * gw + bw * m + mw;
    }

    @ParameterizedTest(name = "side {0}, grid {1}x{2}")
    @CsvSource({"8, 2, 30", "8, 6, 10", "8, 14, 10", "8, 20, 4", "8, 34, 2", "8, 8, 8", "48, 22, 36", "48, 2, 2", "48, 98, 6", "3, 10, 14", "1, 4, 2"})
    void tablesMatchTransformersFormula(int side, int gh, int gw) {
        int m = 2, d = 5;
        Qwen3VLPositions.Table t = Qwen3VLPositions.of(side, m, gh, gw);
        Object[] ref = transformers(side, gh, gw);
        int[][] idx = (int[][]) ref[0];
        float[][] wt = (float[][]) ref[1];
        assertEquals(gh * gw, t.rows());
        for (int r = 0; r < t.rows(); r++) {
            int src = raster(r, m, gw);
            for (int c = 0; c < 4; c++) {
                assertEquals(idx[c][src], t.index()[4 * r + c], "index " + c + " of patch " + r);
                assertEquals(Float.floatToIntBits(wt[c][src]), Float.floatToIntBits(t.weight()[4 * r + c]), "weight " + c + " of patch " + r);
                assertTrue(t.index()[4 * r + c] >= 0 && t.index()[4 * r + c] < side * side);
            }
        }
        // the blend: pos_embeds[0] + pos_embeds[1] + pos_embeds[2] + pos_embeds[3], each pos_embed(idx) * weight
        Random rnd = new Random(side * 1000 + gh * 31 + gw);
        float[] table = new float[side * side * d];
        for (int i = 0; i < table.length; i++) table[i] = (float) rnd.nextGaussian();
        float[] got = new float[(gh * gw + 3) * d];
        Qwen3VLPositions.addTo(got, 3, t, table, d, 0, t.rows());
        for (int r = 0; r < t.rows(); r++) {
            int src = raster(r, m, gw);
            for (int k = 0; k < d; k++) {
                float want = table[idx[0][src] * d + k] * wt[0][src] + table[idx[1][src] * d + k] * wt[1][src]
                        + table[idx[2][src] * d + k] * wt[2][src] + table[idx[3][src] * d + k] * wt[3][src];
                assertEquals(want, got[(3 + r) * d + k], 0f, "patch " + r + " channel " + k);
            }
        }
    }

    @ParameterizedTest(name = "grid {0}x{1}")
    @CsvSource({"3, 4", "0, 2", "2, 5"})
    void gridsNotDivisibleByTheMergeAreRefused(int gh, int gw) {
        var e = assertThrows(IllegalArgumentException.class, () -> Qwen3VLPositions.of(8, 2, gh, gw));
        assertTrue(e.getMessage().contains(gh + "x" + gw), e.getMessage());
    }
}
