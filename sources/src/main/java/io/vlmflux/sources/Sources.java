package io.vlmflux.sources;

import reactor.core.publisher.Flux;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Factory of {@link FrameSource}s and the parser of the source-spec syntax shared by the CLI and the configs
 * (see {@code docs/sources.md}):
 * <pre>
 *   test:ball?live=false&amp;width=320&amp;height=240&amp;fps=30    videotestsrc pattern
 *   /path/video.mp4, file:///path/video.mp4              video file (any container GStreamer decodes)
 *   rtsp://host/path, http(s)://host/path                network streams (reconnect with backoff)
 *   udp://@:5000?encoding=H264                           RTP over UDP
 *   v4l2:///dev/video0?width=640&amp;height=480&amp;fps=30     V4L2 camera
 *   images:/dir/*.png, images:/dir, /path/img.png        still images
 *   gst:LAUNCH LINE ... ! appsink name=sink              raw GStreamer launch line
 * </pre>
 * Common query options: {@code width}, {@code height} (output size), {@code format} (RGB, BGR, RGBA, BGRA, GRAY8,
 * NV12, I420 or {@code any}); network options: {@code retries}, {@code backoff}, {@code timeout}.
 *
 * <p>Every field that ends up in a GStreamer launch line is validated (numbers, enumerations, host names, URLs
 * parsed as URIs) or quoted (paths, URLs), so a spec cannot add elements to the pipeline; {@code gst:} lines are the
 * exception: they are trusted input, like the configs that contain them.
 */
public final class Sources {
    private Sources() {}

    private static final Set<String> IMAGE_EXT = Set.of("png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp", "pnm", "ppm", "pgm");
    private static final List<String> SCHEMES = List.of("test", "file", "rtsp", "rtsps", "http", "https", "udp", "v4l2", "images", "gst");
    private static final Set<String> OUTPUT_KEYS = Set.of("width", "height", "format");
    private static final Set<String> NET_KEYS = Set.of("retries", "backoff", "timeout");
    /** Frames mapped at once per subscription before further frames are copied (keeps bounded upstream pools flowing). */
    private static final int MAX_MAPPED = 4;
    /** Reconnect defaults: the first wait, doubled per attempt up to the cap; live sources retry forever. */
    static final Duration DEFAULT_BACKOFF = Duration.ofMillis(500), BACKOFF_CAP = Duration.ofSeconds(5);
    /** Attempts before a non-live network source (a file over HTTP) gives up. */
    static final int DEFAULT_FILE_RETRIES = 5;
    private static final java.util.regex.Pattern HOST = java.util.regex.Pattern.compile(
            "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]+\\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*");

    // ---------------------------------------------------------------- parsing

    /** Parses a source spec with the default output (source size, RGB). Throws {@link SourceException} naming the spec. */
    public static FrameSource parse(String spec) { return parse(spec, null); }

    /**
     * Parses a source spec; {@code options} (may be null) override the spec's {@code width}/{@code height}/
     * {@code format} query options. Throws {@link SourceException} for an unknown scheme or option, or a bad value.
     */
    public static FrameSource parse(String spec, SourceOptions options) {
        if (spec == null || spec.isBlank()) throw new SourceException(String.valueOf(spec), "empty source spec");
        try {
            return parseOrThrow(spec.strip(), options);
        } catch (SourceException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new SourceException(spec, describe(e), e);
        }
    }

    /** {@code parse(spec, options).frames()}, with a bad spec reported as the Flux's error rather than thrown. */
    public static Flux<Frame> frames(String spec, SourceOptions options) {
        return Flux.defer(() -> parse(spec, options).frames());
    }

    /** The GStreamer launch line a spec opens (its first pipeline), for diagnostics and benchmarks. */
    public static String launchLine(String spec, SourceOptions options) {
        FrameSource s = parse(spec, options);
        if (s instanceof PipelineSource p) return p.launchLine();
        throw new SourceException(spec, "is not a GStreamer pipeline source");
    }

