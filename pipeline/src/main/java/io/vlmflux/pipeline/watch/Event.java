package io.vlmflux.pipeline.watch;

import com.fasterxml.jackson.annotation.JsonValue;

import java.util.List;
import java.util.Locale;

/**
 * What a watch reports (a plain record: serialises with Jackson as it is, e.g. for server-sent events).
 *
 * @param watch      the watch's name
 * @param source     the source the answers are about
 * @param kind       see {@link Kind}
 * @param answer     the confirmed answer ({@code changed}, {@code repeated}), the last one emitted ({@code stalled}), or
 *                   null ({@code error}, or nothing confirmed yet)
 * @param previous   the answer emitted before ({@code changed}; null for the first)
 * @param logprob    mean log-probability of the answers in {@code evidence} (null when there are none)
 * @param confidence {@code exp(logprob)}: the geometric mean probability of those answers (null with logprob)
 * @param evidence   the inputs the decision rests on, oldest first ({@code changed}: the agreeing answers that confirmed
 *                   it; {@code repeated}: the latest answer; {@code error}: the failed input; {@code stalled}: none)
 * @param atMillis   when the event was decided, on the operator's scheduler clock (epoch ms; virtual time in tests)
 * @param error      why answering failed ({@code error} only)
 */
public record Event(String watch, String source, Kind kind, String answer, String previous, Double logprob, Double confidence,
                    List<Evidence> evidence, long atMillis, String error) {
    public Event {
        if (watch == null || source == null || kind == null) throw new IllegalArgumentException("event watch, source and kind must not be null");
        evidence = evidence == null ? List.of() : List.copyOf(evidence);
    }

    /** Kinds of events; written in lower case. */
    public enum Kind {
        /** The confirmed answer changed (the first confirmed answer too: previous is null). */
        CHANGED,
        /** maxInterval passed without an event; answers kept coming: the current answer still stands. */
        REPEATED,
        /** maxInterval passed without an event and without any answer: the model or source is stuck. */
        STALLED,
        /** Answering one input failed; the watch goes on (the failure neither confirms nor breaks a streak). */
        ERROR;

        @JsonValue public String wire() { return name().toLowerCase(Locale.ROOT); }
    }

    /** One input an event rests on: its frame and the answer given for it. */
    public record Evidence(long sequence, long ptsMillis, String answer, Double logprob) {}

    @Override public String toString() {
        return "Event[" + watch + "@" + source + " " + kind.wire() + (answer != null ? " '" + answer + "'" : "")
                + (previous != null ? " (was '" + previous + "')" : "") + (error != null ? " " + error : "") + " at " + atMillis + "]";
    }
}
