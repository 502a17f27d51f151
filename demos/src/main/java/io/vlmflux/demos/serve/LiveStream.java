package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.SourceInput;
import io.vlmflux.pipeline.VlmPipeline;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.pipeline.caption.CaptionStage;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameInfo;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.vision.Images;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.util.Locale;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * One configured source served live: its caption pipeline (sampling, newest-wins, the shared runtime) publishing
 * {@code token} and {@code caption} events into its {@link EventHub}, its source's state as {@code source_*} events,
 * and a bounded-rate view of its frames: every {@code 1/viewFps} the frame passing by is copied (RGB, for questions
 * about "the latest frame") and JPEG-encoded off the source thread ({@link JpegView}) for the page's live view.
 *
 * <p>The view tap only reads frames the pipeline owns (it never keeps or closes them), so it adds no frame to the
 * pipeline's lifecycle. {@link #close()} cancels the pipeline (closing the source and freeing the caption's KV cache)
 * and completes the hub's subscribers.
 */
public final class LiveStream implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.serve");
    /** Stream ids: what may appear in a URL path segment without escaping. */
    public static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    /** A copy of a recent frame: packed RGB, its size and what it was. */
    public record Snapshot(byte[] rgb, int width, int height, FrameInfo info, long wallMillis) {}

    public enum Status { STARTING, RUNNING, ENDED, FAILED, CLOSED }

    private final String id;
    private final String spec;
    private final FrameSource source;
    private final VlmRuntime runtime;
    private final CaptionOptions options;
    private final SamplingPolicy sampling;
    private final long viewPeriodNanos;
    private final EventHub hub;
    private final PipelineMetrics metrics = new PipelineMetrics();
    private final JpegView view;
    private final AtomicReference<Snapshot> latest = new AtomicReference<>();
    private final AtomicReference<ObjectNode> lastCaption = new AtomicReference<>();
    private final AtomicLong captions = new AtomicLong();
    private final AtomicLong lastTap = new AtomicLong(Long.MIN_VALUE);
    private final AtomicBoolean started = new AtomicBoolean();
    private volatile Status status = Status.STARTING;
    private volatile String error;
    private volatile Disposable pipeline, sourceEvents;
    private final StreamAlerts alerts = new StreamAlerts(this);
    private volatile ServeMetrics serveMetrics;
    private volatile ServeMetrics.SourceMeters meters;
    private volatile LiveWindowAnswerer liveWindow;
    private volatile java.util.function.Consumer<Caption> captionOut;
    private volatile java.util.function.Consumer<io.vlmflux.sources.SourceEvent> eventOut;

    /**
     * @param id       the stream's id ({@link #ID}); also the id of its frames
     * @param spec     the source spec, for display
     * @param source   the opened source (not subscribed yet)
     * @param viewFps  frames per second copied for the view and questions (&gt; 0)
     */
    public LiveStream(String id, String spec, FrameSource source, VlmRuntime runtime, CaptionOptions options, SamplingPolicy sampling,
                      double viewFps, EventHub hub, Scheduler encoder) {
        if (id == null || !ID.matcher(id).matches()) throw new IllegalArgumentException("stream id '" + id + "' is not " + ID.pattern());
        if (!(viewFps > 0) || viewFps > 60) throw new IllegalArgumentException("view fps must be in (0, 60], got " + viewFps);
        this.id = id;
        this.spec = spec;
        this.source = source;
        this.runtime = runtime;
        this.options = options;
        this.sampling = sampling;
        this.viewPeriodNanos = (long) (1e9 / viewFps);
        this.hub = hub;
        this.view = new JpegView(encoder);
    }

    public String id() { return id; }
    public String spec() { return spec; }
    public boolean live() { return source.isLive(); }
    public EventHub hub() { return hub; }
    public StreamEventSink events() { return hub; }
    public PipelineMetrics metrics() { return metrics; }
    public JpegView view() { return view; }
    public Status status() { return status; }
    public String error() { return error; }
    public long captions() { return captions.get(); }
    public ObjectNode lastCaption() { return lastCaption.get(); }
    public FrameSource source() { return source; }
    /** The newest frame copy, or null before the first frame. */
    public Snapshot latest() { return latest.get(); }

    /**
     * Feeds the server's per-source meters ({@code vlmflux_frames_in_total{source}}, dropped frames, caption
     * latency, alert events); before {@link #start()}.
     */
    public void metrics(ServeMetrics m) {
        serveMetrics = m;
        meters = m == null ? null : m.source(id);
    }

    ServeMetrics serveMetrics() { return serveMetrics; }

    /** Runs {@code w} (a live-video session) on this stream's frames next to its captions; before {@link #start()}. */
    void liveWindow(LiveWindowAnswerer w) {
        if (started.get()) throw new IllegalStateException("the live session is set before start()");
        liveWindow = w;
    }

    /** The stream's live-video session, or null. */
    public LiveWindowAnswerer liveWindow() { return liveWindow; }

    /** Also hands every caption and source event to these (e.g. {@link StreamSinks}; must not block); before {@link #start()}. */
    public void outputs(java.util.function.Consumer<Caption> captions, java.util.function.Consumer<io.vlmflux.sources.SourceEvent> events) {
        if (started.get()) throw new IllegalStateException("outputs are set before start()");
        captionOut = captions;
        eventOut = events;
    }

    /** Runs {@code list} on the sampled frames next to the captions ({@link StreamAlerts}); before {@link #start()}. */
    public void alerts(java.util.List<io.vlmflux.pipeline.caption.Alert> list) {
        if (started.get()) throw new IllegalStateException("alerts are set before start()");
        alerts.set(list);
    }

    /** Alert events published so far. */
    public long alertEvents() { return alerts.published(); }

    VlmRuntime runtime() { return runtime; }

    /** Subscribes the pipeline (once). */
    public void start() {
        if (!started.compareAndSet(false, true)) throw new IllegalStateException("stream " + id + " was already started");
        sourceEvents = source.events().subscribe(ev -> {
            var out = eventOut;
            if (out != null) out.accept(ev);
            if (ev.type() == io.vlmflux.sources.SourceEvent.Type.SOURCE_FAILED) return;   // the pipeline's error says it (failed())
            ObjectNode f = hub.fields().put("attempt", ev.attempt()).put("message", ev.message());
            hub.publish(ev.type().wire(), f);
        });
        Flux<Frame> frames = source.frames().doOnNext(f -> {
                    ServeMetrics.SourceMeters m = meters;
                    if (m != null) m.frameIn();
                }).doOnNext(this::tap).doOnNext(f -> {
                    LiveWindowAnswerer w = liveWindow;
                    if (w != null) w.offer(f);   // copies the frames it keeps
                }).doOnSubscribe(s -> status = Status.RUNNING);
        VlmPipeline.Builder b = VlmPipeline.builder().source(new SourceInput(id, frames, source.isLive()), null).sampling(sampling).metrics(metrics);
        CaptionOptions resolved = b.resolve(options);
        var streams = CaptionStage.streams(runtime, resolved, metrics.stage("model"));
        alerts.start(resolved.backpressure(), liveWindow);   // over the live window when there is one, else per sampled frame
        if (liveWindow != null) liveWindow.start();
        Function<Flux<Frame>, Flux<Caption>> stage = in -> in.doOnNext(alerts::offer).transform(streams)
                .concatMap(s -> s.tokens().doOnNext(e -> token(s.frame(), e)).then(s.caption()), 0);
        pipeline = b.model(stage, Caption::frame).flux().subscribe(this::caption, this::failed, this::ended);
    }

    private void tap(Frame f) {
        long now = System.nanoTime();
        long last = lastTap.get();
        if (last != Long.MIN_VALUE && now - last < viewPeriodNanos) return;
        if (!lastTap.compareAndSet(last, now)) return;
        Snapshot s = new Snapshot(Images.toRgb(f), f.width(), f.height(), f.info(), System.currentTimeMillis());
        latest.set(s);
        view.offer(s);
    }

    private void token(FrameInfo frame, TokenEvent e) {
        if (e.textDelta().isEmpty()) return;
        hub.publish("token", hub.fields().put("frame", frame.sequence()).put("index", e.index()).put("delta", e.textDelta()));
    }

    private void caption(Caption c) {
        captions.incrementAndGet();
        ServeMetrics.SourceMeters m = meters;
        if (m != null) {
            m.caption(java.time.Duration.ofNanos((long) (c.timings().ttftMs() * 1e6)), java.time.Duration.ofNanos((long) (c.timings().totalMs() * 1e6)));
            m.framesDropped(c.dropped() - countedDrops);
            countedDrops = Math.max(countedDrops, c.dropped());
        }
        ObjectNode f = hub.fields();
        f.put("frame", c.frame().sequence()).put("pts_ms", c.frame().ptsMillis()).put("text", c.text().strip())
                .put("finish_reason", c.finishReason().name().toLowerCase(Locale.ROOT)).put("dropped", c.dropped());
        ObjectNode t = f.putObject("timings");
        t.put("preprocess_ms", round(c.timings().preprocessMs())).put("encode_ms", round(c.timings().encodeMs()))
                .put("prefill_ms", round(c.timings().prefillMs())).put("ttft_ms", round(c.timings().ttftMs())).put("total_ms", round(c.timings().totalMs()));
        lastCaption.set(f.deepCopy());
        hub.publish("caption", f);
        var out = captionOut;
        if (out != null) out.accept(c);
    }

    private void failed(Throwable e) {
        error = e.getMessage() == null ? e.toString() : e.getMessage();
        status = Status.FAILED;
        LOG.log(System.Logger.Level.WARNING, "stream " + id + " (" + spec + ") failed: " + error);
        hub.publish("source_failed", hub.fields().put("message", error));
    }

    private void ended() {
        status = Status.ENDED;
        hub.publish("source_ended", hub.fields().put("message", "the source ended"));
    }

    private long countedDrops;   // the caption's dropped count is a running total: the meter gets the increase

    static double round(double ms) { return Math.round(ms * 100) / 100.0; }

    /** Cancels the pipeline (the source and any caption in flight are closed) and completes the subscribers. */
    @Override public void close() {
        Disposable p = pipeline, e = sourceEvents;
        if (p != null) p.dispose();
        if (e != null) e.dispose();
        alerts.close();
        LiveWindowAnswerer w = liveWindow;
        if (w != null) w.close();
        if (status == Status.STARTING || status == Status.RUNNING) status = Status.CLOSED;
        view.close();
        hub.close();
    }

    @Override public String toString() { return "LiveStream[" + id + " " + spec + " " + status + "]"; }

    /** Builds a fresh frame (it owns a copy of the pixels) from a snapshot. */
    static Frame frameOf(Snapshot s) {
        return Images.fromRgb(s.rgb(), s.width(), s.height());
    }

    /** Default scheduler for JPEG encoding: bounded elastic. */
    static Scheduler defaultEncoder() { return Schedulers.boundedElastic(); }
}
