package io.vlmflux.llm.constrain;

import io.vlmflux.llm.tokenizer.Tokenizer;

import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Entry point: compiles a {@link ConstraintSpec} for a {@link Tokenizer} into a token-level {@link Constraint}.
 * Compilation (regex/schema → byte automaton) happens once per (tokenizer, spec, end tokens) and is kept in a small
 * per-tokenizer LRU cache; the per-state token rows are then filled lazily as decoding visits states.
 */
public final class Constraints {
    private static final System.Logger LOG = System.getLogger("vlmflux.llm");
    private Constraints() {}

    /** With the tokenizer's EOS as the only end token. */
    public static Constraint compile(ConstraintSpec spec, Tokenizer tokenizer) { return compile(spec, tokenizer, new int[0]); }

    /**
     * @param extraEndTokens ids besides the tokenizer's EOS that end the output (e.g. a chat template's end-of-turn);
     *                       at least one end token must exist
     * @throws ConstraintException when the spec does not compile or no end token is known
     */
    public static Constraint compile(ConstraintSpec spec, Tokenizer tokenizer, int... extraEndTokens) {
        TokenVocabulary v = TokenVocabulary.of(tokenizer);
        int[] ends = IntStream.concat(IntStream.of(extraEndTokens), v.eos >= 0 ? IntStream.of(v.eos) : IntStream.empty()).distinct().sorted().toArray();
        if (ends.length == 0)
            throw new ConstraintException("no end token: " + tokenizer.source() + " has no eos_token, pass the ids that end the output");
        for (int e : ends) if (e < 0 || e >= v.size) throw new ConstraintException("end token " + e + " is outside the vocabulary of " + v.size);
        List<Object> key = List.of(spec, Arrays.toString(ends));
        TokenConstraint c = v.cached(key);
        if (c == null) {
            long t0 = System.nanoTime();
            c = new TokenConstraint(automaton(spec), v, ends);
            v.cache(key, c);
            if (LOG.isLoggable(System.Logger.Level.DEBUG)) {
                String what = spec.toString();
                LOG.log(System.Logger.Level.DEBUG, String.format("compiled %s: %d automaton states in %.1f ms",
                        what.length() > 120 ? what.substring(0, 120) + "..." : what, c.automatonStates(), (System.nanoTime() - t0) / 1e6));
            }
        }
        return c;
    }

    static ByteDfa automaton(ConstraintSpec spec) {
        Rx rx = switch (spec) {
            case ConstraintSpec.Choice c -> Rx.alt(c.options().stream().map(Rx::text).toList());
            case ConstraintSpec.Regex r -> RegexParser.parse(r.pattern());
            case ConstraintSpec.JsonSchema j -> JsonSchemaCompiler.compile(j.schema());
        };
        ByteDfa d = ByteDfa.compile(rx);
        if (!d.accepts(0) && IntStream.range(0, 256).allMatch(b -> d.next(0, b) == ByteDfa.DEAD))
            throw new ConstraintException("the constraint " + spec + " matches no output at all");
        return d;
    }
}
