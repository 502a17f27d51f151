package io.vlmflux.demos.fleet;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.sinks.RecordSink;
import io.vlmflux.sinks.Records;
import io.vlmflux.sinks.SinkRecord;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.Sources;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

import java.lang.foreign.ValueLayout;
import java.time.Instant;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A camera runner without a model ({@code --captioner stats}): each sampled frame of the camera's source becomes a
 * {@code caption} record (record schema v1) whose text states the frame's size and mean brightness, sent to the
 * fleet's events sink. It runs the real sources, sampling, sink and fleet machinery at a tiny fraction of a model's
 * cost, which is what the multi-JVM fleet test and a fleet dry run need; model captioning of fleet cameras is
 * {@code serve --fleet} with a model (see docs/fleet.md).
 *
 * <p>Records of one camera are sent one at a time in order; {@link #stop} ends the source, waits for the open
 * record to be settled and returns, so nothing of the camera is sent after it.
 */
public final class StatsCaptioner implements CameraRunner {
    private static final System.Logger LOG = System.getLogger("vlmflux.fleet");
    private static final long STOP_WAIT_S = 15;

    private final RecordSink sink;
    private final Map<String, Running> running = new ConcurrentHashMap<>();
    private final ObjectMapper json = new ObjectMapper();

    private record Running(Sinks.Empty<Void> stop, CountDownLatch done, Disposable subscription) {}

    /** {@code sink} receives the records (closed by {@link #close()}). */
    public StatsCaptioner(RecordSink sink) { this.sink = sink; }

    @Override public void start(CameraDef camera) {
        if (running.containsKey(camera.id())) throw new IllegalStateException("camera " + camera.id() + " runs already");
        FrameSource source = Sources.parse(camera.source()).named(camera.id());
        Sinks.Empty<Void> stop = Sinks.empty();
        CountDownLatch done = new CountDownLatch(1);
        String id = camera.id();
        Disposable d = source.frames()
                .transform(Stages.sample(camera.sampling()))
                .map(f -> {
                    try (Frame fr = f) {
                        return record(id, fr);
                    }
                })
                .takeUntilOther(stop.asMono())
                .concatMap(sink::publish, 0)
                .doFinally(x -> done.countDown())
                .subscribe(ok -> {}, e -> LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + " failed: " + e));
        running.put(id, new Running(stop, done, d));
    }

    private SinkRecord record(String id, Frame f) {
        long sum = 0;
        long n = Math.min(f.data().byteSize(), 1L << 20);
        for (long i = 0; i < n; i++) sum += f.data().get(ValueLayout.JAVA_BYTE, i) & 0xff;
        double mean = n == 0 ? 0 : (double) sum / n;
        ObjectNode o = json.createObjectNode();
        o.put("schema", Records.SCHEMA).put("type", "caption").put("source", id).put("time", Instant.now().toString())
                .put("seq", f.sequence()).put("pts_ms", f.ptsNanos() < 0 ? -1 : f.ptsNanos() / 1_000_000)
                .put("text", String.format(Locale.ROOT, "a %dx%d frame, mean brightness %.1f", f.width(), f.height(), mean));
        o.putArray("tokens");
        o.put("finish_reason", "stop").put("dropped", 0);
        o.putObject("timings").put("preprocess_ms", 0.0).put("encode_ms", 0.0).put("prefill_ms", 0.0).put("ttft_ms", 0.0).put("total_ms", 0.0);
        return new SinkRecord("caption", id, o.toString());
    }

    @Override public void stop(String id) {
        Running r = running.remove(id);
        if (r == null) return;
        r.stop().tryEmitEmpty();
        try {
            if (!r.done().await(STOP_WAIT_S, TimeUnit.SECONDS)) {
                LOG.log(System.Logger.Level.WARNING, "fleet camera " + id + " did not stop within " + STOP_WAIT_S + " s; cancelling it");
                r.subscription().dispose();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            r.subscription().dispose();
        }
    }

    /** The cameras running now. */
    public java.util.Set<String> ids() { return java.util.Set.copyOf(running.keySet()); }

    @Override public void close() {
        for (String id : java.util.List.copyOf(running.keySet())) stop(id);
        sink.close();
    }
}
