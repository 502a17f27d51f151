package io.vlmflux.demos.fleet;

import io.vlmflux.demos.serve.EventHub;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.demos.serve.StreamRecords;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.sinks.RecordSink;
import io.vlmflux.sinks.SinkRecord;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.Sources;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The camera runner of {@code vlmflux serve --fleet}: each camera Kafka assigns the node becomes a live stream of
 * the server ({@link LiveStreams#add}, captioned by the model with the same caption pipeline as serve's own streams,
 * shown on the page and in {@code GET /v1/streams}), and its events are forwarded to the fleet's events topic as
 * records ({@link StreamRecords}): captions, alert and source events, narrations and the answers to its questions.
 * A camera's {@code prompt} replaces the server's caption prompt for that camera, its {@code alerts} (when the record
 * has them) the server's alerts: they run on the stream like {@code --alert} (over the live window on a live-video
 * stream), and a changed record restarts the camera with its new alerts.
 *
 * <p>Records of one camera are sent one at a time, in order. {@link #stop} removes the stream (its pipeline is
 * cancelled, its source closed, its event stream completed), then waits until the records already made are settled
 * by the broker, so nothing of the camera is sent after it returns (the fleet's no-overlap rule).
 */
public final class StreamCaptioner implements CameraRunner {
    private static final System.Logger LOG = System.getLogger("vlmflux.fleet");
    private static final long STOP_WAIT_S = 15;

    private final LiveStreams streams;
    private final CaptionOptions captions;
    private final RecordSink sink;
    private final StreamRecords records = new StreamRecords();
    private final Map<String, Forward> running = new ConcurrentHashMap<>();
    private final AtomicLong lost = new AtomicLong();

    private record Forward(CountDownLatch done, Disposable subscription) {}

    /**
     * @param streams  the server's live streams (cameras are added to and removed from them)
     * @param captions caption options of the cameras (a camera's {@code prompt} replaces the prompt)
     * @param sink     the fleet's events sink (closed by {@link #close()})
     */
    public StreamCaptioner(LiveStreams streams, CaptionOptions captions, RecordSink sink) {
        this.streams = streams;
        this.captions = captions;
        this.sink = sink;
    }

    @Override public void start(CameraDef camera) {
        String id = camera.id();
        if (running.containsKey(id)) throw new IllegalStateException("camera " + id + " runs already");
        FrameSource source = Sources.parse(camera.source());
        CaptionOptions opts = camera.prompt() == null ? captions : captions.withPrompt(camera.prompt());
        String prompt = opts.prompt();
        List<Alert> alerts = camera.alertList();   // null: the node's alerts (--alert, the config's) run on it
        if (alerts != null) streams.checkAlerts(alerts);
        CountDownLatch done = new CountDownLatch(1);
        Disposable[] d = new Disposable[1];
        // subscribed before the stream starts: its first events (source_up, ...) are forwarded too
        try {
            streams.add(id, camera.source(), source, opts, camera.sampling(), s -> {
                if (alerts != null) s.alerts(alerts);
                d[0] = s.hub().subscribe()
                .concatMap(e -> {
                    SinkRecord r = record(id, prompt, e);
                    return r == null ? Mono.<Boolean>empty() : sink.publish(r);
                }, 0)
                .doFinally(x -> done.countDown())
                .subscribe(ok -> {}, e -> LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + ": forwarding failed: " + e));
            });
        } catch (RuntimeException e) {
            if (d[0] != null) {   // our stream was added but did not start: take it out again
                streams.remove(id);
                d[0].dispose();
            }
            throw e;
        }
        running.put(id, new Forward(done, d[0]));
    }

    /** The record of one stream event, or null for events the fleet topic does not carry (live tokens, answers in progress). */
    SinkRecord record(String id, String prompt, EventHub.Event e) {
        if (e.type().equals("dropped")) {
            // this forwarder fell behind the stream (a slow broker): the gap is counted, the stream goes on
            long n = records.dropped(e);
            long all = lost.addAndGet(n);
            LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + ": " + n + " events not forwarded (broker slow; " + all + " so far)");
            return null;
        }
        return records.record(id, prompt, e);
    }

    @Override public void stop(String id) {
        Forward f = running.remove(id);
        streams.remove(id);   // the pipeline is cancelled and the stream's events complete after those queued
        if (f == null) return;
        try {
            if (!f.done().await(STOP_WAIT_S, TimeUnit.SECONDS)) {
                LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + ": its records were not settled within " + STOP_WAIT_S + " s; cancelling");
                f.subscription().dispose();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.subscription().dispose();
        }
    }

    /** The cameras running now. */
    public Set<String> ids() { return Set.copyOf(running.keySet()); }

    /** Stream events not forwarded because the forwarder fell behind (over all cameras). */
    public long lost() { return lost.get(); }

    @Override public void close() {
        for (String id : List.copyOf(running.keySet())) stop(id);
        sink.close();
    }
}
