package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.gpu.DeviceBuffer;

/**
 * Preprocessed pixels on the device, the GPU twin of {@link io.vlmflux.vision.PixelValues}: bf16
 * {@code [gridT * gridH * gridW, patchDim]} in the processor's merge-window order. A borrowed view: valid until the
 * {@link GpuImageProcessor} that made it processes the next frame or is closed.
 *
 * @param contentHash a 64-bit hash of what determines the values exactly (the frame's pixel bytes, layout,
 *                    colorimetry and the resized size): equal frames give equal hashes, the cache key of the encoder
 */
public record GpuPixels(DeviceBuffer data, int patchDim, int gridT, int gridH, int gridW, long contentHash) {
    public GpuPixels {
        if (patchDim <= 0 || gridT <= 0 || gridH <= 0 || gridW <= 0)
            throw new IllegalArgumentException("patchDim and grid must be positive, got " + patchDim + ", " + gridT + "x" + gridH + "x" + gridW);
        if (data.bytes() < 2L * gridT * gridH * gridW * patchDim)
            throw new IllegalArgumentException("device pixels '" + data.name() + "' hold " + data.bytes() + " bytes, grid "
                    + gridT + "x" + gridH + "x" + gridW + " x " + patchDim + " bf16 needs " + 2L * gridT * gridH * gridW * patchDim);
    }

    public int numPatches() { return gridT * gridH * gridW; }
}
