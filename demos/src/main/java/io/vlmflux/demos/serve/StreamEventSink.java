package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Where a live stream's pipelines publish their events (see {@link EventHub} for the envelope). Types in use:
 * {@code caption}, {@code token} (a caption's live tokens), {@code answer} (a question's tokens and result),
 * {@code alert}, {@code dropped} (sent by the hub itself), {@code source_*} (the source's state: {@code source_down},
 * {@code source_up}, {@code source_retry}, {@code source_failed}, {@code source_ended}, ...). A live-video or alert
 * pipeline gets the sink of its stream and publishes its own types the same way.
 */
@FunctionalInterface
public interface StreamEventSink {
    /** Publishes {@code type} with {@code fields}; never blocks on subscribers. Returns the event, or null when closed. */
    EventHub.Event publish(String type, ObjectNode fields);
}
