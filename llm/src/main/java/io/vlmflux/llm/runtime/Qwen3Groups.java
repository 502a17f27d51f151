package io.vlmflux.llm.runtime;

import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.MropePositions;
import io.vlmflux.llm.SpanRows;

import java.math.BigDecimal;
import java.math.RoundingMode;

/**
 * One Qwen3-VL video temporal group as a live session appends it, in the layout of transformers' {@code Qwen3VLProcessor}
 * (and {@link VlmRuntime#prepareVideo}): {@code <T seconds>} (text), {@code <|vision_start|>}, the group's
 * {@code h/m * w/m} video pads (one embedding span with its DeepStack rows), {@code <|vision_end|>}. Positions as
 * Qwen3-VL's {@code get_rope_index}, which splits a video grid {@code t x h x w} into {@code t} grids of one temporal
 * patch: the text runs on from the next free position on all axes, the pads form a block
 * {@code (b, b + row, b + col)} with {@code b} the position after {@code <|vision_start|>}, and {@code <|vision_end|>}
 * takes {@code b + max(h/m, w/m)}. Groups are independent blocks, so appending them one by one equals a one-shot prompt.
 */
final class Qwen3Groups {
    private final VlmRuntime rt;
    private final int visionStart, visionEnd;

    /** The tokens, positions and span (at its offset in {@code tokens}) of one group; {@code next} the next free position. */
    record Group(int[] tokens, int[][] positions, EmbeddingSpan span, int next) {}

    Qwen3Groups(VlmRuntime rt) {
        this.rt = rt;
        this.visionStart = rt.config().visionStartTokenId();
        this.visionEnd = rt.tokenizer().tokenId("<|vision_end|>").orElse(-1);
        if (visionStart < 0 || visionEnd < 0)
            throw new IllegalArgumentException(rt.dir() + ": no vision_start_token_id in config.json or no <|vision_end|> token in the tokenizer");
        if (rt.config().videoTokenId() < 0) throw new IllegalArgumentException(rt.dir() + ": config.json has no video_token_id");
    }

    /**
     * The timestamp text of a group whose first and last frame (the last repeated when the group is short, as the
     * processor pads) are {@code firstNs} and {@code lastNs} after the session's first frame: their mean in seconds to
     * one decimal, half-even (Python's {@code f"{t:.1f}"} of the same double, as transformers computes
     * {@code (a / fps + b / fps) / 2}).
     */
    static String stamp(long firstNs, long lastNs) {
        double t = (firstNs / 1e9 + lastNs / 1e9) / 2;
        return "<" + new BigDecimal(t).setScale(1, RoundingMode.HALF_EVEN).toPlainString() + " seconds>";
    }

    /** The group for {@code rows} (one temporal patch) starting at position {@code next}. */
    Group group(ImageRows rows, int next, long firstNs, long lastNs, int merge, int videoPad) {
        if (rows.gridT != 1) throw new IllegalStateException("a Qwen3-VL group gave " + rows.gridT + " temporal patches, expected 1");
        int[] stamp = rt.tokenizer().encode(stamp(firstNs, lastNs));
        int n = rows.tokens, at = stamp.length + 1, len = at + n + 1;
        int[] toks = new int[len];
        System.arraycopy(stamp, 0, toks, 0, stamp.length);
        toks[stamp.length] = visionStart;
        java.util.Arrays.fill(toks, at, at + n, videoPad);
        toks[len - 1] = visionEnd;
        int[][] pos = new int[3][len];
        int[][] text = MropePositions.text(next, at);
        int base = next + at;
        int[][] block = MropePositions.videoGroups(base, 0, 1, rows.gridH, rows.gridW, merge, MropePositions.Temporal.UNSCALED);
        if (block[0].length != n) throw new IllegalStateException("group of " + n + " tokens does not match its grid " + rows.gridH + "x" + rows.gridW);
        int after = MropePositions.nextAfter(base, 1, rows.gridH, rows.gridW, merge, MropePositions.Temporal.UNSCALED);
        for (int a = 0; a < 3; a++) {
            System.arraycopy(text[a], 0, pos[a], 0, at);
            System.arraycopy(block[a], 0, pos[a], at, n);
            pos[a][len - 1] = after;
        }
        EmbeddingSpan span = rows.span(at, 0, n, 1, rows.contentHash, 0);
        return new Group(toks, pos, span, after + 1);
    }
}
