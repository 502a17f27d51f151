package io.vlmflux.pipeline;

import io.vlmflux.sources.Durations;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * Which frames of a source go on to the model. A policy is a value; the state (last kept frame, thumbnails) lives in
 * the stage built from it by {@link Stages#sample}, one state per subscription and per {@code Frame.sourceId()}.
 *
 * <p>Spec strings ({@link #parse}), as taken by {@code --every} and the {@code sampling.every} config field:
 * <ul>
 *   <li>{@code all} — every frame;</li>
 *   <li>{@code 30f} — one frame in 30 (the first, then every 30th after the last kept one);</li>
 *   <li>{@code 1s}, {@code 500ms}, {@code 2m}, {@code 5fps} — at most one frame per interval, measured on the
 *       presentation timestamps, or on arrival time for frames without one;</li>
 *   <li>{@code scene:0.1} — when the mean absolute luma difference of a 32x32 thumbnail against the last kept frame
 *       is at least 0.1 (0..1 of full scale); {@code scene} alone means {@code scene:0.1};</li>
 *   <li>{@code a+b} — a frame is kept only when every part keeps it, e.g. {@code scene:0.05+1s}.</li>
 * </ul>
 */
public sealed interface SamplingPolicy {

    /** The spec string that {@link #parse} turns back into this policy. */
    String spec();

    /** Keeps every frame. */
    record All() implements SamplingPolicy {
        public String spec() { return "all"; }
    }

    /** Keeps the first frame and then one every {@code n} frames. */
    record EveryNFrames(int n) implements SamplingPolicy {
        public EveryNFrames {
            if (n < 1) throw new IllegalArgumentException("frame count must be at least 1, got " + n);
        }
        public String spec() { return n + "f"; }
    }

    /** Keeps a frame when at least {@code interval} passed since the last kept one (pts, else arrival time). */
    record MinInterval(Duration interval) implements SamplingPolicy {
        public MinInterval {
            if (interval == null || interval.isNegative() || interval.isZero())
                throw new IllegalArgumentException("sampling interval must be positive, got " + interval);
        }
        public String spec() {
            long ms = interval.toMillis();
            return interval.equals(Duration.ofMillis(ms)) ? ms + "ms" : interval.toNanos() + "ns";
        }
    }

    /** Keeps a frame whose thumbnail differs from the last kept one by at least {@code threshold} (0..1). */
    record SceneChange(double threshold) implements SamplingPolicy {
        public SceneChange {
            if (!(threshold >= 0 && threshold <= 1))
                throw new IllegalArgumentException("scene-change threshold must be in [0, 1], got " + threshold);
        }
        public String spec() { return "scene:" + threshold; }
    }

    /** Keeps a frame only when every part keeps it. */
    record AllOf(List<SamplingPolicy> parts) implements SamplingPolicy {
        public AllOf {
            parts = List.copyOf(parts);
            if (parts.isEmpty()) throw new IllegalArgumentException("AllOf needs at least one policy");
        }
        public String spec() { return parts.stream().map(SamplingPolicy::spec).collect(Collectors.joining("+")); }
    }

    static SamplingPolicy all() { return new All(); }
    static SamplingPolicy everyFrames(int n) { return new EveryNFrames(n); }
    static SamplingPolicy every(Duration interval) { return new MinInterval(interval); }
    static SamplingPolicy maxFps(double fps) {
        if (!(fps > 0) || Double.isInfinite(fps)) throw new IllegalArgumentException("fps must be positive, got " + fps);
        return new MinInterval(Duration.ofNanos(Math.round(1e9 / fps)));
    }
    static SamplingPolicy sceneChange(double threshold) { return new SceneChange(threshold); }

    /** Parses a spec string (see the class comment); throws naming the spec and the part that is wrong. */
    static SamplingPolicy parse(String spec) {
        if (spec == null || spec.isBlank()) throw new IllegalArgumentException("empty sampling spec (expected e.g. 1s, 500ms, 30f, 5fps, scene:0.1, all)");
        List<SamplingPolicy> parts = new ArrayList<>();
        for (String raw : spec.split("\\+", -1)) {
            String p = raw.strip().toLowerCase(Locale.ROOT);
            try {
                parts.add(parsePart(p));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("bad sampling spec '" + spec + "': part '" + raw.strip() + "': " + e.getMessage()
                        + " (expected e.g. 1s, 500ms, 30f, 5fps, scene:0.1, all, or parts joined by '+')", e);
            }
        }
        return parts.size() == 1 ? parts.getFirst() : new AllOf(parts);
    }

    private static SamplingPolicy parsePart(String p) {
        if (p.isEmpty()) throw new IllegalArgumentException("empty");
        if (p.equals("all")) return new All();
        if (p.equals("scene")) return new SceneChange(0.1);
        if (p.startsWith("scene:")) return new SceneChange(number(p.substring(6), "threshold"));
        if (p.endsWith("fps")) return maxFps(number(p.substring(0, p.length() - 3), "fps"));
        if (Durations.hasUnit(p)) return new MinInterval(Durations.parse(p));
        if (p.endsWith("f")) {
            String n = p.substring(0, p.length() - 1);
            try {
                return new EveryNFrames(Integer.parseInt(n));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("'" + n + "' is not a whole frame count");
            }
        }
        throw new IllegalArgumentException("unknown unit");
    }

    private static double number(String s, String what) {
        try {
            double d = Double.parseDouble(s);
            if (!Double.isFinite(d)) throw new NumberFormatException();
            return d;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + s + "' is not a number of " + what);
        }
    }
}
