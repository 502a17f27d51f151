package io.vlmflux.llm.sampling;

import java.util.List;

/**
 * Finds stop strings in streamed text, across token boundaries. {@link #push} returns the text that is safe to emit:
 * a tail that could still become a stop string is held back until the next delta decides it. When a stop string
 * appears, the text before it is emitted and the rest (stop string included) is dropped.
 */
public final class StopMatcher {
    /** What to emit now, and whether a stop string was found. */
    public record Result(String emit, boolean stopped) {}

    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();
    private boolean stopped;

    public StopMatcher(List<String> stops) {
        for (String s : stops) if (s == null || s.isEmpty()) throw new IllegalArgumentException("stop strings must be non-empty");
        this.stops = List.copyOf(stops);
    }

    public Result push(String delta) {
        if (stopped) return new Result("", true);
        pending.append(delta);
        if (stops.isEmpty()) { String e = pending.toString(); pending.setLength(0); return new Result(e, false); }
        int best = -1;
        for (String s : stops) {
            int i = pending.indexOf(s);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        if (best >= 0) {
            stopped = true;
            String e = pending.substring(0, best);
            pending.setLength(0);
            return new Result(e, true);
        }
        int hold = 0;
        for (String s : stops)
            for (int k = Math.min(s.length() - 1, pending.length()); k > hold; k--)
                if (pending.length() >= k && s.startsWith(pending.substring(pending.length() - k))) { hold = k; break; }
        String e = pending.substring(0, pending.length() - hold);
        pending.delete(0, pending.length() - hold);
        return new Result(e, false);
    }

    /** Releases held-back text at the end of generation. */
    public String flush() {
        if (stopped) return "";
        String e = pending.toString();
        pending.setLength(0);
        return e;
    }
}
