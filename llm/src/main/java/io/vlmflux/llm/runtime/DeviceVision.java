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
 * Qwen3-VL's DeepStack features stay on the device too (fp32 {@code [features, tokens, hidden]} beside the rows): the
 * CUDA decoder adds them after their decoder layers where they are.
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
        final DeviceBuffer deepstack;     // Qwen3-VL: fp32 [features, tokens, hidden], null for other towers
        final int features;

        Rows(DeviceArena memory, long poolKey, DeviceEmbeddings e) {
            super(e.tokens(), e.hidden(), e.gridT(), e.gridH(), e.gridW(), e.contentHash());
            this.memory = memory;
            this.poolKey = poolKey;
            DeviceBuffer b = memory.alloc("image rows bf16 [" + e.tokens() + ", " + e.hidden() + "]", 2L * e.tokens() * e.hidden());
            this.rows = new SpanRows.Device(b, true);
            this.features = e.deepstackLayers();
            this.deepstack = features == 0 ? null
                    : memory.alloc("DeepStack rows fp32 [" + features + ", " + e.tokens() + ", " + e.hidden() + "]", 4L * features * e.tokens() * e.hidden());
        }

        @Override SpanRows spanRows() { return rows; }
        @Override DeviceBuffer deviceDeepstack() { return deepstack; }
        @Override int deepstackFeatures() { return features; }
        @Override long bytes() { return memory.capacity() + 128; }
    }

    private final boolean groupsOnDevice;   // Tuning.liveDevicePreprocess
    private DeviceArena groupInput;          // live groups' bf16 patches side by side (grown as needed)

    DeviceVision(GpuImageProcessor processor, GpuVisionEncoder encoder, long cacheBytes, boolean groupsOnDevice) {
        super(cacheBytes);
        this.processor = processor;
        this.encoder = encoder;
        this.stream = encoder.stream();
        this.groupsOnDevice = groupsOnDevice;
    }

    @Override boolean preprocessesGroups(io.vlmflux.vision.PreprocessorConfig cfg) {
        return groupsOnDevice && processor.config().samePixelMath(cfg);
    }

    /**
     * Live groups preprocessed on the device ({@link GpuImageProcessor#processInto}, each at its session's size) side by
     * side into one input buffer, then ONE encoder pass, each group's rows kept in memory of their own. The frames are
     * copied to the staging buffer by processInto, so the caller may close them when this returns.
     */
    @Override List<ImageRows> encodeFrameGroupRows(List<FrameGroup> groups) {
        int p = processor.config().patchSize(), tps = processor.config().temporalPatchSize(), pd = processor.config().patchDim();
        int[][] grids = new int[groups.size()][];
        long total = 0;
        for (int i = 0; i < groups.size(); i++) {
            FrameGroup g = groups.get(i);
            grids[i] = new int[] {(g.frames().size() + tps - 1) / tps, g.height() / p, g.width() / p};
            total += 2L * grids[i][0] * grids[i][1] * grids[i][2] * pd;
        }
        if (groupInput == null || groupInput.capacity() < total + 256L * groups.size()) {
            if (groupInput != null) { stream.synchronize(); groupInput.close(); }
            groupInput = stream.device().newArena("live group patches", Math.max(total + 256L * groups.size(), 8L << 20));
        }
        groupInput.reset(0);
        DeviceBuffer all = groupInput.alloc("live group patches bf16", total);
        long off = 0;
        long[] hashes = new long[groups.size()];
        for (int i = 0; i < groups.size(); i++) {
            FrameGroup g = groups.get(i);
            long bytes = 2L * grids[i][0] * grids[i][1] * grids[i][2] * pd;
            hashes[i] = processor.processInto(g.frames(), g.height(), g.width(), all.slice(off, bytes, "group " + i)).contentHash();
            off += bytes;
        }
        // outside the encoder-output cache, so the pass needs no content hash of its own (as encodeToDevice(List) of host pixels)
        return keepEach(encoder.encodeToDevice(all, grids, groups.size() == 1 ? hashes[0] : 0L), grids, hashes);
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
     * Copies the encoder's output rows and DeepStack features (Qwen3-VL) into pooled memory of their own (the encoder's
     * buffers are reused by its next call), on the stream: nothing waits.
     */
    private Rows keep(DeviceEmbeddings e) {
        return keep(e, 0, e.tokens(), e.gridT(), e.gridH(), e.gridW(), e.contentHash());
    }

    /** {@link #keep(DeviceEmbeddings)} for tokens [row0, row0 + tokens) of a batch's concatenated embeddings. */
    private Rows keep(DeviceEmbeddings e, int row0, int tokens, int gridT, int gridH, int gridW, long contentHash) {
        int H = e.hidden(), K = e.deepstackLayers();
        DeviceEmbeddings one = new DeviceEmbeddings(e.f32(), e.bf16(), tokens, H, gridT, gridH, gridW, contentHash, e.deepstack(), K);
        long rowBytes = (2L * tokens * H + 255) / 256 * 256;
        long need = rowBytes + (4L * K * tokens * H + 255) / 256 * 256;
        Rows r = new Rows(take(need), need, one);
        stream.copyAsync(r.rows.buffer(), e.bf16().slice(2L * row0 * H, 2L * tokens * H, "rows " + row0 + "+" + tokens), 2L * tokens * H);
        if (K > 0 && tokens == e.tokens())   // the whole batch: its features are one contiguous block
            stream.copyAsync(r.deepstack, e.deepstack(), 4L * K * tokens * H);
        else for (int k = 0; k < K; k++)   // feature k of this input: rows [row0, row0 + tokens) of the batch's feature k
            stream.copyAsync(r.deepstack.slice(4L * k * tokens * H, 4L * tokens * H, "DeepStack " + k),
                    e.deepstackFeature(k).slice(4L * row0 * H, 4L * tokens * H, "DeepStack " + k + " rows " + row0 + "+" + tokens),
                    4L * tokens * H);
        return r;
    }

    /** Several clips in one encoder pass (the groups several live sessions append at once), each kept in rows of its own. */
    @Override List<ImageRows> encodeClipRows(List<io.vlmflux.vision.PixelValues> clips) {
        int[][] grids = clips.stream().map(px -> new int[] {px.gridT(), px.gridH(), px.gridW()}).toArray(int[][]::new);
        return keepEach(encoder.encodeToDevice(clips), grids, clips.stream().mapToLong(io.vlmflux.vision.PixelValues::contentHash).toArray());
    }

    /**
     * The rows of each input of a batch encoded in one pass (inputs of grids {t, h, w}, in order), each kept in memory
     * of its own; all or nothing.
     */
    private List<ImageRows> keepEach(DeviceEmbeddings e, int[][] grids, long[] hashes) {
        int m2 = encoder.mergeSize() * encoder.mergeSize();
        List<ImageRows> out = new ArrayList<>(grids.length);
        int row0 = 0;
        try {
            for (int i = 0; i < grids.length; i++) {
                int tokens = grids[i][0] * grids[i][1] * grids[i][2] / m2;
                out.add(keep(e, row0, tokens, grids[i][0], grids[i][1], grids[i][2], hashes[i]));
                row0 += tokens;
            }
            if (row0 != e.tokens()) throw new IllegalStateException("batch of " + grids.length + " inputs gave " + e.tokens() + " rows, expected " + row0);
        } catch (RuntimeException | Error x) {
            for (ImageRows r : out) free(r);
            throw x;
        }
        return out;
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
        if (groupInput != null) groupInput.close();
        processor.close();
        encoder.close();
    }

    @Override String describe() { return encoder.describe() + ", GPU preprocessing, image rows spliced on the device"; }
}
