package io.vlmflux.sources;

import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;
import reactor.core.publisher.Sinks;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import static io.vlmflux.sources.GstNative.isNull;

/**
 * A frame source backed by GStreamer pipelines ending in an {@code appsink name=sink}. It owns, per subscription,
 * one pump thread that builds the pipeline, pulls samples and tears the pipeline down; nothing calls back into Java
 * from GStreamer's streaming threads (errors are read by polling the bus), so a slow subscriber never blocks them
 * beyond the appsink's bounded queue.
 *
 * <p>Backpressure: lossless sources pull the appsink only while the subscriber has demand (appsink
 * {@code max-buffers=2 drop=false}, so nothing is decoded further ahead); live sources pull every sample and keep
 * only the newest frame while there is no demand, releasing and counting the older one as dropped.
 *
 * <p>Segments: {@code lines} are played one after the other (a video file has one, an image folder one per image);
 * a skippable segment (an image) that fails is logged, counted and passed over. Network sources reopen the current
 * segment with capped exponential backoff after an error or a stall, except after a permanent error (404, 401, 403);
 * while waiting they probe the server's TCP port and retry at once when it opens again. Timestamps never go back:
 * a new segment or connection continues from the last pts plus one frame.
 *
 * <p>Events ({@link SourceEvent}) go to a hot multicast sink shared by all subscriptions.
 */
final class PipelineSource implements FrameSource {
    private static final System.Logger LOG = System.getLogger("vlmflux.sources");
    private static final long POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(20);
    private static final AtomicLong THREADS = new AtomicLong();

    enum Mode { LIVE, LOSSLESS, AUTO }

    /**
     * How a network source retries: {@code maxRetries} &lt; 0 means forever; {@code stall} null means never;
     * {@code probeHost}/{@code probePort} (null/0: none) is the TCP endpoint probed while waiting to retry.
     */
    record Reconnect(int maxRetries, Duration initialBackoff, Duration maxBackoff, Duration stall, String probeHost, int probePort) {
        Reconnect(int maxRetries, Duration initialBackoff, Duration maxBackoff, Duration stall) {
            this(maxRetries, initialBackoff, maxBackoff, stall, null, 0);
        }
    }

    /**
     * One pipeline to play: its launch line, what to call it in messages, the label of its frames (null: none),
     * whether a failure skips it rather than ending the source, and whether its end is checked against its duration.
     */
    record Segment(String line, String label, String frameLabel, boolean skippable, boolean checkDuration) {
        Segment(String line, String label) { this(line, label, null, false, false); }
    }

    /** Probe connect timeout and the pause between probes while waiting to reconnect. */
    private static final int PROBE_TIMEOUT_MS = 200;
    private static final long PROBE_EVERY_NANOS = TimeUnit.MILLISECONDS.toNanos(250);

    private final String id;
    private final List<Segment> segments;
    private final Mode mode;
    private final Reconnect reconnect;
    private final int maxMapped;
    private final SourceStats stats = new SourceStats();
    private final Sinks.Many<SourceEvent> events = Sinks.many().multicast().directBestEffort();
    private volatile boolean detectedLive;

    PipelineSource(String id, List<Segment> segments, Mode mode, Reconnect reconnect, int maxMapped) {
        if (segments.isEmpty()) throw new SourceException(id, "nothing to play");
        this.id = id;
        this.segments = List.copyOf(segments);
        this.mode = mode;
        this.reconnect = reconnect;
        this.maxMapped = maxMapped;
    }

    @Override public String id() { return id; }
    @Override public boolean isLive() { return mode == Mode.LIVE || (mode == Mode.AUTO && detectedLive); }
    @Override public SourceStats stats() { return stats; }
    @Override public Flux<SourceEvent> events() { return events.asFlux(); }
    @Override public FrameSource named(String newId) {
        if (newId == null || newId.isBlank()) throw new IllegalArgumentException("source id must not be blank, got '" + newId + "'");
        return new PipelineSource(newId, segments, mode, reconnect, maxMapped);
    }
    String launchLine() { return segments.get(0).line(); }

    /**
     * Cold: each subscription starts a pump thread and a pipeline. Thread: frames are emitted on the pump thread
     * (live sources also on the requesting thread when a held frame meets new demand). Discard: frames dropped by
     * any operator are closed.
     */
    @Override
    public Flux<Frame> frames() {
        return Flux.using(Session::new,
                        s -> Flux.<Frame>create(s::start, FluxSink.OverflowStrategy.BUFFER),
                        Session::close)
                .doOnDiscard(Frame.class, Frame::close);
    }

