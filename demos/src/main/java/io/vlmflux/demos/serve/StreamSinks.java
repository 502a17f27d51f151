package io.vlmflux.demos.serve;

import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.sinks.SinkRecord;
import io.vlmflux.sinks.SinkStage;
import io.vlmflux.sources.SourceEvent;
import reactor.core.Disposable;
import reactor.core.publisher.Sinks;
import reactor.util.concurrent.Queues;

import java.util.Collection;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Kafka/MQTT outputs of {@code vlmflux serve} ({@code --kafka}, {@code --mqtt}, the config's {@code output}):
 * every live stream's captions and source events go, as the records of {@code vlmflux caption} (docs/sinks.md; key
 * and {@code source} = the stream id), through one {@link SinkStage} — its flow control, periodic status records
 * and a last {@code stopped} status per stream when the streams close. The stream's alert events, narrations and the
 * answers to its questions go too ({@code event} with {@code event: alert}, {@code narration}, {@code reply}; made by
 * {@link StreamRecords} from the stream's events, which this output follows like an SSE client).
 *
 * <p>Unlike {@code caption}, a slow or unreachable broker never slows the streams (their captions also feed the page
 * and the SSE clients): captions wait in a queue of {@value #QUEUE}; when it is full the newest caption is not sent
 * and counted ({@link #dropped()}), as are source events, alerts, narrations and replies beyond the stage's own
 * event queue.
 */
public final class StreamSinks implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.serve");
    public static final int QUEUE = 256;
    /** The events of a stream that this output sends from its events (captions and source events come directly). */
    private static final java.util.Set<String> FOLLOWED = java.util.Set.of("alert", "narration", "answer", "dropped");

    private final SinkStage stage;
    private final Sinks.Many<Caption> captions = Sinks.many().unicast().onBackpressureBuffer(Queues.<Caption>get(QUEUE).get());
    private final AtomicLong dropped = new AtomicLong(), sent = new AtomicLong();
    private final CountDownLatch done = new CountDownLatch(1);
    private final Disposable subscription;
    private final StreamRecords records = new StreamRecords();
    private final java.util.List<Disposable> followers = new java.util.concurrent.CopyOnWriteArrayList<>();
    private volatile boolean closed;

    /** Starts sending; taps {@code streams} (before they start). */
    public StreamSinks(SinkStage stage, Collection<LiveStream> streams) {
        this.stage = stage;
        stage.sources(streams.stream().map(LiveStream::id).toList());
        subscription = captions.asFlux().transform(stage).subscribe(c -> sent.incrementAndGet(), e -> {
            LOG.log(System.Logger.Level.WARNING, "the Kafka/MQTT output stopped: " + e.getMessage());
            done.countDown();
        }, done::countDown);
        for (LiveStream s : streams) {
            s.outputs(this::caption, this::event);
            // the stream's other records: handed over as they are published (the stage's side queue never waits)
            followers.add(s.hub().subscribe().filter(e -> FOLLOWED.contains(e.type())).subscribe(e -> {
                if (e.type().equals("dropped")) {   // this follower fell behind the stream's events: counted
                    dropped.addAndGet(records.dropped(e));
                    return;
                }
                SinkRecord r = records.record(s.id(), null, e);
                if (r != null && !closed) stage.record(r);
            }));
        }
    }

    private synchronized void caption(Caption c) {
        if (closed) return;
        if (captions.tryEmitNext(c).isFailure()) dropped.incrementAndGet();
    }

    private void event(SourceEvent e) {
        if (!closed) stage.event(e);
    }

    /** Captions sent and settled by every sink. */
    public long sent() { return sent.get(); }

    /**
     * Captions not sent because the queue was full, events this output missed, plus source events, alerts, narrations,
     * replies and status records the stage dropped.
     */
    public long dropped() { return dropped.get() + stage.sideDropped(); }

    public SinkStage stage() { return stage; }

    /** Ends the output: the queued captions and a last {@code stopped} status per stream go (within 10 s), then the sinks flush and close. */
    @Override public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
            captions.tryEmitComplete();
            followers.forEach(Disposable::dispose);
        }
        try {
            if (!done.await(10, TimeUnit.SECONDS)) {
                LOG.log(System.Logger.Level.WARNING, "the Kafka/MQTT output did not settle within 10 s: cancelled");
                subscription.dispose();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            subscription.dispose();
        } finally {
            stage.close();
        }
    }
}
