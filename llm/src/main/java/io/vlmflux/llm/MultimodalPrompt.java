package io.vlmflux.llm;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * What the language model consumes: token ids (image slots already expanded to one {@code <|image_pad|>} per
 * embedding row) plus {@link EmbeddingSpan}s that overwrite those slots' embeddings. Spans are sorted, within the
 * token range and non-overlapping. Text-only prompts have no spans.
 */
public record MultimodalPrompt(int[] tokens, List<EmbeddingSpan> spans) {
    public MultimodalPrompt {
        tokens = tokens.clone();
        List<EmbeddingSpan> s = new ArrayList<>(spans);
        s.sort(Comparator.comparingInt(EmbeddingSpan::start));
        int prevEnd = 0;
        for (EmbeddingSpan e : s) {
            if (e.start() < prevEnd) throw new IllegalArgumentException("embedding spans overlap at position " + e.start());
            if (e.end() > tokens.length)
                throw new IllegalArgumentException("embedding span [" + e.start() + ", " + e.end() + ") exceeds the prompt's " + tokens.length + " tokens");
            prevEnd = e.end();
        }
        spans = List.copyOf(s);
        if (tokens.length == 0) throw new IllegalArgumentException("prompt has no tokens");
    }

    public static MultimodalPrompt text(int[] tokens) { return new MultimodalPrompt(tokens, List.of()); }

    @Override public int[] tokens() { return tokens.clone(); }

    public int length() { return tokens.length; }

    public int token(int i) { return tokens[i]; }
}
