package io.vlmflux.demos.examples;

import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.cache.PrefixCache;
import io.vlmflux.llm.chat.ChatMessage;
import io.vlmflux.llm.chat.ChatTemplate;
import io.vlmflux.llm.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/**
 * Text generation as a token stream, the README's library example.
 * Run: {@code java -cp "demos/target/vlmflux-demos-*.jar:demos/target/lib/*" io.vlmflux.demos.examples.TextGeneration MODEL_DIR [QUESTION]}
 */
public final class TextGeneration {
    private TextGeneration() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "demos/models/shapes-vl");
        String question = args.length > 1 ? args[1] : "Why is the sky blue?";
        try (Decoder decoder = Models.load(dir, "auto");
             Generator gen = new Generator(decoder, new PrefixCache(256L << 20), null)) {
            Tokenizer tok = Tokenizer.load(dir);
            int[] ids = tok.encode(ChatTemplate.load(dir).orElseThrow()
                    .render(List.of(ChatMessage.user(question)), true));
            gen.generate(MultimodalPrompt.text(ids), GenerateOptions.greedy(128, Set.of(tok.eosId().getAsInt())),
                         tok::streamingDecoder)
               .doOnNext(ev -> System.out.print(ev.textDelta()))
               .blockLast();
            System.out.println();
        }
    }
}