    private static FrameSource parseOrThrow(String spec, SourceOptions options) {
        if (spec.startsWith("gst:")) return launch(spec, spec.substring(4).strip(), options);
        String scheme = scheme(spec);
        if (scheme == null) return path(spec, Path.of(spec), options);
        String rest = spec.substring(scheme.length() + 1);
        switch (scheme) {
            case "test" -> {
                Query q = Query.split(spec, rest, Set.of("live", "fps", "num-buffers"));
                String pattern = q.target.isEmpty() ? "smpte" : q.target;
                return testPattern(spec, pattern, q.bool("live", true), q.integer("fps", 30), q.integer("num-buffers", -1), q.output(options));
            }
            case "file" -> {
                Query q = Query.split(spec, rest, Set.of());
                return path(spec, Path.of(URI.create("file:" + q.target)), q.output(options));
            }
            case "images" -> {
                Query q = Query.split(spec, rest, Set.of());
                return images(spec, q.target, q.output(options));
            }
            case "rtsp", "rtsps" -> {
                Query q = Query.network(spec, Set.of("latency", "transport"));
                URI u = networkUrl(spec, q.target);
                PipelineSource.Reconnect rc = q.reconnect(-1, Duration.ofSeconds(10), u);
                return rtsp(spec, q.target, q.nonNegative("latency", 200), q.string("transport", "tcp"), rc, q.output(options));
            }
            case "http", "https" -> {
                Query q = Query.network(spec, Set.of("live"));
                URI u = networkUrl(spec, q.target);
                boolean live = q.bool("live", false);
                PipelineSource.Reconnect rc = q.reconnect(live ? -1 : DEFAULT_FILE_RETRIES, Duration.ofSeconds(30), u);
                String line = "uridecodebin uri=" + quote(q.target) + " expose-all-streams=false caps=\"video/x-raw(ANY)\" ! " + tail(q.output(options), live);
                return new PipelineSource(spec, List.of(new PipelineSource.Segment(line, q.target, null, false, !live)),
                        live ? PipelineSource.Mode.LIVE : PipelineSource.Mode.LOSSLESS, rc, MAX_MAPPED);
            }
            case "udp" -> {
                Query q = Query.split(spec, rest, union(NET_KEYS, Set.of("encoding", "payload", "latency")));
                return udp(spec, q, options);
            }
            case "v4l2" -> {
                Query q = Query.split(spec, rest, Set.of("fps"));
                String dev = q.target.startsWith("//") ? q.target.substring(2) : q.target;
                if (dev.isEmpty()) dev = "/dev/video0";
                return v4l2(spec, dev, q.nonNegative("fps", 0), q.output(options));
            }
            default -> throw new SourceException(spec, "unknown scheme '" + scheme + "' (known: " + String.join(", ", SCHEMES) + ", or a file path)");
        }
    }

    /** A URI-like scheme ("rtsp" of "rtsp://..."), or null for a plain path (incl. Windows drive letters). */
    private static String scheme(String spec) {
        int colon = spec.indexOf(':');
        if (colon < 2) return null;
        String s = spec.substring(0, colon);
        if (!s.matches("[A-Za-z][A-Za-z0-9+.-]*")) return null;
        return s.toLowerCase(Locale.ROOT);
    }

    // ---------------------------------------------------------------- factories

    /** {@code videotestsrc pattern=PATTERN}: live (paced at {@code fps}, newest frame wins) or as fast as demanded. */
    public static FrameSource testPattern(String pattern, boolean live, int fps, SourceOptions options) {
        return testPattern("test:" + pattern + (live ? "" : "?live=false"), pattern, live, fps, -1, options);
    }

    private static FrameSource testPattern(String id, String pattern, boolean live, int fps, int numBuffers, SourceOptions o) {
        if (!pattern.matches("[a-z0-9-]+")) throw new SourceException(id, "bad test pattern name '" + pattern + "'");
        if (fps <= 0) throw new SourceException(id, "fps must be positive, got " + fps);
        SourceOptions out = o == null ? SourceOptions.DEFAULT : o;
        int w = out.width() > 0 ? out.width() : 320, h = out.height() > 0 ? out.height() : 240;
        String line = "videotestsrc pattern=" + pattern + " is-live=" + live + (numBuffers >= 0 ? " num-buffers=" + numBuffers : "")
                + " ! video/x-raw,width=" + w + ",height=" + h + ",framerate=" + fps + "/1 ! " + tail(out, live);
        return new PipelineSource(id, List.of(new PipelineSource.Segment(line, pattern)),
                live ? PipelineSource.Mode.LIVE : PipelineSource.Mode.LOSSLESS, null, MAX_MAPPED);
    }

    /** A video file, decoded with {@code uridecodebin}; lossless and demand-driven. */
    public static FrameSource file(Path file, SourceOptions options) {
        return videoFile(file.toString(), file, options);
    }

