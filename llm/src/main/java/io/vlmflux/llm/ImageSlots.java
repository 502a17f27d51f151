package io.vlmflux.llm;

import java.util.Arrays;

/**
 * Expands image slots in a token sequence: each {@code <|image_pad|>} id that stands alone (one per image, as a chat
 * template writes it) becomes {@code counts[i]} copies for the i-th image. Returns the new tokens and where each
 * image's span starts, ready for {@link EmbeddingSpan}s.
 */
public final class ImageSlots {
    private ImageSlots() {}

    public record Expanded(int[] tokens, int[] spanStarts) {}

    /** Indices of the image-pad ids in {@code tokens}. */
    public static int countSlots(int[] tokens, int imagePadId) {
        int c = 0;
        for (int t : tokens) if (t == imagePadId) c++;
        return c;
    }

    public static Expanded expand(int[] tokens, int imagePadId, int[] counts) {
        int slots = countSlots(tokens, imagePadId);
        if (slots != counts.length)
            throw new IllegalArgumentException("prompt has " + slots + " image slots (token " + imagePadId + ") but " + counts.length + " images were given");
        long total = tokens.length;
        for (int c : counts) {
            if (c <= 0) throw new IllegalArgumentException("image token count must be positive, got " + Arrays.toString(counts));
            total += c - 1;
        }
        int[] out = new int[Math.toIntExact(total)];
        int[] starts = new int[counts.length];
        int o = 0, img = 0;
        for (int t : tokens) {
            if (t == imagePadId) {
                starts[img] = o;
                for (int j = 0; j < counts[img]; j++) out[o++] = imagePadId;
                img++;
            } else {
                out[o++] = t;
            }
        }
        return new Expanded(out, starts);
    }
}
