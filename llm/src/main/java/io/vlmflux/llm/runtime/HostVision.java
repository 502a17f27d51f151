package io.vlmflux.llm.runtime;

import io.vlmflux.sources.Frame;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.VisionEncoder;

/** The cpu vision path: the reference processor and encoder; rows (and DeepStack features, Qwen3-VL) on the host. */
final class HostVision extends VisionPath<PixelValues> {
    private final ImageProcessor processor;
    private final VisionEncoder encoder;

    HostVision(ImageProcessor processor, VisionEncoder encoder, long cacheBytes) {
        super(cacheBytes);
        this.processor = processor;
        this.encoder = encoder;
    }

    @Override Preprocessed<PixelValues> preprocess(Frame frame) {
        PixelValues px = processor.process(frame);
        return new Preprocessed<>(px, px.contentHash(), px.gridT(), px.gridH(), px.gridW());
    }

    @Override ImageRows encodeRows(Preprocessed<PixelValues> px) {
        ImageEmbeddings e = encoder.encode(px.pixels());
        return new ImageRows.Host(e.data(), e.tokens(), e.hidden(), e.gridT(), e.gridH(), e.gridW(), e.contentHash(), e.deepstack());
    }

    @Override ImageRows encodeClipRows(PixelValues px) {
        ImageEmbeddings e = encoder.encode(px);
        return new ImageRows.Host(e.data(), e.tokens(), e.hidden(), e.gridT(), e.gridH(), e.gridW(), e.contentHash(), e.deepstack());
    }

    @Override java.util.List<ImageRows> encodeClipRows(java.util.List<PixelValues> clips) {
        return encoder.encode(clips).stream().<ImageRows>map(e -> new ImageRows.Host(e.data(), e.tokens(), e.hidden(), e.gridT(), e.gridH(),
                e.gridW(), e.contentHash(), e.deepstack())).toList();
    }

    @Override void free(ImageRows rows) { /* garbage collected */ }

    @Override void closeBackend() { encoder.close(); }

    @Override String describe() { return encoder.describe(); }
}
