package io.vlmflux.demos.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.handler.codec.http.HttpMethod;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.metrics.StageSnapshot;
import io.vlmflux.sources.FrameSource;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The live streams of {@code vlmflux serve} and their HTTP side, mounted into {@link ChatServer} as extra routes:
 * <ul>
 *   <li>{@code GET /} and {@code GET /ui/app.js|app.css}: the page (static files from the jar)</li>
 *   <li>{@code GET /v1/streams}, {@code GET /v1/streams/{id}}: the streams, their state and counters</li>
 *   <li>{@code GET /v1/streams/{id}/events}: server-sent events of the stream's {@link EventHub}</li>
 *   <li>{@code POST /v1/streams/{id}/questions}: {@code {"question", "max_tokens"?}}, answered by the stream's
 *       {@link QuestionAnswerer}, its tokens published as {@code answer} events and the answer returned</li>
 *   <li>{@code GET /v1/streams/{id}/frame.jpg} (the newest view JPEG) and {@code GET /v1/streams/{id}/view.mjpeg}
 *       ({@code multipart/x-mixed-replace}, at most the view rate)</li>
 * </ul>
 * Bounds: stream ids must match {@link LiveStream#ID} (anything else is a 404 that does not echo it unescaped);
 * question bodies {@link #MAX_QUESTION_BODY} bytes, questions {@link #MAX_QUESTION_CHARS} characters, answers
 * {@code maxAnswerTokens}, {@code maxQuestions} at once (429) and the request timeout; at most
 * {@code maxWatchers} event streams and as many MJPEG views at once (429).
 */
public final class LiveStreams implements ChatServer.Routes, AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.serve");
    static final int MAX_QUESTION_BODY = 16 * 1024;
    /** How much of an oversized question body is read and dropped before the 413 (then the connection is closed). */
    static final int DRAIN_BYTES = 1 << 20;
    static final int MAX_QUESTION_CHARS = 2000;
    static final Duration HEARTBEAT = Duration.ofSeconds(15);
    static final String BOUNDARY = "vlmflux-view-frame";
    private static final Set<String> QUESTION_FIELDS = Set.of("question", "max_tokens");
    private static final Map<String, String> PAGE_FILES = Map.of(
            "/", "index.html:text/html; charset=utf-8",
            "/ui/app.js", "app.js:text/javascript; charset=utf-8",
            "/ui/app.css", "app.css:text/css; charset=utf-8");

    /**
     * How the streams are served.
     *
     * @param viewFps         frames per second copied for the live view and questions
     * @param eventQueue      events queued per slow SSE client before the oldest are dropped
     * @param maxWatchers     SSE clients (and, separately, MJPEG views) at once
     * @param maxQuestions    questions answered at once
     * @param maxAnswerTokens largest and default-ish answer length ({@code max_tokens} of a question)
     * @param timeout         longest a question may take
     */
    public record Options(double viewFps, int eventQueue, int maxWatchers, int maxQuestions, int maxAnswerTokens, Duration timeout) {
        public Options {
            if (!(viewFps > 0) || viewFps > 60) throw new IllegalArgumentException("view fps must be in (0, 60], got " + viewFps);
            if (eventQueue < 1) throw new IllegalArgumentException("event queue must be >= 1, got " + eventQueue);
            if (maxWatchers < 1) throw new IllegalArgumentException("max watchers must be >= 1, got " + maxWatchers);
            if (maxQuestions < 1) throw new IllegalArgumentException("max questions must be >= 1, got " + maxQuestions);
            if (maxAnswerTokens < 1) throw new IllegalArgumentException("max answer tokens must be >= 1, got " + maxAnswerTokens);
            if (timeout == null || timeout.isNegative() || timeout.isZero()) throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        }

        /** 5 view frames/s, 256 queued events, 32 watchers, 2 questions at once, 64 answer tokens, 2 minutes. */
        public static Options defaults() { return new Options(5, 256, 32, 2, 64, Duration.ofMinutes(2)); }

        public Options withViewFps(double f) { return new Options(f, eventQueue, maxWatchers, maxQuestions, maxAnswerTokens, timeout); }
        public Options withEventQueue(int n) { return new Options(viewFps, n, maxWatchers, maxQuestions, maxAnswerTokens, timeout); }
        public Options withMaxWatchers(int n) { return new Options(viewFps, eventQueue, n, maxQuestions, maxAnswerTokens, timeout); }
    }

    private final VlmRuntime runtime;
    private final Options options;
    private final ObjectMapper json = new ObjectMapper();
    private final Map<String, LiveStream> streams = new LinkedHashMap<>();
    private final Map<String, QuestionAnswerer> answerers = new ConcurrentHashMap<>();
    private final QuestionAnswerer defaultAnswerer;
    private final Map<String, byte[]> page = new ConcurrentHashMap<>();
    private final Semaphore questions;
    private final AtomicInteger watchers = new AtomicInteger(), views = new AtomicInteger();
    private final Sinks.Empty<Void> closing = Sinks.empty();
    private final Scheduler encoder = Schedulers.newBoundedElastic(2, 64, "vlmflux-view");
    private final AtomicBoolean started = new AtomicBoolean(), closed = new AtomicBoolean();

    public LiveStreams(VlmRuntime runtime, Options options) {
        this.runtime = runtime;
        this.options = options;
        this.questions = new Semaphore(options.maxQuestions());
        this.defaultAnswerer = new LatestFrameAnswerer(runtime);
    }

    public Options options() { return options; }

    /**
     * Adds a stream: {@code source} is captioned with {@code captions} every {@code sampling}. Added before
     * {@link #start()} it starts with the others; added later (e.g. a fleet camera assigned to this node) it starts
     * now. Fails when the id is invalid or taken, or once closed.
     */
    public LiveStream add(String id, String spec, FrameSource source, CaptionOptions captions, SamplingPolicy sampling) {
        return add(id, spec, source, captions, sampling, s -> {});
    }

    /** As {@link #add(String, String, FrameSource, CaptionOptions, SamplingPolicy)}; {@code beforeStart} sees the stream before it starts (e.g. to subscribe to its events). */
    public synchronized LiveStream add(String id, String spec, FrameSource source, CaptionOptions captions, SamplingPolicy sampling,
                                       java.util.function.Consumer<LiveStream> beforeStart) {
        if (closed.get()) throw new IllegalStateException("the streams are closed");
        if (streams.containsKey(id)) throw new IllegalArgumentException("two streams have the id '" + id + "': give each source its own id");
        LiveStream s = new LiveStream(id, spec, source.named(id), runtime, captions, sampling, options.viewFps(),
                new EventHub(id, options.eventQueue(), json), encoder);
        s.metrics(serveMetrics);
        s.alerts(alerts);
        LiveWindowAnswerer.Options live = liveLater.get(id);
        if (live == null) live = liveLater.get("*");
        if (live != null && started.get()) {   // a stream added at run time (a fleet camera) named by --live
            LiveWindowAnswerer w = new LiveWindowAnswerer(s, runtime, live);
            s.liveWindow(w);
            answerers.put(id, w);
        }
        streams.put(id, s);
        beforeStart.accept(s);
        if (started.get()) s.start();
        return s;
    }

    /**
     * Removes stream {@code id} at run time: it is closed (its pipeline cancelled, its source closed, its event
     * streams completed) and no longer listed. Returns the closed stream, or null when there is none.
     */
    public LiveStream remove(String id) {
        LiveStream s;
        synchronized (this) {
            s = streams.remove(id);
        }
        if (s == null) return null;
        answerers.remove(id);
        s.close();
        return s;
    }

    private volatile ServeMetrics serveMetrics;
    private volatile List<io.vlmflux.pipeline.caption.Alert> alerts = List.of();

    /** Feeds {@code m} (the server's {@code /metrics}) from every stream, those added later too; before {@link #start()}. */
    public synchronized void metrics(ServeMetrics m) {
        serveMetrics = m;
        for (LiveStream s : streams.values()) s.metrics(m);
    }

    /** Runs {@code list} on every stream next to its captions (those added later too); before {@link #start()}. */
    public synchronized void alerts(List<io.vlmflux.pipeline.caption.Alert> list) {
        alerts = List.copyOf(list);
        for (LiveStream s : streams.values()) s.alerts(alerts);
    }

    /**
     * Compiles every alert's constraint for the model (a constraint its tokenizer cannot express fails here, naming the
     * alert), so alerts from outside the command line (a fleet camera record) are refused before their stream starts.
     */
    public void checkAlerts(List<io.vlmflux.pipeline.caption.Alert> list) {
        for (io.vlmflux.pipeline.caption.Alert a : list) {
            try {
                runtime.controls(a.constraint(), 0);
            } catch (IllegalArgumentException e) {   // ConstraintException
                throw new IllegalArgumentException("alert '" + a.name() + "': " + e.getMessage(), e);
            }
        }
    }

    /** A stream id for {@code spec} that is valid and not taken: its letters and digits, others as '-', numbered when needed. */
    public synchronized String idFor(String spec) {
        String base = spec.replaceFirst("^[a-z0-9]+:(//)?", "").replaceAll("\\?.*$", "");
        int slash = base.lastIndexOf('/');
        if (slash >= 0 && slash < base.length() - 1) base = base.substring(slash + 1);
        base = base.replaceAll("[^A-Za-z0-9._-]+", "-").replaceAll("^[^A-Za-z0-9]+", "");
        if (base.length() > 48) base = base.substring(0, 48);
        if (base.isEmpty()) base = "stream";
        String id = base;
        for (int i = 2; streams.containsKey(id); i++) id = base + "-" + i;
        return id;
    }

    /** Lets {@code answerer} answer the questions of stream {@code id} (e.g. a live-video session); null restores the default. */
    public void answerer(String id, QuestionAnswerer answerer) {
        if (stream(id) == null) throw new IllegalArgumentException("no stream '" + id + "'");
        if (answerer == null) answerers.remove(id); else answerers.put(id, answerer);
    }

    /**
     * Runs a live-video session ({@link LiveWindowAnswerer}) on stream {@code id} next to its captions, answering its
     * questions over the session's window instead of the latest frame; before {@link #start()}.
     */
    public LiveWindowAnswerer live(String id, LiveWindowAnswerer.Options o) {
        LiveStream s = stream(id);
        if (s == null) throw new IllegalArgumentException("no stream '" + id + "'");
        if (started.get()) throw new IllegalStateException("live sessions are added before start()");
        LiveWindowAnswerer w = new LiveWindowAnswerer(s, runtime, o);
        s.liveWindow(w);
        answerer(id, w);
        return w;
    }

    private final Map<String, LiveWindowAnswerer.Options> liveLater = new ConcurrentHashMap<>();

    /**
     * Gives the streams added after {@link #start()} with id {@code id} ({@code *}: every one), e.g. the cameras a fleet
     * assigns this node, a live-video session with {@code o} as {@link #live} does before start.
     */
    public void liveWhenAdded(String id, LiveWindowAnswerer.Options o) {
        if (!id.equals("*") && !LiveStream.ID.matcher(id).matches()) throw new IllegalArgumentException("stream id '" + id + "' is not " + LiveStream.ID.pattern());
        liveLater.put(id, o);
    }

    /** The stream of {@code id}, or null. */
    public synchronized LiveStream stream(String id) { return streams.get(id); }

    public synchronized List<LiveStream> all() { return List.copyOf(streams.values()); }

    /** Starts every stream's pipeline. */
    public void start() {
        if (!started.compareAndSet(false, true)) throw new IllegalStateException("already started");
        for (LiveStream s : all()) s.start();
    }

    /** SSE clients connected now. */
    public int watchers() { return watchers.get(); }

    private final List<AutoCloseable> closeAfter = new java.util.concurrent.CopyOnWriteArrayList<>();

    /** Closes {@code c} after the streams (e.g. their {@link StreamSinks}, which then send their last records). */
    public void closeAfter(AutoCloseable c) { closeAfter.add(c); }

    /** Stops the streams, ends every event stream and view, then closes what {@link #closeAfter} named. Idempotent. */
    @Override public void close() {
        if (!closed.compareAndSet(false, true)) return;
        closing.tryEmitEmpty();
        for (LiveStream s : all()) {
            try {
                s.close();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "closing stream " + s.id() + ": " + e.getMessage());
            }
        }
        encoder.dispose();
        for (AutoCloseable c : closeAfter) {
            try {
                c.close();
            } catch (Exception e) {
                LOG.log(System.Logger.Level.WARNING, "closing " + c + ": " + e.getMessage());
            }
        }
    }

    // ---- routes ----------------------------------------------------------------------------------------------------

    @Override public Publisher<Void> route(String path, HttpServerRequest req, HttpServerResponse res) {
        HttpMethod m = req.method();
        if (PAGE_FILES.containsKey(path)) {
            get(m, path);
            return pageFile(path, res);
        }
        if (!path.equals("/v1/streams") && !path.startsWith("/v1/streams/")) return null;
        if (path.equals("/v1/streams")) {
            get(m, path);
            ObjectNode o = json.createObjectNode().put("object", "list");
            ArrayNode a = o.putArray("data");
            for (LiveStream s : all()) a.add(describe(s));
            return sendJson(res, 200, o);
        }
        String rest = path.substring("/v1/streams/".length());
        int slash = rest.indexOf('/');
        String id = slash < 0 ? rest : rest.substring(0, slash);
        String action = slash < 0 ? "" : rest.substring(slash + 1);
        LiveStream s = LiveStream.ID.matcher(id).matches() ? stream(id) : null;
        if (s == null) throw ApiException.notFound("no such stream" + (LiveStream.ID.matcher(id).matches() ? " '" + id + "'" : " (stream ids are "
                + LiveStream.ID.pattern() + ")") + "; GET /v1/streams lists them", null, "stream_not_found");
        switch (action) {
            case "" -> { get(m, path); return sendJson(res, 200, describe(s)); }
            case "events" -> { get(m, path); return events(s, res); }
            case "questions" -> { allow(m, HttpMethod.POST, path); return question(s, req, res); }
            case "frame.jpg" -> { get(m, path); return frame(s, res); }
            case "view.mjpeg" -> { get(m, path); return mjpeg(s, res); }
            default -> throw new ApiException(404, "invalid_request_error", "Invalid URL: streams have /events, /questions, /frame.jpg, /view.mjpeg",
                    null, "unknown_url");
        }
    }

    private static void get(HttpMethod m, String path) { allow(m, HttpMethod.GET, path); }

    private static void allow(HttpMethod method, HttpMethod allowed, String path) {
        if (!method.equals(allowed) && !(allowed.equals(HttpMethod.GET) && method.equals(HttpMethod.HEAD)))
            throw new ApiException(405, "invalid_request_error", path + " takes " + allowed.name() + ", got " + method.name(), null, "method_not_allowed");
    }

    private Publisher<Void> pageFile(String path, HttpServerResponse res) {
        String[] nameAndType = PAGE_FILES.get(path).split(":", 2);
        byte[] b = page.computeIfAbsent(nameAndType[0], LiveStreams::resource);
        return res.status(200)
                .header("Content-Type", nameAndType[1])
                .header("Content-Length", Integer.toString(b.length))
                .header("Cache-Control", "no-cache")
                .header("X-Content-Type-Options", "nosniff")
                .header("X-Frame-Options", "DENY")
                .header("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                        + "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
                .sendByteArray(Mono.just(b)).then();
    }

    private static byte[] resource(String name) {
        try (InputStream in = LiveStreams.class.getResourceAsStream("web/" + name)) {
            if (in == null) throw new IllegalStateException("the page file web/" + name + " is missing from the jar");
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the page file web/" + name + ": " + e.getMessage(), e);
        }
    }

    /** The stream's state and counters as JSON. */
    ObjectNode describe(LiveStream s) {
        ObjectNode o = json.createObjectNode();
        o.put("id", s.id()).put("object", "stream").put("source", s.spec()).put("live", s.live())
                .put("status", s.status().name().toLowerCase(Locale.ROOT)).put("error", s.error()).put("captions", s.captions()).put("alerts", s.alertEvents());
        if (s.liveWindow() != null) s.liveWindow().describe(o.putObject("live_window"));
        o.set("last_caption", s.lastCaption());
        LiveStream.Snapshot snap = s.latest();
        ObjectNode v = o.putObject("view");
        v.put("fps", options.viewFps()).put("encoded", s.view().encoded()).put("skipped", s.view().skipped())
                .put("encoder", s.view().gstreamer() ? "gstreamer" : s.view().encoded() > 0 ? "imageio" : null);
        if (snap != null) v.put("width", snap.width()).put("height", snap.height());
        ObjectNode e = o.putObject("events");
        e.put("published", s.hub().published()).put("dropped", s.hub().dropped()).put("subscribers", s.hub().subscribers());
        var st = s.source().stats();
        o.putObject("source_stats").put("produced", st.produced()).put("emitted", st.emitted()).put("dropped", st.dropped())
                .put("reconnects", st.reconnects()).put("warnings", st.warnings());
        ArrayNode stages = o.putArray("stages");
        for (StageSnapshot x : s.metrics().snapshot().stages()) {
            ObjectNode n = stages.addObject().put("name", x.name()).put("in", x.in()).put("out", x.out()).put("dropped", x.dropped()).put("errors", x.errors());
            n.putObject("latency_ms").put("count", x.latency().count()).put("p50", LiveStream.round(x.latency().p50Ms()))
                    .put("p90", LiveStream.round(x.latency().p90Ms())).put("p99", LiveStream.round(x.latency().p99Ms()))
                    .put("max", LiveStream.round(x.latency().maxMs())).put("mean", LiveStream.round(x.latency().meanMs()));
        }
        String base = "/v1/streams/" + s.id();
        o.putObject("links").put("events", base + "/events").put("questions", base + "/questions").put("frame", base + "/frame.jpg").put("view", base + "/view.mjpeg");
        return o;
    }

    // ---- events ----------------------------------------------------------------------------------------------------

    private Publisher<Void> events(LiveStream s, HttpServerResponse res) {
        if (watchers.incrementAndGet() > options.maxWatchers()) {
            watchers.decrementAndGet();
            res.header("Retry-After", "5");
            throw new ApiException(429, "rate_limit_exceeded", options.maxWatchers() + " event streams are open; this server allows no more", null, "too_many_watchers");
        }
        AtomicBoolean released = new AtomicBoolean();
        Runnable release = () -> { if (released.compareAndSet(false, true)) watchers.decrementAndGet(); };
        Flux<String> events = s.hub().subscribe().map(e -> (e.seq() > 0 ? "id: " + e.seq() + "\n" : "") + "data: " + e.json() + "\n\n");
        Flux<String> body = Flux.concat(Mono.just("retry: 2000\n: events of stream " + s.id() + "\n\n"),
                        events.mergeWith(Flux.interval(HEARTBEAT).map(i -> ": keep-alive\n\n")))
                .takeUntilOther(closing.asMono())
                .doFinally(x -> release.run());
        return res.status(200)
                .header("Content-Type", "text/event-stream; charset=utf-8")
                .header("Cache-Control", "no-cache")
                .header("X-Accel-Buffering", "no")
                .sendString(body, StandardCharsets.UTF_8)
                .then()
                .doFinally(x -> release.run());
    }

    // ---- the view --------------------------------------------------------------------------------------------------

    private Publisher<Void> frame(LiveStream s, HttpServerResponse res) {
        JpegView.Jpeg j = s.view().latest();
        if (j == null) {
            res.header("Retry-After", "1");
            throw new ApiException(503, "unavailable", "stream '" + s.id() + "' has no frame yet", null, "no_frame_yet");
        }
        return res.status(200).header("Content-Type", "image/jpeg").header("Content-Length", Integer.toString(j.bytes().length))
                .header("Cache-Control", "no-store").header("X-Frame-Sequence", Long.toString(j.frameSequence()))
                .sendByteArray(Mono.just(j.bytes())).then();
    }

    private Publisher<Void> mjpeg(LiveStream s, HttpServerResponse res) {
        if (views.incrementAndGet() > options.maxWatchers()) {
            views.decrementAndGet();
            res.header("Retry-After", "5");
            throw new ApiException(429, "rate_limit_exceeded", options.maxWatchers() + " live views are open; this server allows no more", null, "too_many_views");
        }
        AtomicBoolean released = new AtomicBoolean();
        Runnable release = () -> { if (released.compareAndSet(false, true)) views.decrementAndGet(); };
        Duration period = Duration.ofNanos((long) (1e9 / options.viewFps()));
        Flux<byte[]> parts = Flux.interval(Duration.ZERO, period)
                .onBackpressureDrop()
                .map(i -> java.util.Optional.ofNullable(s.view().latest()))
                .filter(java.util.Optional::isPresent).map(java.util.Optional::get)
                .distinctUntilChanged(JpegView.Jpeg::seq)
                .map(j -> {
                    byte[] head = ("--" + BOUNDARY + "\r\nContent-Type: image/jpeg\r\nContent-Length: " + j.bytes().length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
                    byte[] out = new byte[head.length + j.bytes().length + 2];
                    System.arraycopy(head, 0, out, 0, head.length);
                    System.arraycopy(j.bytes(), 0, out, head.length, j.bytes().length);
                    out[out.length - 2] = '\r';
                    out[out.length - 1] = '\n';
                    return out;
                })
                .takeUntilOther(closing.asMono())
                .doFinally(x -> release.run());
        return res.status(200).header("Content-Type", "multipart/x-mixed-replace; boundary=" + BOUNDARY).header("Cache-Control", "no-store")
                .sendByteArray(parts).then().doFinally(x -> release.run());
    }

    // ---- questions -------------------------------------------------------------------------------------------------

    private record Question(String text, int maxTokens) {}

    private Publisher<Void> question(LiveStream s, HttpServerRequest req, HttpServerResponse res) {
        String length = req.requestHeaders().get("Content-Length");
        if (length != null) {
            long n;
            try { n = Long.parseLong(length.trim()); } catch (NumberFormatException e) { n = -1; }
            if (n > MAX_QUESTION_BODY) {
                res.keepAlive(false);
                ApiException e = new ApiException(413, "invalid_request_error", "the question body is " + n + " bytes; at most " + MAX_QUESTION_BODY + " are accepted",
                        null, "request_too_large");
                if (n > MAX_QUESTION_BODY + DRAIN_BYTES) throw e;
                // read what the client is sending (bounded) before answering: closing on unread data resets the
                // connection, and the client would see that instead of the 413
                return req.receive().then().timeout(options.timeout()).onErrorResume(x -> Mono.empty()).then(Mono.defer(() -> sendError(res, e)));
            }
        }
        if (!questions.tryAcquire()) {
            res.header("Retry-After", "1");
            throw new ApiException(429, "rate_limit_exceeded", options.maxQuestions() + " question(s) are being answered; retry after 1 s", null, "too_many_requests");
        }
        AtomicBoolean released = new AtomicBoolean();
        Runnable release = () -> { if (released.compareAndSet(false, true)) questions.release(); };
        long start = System.nanoTime();
        return readBody(req)
                .timeout(options.timeout())
                .map(this::parseQuestion)
                .flatMap(q -> answer(s, q, res, start))
                .onErrorResume(e -> res.hasSentHeaders() ? Mono.empty() : sendError(res, toApi(e)))
                .doFinally(x -> release.run());
    }

    private Mono<byte[]> readBody(HttpServerRequest req) {
        int[] total = {0};
        return req.receive()
                .reduceWith(ByteArrayOutputStream::new, (out, buf) -> {
                    int n = buf.readableBytes();
                    total[0] += n;
                    if (total[0] > MAX_QUESTION_BODY + DRAIN_BYTES) throw questionTooLarge();
                    if (total[0] > MAX_QUESTION_BODY) return out;   // read and dropped (bounded): the client then reads the 413
                    byte[] b = new byte[n];
                    buf.getBytes(buf.readerIndex(), b);
                    out.write(b, 0, n);
                    return out;
                })
                .map(out -> {
                    if (total[0] > MAX_QUESTION_BODY) throw questionTooLarge();
                    return out.toByteArray();
                })
                .defaultIfEmpty(new byte[0]);
    }

    private static ApiException questionTooLarge() {
        return new ApiException(413, "invalid_request_error", "the question body is over " + MAX_QUESTION_BODY + " bytes", null, "request_too_large");
    }

    private Question parseQuestion(byte[] body) {
        JsonNode n;
        try {
            n = json.readTree(body);
        } catch (JsonProcessingException e) {
            throw ApiException.invalid(null, "the question body is not valid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw ApiException.invalid(null, "cannot read the question body: " + e.getMessage());
        }
        if (n == null || !n.isObject()) throw ApiException.invalid(null, "the question body must be a JSON object {\"question\": \"...\"}");
        for (Iterator<String> it = n.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!QUESTION_FIELDS.contains(f)) throw ApiException.invalid(null, "unknown field in the question body (known: question, max_tokens)");
        }
        JsonNode q = n.get("question");
        if (q == null || !q.isTextual()) throw ApiException.invalid("question", "'question' must be a string");
        String text = q.asText().strip();
        if (text.isEmpty()) throw ApiException.invalid("question", "'question' must not be blank");
        if (text.length() > MAX_QUESTION_CHARS) throw ApiException.invalid("question", "'question' is " + text.length() + " characters; at most " + MAX_QUESTION_CHARS);
        int max = options.maxAnswerTokens();
        JsonNode mt = n.get("max_tokens");
        if (mt != null && !mt.isNull()) {
            if (!mt.canConvertToInt() || !mt.isIntegralNumber() || mt.asInt() < 1 || mt.asInt() > options.maxAnswerTokens())
                throw ApiException.invalid("max_tokens", "'max_tokens' must be an integer in 1.." + options.maxAnswerTokens());
            max = mt.asInt();
        }
        return new Question(text, max);
    }

    private Mono<Void> answer(LiveStream s, Question q, HttpServerResponse res, long start) {
        String qid = "q-" + UUID.randomUUID().toString().replace("-", "").substring(0, 16);
        QuestionAnswerer a = answerers.getOrDefault(s.id(), defaultAnswerer);
        LiveStream.Snapshot frame = s.latest();
        StringBuilder text = new StringBuilder();
        FinishReason[] finish = {FinishReason.LENGTH};
        Flux<TokenEvent> answer;
        try {
            answer = a.answer(s, q.text(), q.maxTokens());
        } catch (IllegalStateException e) {
            return Mono.error(e);
        }
        Duration left = options.timeout().minusNanos(System.nanoTime() - start);
        AtomicBoolean started = new AtomicBoolean();
        return answer
                .doOnNext(e -> {
                    if (started.compareAndSet(false, true))
                        s.hub().publish("answer", s.hub().fields().put("id", qid).put("question", q.text()).put("state", "started"));
                    if (!e.textDelta().isEmpty()) {
                        text.append(e.textDelta());
                        s.hub().publish("answer", s.hub().fields().put("id", qid).put("state", "token").put("delta", e.textDelta()));
                    }
                    if (e.finishReason() != null) finish[0] = e.finishReason();
                })
                .timeout(left.isNegative() || left.isZero() ? Duration.ofMillis(1) : left)
                .then(Mono.defer(() -> {
                    String answerText = text.toString().strip();
                    String reason = finish[0] == FinishReason.LENGTH ? "length" : "stop";
                    long elapsed = (System.nanoTime() - start) / 1_000_000;
                    ObjectNode done = s.hub().fields().put("id", qid).put("state", "done").put("question", q.text()).put("text", answerText).put("finish_reason", reason)
                            .put("elapsed_ms", elapsed);
                    if (a instanceof LiveWindowAnswerer lw) lw.span(done.put("over", "window"));
                    else if (frame != null) done.put("over", "frame").put("frame", frame.info().sequence()).put("pts_ms", frame.info().ptsMillis());
                    else done.put("over", "frame");
                    s.hub().publish("answer", done);
                    ObjectNode o = json.createObjectNode();
                    o.put("id", qid).put("object", "stream.answer").put("stream", s.id()).put("question", q.text()).put("answer", answerText)
                            .put("finish_reason", reason).put("elapsed_ms", elapsed);
                    if (a instanceof LiveWindowAnswerer lw) lw.describe(o.putObject("window"));
                    if (frame != null) o.putObject("frame").put("sequence", frame.info().sequence()).put("pts_ms", frame.info().ptsMillis())
                            .put("wall_ms", frame.wallMillis());
                    LOG.log(System.Logger.Level.INFO, () -> "POST /v1/streams/" + s.id() + "/questions 200: " + answerText.length() + " chars, "
                            + (System.nanoTime() - start) / 1_000_000 + " ms");
                    return sendJson(res, 200, o);
                }))
                .doOnError(e -> s.hub().publish("answer", s.hub().fields().put("id", qid).put("state", "failed").put("message", toApi(e).getMessage())));
    }

    // ---- responses -------------------------------------------------------------------------------------------------

    private ApiException toApi(Throwable e) {
        if (e instanceof ApiException a) return a;
        if (e instanceof IllegalStateException) return new ApiException(409, "invalid_request_error", e.getMessage(), null, "not_ready");
        if (e instanceof TimeoutException) return new ApiException(504, "timeout", "the question was not answered within " + options.timeout(), null, "timeout");
        LOG.log(System.Logger.Level.ERROR, "question failed", e);
        return new ApiException(500, "server_error", "internal error: " + e.getMessage(), null, null);
    }

    private Mono<Void> sendError(HttpServerResponse res, ApiException e) {
        if (e.status >= 500 || e.status == 413) res.keepAlive(false);
        return sendJson(res, e.status, e.body(json));
    }

    private Mono<Void> sendJson(HttpServerResponse res, int status, JsonNode body) {
        byte[] b;
        try {
            b = json.writeValueAsBytes(body);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize a response: " + e.getMessage(), e);
        }
        return res.status(status).header("Content-Type", "application/json").header("Content-Length", Integer.toString(b.length))
                .sendByteArray(Mono.just(b)).then();
    }

    /** The ids of the streams, for logs. */
    public List<String> ids() {
        List<String> ids = new ArrayList<>();
        for (LiveStream s : all()) ids.add(s.id());
        return ids;
    }
}
