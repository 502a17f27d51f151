package io.vlmflux.demos.examples;

import io.vlmflux.llm.chat.ChatMessage;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.VlmRuntime;

import java.nio.file.Path;
import java.util.List;

/**
 * Text generation as a token stream, the README's library example.
 * Run: {@code java -cp "demos/target/vlmflux-demos-*.jar:demos/target/lib/*" io.vlmflux.demos.examples.TextGeneration MODEL_DIR [QUESTION]}
 */
public final class TextGeneration {
    private TextGeneration() {}

    public static void main(String[] args) {
        Path dir = Path.of(args.length > 0 ? args[0] : "demos/models/shapes-vl");
        String question = args.length > 1 ? args[1] : "Why is the sky blue?";
        try (VlmRuntime rt = VlmRuntime.load(dir)) {                           // cuda when a GPU is usable, else cpu
            PromptTemplate t = rt.promptTemplate(List.of(ChatMessage.user(question)));
            rt.generate(rt.prepareBlocking(t, List.of()), rt.generateOptions(null, 128, List.of(), 0))
              .doOnNext(ev -> System.out.print(ev.textDelta()))               // one TokenEvent per token, demand-driven
              .blockLast();
            System.out.println();
        }
    }
}
