package io.vlmflux.demos.bench;

import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * {@code vlmflux bench sources}: decode throughput of a video file into Java RGB frames (every frame's pixels touched:
 * one row checksummed) against {@code gst-launch-1.0} running the same pipeline into {@code fakesink}; both loop over
 * whole-file decodes for the same wall time, in the same run.
 */
public final class SourcesBench implements Command {
    static final String DEFAULT_FILE = "sources/src/test/resources/media/cockatoo.mp4";

    @Override public String summary() { return "video decode into Java RGB frames vs gst-launch-1.0 (fps and ratio)"; }

    @Override public String usage() {
        return """
                vlmflux bench sources [--file PATH] [--seconds S] [--json]
                  --file PATH   video file (default: $VLMFLUX_HOME or the current folder + /%s)
                  --seconds S   wall time per side, whole decodes looped (default 20)
                  --json        one JSON object on stdout""".formatted(DEFAULT_FILE);
    }

    /** Result of one side: whole decodes, frames and seconds. */
    record Side(int runs, long frames, double seconds) {
        double fps() { return frames / seconds; }
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("file", "seconds"), Set.of("json"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        Path file = a.has("file") ? Path.of(a.get("file")) : defaultFile();
        if (!Files.isRegularFile(file)) throw new UsageException("--file " + file + ": no such file");
        double seconds = a.getDouble("seconds", 20);
        if (seconds <= 0) throw new UsageException("--seconds must be positive");
        String spec = file.toAbsolutePath().toString();
        SourceOptions rgb = new SourceOptions(0, 0, PixelFormat.RGB);
        String launch = Sources.launchLine(spec, rgb);
        int sinkAt = launch.indexOf("appsink name=sink");
        String gstLine = launch.substring(0, sinkAt) + "fakesink sync=false";

        System.err.println("bench sources: " + file + ", " + seconds + " s per side");
        System.err.println("  pipeline: " + launch);
        long perFile = javaDecode(spec, rgb)[0]; // warm-up: JIT, page cache, plugin registry
        gstDecode(gstLine);
        Side java = javaSide(spec, rgb, seconds);
        System.err.printf(Locale.ROOT, "  java      %6.1f fps (%d frames, %d decodes, %.1f s)%n", java.fps(), java.frames(), java.runs(), java.seconds());
        Side gst = gstSide(gstLine, perFile, seconds);
        System.err.printf(Locale.ROOT, "  gst-launch %6.1f fps (%d frames, %d decodes, %.1f s)%n", gst.fps(), gst.frames(), gst.runs(), gst.seconds());
        double ratio = java.fps() / gst.fps();
        System.err.printf(Locale.ROOT, "  ratio     %.3f (target >= 0.9)%n", ratio);
        if (a.flag("json")) {
            System.out.printf(Locale.ROOT, "{\"file\":\"%s\",\"frames_per_decode\":%d,\"java_fps\":%.2f,\"gst_launch_fps\":%.2f,\"ratio\":%.4f,"
                            + "\"java_decodes\":%d,\"gst_decodes\":%d,\"seconds\":%.1f}%n",
                    file.toString().replace("\\", "\\\\").replace("\"", "\\\""), perFile, java.fps(), gst.fps(), ratio, java.runs(), gst.runs(), seconds);
        } else {
            System.out.printf(Locale.ROOT, "java %.1f fps, gst-launch %.1f fps, ratio %.3f%n", java.fps(), gst.fps(), ratio);
        }
        System.out.flush();
        return 0;
    }

    static Path defaultFile() {
        String home = System.getenv("VLMFLUX_HOME");
        Path base = home != null ? Path.of(home) : Path.of("").toAbsolutePath();
        return base.resolve(DEFAULT_FILE);
    }

    static Side javaSide(String spec, SourceOptions o, double seconds) {
        long t0 = System.nanoTime(), frames = 0;
        int runs = 0;
        long checksum = 0;
        while (System.nanoTime() - t0 < seconds * 1e9 || runs == 0) {
            long[] r = javaDecode(spec, o);
            frames += r[0];
            checksum += r[1];
            runs++;
        }
        if (checksum == 42) System.err.print(""); // keep the checksum alive
        return new Side(runs, frames, (System.nanoTime() - t0) / 1e9);
    }

    /** One whole decode; returns {frames, checksum of each frame's middle row}. */
    static long[] javaDecode(String spec, SourceOptions o) {
        long[] acc = new long[2];
        Sources.parse(spec, o).frames().doOnNext(f -> {
            try (f) {
                acc[0]++;
                acc[1] += rowChecksum(f, f.height() / 2);
            }
        }).doOnDiscard(Frame.class, Frame::close).blockLast();
        return acc;
    }

    static long rowChecksum(Frame f, int y) {
        MemorySegment d = f.data();
        long off = f.planeOffset(0) + (long) y * f.stride(0);
        int n = f.format().minStride(0, f.width());
        long s = 0;
        int i = 0;
        for (; i + 8 <= n; i += 8) s += d.get(ValueLayout.JAVA_LONG_UNALIGNED, off + i);
        for (; i < n; i++) s += d.get(ValueLayout.JAVA_BYTE, off + i);
        return s;
    }

    /** Splits a launch line as a shell would (gst-launch re-quotes each argument): whitespace outside double quotes. */
    static List<String> shellWords(String line) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        boolean quoted = false, any = false;
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            if (c == '\\' && quoted && i + 1 < line.length()) { cur.append(line.charAt(++i)); continue; }
            if (c == '"') { quoted = !quoted; any = true; continue; }
            if (Character.isWhitespace(c) && !quoted) {
                if (any || !cur.isEmpty()) out.add(cur.toString());
                cur.setLength(0);
                any = false;
                continue;
            }
            cur.append(c);
        }
        if (any || !cur.isEmpty()) out.add(cur.toString());
        return out;
    }

    static Side gstSide(String line, long framesPerRun, double seconds) throws Exception {
        long t0 = System.nanoTime();
        int runs = 0;
        while (System.nanoTime() - t0 < seconds * 1e9 || runs == 0) {
            gstDecode(line);
            runs++;
        }
        return new Side(runs, runs * framesPerRun, (System.nanoTime() - t0) / 1e9);
    }

    static void gstDecode(String line) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("gst-launch-1.0", "-q"));
        cmd.addAll(shellWords(line));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        if (!p.waitFor(10, TimeUnit.MINUTES)) { p.destroyForcibly(); throw new IllegalStateException("gst-launch-1.0 timed out: " + line); }
        if (p.exitValue() != 0) throw new IllegalStateException("gst-launch-1.0 failed (exit " + p.exitValue() + "): " + line);
    }
}
