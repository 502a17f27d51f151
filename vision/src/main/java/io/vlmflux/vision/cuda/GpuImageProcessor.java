package io.vlmflux.vision.cuda;

import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.cuda.gpu.PinnedBuffer;
import io.vlmflux.cuda.gpu.VisionGpuOps;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.PreprocessTables;
import io.vlmflux.vision.PreprocessorConfig;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Qwen2-VL / Qwen2.5-VL preprocessing on the GPU, bit-exact with {@link ImageProcessor}: the frame (RGB, BGR, RGBA,
 * BGRA, GRAY8, NV12 or I420, strides and plane offsets honoured) is copied once into pinned staging memory and
 * uploaded as is; one kernel converts colour and resamples horizontally (torch's antialiased uint8 bicubic with
 * int16 fixed-point weights), a second resamples vertically, normalises, duplicates temporally and writes the
 * encoder's input patches (bf16, merge-window order) directly. Still images and decoded frames take this same path.
 *
 * <p>Owns its device and pinned buffers (grown on demand); {@link GpuPixels} it returns are valid until the next
 * {@code process} call. Work is enqueued on the given stream; one thread at a time ({@code synchronized}).
 */
public final class GpuImageProcessor implements AutoCloseable {
    private final PreprocessorConfig config;
    private final ImageProcessor sizes;
    private final GpuStream stream;
    private final VisionGpuOps vops;
    private final DeviceArena fixed;
    private final DeviceBuffer lut;
    private DeviceArena buffers;       // src, mid, out (grown on demand)
    private long bufferCapacity;
    private PinnedBuffer staging;
    private DeviceArena axisArena;     // resample tables of the last size pair
    private String axisKey;
    private VisionGpuOps.ResampleAxis hAxis, vAxis;
    private boolean pending;           // an upload from staging may still be in flight
    private boolean closed;

    public GpuImageProcessor(PreprocessorConfig config, GpuStream stream) {
        this.config = Objects.requireNonNull(config, "config");
        this.sizes = new ImageProcessor(config);
        this.stream = Objects.requireNonNull(stream, "stream");
        this.vops = new VisionGpuOps(stream);
        this.fixed = stream.device().newArena("preprocess lut", 4096);
        this.lut = fixed.alloc("normalisation lut", 4L * 3 * 256);
        stream.upload(lut, PreprocessTables.normalizeLut(config));
    }

    /** Reads {@code preprocessor_config.json} of a model folder. */
    public static GpuImageProcessor load(Path modelDir, GpuStream stream) {
        return new GpuImageProcessor(PreprocessorConfig.load(modelDir), stream);
    }

    public PreprocessorConfig config() { return config; }

    /** Preprocesses one frame or still image into the encoder's bf16 input (device). */
    public synchronized GpuPixels process(Frame frame) {
        DeviceBuffer out = run(List.of(frame), true);
        int[] hw = sizes.resizedSize(frame.width(), frame.height());
        int p = config.patchSize();
        return new GpuPixels(out, config.patchDim(), 1, hw[0] / p, hw[1] / p, lastHash);
    }

    /** Preprocesses consecutive frames of one clip (grid_t = ceil(n / temporal_patch_size), the last frame repeated). */
    public synchronized GpuPixels process(List<Frame> frames) {
        DeviceBuffer out = run(frames, true);
        Frame f = frames.getFirst();
        int[] hw = sizes.resizedSize(f.width(), f.height());
        int p = config.patchSize(), tps = config.temporalPatchSize();
        return new GpuPixels(out, config.patchDim(), (frames.size() + tps - 1) / tps, hw[0] / p, hw[1] / p, lastHash);
    }

    /**
     * Preprocesses consecutive frames of one clip resized to a FIXED {@code resizedHeight x resizedWidth} (a video
     * processor's choice, e.g. a live session's group) into bf16 patches written to {@code out} (the caller's buffer,
     * so that several clips can lie side by side for one encoder pass). The frames' bytes are copied before this
     * returns: the caller may close them then. As {@code VideoProcessor.process(clip, h, w)} with this config's pixel
     * arithmetic (grid_t = ceil(n / temporal_patch_size), the last frame repeated).
     */
    public synchronized GpuPixels processInto(List<Frame> frames, int resizedHeight, int resizedWidth, DeviceBuffer out) {
        int p = config.patchSize(), m = config.mergeSize(), tps = config.temporalPatchSize();
        if (resizedHeight <= 0 || resizedWidth <= 0 || resizedHeight % (p * m) != 0 || resizedWidth % (p * m) != 0)
            throw new IllegalArgumentException("a clip's resized size must be a positive multiple of patch_size*merge_size = " + p * m + ", got "
                    + resizedWidth + "x" + resizedHeight);
        int gridT = (frames.size() + tps - 1) / tps, gh = resizedHeight / p, gw = resizedWidth / p;
        long need = 2L * gridT * gh * gw * config.patchDim();
        if (out.bytes() < need)
            throw new IllegalArgumentException("processInto: out '" + out.name() + "' holds " + out.bytes() + " bytes, the clip's bf16 patches need " + need);
        run(frames, true, resizedHeight, resizedWidth, out);
        return new GpuPixels(out, config.patchDim(), gridT, gh, gw, lastHash);
    }

