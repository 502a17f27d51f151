package io.vlmflux.vision.cuda;

import org.junit.jupiter.api.condition.EnabledIf;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.PixelValues;
import io.vlmflux.vision.PreprocessorConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * GPU preprocessing against the CPU reference ({@link ImageProcessor}, itself exact vs transformers): identical
 * float values (not merely within tolerance) for the golden PNGs, for NV12 / I420 frames with padded strides, odd
 * sizes and each colorimetry, for packed RGB/BGR/RGBA/BGRA/GRAY8, for sizes that take every smart-resize branch, and
 * for clips. Also the golden pixel values of the fixtures within the README's preprocessing tolerance.
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class GpuImageProcessorTest {
    static GpuStream stream;

    @BeforeAll
    static void open() {
        assumeTrue(Gpu.isAvailable(), () -> "no GPU: " + Gpu.unavailableReason());
        stream = Gpu.device().newStream();
    }

    @AfterAll
    static void close() {
        if (stream != null) stream.close();
    }

    static void assertSame(PixelValues want, PixelValues got, String what) {
        assertEquals(want.gridH(), got.gridH(), what + " grid h");
        assertEquals(want.gridW(), got.gridW(), what + " grid w");
        assertEquals(want.gridT(), got.gridT(), what + " grid t");
        float[] a = want.data(), b = got.data();
        assertEquals(a.length, b.length);
        int bad = 0;
        double max = 0;
        for (int i = 0; i < a.length; i++) if (a[i] != b[i]) { bad++; max = Math.max(max, Math.abs(a[i] - b[i])); }
        assertEquals(0, bad, what + ": " + bad + " of " + a.length + " values differ (max " + max + ")");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"tiny-qwen2vl", "tiny-qwen25vl"})
    void goldenPngsExactlyAsCpu(String model) throws Exception {
        Path dir = Fixtures.fixture(model);
        ImageProcessor cpu = ImageProcessor.load(dir);
        try (GpuImageProcessor gpu = GpuImageProcessor.load(dir, stream)) {
            for (int i = 0; i < 4; i++) {
                try (Frame f = TestPng.read(dir.resolve("golden_image_" + i + ".png"))) {
                    PixelValues want = cpu.process(f), got = gpu.processToHost(f);
                    assertSame(want, got, model + " image " + i);
                    int[][] shape = new int[1][];
                    float[] golden = Fixtures.readF32(dir.resolve("golden.safetensors"), "image" + i + ".pixel_values", shape);
                    double max = 0, mean = 0;
                    for (int j = 0; j < golden.length; j++) { double d = Math.abs(golden[j] - got.data()[j]); max = Math.max(max, d); mean += d; }
                    mean /= golden.length;
                    System.out.printf("%s image %d: GPU == CPU; vs golden max %.2e mean %.2e%n", model, i, max, mean);
                    assertTrue(max <= 0.03 && mean <= 0.002, "vs golden: max " + max + " mean " + mean);
                }
            }
        }
    }

    /** A YUV frame with padded strides (and an offset first plane) filled with random bytes. */
    static Frame yuv(PixelFormat fmt, int w, int h, String colorimetry, long seed) {
        Random r = new Random(seed);
        int cw = (w + 1) / 2, ch = (h + 1) / 2;
        int s0 = w + 13, s1 = (fmt == PixelFormat.NV12 ? 2 * cw : cw) + 7, s2 = cw + 3;
        long off0 = 64, off1 = off0 + (long) s0 * h + 32, off2 = off1 + (long) s1 * ch + 16;
        long size = (fmt == PixelFormat.NV12 ? off1 + (long) s1 * ch : off2 + (long) s2 * ch) + 5;
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(size);
        for (long i = 0; i < size; i++) seg.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt(256));
        Frame.Builder b = Frame.builder().format(fmt).size(w, h).data(seg).releaser(arena::close).colorimetry(colorimetry);
        if (fmt == PixelFormat.NV12) b.strides(s0, s1).planeOffsets(off0, off1);
        else b.strides(s0, s1, s2).planeOffsets(off0, off1, off2);
        return b.build();
    }

    static Frame packed(PixelFormat fmt, int w, int h, long seed) {
        Random r = new Random(seed);
        int bpp = fmt.bytesPerPixel(), stride = w * bpp + 9;
        long size = (long) stride * h;
        Arena arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(size);
        for (long i = 0; i < size; i++) seg.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt(256));
        return Frame.builder().format(fmt).size(w, h).strides(stride).data(seg).releaser(arena::close).build();
    }

    @ParameterizedTest(name = "{0} {1}x{2} {3}")
    @CsvSource({"NV12, 640, 480, ", "I420, 640, 480, ", "NV12, 1280, 720, bt709", "I420, 333, 211, bt601",
                "NV12, 57, 301, jpeg", "I420, 1920, 1080, 2:4:7:1", "NV12, 448, 448, bt2020"})
    void yuvFramesExactlyAsCpu(String fmt, int w, int h, String colorimetry) {
        PreprocessorConfig cfg = PreprocessorConfig.load(Fixtures.fixture("tiny-qwen25vl"));
        // the fixture's small pixel bounds and the published defaults (56*56 .. 28*28*1280)
        for (PreprocessorConfig c : List.of(cfg, withBounds(cfg, 3136, 1003520))) {
            ImageProcessor cpu = new ImageProcessor(c);
            try (GpuImageProcessor gpu = new GpuImageProcessor(c, stream); Frame f = yuv(PixelFormat.valueOf(fmt), w, h, colorimetry, w * 31L + h)) {
                assertSame(cpu.process(f), gpu.processToHost(f), fmt + " " + w + "x" + h + " bounds " + c.maxPixels());
            }
        }
    }

    static PreprocessorConfig withBounds(PreprocessorConfig c, long min, long max) {
        return new PreprocessorConfig(c.patchSize(), c.temporalPatchSize(), c.mergeSize(), min, max, c.imageMean(), c.imageStd(),
                c.rescaleFactor(), c.doResize(), c.doRescale(), c.doNormalize(), c.doConvertRgb());
    }

    @Test
    void packedFormatsAndClipsExactlyAsCpu() {
        PreprocessorConfig c = withBounds(PreprocessorConfig.load(Fixtures.fixture("tiny-qwen2vl")), 3136, 1003520);
        ImageProcessor cpu = new ImageProcessor(c);
        try (GpuImageProcessor gpu = new GpuImageProcessor(c, stream)) {
            int k = 0;
            for (PixelFormat fmt : new PixelFormat[] {PixelFormat.RGB, PixelFormat.BGR, PixelFormat.RGBA, PixelFormat.BGRA, PixelFormat.GRAY8}) {
                for (int[] size : new int[][] {{448, 448}, {300, 200}, {28, 56}, {1000, 30}}) {
                    try (Frame f = packed(fmt, size[0], size[1], k++)) {
                        assertSame(cpu.process(f), gpu.processToHost(f), fmt + " " + size[0] + "x" + size[1]);
                    }
                }
            }
            // clips of 1..3 frames: the bf16 device output matches the CPU values rounded to bf16
            for (int n = 1; n <= 3; n++) {
                Frame[] frames = new Frame[n];
                for (int i = 0; i < n; i++) frames[i] = yuv(PixelFormat.NV12, 200, 120, null, 100 + i);
                try {
                    PixelValues want = cpu.process(List.of(frames));
                    GpuPixels got = gpu.process(List.of(frames));
                    assertEquals(want.gridT(), got.gridT());
                    short[] bits = stream.downloadShorts(got.data(), want.data().length);
                    for (int i = 0; i < bits.length; i++)
                        assertEquals(io.vlmflux.cuda.DType.floatToBf16(want.data()[i]), bits[i], "clip of " + n + " value " + i);
                } finally {
                    for (Frame f : frames) f.close();
                }
            }
        }
    }
}
