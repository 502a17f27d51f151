package io.vlmflux.demos;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.SourceStats;
import io.vlmflux.sources.Sources;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@code vlmflux probe}: opens a source, reads frames for a while and reports the negotiated format, the measured frame
 * rate and frame statistics. A progress line goes to stderr while it runs; the report to stdout.
 */
public final class ProbeCommand implements Command {
    @Override public String summary() { return "open a video source and report its format, fps and frame statistics"; }

    @Override public String usage() {
        return """
                vlmflux probe --source SPEC [--frames N | --duration D] [--width W] [--height H] [--format F] [--json]
                  --source SPEC   test:ball, a file path, file://, rtsp://, http(s)://, udp://@:5000?encoding=H264,
                                  v4l2:///dev/video0, images:/dir/*.png, gst:LAUNCH ! appsink name=sink (docs/sources.md)
                  --frames N      stop after N frames (default 100 when --duration is not given)
                  --duration D    stop after D (500ms, 10s, 1m)
                  --width W, --height H, --format F   output negotiated inside GStreamer (default: source size, RGB;
                                  F: RGB BGR RGBA BGRA GRAY8 NV12 I420 any)
                  --json          one JSON object on stdout""";
    }

    /** What probe measured. */
    record Report(String source, boolean live, int width, int height, String format, String colorimetry, long frames,
                  long dropped, long reconnects, double seconds, double fps, long firstPtsNanos, long lastPtsNanos,
                  double meanLuma) {}

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("source", "frames", "duration", "width", "height", "format"), Set.of("json"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        String spec = a.require("source");
        if (a.has("frames") && a.has("duration")) throw new UsageException("give --frames or --duration, not both");
        Duration duration = a.getDuration("duration");
        long frames = a.has("frames") ? a.getLong("frames", 100) : duration == null ? 100 : Long.MAX_VALUE;
        if (frames <= 0) throw new UsageException("--frames must be positive, got " + frames);
        PixelFormat format = PixelFormat.RGB;
        if (a.has("format")) {
            String f = a.get("format");
            try { format = f.equalsIgnoreCase("any") ? null : PixelFormat.fromGstName(f); }
            catch (IllegalArgumentException e) { throw new UsageException("--format: " + e.getMessage()); }
        }
        int w = a.getInt("width", 0), h = a.getInt("height", 0);
        if (w < 0 || h < 0) throw new UsageException("--width/--height must not be negative");
        SourceOptions opts = a.has("format") || w > 0 || h > 0 ? new SourceOptions(w, h, format) : null;
        Report r = probe(spec, opts, frames, duration, true);
        System.out.println(a.flag("json") ? json(r) : text(r));
        System.out.flush();
        return 0;
    }

    /** Reads from {@code spec} until {@code maxFrames} or {@code duration} (null: no limit) and measures. */
    static Report probe(String spec, SourceOptions opts, long maxFrames, Duration duration, boolean progress) {
        FrameSource src = Sources.parse(spec, opts);
        final class Acc {
            long count, firstPts = -1, lastPts = -1, t0, tFirst, tLast, lastProgress;
            int width, height;
            String format, colorimetry;
            double lumaSum;
            int lumaFrames;
        }
        Acc acc = new Acc();
        acc.t0 = System.nanoTime();
        AtomicReference<Throwable> err = new AtomicReference<>();
        var flux = src.frames().take(maxFrames);
        if (duration != null) flux = flux.take(duration);
        try {
            flux.doOnNext(f -> {
                try (f) {
                    long now = System.nanoTime();
                    if (acc.count == 0) {
                        acc.tFirst = now;
                        acc.width = f.width();
                        acc.height = f.height();
                        acc.format = f.format().name();
                        acc.colorimetry = f.colorimetry();
                        acc.firstPts = f.ptsNanos();
                    }
                    acc.tLast = now;
                    acc.lastPts = f.ptsNanos();
                    acc.count++;
                    if (acc.lumaFrames < 1000) { acc.lumaSum += meanLuma(f); acc.lumaFrames++; }
                    if (progress && now - acc.lastProgress > 250_000_000L) {
                        acc.lastProgress = now;
                        double secs = (now - acc.tFirst) / 1e9;
                        System.err.printf(Locale.ROOT, "\rprobe %s: %d frames, %.1f fps, %d dropped   ", spec, acc.count,
                                secs > 0 ? (acc.count - 1) / secs : 0.0, src.stats().dropped());
                    }
                }
            }).doOnDiscard(Frame.class, Frame::close).blockLast();
        } finally {
            if (progress && acc.lastProgress != 0) System.err.println();
        }
        if (acc.count == 0) throw new IllegalStateException("source '" + spec + "' ended without delivering a frame");
        SourceStats st = src.stats();
        double secs = (acc.tLast - acc.tFirst) / 1e9;
        double fps = acc.count > 1 && secs > 0 ? (acc.count - 1) / secs : 0;
        return new Report(spec, src.isLive(), acc.width, acc.height, acc.format, acc.colorimetry, acc.count, st.dropped(),
                st.reconnects(), (acc.tLast - acc.t0) / 1e9, fps, acc.firstPts, acc.lastPts, acc.lumaSum / acc.lumaFrames);
    }

