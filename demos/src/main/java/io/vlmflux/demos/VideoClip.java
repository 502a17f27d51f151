package io.vlmflux.demos;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.SourceException;
import io.vlmflux.sources.Sources;
import io.vlmflux.vision.Images;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * The frames of one {@code --video} argument and the rate they stand for (what a video prompt's timing is computed
 * from: Qwen2.5-VL's {@code second_per_grid_t = temporal_patch_size / fps}, Qwen3-VL's timestamps).
 * <ul>
 *   <li>a folder: its image files ({@code png, jpg, jpeg, bmp, gif}) in name order, taken to be sampled at
 *       {@code --video-fps} (default 2); {@code --video-frames N} keeps N of them evenly
 *       ({@code floor(i * total / N)}, as transformers' {@code sample_frames}), the rate scaled by N / total;</li>
 *   <li>anything else is a source spec ({@code docs/sources.md}; a plain path is a video file): a file is sampled at
 *       {@code --video-fps} by its timestamps (frame k is the first at or after k / fps seconds), or, with only
 *       {@code --video-frames N}, N frames evenly over the whole file (it is decoded twice: once to count); both
 *       given: the first N frames at that rate. A live source needs {@code --video-frames}.</li>
 * </ul>
 * Kept frames are copied to packed RGB on the heap (the source's buffers go back at once); at most
 * {@link #MAX_FRAMES}. The caller owns the frames.
 *
 * @param frames kept frames, in time order
 * @param fps    the rate they were sampled at (frames per second)
 */
record VideoClip(List<Frame> frames, double fps) {
    /** Most frames one clip may hold ({@code max_frames} of Qwen2-VL's video processor). */
    static final int MAX_FRAMES = 768;
    static final double DEFAULT_FPS = 2.0;
    private static final Set<String> IMAGE_EXT = Set.of("png", "jpg", "jpeg", "bmp", "gif");

    /**
     * Reads {@code path} as described above. {@code fps} / {@code count} are null when not given. Errors name the
     * path or the flag.
     */
    static VideoClip read(String path, Double fps, Integer count) throws IOException {
        if (fps != null && !(fps > 0 && fps < 1e4)) throw new UsageException("--video-fps must be in (0, 10000), got " + fps);
        if (count != null && (count < 1 || count > MAX_FRAMES)) throw new UsageException("--video-frames must be in 1.." + MAX_FRAMES + ", got " + count);
        Path dir = Path.of(path);
        if (Files.isDirectory(dir)) return folder(dir, fps == null ? DEFAULT_FPS : fps, count);
        FrameSource src;
        try {
            src = Sources.parse(path);
        } catch (SourceException e) {
            throw new UsageException("--video " + path + ": " + e.getMessage());
        }
        if (src.isLive() && count == null)
            throw new UsageException("--video " + path + " is a live source: give --video-frames N (N frames at --video-fps, default " + DEFAULT_FPS + ")");
        if (fps == null && count != null) return evenly(path, src, count);
        return atRate(path, src, fps == null ? DEFAULT_FPS : fps, count);
    }

    private static VideoClip folder(Path dir, double fps, Integer count) throws IOException {
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(Files::isRegularFile).filter(VideoClip::isImage).sorted((a, b) -> a.getFileName().toString().compareTo(b.getFileName().toString())).toList();
        }
        if (files.isEmpty()) throw new UsageException("--video " + dir + ": the folder has no image files (" + String.join(", ", IMAGE_EXT) + ")");
        int total = files.size();
        List<Path> keep = files;
        double rate = fps;
        if (count != null) {
            if (count > total) throw new UsageException("--video-frames " + count + " exceeds the " + total + " frames of " + dir);
            keep = new ArrayList<>();
            for (int i : evenIndices(total, count)) keep.add(files.get(i));
            rate = fps * count / total;
        }
        if (keep.size() > MAX_FRAMES)
            throw new UsageException("--video " + dir + " has " + keep.size() + " frames; at most " + MAX_FRAMES + " (use --video-frames)");
        List<Frame> frames = new ArrayList<>();
        try {
            for (Path f : keep) frames.add(Images.read(f));
        } catch (RuntimeException e) {
            for (Frame f : frames) f.close();
            throw e;
        }
        return new VideoClip(frames, rate);
    }

    private static boolean isImage(Path p) {
        String n = p.getFileName().toString();
        int dot = n.lastIndexOf('.');
        return dot > 0 && IMAGE_EXT.contains(n.substring(dot + 1).toLowerCase(Locale.ROOT));
    }

    /** {@code floor(i * total / n)} for i in 0..n-1 (transformers' {@code arange(0, total, total / n).int()}). */
    static int[] evenIndices(int total, int n) {
        int[] idx = new int[n];
        double step = (double) total / n;
        for (int i = 0; i < n; i++) idx[i] = Math.min(total - 1, (int) (i * step));
        return idx;
    }

    /** Every frame whose timestamp reaches the next sample time k / fps (from the first frame), up to {@code count}. */
    private static VideoClip atRate(String spec, FrameSource src, double fps, Integer count) {
        int limit = count == null ? MAX_FRAMES + 1 : count;
        List<Frame> kept = new ArrayList<>();
        AtomicLong first = new AtomicLong(Long.MIN_VALUE);
        AtomicInteger next = new AtomicInteger();
        try {
            src.frames().doOnNext(f -> {
                try {
                    long pts = timestamp(spec, f);
                    if (first.get() == Long.MIN_VALUE) first.set(pts);
                    double t = (pts - first.get()) / 1e9;
                    if (t + 1e-9 >= next.get() / fps) {
                        kept.add(copy(f));
                        while (next.get() / fps <= t + 1e-9) next.incrementAndGet();
                    }
                } finally {
                    f.close();
                }
            }).takeWhile(f -> kept.size() < limit).blockLast();
        } catch (RuntimeException e) {
            for (Frame f : kept) f.close();
            throw e;
        }
        return finish(spec, kept, fps);
    }

    /** N frames evenly over a whole (non-live) source: one pass to count, one to keep. */
    private static VideoClip evenly(String spec, FrameSource src, int count) {
        AtomicInteger total = new AtomicInteger();
        AtomicLong first = new AtomicLong(Long.MIN_VALUE), last = new AtomicLong();
        src.frames().doOnNext(f -> {
            try {
                long pts = timestamp(spec, f);
                if (first.get() == Long.MIN_VALUE) first.set(pts);
                last.set(pts);
                total.incrementAndGet();
            } finally {
                f.close();
            }
        }).blockLast();
        int n = total.get();
        if (n == 0) throw new UsageException("--video " + spec + ": the source gave no frames");
        if (count > n) throw new UsageException("--video-frames " + count + " exceeds the " + n + " frames of " + spec);
        int[] idx = evenIndices(n, count);
        List<Frame> kept = new ArrayList<>();
        AtomicInteger i = new AtomicInteger();
        try {
            src.frames().doOnNext(f -> {
                try {
                    int k = i.getAndIncrement();
                    if (kept.size() < idx.length && idx[kept.size()] == k) kept.add(copy(f));
                } finally {
                    f.close();
                }
            }).blockLast();
        } catch (RuntimeException e) {
            for (Frame f : kept) f.close();
            throw e;
        }
        if (kept.size() != count) {
            for (Frame f : kept) f.close();
            throw new UsageException("--video " + spec + ": the second pass gave " + kept.size() + " of the " + count + " frames the first pass found");
        }
        double span = (last.get() - first.get()) / 1e9;
        double sourceFps = n > 1 && span > 0 ? (n - 1) / span : DEFAULT_FPS;
        return new VideoClip(kept, sourceFps * count / n);
    }

    private static VideoClip finish(String spec, List<Frame> kept, double fps) {
        if (kept.isEmpty()) throw new UsageException("--video " + spec + ": the source gave no frames");
        if (kept.size() > MAX_FRAMES) {
            for (Frame f : kept) f.close();
            throw new UsageException("--video " + spec + " gives more than " + MAX_FRAMES + " frames at " + fps + " fps: lower --video-fps or give --video-frames");
        }
        return new VideoClip(kept, fps);
    }

    private static long timestamp(String spec, Frame f) {
        if (f.ptsNanos() < 0)
            throw new UsageException("--video " + spec + ": frame " + f.sequence() + " has no timestamp, so it cannot be sampled by rate; give --video-frames N alone");
        return f.ptsNanos();
    }

    private static Frame copy(Frame f) {
        return Images.fromRgb(Images.toRgb(f), f.width(), f.height());
    }
}