    private static FrameSource videoFile(String id, Path file, SourceOptions o) {
        String uri = file.toAbsolutePath().normalize().toUri().toString();
        String line = "uridecodebin uri=" + quote(uri) + " expose-all-streams=false caps=\"video/x-raw(ANY)\" ! " + tail(o, false);
        return new PipelineSource(id, List.of(new PipelineSource.Segment(line, file.toString(), null, false, true)), PipelineSource.Mode.LOSSLESS, null, MAX_MAPPED);
    }

    /** Still images: one file, every image of a folder, or a glob ({@code /dir/*.png}); sorted by name, lossless. */
    public static FrameSource images(String pathOrGlob, SourceOptions options) {
        return images("images:" + pathOrGlob, pathOrGlob, options);
    }

    private static FrameSource images(String id, String target, SourceOptions o) {
        List<Path> files = listImages(id, target);
        List<PipelineSource.Segment> segs = new ArrayList<>();
        for (Path f : files) {
            String line = "filesrc location=" + quote(f.toString()) + " ! decodebin ! " + tail(o, false);
            Path name = f.getFileName();
            segs.add(new PipelineSource.Segment(line, f.toString(), name == null ? f.toString() : name.toString(), true, false));
        }
        return new PipelineSource(id, segs, PipelineSource.Mode.LOSSLESS, null, MAX_MAPPED);
    }

    private static List<Path> listImages(String id, String target) {
        if (target.isEmpty()) throw new SourceException(id, "no image path given");
        boolean glob = target.contains("*") || target.contains("?") || target.contains("[") || target.contains("{");
        try {
            if (!glob) {
                Path p = Path.of(target);
                if (Files.isRegularFile(p)) return List.of(p);
                if (!Files.isDirectory(p)) throw new SourceException(id, "no such file or folder: " + p.toAbsolutePath());
                try (Stream<Path> s = Files.list(p)) {
                    List<Path> l = s.filter(Files::isRegularFile).filter(Sources::isImage).sorted().toList();
                    if (l.isEmpty()) throw new SourceException(id, "no image files (" + String.join(", ", IMAGE_EXT.stream().sorted().toList()) + ") in " + p.toAbsolutePath());
                    return l;
                }
            }
            int slash = target.lastIndexOf('/');
            Path dir = Path.of(slash < 0 ? "." : slash == 0 ? "/" : target.substring(0, slash));
            String pattern = target.substring(slash + 1);
            if (!Files.isDirectory(dir)) throw new SourceException(id, "no such folder: " + dir.toAbsolutePath());
            PathMatcher m = dir.getFileSystem().getPathMatcher("glob:" + pattern);
            try (Stream<Path> s = Files.list(dir)) {
                List<Path> l = s.filter(Files::isRegularFile).filter(x -> m.matches(x.getFileName())).sorted().toList();
                if (l.isEmpty()) throw new SourceException(id, "no file matches '" + pattern + "' in " + dir.toAbsolutePath());
                return l;
            }
        } catch (IOException e) {
            throw new SourceException(id, "cannot list images: " + e, e);
        }
    }

    private static boolean isImage(Path p) {
        String n = p.getFileName().toString();
        int dot = n.lastIndexOf('.');
        return dot > 0 && IMAGE_EXT.contains(n.substring(dot + 1).toLowerCase(Locale.ROOT));
    }

    private static FrameSource path(String id, Path p, SourceOptions o) {
        String s = p.toString();
        if (s.contains("*") || s.contains("?") || Files.isDirectory(p) || isImage(p)) return images(id, s, o);
        return videoFile(id, p, o);
    }

    /** Any URI GStreamer's {@code uridecodebin} opens; {@code rtsp}, {@code http(s)} and {@code udp} get network handling. */
    public static FrameSource uri(URI uri, SourceOptions options) {
        return parse(uri.toString(), options);
    }

    private static FrameSource rtsp(String id, String url, int latency, String transport, PipelineSource.Reconnect rc, SourceOptions o) {
        if (!Set.of("tcp", "udp", "udp-mcast", "http").contains(transport))
            throw new SourceException(id, "option 'transport' must be tcp, udp, udp-mcast or http, got '" + transport + "'");
        String line = "rtspsrc location=" + quote(url) + " latency=" + latency + " protocols=" + transport
                + " ! application/x-rtp,media=video ! decodebin ! " + tail(o, true);
        return new PipelineSource(id, List.of(new PipelineSource.Segment(line, url)), PipelineSource.Mode.LIVE, rc, MAX_MAPPED);
    }