    /** The same preprocessing with fp32 output, downloaded (parity checks against {@link ImageProcessor}). */
    public synchronized PixelValues processToHost(Frame frame) {
        DeviceBuffer out = run(List.of(frame), false);
        int[] hw = sizes.resizedSize(frame.width(), frame.height());
        int p = config.patchSize();
        int gh = hw[0] / p, gw = hw[1] / p;
        float[] v = stream.downloadFloats(out, gh * gw * config.patchDim());
        return PixelValues.of(v, config.patchDim(), 1, gh, gw);
    }

    private long lastHash;

    private DeviceBuffer run(List<Frame> frames, boolean bf16) {
        if (frames.isEmpty()) throw new IllegalArgumentException("no frames to preprocess");
        int[] hw = sizes.resizedSize(frames.getFirst().width(), frames.getFirst().height());
        return run(frames, bf16, hw[0], hw[1], null);
    }

    /** Preprocesses {@code frames} resized to {@code rh x rw} into {@code into} (null: this processor's own buffer). */
    private DeviceBuffer run(List<Frame> frames, boolean bf16, int rh, int rw, DeviceBuffer into) {
        if (closed) throw new IllegalStateException("GPU image processor was closed");
        if (frames.isEmpty()) throw new IllegalArgumentException("no frames to preprocess");
        Frame first = frames.getFirst();
        int w = first.width(), h = first.height();
        for (int i = 1; i < frames.size(); i++)
            if (frames.get(i).width() != w || frames.get(i).height() != h)
                throw new IllegalArgumentException("frame " + i + " of the clip is " + frames.get(i).width() + "x" + frames.get(i).height()
                        + ", frame 0 is " + w + "x" + h + ": all frames of a clip must have one size");
        int p = config.patchSize(), m = config.mergeSize(), tps = config.temporalPatchSize();
        if (rh % (p * m) != 0 || rw % (p * m) != 0)
            throw new IllegalArgumentException("with do_resize=false the image size " + w + "x" + h
                    + " must be a multiple of patch_size*merge_size = " + p * m);
        int n = frames.size(), gridT = (n + tps - 1) / tps;
        long rows = (long) (rh / p) * (rw / p);
        long outBytes = (bf16 ? 2L : 4L) * gridT * rows * config.patchDim();
        long[] spans = new long[n];
        long srcBytes = 0;
        for (int i = 0; i < n; i++) {
            spans[i] = layout(frames.get(i)).spanBytes();
            srcBytes += (spans[i] + 255) / 256 * 256;
        }
        long midBytes = 3L * h * rw;
        ensureBuffers(srcBytes, midBytes, into == null ? outBytes : 0);
        axes(w, h, rw, rh);
        buffers.reset(0);
        DeviceBuffer src = buffers.alloc("frame bytes", srcBytes);
        DeviceBuffer mid = buffers.alloc("resized rows uint8 [h, w', 3]", midBytes);
        DeviceBuffer out = into != null ? into : buffers.alloc("patches", outBytes);
        // the previous upload from staging must be done before the staging memory is overwritten
        if (pending) stream.synchronize();
        long hash = 0x9E3779B97F4A7C15L ^ ((long) rh << 32) ^ rw ^ ((long) n << 56);
        long off = 0;
        MemorySegment pinned = MemorySegment.ofAddress(staging.address()).reinterpret(staging.bytes());
        for (int i = 0; i < n; i++) {
            Frame f = frames.get(i);
            MemorySegment.copy(f.data(), 0, pinned, off, spans[i]);
            hash = mix(hash, pinned, off, spans[i]);
            VisionGpuOps.FrameLayout lay = layout(f);
            hash = mixLong(hash, f.format().ordinal() * 31L + lay.s0() * 7L + lay.s1() * 13L + lay.s2() * 17L + lay.off1() * 19L + lay.off2() * 23L + lay.off0());
            hash = mixLong(hash, ((long) f.width() << 32) | f.height());
            if (f.colorimetry() != null) hash = mixLong(hash, f.colorimetry().hashCode());
            off += (spans[i] + 255) / 256 * 256;
        }
        stream.copyAsync(src, staging, 0, off);
        pending = true;
        off = 0;
        for (int i = 0; i < n; i++) {
            Frame f = frames.get(i);
            DeviceBuffer s = src.slice(off, spans[i], "frame " + i);
            off += (spans[i] + 255) / 256 * 256;
            double[] yuv = f.format() == PixelFormat.NV12 || f.format() == PixelFormat.I420
                    ? PreprocessTables.yuvMatrix(f.colorimetry(), h) : new double[6];
            vops.preprocessHorizontal(mid, s, layout(f), yuv, hAxis, rw);
            // frame i fills temporal slot i % tps of temporal patch i / tps; the last frame also fills the slots after it
            int t = i / tps, slot = i % tps;
            int slots = i == n - 1 ? tps - slot : 1;
            vops.preprocessVerticalPatchify(out, bf16, mid, rw, rh, vAxis, lut, p, m, tps, t, slot, slots);
        }
        lastHash = hash;
        return out;
    }