    @Override public String toString() { return "PipelineSource[" + id + "]"; }

    private void emit(SourceEvent.Type type, int attempt, String message) {
        synchronized (events) { events.tryEmitNext(new SourceEvent(type, id, Instant.now(), attempt, message)); }
    }

    /** A failure of the running pipeline that a network source may retry, unless it is permanent. */
    private static final class StreamFailure extends Exception {
        final boolean permanent;
        StreamFailure(String m) { this(m, false); }
        StreamFailure(String m, boolean permanent) { super(m, null, false, false); this.permanent = permanent; }
    }

    private enum End { EOS, STOPPED }

    /** One subscription: the pump thread, the current pipeline, the newest undelivered frame (live mode). */
    private final class Session implements Runnable {
        private final Object lock = new Object();
        private final CountDownLatch finished = new CountDownLatch(1);
        private final AtomicInteger mapped = new AtomicInteger();
        private final FramePool pool = new FramePool();
        private volatile boolean stopped;
        private volatile FluxSink<Frame> sink;
        private volatile boolean live = mode == Mode.LIVE;
        private Thread thread;
        private Frame latest;          // guarded by lock
        private long sequence;
        private MemorySegment pipeline, appsink, bus, cachedCaps;
        private GstNative.CapsInfo capsInfo;
        private int failures;
        private boolean down;              // a live source lost its stream and has not delivered a frame since
        private long downSince;
        private boolean portWasClosed;     // the reconnect probe saw the server's port closed since the last early retry
        private boolean rebase;            // the next frame starts a new segment or connection
        private long ptsBase, lastPts = -1, lastRawPts = -1, segmentDuration = -1;
        private boolean segmentStarted;
        private Segment current;
        private String lastWarning;
        private int skipped;
        private String lastSkip;

        void start(FluxSink<Frame> s) {
            this.sink = s;
            s.onRequest(n -> {
                if (live) synchronized (lock) { drainLocked(); }
                Thread t = thread;
                if (t != null) LockSupport.unpark(t);
            });
            s.onDispose(this::stop);
            Thread t = new Thread(this, "vlmflux-source-" + THREADS.incrementAndGet());
            t.setDaemon(true);
            thread = t;
            t.start();
        }

        void stop() {
            stopped = true;
            Thread t = thread;
            if (t != null) LockSupport.unpark(t);
        }

