package io.vlmflux.pipeline.watch;

import io.vlmflux.sources.FrameInfo;
import reactor.core.publisher.Mono;

import java.util.List;

/**
 * Answers every watched question about one input (a frame, or a window of frames) at once, so the questions can
 * share the input's vision encoding. The watch operator knows nothing of models: a runtime-backed answerer lives
 * with the caption stage ({@code io.vlmflux.pipeline.caption.RuntimeAnswerer}); tests script one.
 *
 * @param <T> the input (owned by the answerer from {@link #answer}: it releases it)
 */
public interface Answerer<T> {
    /** The frames {@code input} shows, oldest first: the evidence of events; the first one's source keys the state. */
    List<FrameInfo> frames(T input);

    /**
     * One observation per watch, in the order of the watches. A failure of one question is a failed
     * {@link Observation}; an error of the Mono fails every question of this input (the watch goes on).
     */
    Mono<List<Observation>> answer(T input);
}
