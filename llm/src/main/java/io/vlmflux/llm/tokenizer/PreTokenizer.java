package io.vlmflux.llm.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The pre-tokenizer chain of {@code tokenizer.json}: {@code Split} (regex or literal, any behaviour), {@code ByteLevel}
 * (its GPT-2 regex when {@code use_regex}, the prefix space), {@code Digits}, nested in {@code Sequence}s. Regexes are
 * the published Oniguruma patterns compiled by java.util.regex with {@link Pattern#UNICODE_CHARACTER_CLASS}, which
 * gives {@code \s} the Unicode White_Space meaning Oniguruma uses; {@code \p{L}}, {@code \p{N}}, {@code (?i:...)},
 * lookahead and possessive quantifiers mean the same in both. Immutable.
 */
final class PreTokenizer {
    /** GPT-2's pattern, used by a ByteLevel pre-tokenizer with {@code use_regex: true}. */
    static final String GPT2_PATTERN =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    enum Behavior { ISOLATED, REMOVED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS }

    sealed interface Step permits SplitStep, PrefixSpaceStep {}

    /** Splits on a pattern. */
    record SplitStep(Pattern pattern, Behavior behavior, boolean invert, FastSplit fast) implements Step {
        SplitStep(Pattern pattern, Behavior behavior, boolean invert) {
            this(pattern, behavior, invert, FastSplit.forPattern(pattern.pattern()));
        }
    }

    /** ByteLevel's {@code add_prefix_space}: a space before each piece that does not start with one. */
    record PrefixSpaceStep() implements Step {}

    private final List<Step> steps;

    PreTokenizer(List<Step> steps) { this.steps = List.copyOf(steps); }

    static Pattern compile(String regex) { return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS); }

    /** Calls {@code sink} with every pre-token of {@code text}, in order; empty pieces are dropped. */
    void split(String text, Consumer<String> sink) { apply(text, 0, sink); }

    private void apply(String s, int k, Consumer<String> sink) {
        if (s.isEmpty()) return;
        if (k == steps.size()) { sink.accept(s); return; }
        Step step = steps.get(k);
        if (step instanceof PrefixSpaceStep) {
            apply(s.charAt(0) == ' ' ? s : " " + s, k + 1, sink);
            return;
        }
        SplitStep sp = (SplitStep) step;
        if (sp.fast() != null && sp.behavior() == Behavior.ISOLATED && !sp.invert()) {
            for (int i = 0, n = s.length(); i < n; ) {
                int e = sp.fast().matchEnd(s, i);
                apply(s.substring(i, e), k + 1, sink);
                i = e;
            }
            return;
        }
        Matcher m = sp.pattern().matcher(s);
        if (sp.behavior() == Behavior.ISOLATED && !sp.invert()) { // the hot path: every match and gap is a piece
            int last = 0;
            while (m.find()) {
                if (m.start() == m.end()) continue;
                if (m.start() > last) apply(s.substring(last, m.start()), k + 1, sink);
                apply(s.substring(m.start(), m.end()), k + 1, sink);
                last = m.end();
            }
            if (last < s.length()) apply(s.substring(last), k + 1, sink);
            return;
        }
        // General case: segments covering s, each flagged as delimiter (match, or non-match when inverted).
        List<int[]> segs = new ArrayList<>(); // {start, end, isDelimiter}
        int last = 0;
        while (m.find()) {
            if (m.start() == m.end()) continue;
            if (m.start() > last) segs.add(new int[] {last, m.start(), sp.invert() ? 1 : 0});
            segs.add(new int[] {m.start(), m.end(), sp.invert() ? 0 : 1});
            last = m.end();
        }
        if (last < s.length()) segs.add(new int[] {last, s.length(), sp.invert() ? 1 : 0});
        List<int[]> pieces = new ArrayList<>();
        switch (sp.behavior()) {
            case ISOLATED -> pieces.addAll(segs);
            case REMOVED -> { for (int[] g : segs) if (g[2] == 0) pieces.add(g); }
            case MERGED_WITH_PREVIOUS -> {
                for (int[] g : segs) {
                    if (g[2] == 1 && !pieces.isEmpty()) pieces.getLast()[1] = g[1];
                    else pieces.add(g.clone());
                }
            }
            case MERGED_WITH_NEXT -> {
                boolean pending = false;
                for (int[] g : segs) {
                    if (pending) { pieces.getLast()[1] = g[1]; pending = g[2] == 1; continue; }
                    pieces.add(g.clone());
                    pending = g[2] == 1;
                }
            }
            case CONTIGUOUS -> {
                for (int[] g : segs) {
                    if (g[2] == 1 && !pieces.isEmpty() && pieces.getLast()[2] == 1) pieces.getLast()[1] = g[1];
                    else pieces.add(g.clone());
                }
            }
        }
        for (int[] p : pieces) apply(s.substring(p[0], p[1]), k + 1, sink);
    }
}
