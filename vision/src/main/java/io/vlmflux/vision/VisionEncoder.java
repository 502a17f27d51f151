package io.vlmflux.vision;

import java.util.List;

/**
 * A vision tower plus patch merger: pixel values in, one embedding per image token out. Backend-neutral (the CPU
 * reference lives in {@code io.vlmflux.vision.qwen2vl}; a GPU encoder implements the same interface).
 * Implementations are safe to call from one thread at a time; {@link #close()} releases weights and is idempotent.
 */
public interface VisionEncoder extends AutoCloseable {
    /** Encodes one image or clip. */
    ImageEmbeddings encode(PixelValues pixels);

    /** Encodes several images in one call; each attends only within itself. Results in input order. */
    default List<ImageEmbeddings> encode(List<PixelValues> images) {
        return images.stream().map(this::encode).toList();
    }

    /** Width of the output embeddings. */
    int outHidden();

    /** Spatial merge size: image tokens = patches / mergeSize^2. */
    int mergeSize();

    /**
     * DeepStack features per input ({@link ImageEmbeddings#deepstack()} size): the number of first decoder layers
     * that add a visual feature after them. 0 for towers without DeepStack.
     */
    default int deepstackLayers() { return 0; }

    /** Backend and model, for logs (e.g. {@code cpu qwen2_vl depth=32 width=1280}). */
    String describe();

    @Override
    void close();
}
