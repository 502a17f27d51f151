package io.vlmflux.llm;

import java.util.List;

/**
 * One chunk of positions for {@link Decoder#forward}: token ids, optional embedding spans (positions relative to the
 * chunk start) and optional explicit rotary positions {@code [3][n]} (M-RoPE t/h/w) or {@code [1][n]}. Without
 * positions the decoder uses {@code cache.length() + i + cache.positionDelta()} on every axis.
 */
public record ForwardInput(int[] tokens, List<EmbeddingSpan> spans, int[][] positions) {
    public ForwardInput {
        if (tokens == null || tokens.length == 0) throw new IllegalArgumentException("forward needs at least one token");
        spans = spans == null ? List.of() : List.copyOf(spans);
        for (EmbeddingSpan s : spans)
            if (s.end() > tokens.length) throw new IllegalArgumentException("span [" + s.start() + ", " + s.end() + ") exceeds the chunk of " + tokens.length);
        if (positions != null)
            for (int[] p : positions)
                if (p.length != tokens.length) throw new IllegalArgumentException("positions row has " + p.length + " entries for " + tokens.length + " tokens");
    }

    public static ForwardInput tokens(int... tokens) { return new ForwardInput(tokens, List.of(), null); }

    public int length() { return tokens.length; }
}
