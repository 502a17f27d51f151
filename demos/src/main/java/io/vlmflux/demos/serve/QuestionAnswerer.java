package io.vlmflux.demos.serve;

import io.vlmflux.llm.TokenEvent;
import reactor.core.publisher.Flux;

/**
 * Answers a question asked of a live stream ({@code POST /v1/streams/{id}/questions}). The default,
 * {@link LatestFrameAnswerer}, answers about the stream's newest frame; a live-video session can answer over its
 * rolling window instead by registering its own for the stream ({@link LiveStreams#answerer}).
 */
@FunctionalInterface
public interface QuestionAnswerer {
    /**
     * The answer's tokens (cold, demand-driven; cancelling stops generation). The last event carries the finish
     * reason. Throw (or fail the flux with) an {@link IllegalStateException} when the stream cannot answer now
     * (no frame yet): the client gets a 409 with its message.
     */
    Flux<TokenEvent> answer(LiveStream stream, String question, int maxTokens);
}