    private static FrameSource udp(String id, Query q, SourceOptions o) {
        String target = q.target.startsWith("//") ? q.target.substring(2) : q.target;
        int colon = target.lastIndexOf(':');
        if (colon < 0) throw new SourceException(id, "expected udp://[@][ADDRESS]:PORT");
        String host = target.substring(0, colon);
        if (host.startsWith("@")) host = host.substring(1);
        if (host.isEmpty()) host = "0.0.0.0";
        if (!HOST.matcher(host).matches())
            throw new SourceException(id, "field 'host' must be an IP address or a host name, got '" + host + "'");
        if (host.startsWith("[")) host = host.substring(1, host.length() - 1);
        int port;
        try { port = Integer.parseInt(target.substring(colon + 1)); }
        catch (NumberFormatException e) { throw new SourceException(id, "field 'port' must be a number in [1, 65535], got '" + target.substring(colon + 1) + "'"); }
        if (port <= 0 || port > 65535) throw new SourceException(id, "field 'port' must be in [1, 65535], got " + port);
        String enc = q.string("encoding", "H264").toUpperCase(Locale.ROOT);
        String depay;
        int defaultPt = 96;
        switch (enc) {
            case "H264" -> depay = "rtph264depay";
            case "H265" -> depay = "rtph265depay";
            case "VP8" -> depay = "rtpvp8depay";
            case "VP9" -> depay = "rtpvp9depay";
            case "JPEG", "MJPEG" -> { enc = "JPEG"; depay = "rtpjpegdepay"; defaultPt = 26; }
            case "MP2T" -> depay = "rtpmp2tdepay";
            default -> throw new SourceException(id, "unsupported RTP encoding '" + enc + "' (supported: H264, H265, VP8, VP9, JPEG, MP2T)");
        }
        int pt = q.integer("payload", defaultPt);
        if (pt < 0 || pt > 127) throw new SourceException(id, "option 'payload' must be an RTP payload type in [0, 127], got " + pt);
        PipelineSource.Reconnect rc = q.reconnect(-1, Duration.ofSeconds(10), null);
        String line = "udpsrc address=" + quote(host) + " port=" + port
                + " caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=" + enc + ",payload=" + pt + "\""
                + " ! rtpjitterbuffer latency=" + q.nonNegative("latency", 100) + " ! " + depay + " ! decodebin ! " + tail(q.output(o), true);
        return new PipelineSource(id, List.of(new PipelineSource.Segment(line, "udp " + host + ":" + port)), PipelineSource.Mode.LIVE, rc, MAX_MAPPED);
    }

    /** A V4L2 camera; {@code width}/{@code height}/{@code fps} (0 = any) select the camera mode (raw or MJPEG). */
    public static FrameSource v4l2(String device, int fps, SourceOptions options) {
        return v4l2("v4l2://" + device, device, fps, options);
    }

    private static FrameSource v4l2(String id, String device, int fps, SourceOptions o) {
        if (!device.matches("[A-Za-z0-9/_.:+-]+"))
            throw new SourceException(id, "field 'device' must be a device path such as /dev/video0, got '" + device + "'");
        if (fps < 0) throw new SourceException(id, "option 'fps' must not be negative, got " + fps);
        SourceOptions out = o == null ? SourceOptions.DEFAULT : o;
        StringBuilder mode = new StringBuilder();
        if (out.width() > 0) mode.append(",width=").append(out.width());
        if (out.height() > 0) mode.append(",height=").append(out.height());
        if (fps > 0) mode.append(",framerate=").append(fps).append("/1");
        String line = "v4l2src device=" + quote(device)
                + (mode.isEmpty() ? "" : " ! capsfilter caps=\"video/x-raw" + mode + ";image/jpeg" + mode + "\"")
                + " ! decodebin ! " + tail(out, true);
        // Camera buffers come from a small driver pool: map at most 2, copy the rest.
        return new PipelineSource(id, List.of(new PipelineSource.Segment(line, device)), PipelineSource.Mode.LIVE, null, 2);
    }

    /**
     * A raw launch line whose last element is {@code appsink name=sink} (caps are up to the line; the frame format
     * must be one of {@link PixelFormat}). Live when the pipeline says so (no preroll), lossless otherwise.
     */
    public static FrameSource launch(String line) { return launch("gst:" + line, line, null); }

