package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.Stages;
import io.vlmflux.pipeline.watch.Event;
import io.vlmflux.pipeline.watch.Watches;
import io.vlmflux.sources.Frame;
import reactor.core.publisher.Flux;

import java.util.List;
import java.util.function.Function;

/**
 * Frames → {@link Event}s of alerts answered by a model ({@link RuntimeAnswerer}: one vision encoding per frame for all
 * alerts). Backpressure: {@code LOSSLESS} answers every frame (files; the next frame is requested when the answers to
 * the previous one are in); otherwise the newest frame of each source waits while the model is busy (older ones are
 * closed). Thread: answers on the runtime's compute thread, timers on {@code Schedulers.parallel()}. Discard: every
 * frame is closed exactly once (after preprocessing, when replaced, or on cancel/error).
 */
public final class WatchStage {
    private WatchStage() {}

    public static Function<Flux<Frame>, Flux<Event>> events(VlmRuntime runtime, List<Alert> alerts, CaptionOptions.Backpressure backpressure) {
        RuntimeAnswerer answerer = new RuntimeAnswerer(runtime, alerts);
        var operator = Watches.operator(alerts.stream().map(Alert::watch).toList(), answerer);
        return frames -> {
            Flux<Frame> in = backpressure == CaptionOptions.Backpressure.LOSSLESS ? frames
                    : frames.transform(Stages.newestWinsPerKey(Frame::sourceId, Frame::close));
            return in.transform(operator).doOnDiscard(Frame.class, Frame::close);
        };
    }
}
