package io.vlmflux.demos.serve;

import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import reactor.core.publisher.Flux;

import java.util.List;

/**
 * Answers a question about the stream's newest frame copy through the runtime (greedy decoding): it is one more
 * sequence on the runtime's compute thread, so it shares the device with the stream's captions and the chat
 * requests (batched decode steps on cuda).
 */
public final class LatestFrameAnswerer implements QuestionAnswerer {
    private final VlmRuntime runtime;

    public LatestFrameAnswerer(VlmRuntime runtime) { this.runtime = runtime; }

    @Override public Flux<TokenEvent> answer(LiveStream stream, String question, int maxTokens) {
        return Flux.defer(() -> {
            LiveStream.Snapshot s = stream.latest();
            if (s == null) return Flux.error(new IllegalStateException("stream '" + stream.id() + "' has no frame yet; ask again in a moment"));
            PromptTemplate t = runtime.promptTemplate(null, question, 1);
            var go = runtime.generateOptions(SamplingParams.greedyDecoding().withRepetitionPenalty(runtime.generationConfig().repetitionPenalty()),
                    maxTokens, List.of(), t.sharedPrefix());
            Frame f = LiveStream.frameOf(s);   // prepare owns and closes it
            return runtime.prepare(t, List.of(f)).flatMapMany(p -> runtime.generate(p, go));
        });
    }
}
