package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.gpu.DeviceBuffer;

/**
 * Encoder output on the device: one row per image token, raster order of the merged grid, in fp32 and bf16
 * (pick whichever the decoder's embedding buffer holds; {@code GpuOps.spliceRows} copies either into the prompt's
 * embedding rows at the image-token positions). A borrowed view: valid until the encoder's next call or close.
 *
 * @param f32    fp32 {@code [tokens, hidden]}
 * @param bf16   bf16 {@code [tokens, hidden]}
 */
public record DeviceEmbeddings(DeviceBuffer f32, DeviceBuffer bf16, int tokens, int hidden,
                               int gridT, int gridH, int gridW, long contentHash) {
    /** Byte offset of token {@code row} in {@link #f32()} (4 bytes per value) or {@link #bf16()} (2). */
    public long rowOffset(int row, boolean bf16Buffer) {
        if (row < 0 || row > tokens) throw new IndexOutOfBoundsException("token " + row + " of " + tokens);
        return (long) row * hidden * (bf16Buffer ? 2 : 4);
    }
}