    /** Mean luma (0..255, BT.601 weights for RGB) over a 1-in-4 subsample of rows and columns. */
    static double meanLuma(Frame f) {
        MemorySegment d = f.data();
        int bpp = f.format().bytesPerPixel();
        long sum = 0, n = 0;
        for (int y = 0; y < f.height(); y += 4) {
            long row = f.planeOffset(0) + (long) y * f.stride(0);
            for (int x = 0; x < f.width(); x += 4) {
                long p = row + (long) x * bpp;
                int v;
                switch (f.format()) {
                    case RGB, RGBA -> v = (299 * u(d, p) + 587 * u(d, p + 1) + 114 * u(d, p + 2)) / 1000;
                    case BGR, BGRA -> v = (114 * u(d, p) + 587 * u(d, p + 1) + 299 * u(d, p + 2)) / 1000;
                    default -> v = u(d, p); // GRAY8 and the Y plane of NV12/I420
                }
                sum += v;
                n++;
            }
        }
        return n == 0 ? 0 : (double) sum / n;
    }

    private static int u(MemorySegment d, long off) { return Byte.toUnsignedInt(d.get(ValueLayout.JAVA_BYTE, off)); }

    static String text(Report r) {
        return String.format(Locale.ROOT, """
                source      %s (%s)
                format      %dx%d %s%s
                frames      %d in %.2f s, %.2f fps, %d dropped, %d reconnects
                pts         %s .. %s
                mean luma   %.1f""",
                r.source(), r.live() ? "live" : "lossless", r.width(), r.height(), r.format(),
                colorimetry(r.colorimetry()), r.frames(), r.seconds(), r.fps(), r.dropped(),
                r.reconnects(), pts(r.firstPtsNanos()), pts(r.lastPtsNanos()), r.meanLuma());
    }

    /** {@code  (bt709: limited range, matrix bt709, ...)}: the caps' value, then its parts by name. */
    private static String colorimetry(String c) {
        if (c == null) return "";
        String names = ColorimetryNames.describe(c);
        return names.equals(c) ? " (colorimetry " + c + ")" : " (" + (c.contains(":") ? "" : c + ": ") + names + ")";
    }

    private static String pts(long ns) { return ns < 0 ? "none" : String.format(Locale.ROOT, "%.3f s", ns / 1e9); }

    static String json(Report r) {
        return String.format(Locale.ROOT,
                "{\"source\":%s,\"live\":%b,\"width\":%d,\"height\":%d,\"format\":%s,\"colorimetry\":%s,\"frames\":%d,"
                        + "\"dropped\":%d,\"reconnects\":%d,\"seconds\":%.3f,\"fps\":%.2f,\"first_pts_ns\":%d,\"last_pts_ns\":%d,\"mean_luma\":%.2f}",
                str(r.source()), r.live(), r.width(), r.height(), str(r.format()), str(r.colorimetry()), r.frames(), r.dropped(),
                r.reconnects(), r.seconds(), r.fps(), r.firstPtsNanos(), r.lastPtsNanos(), r.meanLuma());
    }

    static String str(String s) {
        if (s == null) return "null";
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                default -> { if (c < 0x20) sb.append(String.format("\\u%04x", (int) c)); else sb.append(c); }
            }
        }
        return sb.append('"').toString();
    }
}
