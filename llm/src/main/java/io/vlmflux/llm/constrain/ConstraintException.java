package io.vlmflux.llm.constrain;

/**
 * A constraint that cannot be compiled: a regular expression with a syntax error or an unsupported feature (the message
 * names the character position), a JSON Schema that is malformed or uses an unsupported keyword (the message names the
 * keyword and its JSON pointer), a grammar with a syntax error (line and column) or a bad rule (left recursion, a rule
 * that can never finish, an undefined rule), or an automaton beyond the size limit.
 */
public final class ConstraintException extends IllegalArgumentException {
    public ConstraintException(String message) { super(message); }
}
