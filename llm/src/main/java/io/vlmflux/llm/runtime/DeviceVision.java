package io.vlmflux.llm.runtime;

import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.llm.SpanRows;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.cuda.DeviceEmbeddings;
import io.vlmflux.vision.cuda.GpuImageProcessor;
import io.vlmflux.vision.cuda.GpuPixels;
import io.vlmflux.vision.cuda.GpuVisionEncoder;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The cuda vision path: frame → {@link GpuImageProcessor} (pinned upload, preprocessing kernels) →
 * {@link GpuVisionEncoder} → bf16 image-token rows copied into a buffer this class owns, which the CUDA decoder
 * splices into its embedding buffer (a device span; nothing crosses to the host). All work is enqueued on the
 * runtime's one stream, so the prefill that reads the rows runs after they are written without synchronization.
 * Qwen3-VL's DeepStack features are the exception: the decoder takes them as host rows, so they are downloaded once
 * per encode (one copy of {@code features x tokens x hidden} fp32, which waits for the encoder).
 *
 * <p>Row buffers come from a pool of device allocations per size (a camera's frames all have one size), so a steady
 * stream allocates nothing; buffers beyond the pool bound are freed on the compute thread before the next encode
 * (cudaFree synchronizes).
 */
final class DeviceVision extends VisionPath<GpuPixels> {
    private static final long POOL_MAX_BYTES = 64L << 20;   // idle row buffers kept for reuse

    private final GpuImageProcessor processor;
    private final GpuVisionEncoder encoder;
    private final GpuStream stream;
    private final Map<Long, ArrayDeque<DeviceArena>> pool = new HashMap<>();
    private final List<DeviceArena> toFree = new ArrayList<>();
    private long pooledBytes, allocations;

    private static final class Rows extends ImageRows {
        final DeviceArena memory;
        final long poolKey;
        final SpanRows.Device rows;
        final List<float[]> deepstack;   // Qwen3-VL: host copies (the decoder's DeepStack interface takes host rows)

        Rows(DeviceArena memory, long poolKey, DeviceEmbeddings e, List<float[]> deepstack) {
            super(e.tokens(), e.hidden(), e.gridT(), e.gridH(), e.gridW(), e.contentHash());
            this.memory = memory;
            this.poolKey = poolKey;
            DeviceBuffer b = memory.alloc("image rows bf16 [" + e.tokens() + ", " + e.hidden() + "]", 2L * e.tokens() * e.hidden());
            this.rows = new SpanRows.Device(b, true);
            this.deepstack = List.copyOf(deepstack);
        }

        @Override SpanRows spanRows() { return rows; }
        @Override List<float[]> deepstack() { return deepstack; }
        @Override long bytes() { return memory.capacity() + 4L * tokens * hidden * deepstack.size() + 128; }
    }

    DeviceVision(GpuImageProcessor processor, GpuVisionEncoder encoder, long cacheBytes) {
        super(cacheBytes);
        this.processor = processor;
        this.encoder = encoder;
        this.stream = encoder.stream();
    }

    @Override void beforeEncode() {
        if (toFree.isEmpty()) return;
        stream.synchronize();   // rows may still be read by an enqueued prefill
        for (DeviceArena a : toFree) a.close();
        toFree.clear();
    }

    @Override Preprocessed<GpuPixels> preprocess(Frame frame) {
        GpuPixels px = processor.process(frame);
        return new Preprocessed<>(px, px.contentHash(), px.gridT(), px.gridH(), px.gridW());
    }

    @Override ImageRows encodeRows(Preprocessed<GpuPixels> px) {
        return keep(encoder.encodeToDevice(px.pixels()));
    }

    /** A clip preprocessed on the host: uploaded, encoded (segments per temporal slice / window), rows kept on the device. */
    @Override ImageRows encodeClipRows(io.vlmflux.vision.PixelValues px) {
        return keep(encoder.encodeToDevice(px));
    }

    /**
     * Copies the encoder's output rows into pooled memory of their own (the encoder's buffers are reused by its next
     * call); DeepStack features (Qwen3-VL) are downloaded, which waits for the encoder: {@code CudaDecoder} reads
     * DeepStack rows from the host ({@link io.vlmflux.llm.EmbeddingSpan#deepstack()}).
     */
    private Rows keep(DeviceEmbeddings e) {
        List<float[]> deep = encoder.deepstackToHost(e);
        long need = (2L * e.tokens() * e.hidden() + 255) / 256 * 256;
        Rows r = new Rows(take(need), need, e, deep);
        stream.copyAsync(r.rows.buffer(), e.bf16(), r.rows.buffer().bytes());
        return r;
    }

    private DeviceArena take(long cap) {
        ArrayDeque<DeviceArena> q = pool.get(cap);
        if (q != null && !q.isEmpty()) {
            pooledBytes -= cap;
            return q.pop();
        }
        allocations++;
        return stream.device().newArena("image rows", cap);
    }

    @Override void free(ImageRows rows) {
        Rows r = (Rows) rows;
        if (isClosed()) { r.memory.close(); return; }   // close() synchronized the stream already
        if (pooledBytes + r.poolKey > POOL_MAX_BYTES) { toFree.add(r.memory); return; }
        r.memory.reset(0);
        pool.computeIfAbsent(r.poolKey, k -> new ArrayDeque<>()).push(r.memory);
        pooledBytes += r.poolKey;
    }

    @Override long allocations() { return allocations; }

    @Override void beforeClose() {
        try { stream.synchronize(); } catch (RuntimeException ignored) { /* closing anyway */ }
    }

    @Override void closeBackend() {
        for (ArrayDeque<DeviceArena> q : pool.values()) toFree.addAll(q);
        pool.clear();
        for (DeviceArena a : toFree) a.close();
        toFree.clear();
        processor.close();
        encoder.close();
    }

    @Override String describe() { return encoder.describe() + ", GPU preprocessing, image rows spliced on the device"; }
}
