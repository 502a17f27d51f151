package io.vlmflux.sources;

import java.time.Instant;
import java.util.Locale;
import java.util.Objects;

/**
 * Something that happened to a source besides its frames: a connection lost or regained, a retry, a file skipped,
 * a damaged stream, a final failure. {@link FrameSource#events()} emits them as they happen; each one maps to a flat
 * JSON object ({@code {"event":"source_down","source":"cam1","time":"...","attempt":0,"message":"..."}}) through
 * {@link Type#wire()} and the record's fields.
 *
 * @param type     what happened
 * @param sourceId the source's id ({@link FrameSource#id()})
 * @param time     when it was noticed
 * @param attempt  the reconnect attempt (1-based) for {@link Type#SOURCE_RETRY}, else 0
 * @param message  the reason (GStreamer's error or warning, the file that was skipped, ...), never null
 */
public record SourceEvent(Type type, String sourceId, Instant time, int attempt, String message) {
    public enum Type {
        /** A live source lost its stream (error, end of stream or stall) and will retry. */
        SOURCE_DOWN,
        /** A reconnect attempt is scheduled; {@code message} says in how long. */
        SOURCE_RETRY,
        /** The first frame after a {@link #SOURCE_DOWN} arrived. */
        SOURCE_UP,
        /** An image (or other segment) could not be decoded and was skipped; the source goes on. */
        SOURCE_SKIPPED,
        /** The stream went on but something is wrong with it (a GStreamer warning, a truncated file). */
        SOURCE_WARNING,
        /** The source ended with an error (its Flux fails with a {@link SourceException}). */
        SOURCE_FAILED;

        /** The name in JSON events: {@code source_down}, {@code source_up}, ... */
        public String wire() { return name().toLowerCase(Locale.ROOT); }
    }

    public SourceEvent {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(sourceId, "sourceId");
        Objects.requireNonNull(time, "time");
        if (attempt < 0) throw new IllegalArgumentException("attempt must not be negative, got " + attempt);
        message = message == null ? "" : message;
    }

    /** This event as reported by a source renamed to {@code id}. */
    public SourceEvent withSourceId(String id) { return new SourceEvent(type, id, time, attempt, message); }

    @Override public String toString() {
        return type.wire() + "[" + sourceId + (attempt > 0 ? " attempt " + attempt : "") + (message.isEmpty() ? "" : ": " + message) + "]";
    }
}
