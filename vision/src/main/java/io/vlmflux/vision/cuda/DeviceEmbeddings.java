package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.gpu.DeviceBuffer;

/**
 * Encoder output on the device: one row per image token, raster order of the merged grid, in fp32 and bf16
 * (pick whichever the decoder's embedding buffer holds; {@code GpuOps.spliceRows} copies either into the prompt's
 * embedding rows at the image-token positions), plus the DeepStack features of towers that have them (Qwen3-VL).
 * A borrowed view: valid until the encoder's next call or close.
 *
 * @param f32             fp32 {@code [tokens, hidden]}
 * @param bf16            bf16 {@code [tokens, hidden]}
 * @param deepstack       fp32 {@code [deepstackLayers, tokens, hidden]}: feature k (added after decoder layer k) in the
 *                        token order of {@link #f32()}; null when {@code deepstackLayers == 0}
 * @param deepstackLayers DeepStack features ({@code deepstack_visual_indexes} entries), 0 for other towers
 */
public record DeviceEmbeddings(DeviceBuffer f32, DeviceBuffer bf16, int tokens, int hidden,
                               int gridT, int gridH, int gridW, long contentHash, DeviceBuffer deepstack, int deepstackLayers) {
    public DeviceEmbeddings {
        if (deepstackLayers < 0 || (deepstackLayers > 0) != (deepstack != null))
            throw new IllegalArgumentException("DeepStack buffer " + deepstack + " does not fit " + deepstackLayers + " features");
    }

    /** Embeddings without DeepStack features (Qwen2-VL, Qwen2.5-VL). */
    public DeviceEmbeddings(DeviceBuffer f32, DeviceBuffer bf16, int tokens, int hidden, int gridT, int gridH, int gridW, long contentHash) {
        this(f32, bf16, tokens, hidden, gridT, gridH, gridW, contentHash, null, 0);
    }

    /** Byte offset of token {@code row} in {@link #f32()} (4 bytes per value) or {@link #bf16()} (2). */
    public long rowOffset(int row, boolean bf16Buffer) {
        if (row < 0 || row > tokens) throw new IndexOutOfBoundsException("token " + row + " of " + tokens);
        return (long) row * hidden * (bf16Buffer ? 2 : 4);
    }

    /** DeepStack feature {@code k} as a view of {@link #deepstack()}: fp32 {@code [tokens, hidden]}. */
    public DeviceBuffer deepstackFeature(int k) {
        if (k < 0 || k >= deepstackLayers) throw new IndexOutOfBoundsException("DeepStack feature " + k + " of " + deepstackLayers);
        long bytes = 4L * tokens * hidden;
        return deepstack.slice(k * bytes, bytes, "DeepStack feature " + k);
    }
}