    private static FrameSource launch(String id, String line, SourceOptions ignored) {
        if (line.isEmpty()) throw new SourceException(id, "empty launch line");
        if (!line.contains("appsink")) throw new SourceException(id, "the launch line must end in 'appsink name=sink'");
        String l = line.contains("name=sink") ? line : line + " name=sink";
        return new PipelineSource(id, List.of(new PipelineSource.Segment(l, "launch line")), PipelineSource.Mode.AUTO, null, MAX_MAPPED);
    }

    /** A source the host application feeds with {@link PushSource#push}. */
    public static PushSource push(String id) { return new PushSourceImpl(id); }

    // ---------------------------------------------------------------- helpers

    /** The common end of every pipeline: convert and scale inside GStreamer to the requested caps, then the appsink. */
    private static String tail(SourceOptions o, boolean live) {
        SourceOptions out = o == null ? SourceOptions.DEFAULT : o;
        return "videoconvert ! videoscale ! capsfilter caps=\"" + out.caps() + "\" ! appsink name=sink sync=false emit-signals=false"
                + " max-buffers=" + (live ? 1 : 2) + " drop=" + live;
    }

    /** A launch-line string value: double-quoted, backslashes and quotes escaped (GStreamer's parser unescapes them). */
    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    /**
     * Parses a network URL (permanent error when malformed: it is never retried): it must have a host, a port (when
     * given) in range, and no spaces, quotes, backslashes or control characters.
     */
    private static URI networkUrl(String spec, String url) {
        for (int i = 0; i < url.length(); i++) {
            char c = url.charAt(i);
            if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\')
                throw new SourceException(spec, "malformed URL '" + url + "': character " + (c <= 0x20 || c == 0x7f ? String.format("0x%02x", (int) c) : "'" + c + "'")
                        + " at index " + i + " is not allowed (percent-encode it)");
        }
        URI u;
        try {
            u = new URI(url);
        } catch (URISyntaxException e) {
            throw new SourceException(spec, "malformed URL '" + url + "': " + e.getReason() + (e.getIndex() >= 0 ? " at index " + e.getIndex() : ""));
        }
        if (u.getHost() == null || u.getHost().isEmpty())
            throw new SourceException(spec, "malformed URL '" + url + "': no host (expected " + u.getScheme() + "://HOST[:PORT]/PATH)");
        if (u.getPort() == 0 || u.getPort() > 65535)
            throw new SourceException(spec, "malformed URL '" + url + "': port must be in [1, 65535], got " + u.getPort());
        return u;
    }

    private static int defaultPort(String scheme) {
        return switch (scheme.toLowerCase(Locale.ROOT)) {
            case "rtsp" -> 554;
            case "rtsps" -> 322;
            case "http" -> 80;
            case "https" -> 443;
            default -> 0;
        };
    }

    private static Set<String> union(Set<String> a, Set<String> b) {
        java.util.HashSet<String> s = new java.util.HashSet<>(a);
        s.addAll(b);
        return s;
    }

