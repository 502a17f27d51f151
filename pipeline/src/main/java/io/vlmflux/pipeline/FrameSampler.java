package io.vlmflux.pipeline;

import io.vlmflux.pipeline.metrics.StageMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.PixelFormat;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Operators;
import reactor.util.context.Context;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * The sampling stage: passes on the frames its {@link SamplingPolicy} keeps and closes the others.
 *
 * <p>Thread: runs on the thread that delivers each frame (no hop). Prefetch: none; it is a {@code handle}, so a
 * dropped frame is replaced by a request for one more. Backpressure: passes the subscriber's demand upstream.
 * Discard: frames it drops are closed here, counted as {@code dropped}, then handed to the discard hook
 * ({@code doOnDiscard} below it sees them, already closed). State is per subscription and per source id.
 */
final class FrameSampler implements Function<Flux<Frame>, Flux<Frame>> {
    static final int THUMB = 32;

    private final SamplingPolicy policy;
    private final StageMetrics metrics;

    FrameSampler(SamplingPolicy policy, StageMetrics metrics) {
        if (policy == null) throw new IllegalArgumentException("sampling policy must not be null");
        this.policy = policy;
        this.metrics = metrics;
    }

    @Override
    public Flux<Frame> apply(Flux<Frame> frames) {
        if (policy instanceof SamplingPolicy.All && metrics == null) return frames;
        return Flux.defer(() -> {
            // Resolved per subscription so that StepVerifier.withVirtualTime's scheduler is the clock.
            Scheduler clock = Schedulers.parallel();
            Map<String, Gate[]> perSource = new HashMap<>();
            return frames.handle((Frame f, reactor.core.publisher.SynchronousSink<Frame> sink) -> {
                if (metrics != null) metrics.recordIn();
                boolean keep;
                try {
                    keep = decide(perSource.computeIfAbsent(f.sourceId(), k -> gates(policy)), f, clock.now(TimeUnit.NANOSECONDS));
                } catch (RuntimeException e) {
                    f.close();
                    if (metrics != null) { metrics.recordDropped(); metrics.recordError(); }
                    sink.error(new IllegalStateException("sampling " + f + " failed: " + e.getMessage(), e));
                    return;
                }
                if (keep) {
                    if (metrics != null) metrics.recordOut();
                    sink.next(f);
                } else {
                    f.close();
                    if (metrics != null) metrics.recordDropped();
                    Operators.onDiscard(f, Context.of(sink.contextView())); // lets metered() and user hooks see it
                }
            });
        });
    }

    static boolean decide(Gate[] gates, Frame f, long nowNanos) {
        boolean keep = true;
        for (Gate g : gates) {
            if (!g.wants(f, nowNanos)) { keep = false; break; }
        }
        for (Gate g : gates) {
            if (keep) g.kept(f, nowNanos); else g.skipped();
        }
        return keep;
    }

    static Gate[] gates(SamplingPolicy p) {
        return switch (p) {
            case SamplingPolicy.All a -> new Gate[0];
            case SamplingPolicy.EveryNFrames e -> new Gate[] {new EveryN(e.n())};
            case SamplingPolicy.MinInterval m -> new Gate[] {new Interval(m.interval().toNanos())};
            case SamplingPolicy.SceneChange s -> new Gate[] {new Scene(s.threshold())};
            case SamplingPolicy.AllOf all -> {
                // Cheap gates first: a scene thumbnail is only computed for frames the others would keep.
                List<SamplingPolicy> parts = all.parts().stream()
                        .sorted((x, y) -> Boolean.compare(x instanceof SamplingPolicy.SceneChange, y instanceof SamplingPolicy.SceneChange)).toList();
                yield parts.stream().flatMap(q -> java.util.Arrays.stream(gates(q))).toArray(Gate[]::new);
            }
        };
    }

    /** One condition; {@link #wants} has no side effect, {@link #kept}/{@link #skipped} advance the state. */
    interface Gate {
        boolean wants(Frame f, long nowNanos);
        void kept(Frame f, long nowNanos);
        default void skipped() {}
    }

    static final class EveryN implements Gate {
        private final int n;
        private long sinceKept = -1; // -1: nothing kept yet

        EveryN(int n) { this.n = n; }
        public boolean wants(Frame f, long now) { return sinceKept < 0 || sinceKept + 1 >= n; }
        public void kept(Frame f, long now) { sinceKept = 0; }
        public void skipped() { if (sinceKept >= 0) sinceKept++; }
    }