    private static VisionGpuOps.FrameLayout layout(Frame f) {
        int planes = f.planeCount();
        return new VisionGpuOps.FrameLayout(f.format().ordinal(), f.width(), f.height(),
                f.planeOffset(0), planes > 1 ? f.planeOffset(1) : 0, planes > 2 ? f.planeOffset(2) : 0,
                f.stride(0), planes > 1 ? f.stride(1) : 0, planes > 2 ? f.stride(2) : 0);
    }

    private void ensureBuffers(long src, long mid, long out) {
        long need = src + mid + out + 3 * 256;
        if (buffers == null || need > bufferCapacity) {
            if (buffers != null) { stream.synchronize(); buffers.close(); }
            bufferCapacity = Math.max(need, bufferCapacity * 3 / 2);
            buffers = stream.device().newArena("preprocess buffers", bufferCapacity);
        }
        if (staging == null || staging.bytes() < src) {
            if (staging != null) { stream.synchronize(); staging.close(); pending = false; }
            staging = new PinnedBuffer(Math.max(src, staging == null ? 0 : staging.bytes() * 3 / 2));
        }
    }

    private void axes(int w, int h, int rw, int rh) {
        String key = w + "x" + h + "->" + rw + "x" + rh;
        if (key.equals(axisKey)) return;
        if (axisArena != null) { stream.synchronize(); axisArena.close(); axisArena = null; }
        PreprocessTables.Axis ha = rw != w ? PreprocessTables.bicubicAxis(w, rw) : null;
        PreprocessTables.Axis va = rh != h ? PreprocessTables.bicubicAxis(h, rh) : null;
        long bytes = 4096 + (ha == null ? 0 : 4L * (2L * rw + ha.weights().length) + 1024)
                + (va == null ? 0 : 4L * (2L * rh + va.weights().length) + 1024);
        axisArena = stream.device().newArena("resample tables", bytes);
        hAxis = ha == null ? null : upload("horizontal", ha, rw);
        vAxis = va == null ? null : upload("vertical", va, rh);
        axisKey = key;
    }

    private VisionGpuOps.ResampleAxis upload(String name, PreprocessTables.Axis a, int out) {
        DeviceBuffer first = axisArena.alloc(name + " first", 4L * out);
        DeviceBuffer count = axisArena.alloc(name + " count", 4L * out);
        DeviceBuffer wts = axisArena.alloc(name + " weights", 4L * a.weights().length);
        stream.upload(first, a.first());
        stream.upload(count, a.count());
        stream.upload(wts, a.weights());
        return new VisionGpuOps.ResampleAxis(first, count, wts, out, a.taps(), a.precision());
    }

    private static long mix(long acc, MemorySegment seg, long off, long len) {
        long i = 0;
        for (; i + 8 <= len; i += 8) acc = mixLong(acc, seg.get(ValueLayout.JAVA_LONG_UNALIGNED, off + i));
        long tail = 0;
        for (; i < len; i++) tail = (tail << 8) | (seg.get(ValueLayout.JAVA_BYTE, off + i) & 0xFF);
        return mixLong(acc, tail ^ len);
    }

    private static long mixLong(long acc, long v) {
        acc ^= v;
        acc *= 0xFF51AFD7ED558CCDL;
        return acc ^ (acc >>> 29);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            stream.synchronize();
        } finally {
            vops.close();
            if (buffers != null) buffers.close();
            if (axisArena != null) axisArena.close();
            if (staging != null) staging.close();
            fixed.close();
        }
    }
}