    /** One line naming the cause chain. */
    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            String m = c.getMessage() == null ? c.getClass().getSimpleName() : c.getMessage();
            if (sb.indexOf(m) < 0) { if (!sb.isEmpty()) sb.append(": "); sb.append(m); }
        }
        return sb.toString();
    }

    /** A spec split into target and query options, validated against the keys a scheme knows. */
    private static final class Query {
        final String spec;
        final String target;
        final Map<String, String> params = new LinkedHashMap<>();

        private Query(String spec, String target) { this.spec = spec; this.target = target; }

        static Query split(String spec, String rest, Set<String> keys) {
            int q = rest.indexOf('?');
            Query r = new Query(spec, q < 0 ? rest : rest.substring(0, q));
            if (q >= 0) {
                for (String kv : rest.substring(q + 1).split("&")) {
                    if (kv.isEmpty()) continue;
                    int eq = kv.indexOf('=');
                    String k = URLDecoder.decode(eq < 0 ? kv : kv.substring(0, eq), StandardCharsets.UTF_8);
                    String v = eq < 0 ? "true" : URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8);
                    if (!keys.contains(k) && !OUTPUT_KEYS.contains(k)) {
                        List<String> known = new ArrayList<>(keys);
                        known.addAll(OUTPUT_KEYS);
                        throw new SourceException(spec, "unknown option '" + k + "' (known here: " + String.join(", ", known.stream().sorted().toList()) + ")");
                    }
                    r.params.put(k, v);
                }
            }
            return r;
        }

        /** For URLs: our keys are taken out of the query, the others stay in the URL for the server. */
        static Query network(String spec, Set<String> extra) {
            Set<String> ours = union(union(NET_KEYS, OUTPUT_KEYS), extra);
            int q = spec.indexOf('?');
            if (q < 0) return new Query(spec, spec);
            List<String> keep = new ArrayList<>();
            Map<String, String> mine = new LinkedHashMap<>();
            for (String kv : spec.substring(q + 1).split("&")) {
                if (kv.isEmpty()) continue;
                int eq = kv.indexOf('=');
                String k = URLDecoder.decode(eq < 0 ? kv : kv.substring(0, eq), StandardCharsets.UTF_8);
                if (ours.contains(k)) mine.put(k, eq < 0 ? "true" : URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8));
                else keep.add(kv);
            }
            Query r = new Query(spec, spec.substring(0, q) + (keep.isEmpty() ? "" : "?" + String.join("&", keep)));
            r.params.putAll(mine);
            return r;
        }

        String string(String k, String d) { return params.getOrDefault(k, d); }

        int integer(String k, int d) {
            String v = params.get(k);
            if (v == null) return d;
            try { return Integer.parseInt(v.trim()); }
            catch (NumberFormatException e) { throw new SourceException(spec, "option '" + k + "' expects an integer, got '" + v + "'"); }
        }

        boolean bool(String k, boolean d) {
            String v = params.get(k);
            if (v == null) return d;
            return switch (v.trim().toLowerCase(Locale.ROOT)) {
                case "true", "1", "yes" -> true;
                case "false", "0", "no" -> false;
                default -> throw new SourceException(spec, "option '" + k + "' expects true or false, got '" + v + "'");
            };
        }

        Duration duration(String k, Duration d) {
            String v = params.get(k);
            if (v == null) return d;
            try {
                return Durations.parse(v);
            } catch (IllegalArgumentException e) {
                throw new SourceException(spec, "option '" + k + "' expects a duration such as 500ms or 2s, got '" + v + "'");
            }
        }

        int nonNegative(String k, int d) {
            int v = integer(k, d);
            if (v < 0) throw new SourceException(spec, "option '" + k + "' must not be negative, got " + v);
            return v;
        }

        /**
         * Retry settings: {@code retries} (a count, or {@code inf}/{@code forever}; default {@code defaultRetries},
         * -1 = forever), {@code backoff} (first wait, doubled per attempt up to 5 s or the backoff itself when longer)
         * and {@code timeout} (stall); {@code url} (may be null) names the TCP endpoint probed while waiting.
         */
        PipelineSource.Reconnect reconnect(int defaultRetries, Duration defaultTimeout, URI url) {
            String r = params.get("retries");
            int retries = r != null && (r.equals("inf") || r.equals("forever") || r.equals("-1")) ? -1 : integer("retries", defaultRetries);
            if (retries < -1) throw new SourceException(spec, "option 'retries' must be a count or 'inf', got '" + r + "'");
            Duration backoff = duration("backoff", DEFAULT_BACKOFF);
            if (backoff.isNegative()) throw new SourceException(spec, "option 'backoff' must not be negative, got '" + params.get("backoff") + "'");
            Duration timeout = duration("timeout", defaultTimeout);
            Duration max = BACKOFF_CAP.compareTo(backoff) > 0 ? BACKOFF_CAP : backoff;
            String host = null;
            int port = 0;
            if (url != null) {
                host = url.getHost();
                if (host.startsWith("[")) host = host.substring(1, host.length() - 1);
                port = url.getPort() > 0 ? url.getPort() : defaultPort(url.getScheme());
            }
            return new PipelineSource.Reconnect(retries, backoff, max, timeout.isZero() ? null : timeout, host, port);
        }

        /** Spec options, overridden field by field by the caller's (non-default) options. */
        SourceOptions output(SourceOptions given) {
            int w = integer("width", 0), h = integer("height", 0);
            if (w < 0 || h < 0) throw new SourceException(spec, "width and height must not be negative");
            PixelFormat f = PixelFormat.RGB;
            String fs = params.get("format");
            if (fs != null) {
                try { f = fs.equalsIgnoreCase("any") ? null : PixelFormat.fromGstName(fs); }
                catch (IllegalArgumentException e) { throw new SourceException(spec, e.getMessage()); }
            }
            if (given != null) {
                if (given.width() > 0) w = given.width();
                if (given.height() > 0) h = given.height();
                if (given.format() != PixelFormat.RGB || fs == null) f = given.format();
            }
            return new SourceOptions(w, h, f);
        }
    }
}