    static final class Interval implements Gate {
        private final long interval;
        private final long tolerance; // timestamps of 29.97 fps streams are not exact multiples
        private long last;
        private boolean has, lastWasPts;

        Interval(long intervalNanos) {
            this.interval = intervalNanos;
            this.tolerance = Math.min(1_000_000, intervalNanos / 10);
        }

        public boolean wants(Frame f, long now) {
            boolean pts = f.ptsNanos() >= 0;
            long t = pts ? f.ptsNanos() : now;
            if (!has || pts != lastWasPts || t < last) return true; // first frame, clock change, or a restarted stream
            return t - last >= interval - tolerance;
        }

        public void kept(Frame f, long now) {
            lastWasPts = f.ptsNanos() >= 0;
            last = lastWasPts ? f.ptsNanos() : now;
            has = true;
        }
    }

    static final class Scene implements Gate {
        private final double threshold;
        private Thumbnail last;
        private Thumbnail pending; // of the frame last passed to wants()
        private Frame pendingFor;

        Scene(double threshold) { this.threshold = threshold; }

        public boolean wants(Frame f, long now) {
            pending = Thumbnail.of(f);
            pendingFor = f;
            return last == null || last.difference(pending) >= threshold;
        }

        public void kept(Frame f, long now) {
            last = pendingFor == f ? pending : Thumbnail.of(f);
            pending = null;
            pendingFor = null;
        }

        public void skipped() { pending = null; pendingFor = null; }
    }

    /** A downsampled luma image: each cell averages up to 4x4 sampled pixels of its block. */
    record Thumbnail(int width, int height, byte[] luma) {
        static Thumbnail of(Frame f) {
            int w = f.width(), h = f.height();
            int tw = Math.min(THUMB, w), th = Math.min(THUMB, h);
            byte[] out = new byte[tw * th];
            MemorySegment data = f.data();
            PixelFormat fmt = f.format();
            long base = f.planeOffset(0);
            int stride = f.stride(0);
            for (int ty = 0; ty < th; ty++) {
                int y0 = (int) ((long) ty * h / th), y1 = (int) ((long) (ty + 1) * h / th);
                int ny = Math.min(4, y1 - y0);
                for (int tx = 0; tx < tw; tx++) {
                    int x0 = (int) ((long) tx * w / tw), x1 = (int) ((long) (tx + 1) * w / tw);
                    int nx = Math.min(4, x1 - x0);
                    int sum = 0;
                    for (int ky = 0; ky < ny; ky++) {
                        int y = y0 + (2 * ky + 1) * (y1 - y0) / (2 * ny);
                        long row = base + (long) y * stride;
                        for (int kx = 0; kx < nx; kx++) {
                            int x = x0 + (2 * kx + 1) * (x1 - x0) / (2 * nx);
                            sum += luma(data, fmt, row, x);
                        }
                    }
                    out[ty * tw + tx] = (byte) ((sum + (nx * ny) / 2) / (nx * ny));
                }
            }
            return new Thumbnail(tw, th, out);
        }

        /** BT.601 luma of pixel {@code x} in the row starting at byte {@code row} of plane 0. */
        static int luma(MemorySegment d, PixelFormat fmt, long row, int x) {
            return switch (fmt) {
                case GRAY8, NV12, I420 -> u8(d, row + x);
                case RGB -> y(u8(d, row + 3L * x), u8(d, row + 3L * x + 1), u8(d, row + 3L * x + 2));
                case BGR -> y(u8(d, row + 3L * x + 2), u8(d, row + 3L * x + 1), u8(d, row + 3L * x));
                case RGBA -> y(u8(d, row + 4L * x), u8(d, row + 4L * x + 1), u8(d, row + 4L * x + 2));
                case BGRA -> y(u8(d, row + 4L * x + 2), u8(d, row + 4L * x + 1), u8(d, row + 4L * x));
            };
        }

        private static int u8(MemorySegment d, long off) { return d.get(ValueLayout.JAVA_BYTE, off) & 0xff; }
        private static int y(int r, int g, int b) { return (77 * r + 150 * g + 29 * b + 128) >> 8; }

        /** Mean absolute difference in [0, 1]; 1 when the sizes differ (a new resolution is a new scene). */
        double difference(Thumbnail o) {
            if (o.width != width || o.height != height) return 1.0;
            long sum = 0;
            for (int i = 0; i < luma.length; i++) sum += Math.abs((luma[i] & 0xff) - (o.luma[i] & 0xff));
            return sum / (255.0 * luma.length);
        }
    }
}