        /** Stops the pump and waits (bounded) for it to tear the pipeline down, unless called from the pump itself. */
        void close() {
            stop();
            Thread t = thread;
            if (t != null && t != Thread.currentThread()) {
                try {
                    if (!finished.await(5, TimeUnit.SECONDS))
                        LOG.log(System.Logger.Level.WARNING, "source {0}: pipeline teardown takes longer than 5 s; continuing in the background", id);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            closeLatest();
        }

        @Override
        public void run() {
            try {
                int segment = 0;
                while (!stopped && segment < segments.size()) {
                    Segment seg = segments.get(segment);
                    try {
                        open(seg);
                        End end = pump();
                        if (end == End.EOS) checkEnd(seg);
                        closePipeline();
                        if (end == End.EOS) { segment++; rebase = true; }
                    } catch (StreamFailure f) {
                        closePipeline();
                        if (stopped) break;
                        String where = segments.size() > 1 ? " [" + seg.label() + "]" : "";
                        if (seg.skippable()) {
                            skipped++;
                            lastSkip = seg.label() + ": " + f.getMessage();
                            stats.onSkipped();
                            LOG.log(System.Logger.Level.WARNING, "source {0}: skipped {1}: {2}", id, seg.label(), f.getMessage());
                            emit(SourceEvent.Type.SOURCE_SKIPPED, 0, seg.label() + ": " + f.getMessage());
                            segment++;
                            rebase = true;
                            continue;
                        }
                        if (reconnect == null) throw new SourceException(id, f.getMessage() + where);
                        if (f.permanent) throw new SourceException(id, f.getMessage() + where + " (permanent error, not retried)");
                        if (!down) {
                            down = true;
                            downSince = System.nanoTime();
                            emit(SourceEvent.Type.SOURCE_DOWN, 0, f.getMessage());
                        }
                        if (reconnect.maxRetries() >= 0 && failures >= reconnect.maxRetries())
                            throw new SourceException(id, f.getMessage() + where + " (gave up after " + failures + " reconnect attempt" + (failures == 1 ? "" : "s") + ")");
                        failures++;
                        long backoff = Math.min(reconnect.maxBackoff().toNanos(),
                                reconnect.initialBackoff().toNanos() << Math.min(20, failures - 1));
                        stats.onReconnect();
                        LOG.log(System.Logger.Level.WARNING, "source {0}: {1}; reconnecting in {2} ms (attempt {3}{4})",
                                id, f.getMessage(), String.valueOf(backoff / 1_000_000), String.valueOf(failures),
                                reconnect.maxRetries() >= 0 ? " of " + reconnect.maxRetries() : "");
                        emit(SourceEvent.Type.SOURCE_RETRY, failures, "reconnecting in " + backoff / 1_000_000 + " ms: " + f.getMessage());
                        rebase = true;
                        waitToRetry(backoff);
                    }
                }
                closePipeline();
                if (!stopped && skipped > 0 && skipped == segments.size())
                    throw new SourceException(id, "none of the " + skipped + " file" + (skipped == 1 ? "" : "s") + " could be decoded (last: " + lastSkip + ")");
                if (!stopped) {
                    synchronized (lock) {
                        if (latest != null) { latest.close(); latest = null; stats.onDropped(); }
                    }
                    sink.complete();
                }
            } catch (Throwable t) {
                closePipeline();
                closeLatest();
                if (!stopped) {
                    SourceException e = t instanceof SourceException se ? se : new SourceException(id, Sources.describe(t), t);
                    emit(SourceEvent.Type.SOURCE_FAILED, 0, e.getMessage());
                    sink.error(e);
                }
            } finally {
                closePipeline();
                closeLatest();
                finished.countDown();
            }
        }

        private void open(Segment seg) throws StreamFailure {
            current = seg;
            try {
                pipeline = GstNative.parseLaunch(seg.line());
            } catch (IllegalStateException e) {
                String m = e.getMessage();
                if (m.contains("could not link")) m = "caps cannot be negotiated: " + m;
                throw new SourceException(id, m + " (launch line: " + seg.line() + ")");
            }
            appsink = GstNative.binGetByName(pipeline, "sink");
            if (isNull(appsink))
                throw new SourceException(id, "the pipeline has no appsink named 'sink' (launch line: " + seg.line() + ")");
            bus = GstNative.getBus(pipeline);
            // PAUSED first: a live pipeline answers NO_PREROLL there, which is how AUTO mode tells live from not.
            int r = GstNative.setState(pipeline, GstNative.STATE_PAUSED);
            if (r != GstNative.CHANGE_FAILURE) {
                int p = GstNative.setState(pipeline, GstNative.STATE_PLAYING);
                if (p == GstNative.CHANGE_FAILURE) r = p;
            }
            segmentStarted = false;
            segmentDuration = -1;
            if (r == GstNative.CHANGE_FAILURE) {
                GstNative.BusMessage cause = firstError();
                throw new StreamFailure(cause != null ? cause.describe() : "the pipeline failed to start", cause != null && cause.isPermanent());
            }
            if (mode == Mode.AUTO) {
                live = r == GstNative.CHANGE_NO_PREROLL;
                detectedLive = live;
                GstNative.setProperty(appsink, "drop", live ? "true" : "false");
            }
        }

        private GstNative.BusMessage firstError() {
            GstNative.BusMessage m;
            GstNative.BusMessage warning = null;
            while ((m = GstNative.popMessage(bus, GstNative.MSG_ERROR | GstNative.MSG_WARNING)) != null) {
                if (m.type() == GstNative.MSG_ERROR) return m;
                if (warning == null) warning = m;
            }
            return warning;
        }

        /**
         * At the end of a file: a stream that stopped well before the duration its container announces was cut short
         * (a truncated or damaged file); warn, count and report it. The frames that decoded were delivered.
         */
        private void checkEnd(Segment seg) {
            if (!seg.checkDuration() || segmentDuration <= 0) return;
            long step = capsInfo != null ? frameStep(capsInfo) : 0;
            long reached = lastRawPts < 0 || !segmentStarted ? 0 : lastRawPts + step;
            long missing = segmentDuration - reached;
            if (missing > Math.max(2 * step, TimeUnit.MILLISECONDS.toNanos(500))) {
                String m = String.format(java.util.Locale.ROOT, "%s ended at %.2f s of its %.2f s: the file is truncated or damaged%s",
                        seg.label(), reached / 1e9, segmentDuration / 1e9, lastWarning == null ? "" : " (GStreamer: " + lastWarning + ")");
                warn(m);
            }
        }

        private void warn(String message) {
            stats.onWarning();
            LOG.log(System.Logger.Level.WARNING, "source {0}: {1}", id, message);
            emit(SourceEvent.Type.SOURCE_WARNING, 0, message);
        }

        private End pump() throws StreamFailure {
            long waited = 0;
            long stallNanos = reconnect != null && reconnect.stall() != null ? reconnect.stall().toNanos() : Long.MAX_VALUE;
            while (!stopped) {
                checkBus();
                if (!live && sink.requestedFromDownstream() <= 0) {
                    if (GstNative.appsinkIsEos(appsink)) return End.EOS;
                    LockSupport.parkNanos(this, POLL_NANOS);
                    continue;
                }
                MemorySegment sample = GstNative.tryPullSample(appsink, POLL_NANOS);
                if (isNull(sample)) {
                    if (GstNative.appsinkIsEos(appsink)) {
                        // A live network stream that ends has lost its server: reopen it (bounded by the retries).
                        if (live && reconnect != null) throw new StreamFailure("the stream ended (end of stream from the server)");
                        return End.EOS;
                    }
                    waited += POLL_NANOS;
                    if (waited > stallNanos)
                        throw new StreamFailure("no frame for " + Duration.ofNanos(waited).toMillis() + " ms");
                    continue;
                }
                waited = 0;
                failures = 0;
                if (!segmentStarted) {
                    segmentStarted = true;
                    if (!live) segmentDuration = GstNative.queryDuration(appsink);
                }
                if (down) {
                    down = false;
                    long ms = (System.nanoTime() - downSince) / 1_000_000;
                    LOG.log(System.Logger.Level.INFO, "source {0}: stream is back after {1} ms", id, String.valueOf(ms));
                    emit(SourceEvent.Type.SOURCE_UP, 0, "stream is back after " + ms + " ms");
                }
                Frame f = toFrame(sample);
                stats.onProduced();
                if (live) {
                    synchronized (lock) {
                        if (latest != null) { latest.close(); stats.onDropped(); }
                        latest = f;
                        drainLocked();
                    }
                } else {
                    sink.next(f);
                    stats.onEmitted();
                }
            }
            return End.STOPPED;
        }

        private void checkBus() throws StreamFailure {
            GstNative.BusMessage m;
            while ((m = GstNative.popMessage(bus, GstNative.MSG_ERROR | GstNative.MSG_WARNING)) != null) {
                if (m.type() == GstNative.MSG_ERROR) throw new StreamFailure(m.describe(), m.isPermanent());
                lastWarning = m.describe();
                warn("GStreamer warning: " + m.describe());
            }
        }

        private void drainLocked() {
            Frame f = latest;
            if (f != null && !stopped && sink.requestedFromDownstream() > 0) {
                latest = null;
                sink.next(f);
                stats.onEmitted();
            }
        }

        /** Maps the sample's buffer into a frame (zero copy) or, when too many are mapped already, copies it once. */
        private Frame toFrame(MemorySegment sample) {
            MemorySegment mapInfo = null;
            MemorySegment buffer = null;
            boolean mappedOk = false;
            try {
                MemorySegment caps = GstNative.sampleCaps(sample);
                if (isNull(caps)) throw new SourceException(id, "sample without caps");
                if (cachedCaps == null || caps.address() != cachedCaps.address()) {
                    GstNative.CapsInfo info = GstNative.capsInfo(caps);
                    if (info.format() == null)
                        throw new SourceException(id, "unsupported pixel format '" + info.formatName() + "' (negotiated caps " + info.caps() + "; supported: RGB, BGR, RGBA, BGRA, GRAY8, NV12, I420)");
                    if (cachedCaps != null) GstNative.unrefMini(cachedCaps);
                    cachedCaps = GstNative.refMini(caps);
                    capsInfo = info;
                }
                GstNative.CapsInfo info = capsInfo;
                buffer = GstNative.sampleBuffer(sample);
                long pts = continuousPts(GstNative.bufferPts(buffer), info);
                long[] offsets = info.offsets();
                int[] strides = info.strides();
                long[][] meta = GstNative.videoMeta(buffer);
                if (meta != null && meta[0].length == offsets.length) {
                    offsets = meta[0];
                    strides = new int[meta[1].length];
                    for (int i = 0; i < strides.length; i++) strides[i] = (int) meta[1][i];
                }
                mapInfo = GstNative.malloc0(GstNative.MAP_INFO_SIZE);
                MemorySegment data = GstNative.mapRead(buffer, mapInfo);
                if (data == null) throw new SourceException(id, "cannot map a " + info.caps() + " buffer for reading");
                mappedOk = true;
                Runnable releaser;
                MemorySegment pixels;
                if (mapped.get() >= maxMapped) {
                    MemorySegment copy = pool.acquire(data.byteSize());
                    MemorySegment.copy(data, 0, copy, 0, data.byteSize());
                    GstNative.unmap(buffer, mapInfo);
                    GstNative.free(mapInfo);
                    GstNative.unrefMini(sample);
                    mappedOk = false;
                    mapInfo = null;
                    sample = null;
                    pixels = copy;
                    FramePool p = pool;
                    releaser = () -> p.release(copy);
                } else {
                    mapped.incrementAndGet();
                    MemorySegment b = buffer, mi = mapInfo, sa = sample;
                    AtomicInteger counter = mapped;
                    releaser = () -> {
                        GstNative.unmap(b, mi);
                        GstNative.free(mi);
                        GstNative.unrefMini(sa);
                        counter.decrementAndGet();
                    };
                    pixels = data;
                }
                Frame.Builder fb = Frame.builder().format(info.format()).size(info.width(), info.height())
                        .strides(strides).planeOffsets(offsets).data(pixels)
                        .pts(pts).sequence(sequence++).sourceId(id).colorimetry(info.colorimetry()).releaser(releaser);
                Segment seg = current;
                if (seg != null && seg.frameLabel() != null) fb.label(seg.frameLabel());
                mapInfo = null;
                sample = null;
                try {
                    return fb.build();
                } catch (RuntimeException e) {
                    releaser.run();
                    throw new SourceException(id, "frame layout does not fit the buffer: " + e.getMessage(), e);
                }
            } finally {
                if (mapInfo != null) {
                    if (mappedOk) GstNative.unmap(buffer, mapInfo);
                    GstNative.free(mapInfo);
                }
                if (sample != null) GstNative.unrefMini(sample);
            }
        }

        /**
         * Timestamps that never go back: a new segment (the next image) or a new connection continues from the last
         * pts plus one frame (the caps' frame duration, 1 s for stills). A segment without timestamps counts from 0.
         */
        private long continuousPts(long raw, GstNative.CapsInfo info) {
            if (raw < 0) {
                if (segments.size() == 1 && reconnect == null) return raw;
                raw = 0;
            }
            if (rebase) {
                rebase = false;
                ptsBase = lastPts < 0 ? 0 : lastPts + frameStep(info) - raw;
            }
            lastRawPts = raw;
            long pts = raw + ptsBase;
            lastPts = Math.max(lastPts, pts);
            return pts;
        }

        private static long frameStep(GstNative.CapsInfo info) {
            return info.fpsN() > 0 && info.fpsD() > 0 ? 1_000_000_000L * info.fpsD() / info.fpsN() : 1_000_000_000L;
        }

        private void closePipeline() {
            if (pipeline == null) return;
            MemorySegment p = pipeline;
            pipeline = null;
            GstNative.unrefObject(appsink);
            GstNative.unrefObject(bus);
            appsink = null;
            bus = null;
            GstNative.destroyPipeline(p);
            if (cachedCaps != null) { GstNative.unrefMini(cachedCaps); cachedCaps = null; }
        }

        private void closeLatest() {
            synchronized (lock) {
                if (latest != null) { latest.close(); latest = null; }
            }
        }

        /**
         * Waits {@code nanos} before the next attempt; with a probe endpoint, checks every 250 ms whether the server's
         * port accepts connections and returns early once it opens after having been seen closed (the server is back).
         */
        private void waitToRetry(long nanos) {
            long end = System.nanoTime() + nanos;
            long left;
            boolean probe = reconnect.probeHost() != null && reconnect.probePort() > 0;
            while (!stopped && (left = end - System.nanoTime()) > 0) {
                if (probe) {
                    if (!reachable()) portWasClosed = true;
                    else if (portWasClosed) {
                        portWasClosed = false;
                        LOG.log(System.Logger.Level.INFO, "source {0}: {1}:{2} accepts connections again; retrying now",
                                id, reconnect.probeHost(), String.valueOf(reconnect.probePort()));
                        return;
                    }
                    left = end - System.nanoTime();
                    if (left > 0) LockSupport.parkNanos(this, Math.min(left, PROBE_EVERY_NANOS));
                } else {
                    LockSupport.parkNanos(this, left);
                }
            }
        }

        private boolean reachable() {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(reconnect.probeHost(), reconnect.probePort()), PROBE_TIMEOUT_MS);
                return true;
            } catch (IOException | IllegalArgumentException | SecurityException e) {
                return false;
            }
        }
    }
}
