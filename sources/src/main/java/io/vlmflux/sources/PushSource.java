package io.vlmflux.sources;

/**
 * A live source fed by the host application (e.g. a robot's camera callback): {@link #push} hands over a frame,
 * {@link #complete} ends the stream. Newest frame wins: while the subscriber has no demand only the last pushed frame
 * is kept, older ones are closed and counted as dropped. One subscriber at a time.
 */
public interface PushSource extends FrameSource {
    /** Takes ownership of {@code frame}; throws {@link IllegalStateException} (closing the frame) after completion. */
    void push(Frame frame);

    /** Ends the stream once the held frame (if any) was delivered. Idempotent. */
    void complete();

    /** Ends the stream with {@code error}; a held frame is released. */
    void error(Throwable error);
}
