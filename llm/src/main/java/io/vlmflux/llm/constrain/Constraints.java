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
        Constraint c = v.cached(key);
        if (c == null) {
            long t0 = System.nanoTime();
            Language lang = language(spec);
            c = lang instanceof ByteDfa d ? new TokenConstraint(d, v, ends) : new GrammarConstraint((Pushdown) lang, v, ends);
            v.cache(key, c);
            if (LOG.isLoggable(System.Logger.Level.DEBUG)) {
                String what = spec.toString();
                LOG.log(System.Logger.Level.DEBUG, String.format("compiled %s: %d automaton states in %.1f ms",
                        what.length() > 120 ? what.substring(0, 120) + "..." : what, c instanceof TokenConstraint tc ? tc.automatonStates() : -1, (System.nanoTime() - t0) / 1e6));
            }
        }
        return c;
    }

    /** The byte automaton of a regular spec (tests); a recursive grammar or schema is refused. */
    static ByteDfa automaton(ConstraintSpec spec) {
        if (language(spec) instanceof ByteDfa d) return d;
        throw new ConstraintException("the constraint is recursive (context-free), not a regular language");
    }

    /**
     * The tokenizer-independent language: a {@link ByteDfa} for regular specs (choices, regexes, schemas without
     * recursive references, grammars without recursion), a {@link Pushdown} otherwise.
     */
    static Language language(ConstraintSpec spec) {
        Language lang = switch (spec) {
            case ConstraintSpec.Choice c -> ByteDfa.compile(Rx.alt(c.options().stream().map(Rx::text).toList()));
            case ConstraintSpec.Regex r -> ByteDfa.compile(RegexParser.parse(r.pattern()));
            case ConstraintSpec.JsonSchema j -> JsonSchemaCompiler.compile(j.schema()).compile();
            case ConstraintSpec.Grammar g -> GrammarParser.parse(g.text(), g.syntax()).compile();
        };
        if (lang instanceof ByteDfa d && !d.accepts(0) && IntStream.range(0, 256).allMatch(b -> d.next(0, b) == ByteDfa.DEAD))
            throw new ConstraintException("the constraint " + spec + " matches no output at all");
        return lang;
    }
}
