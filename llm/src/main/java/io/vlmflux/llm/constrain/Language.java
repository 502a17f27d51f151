package io.vlmflux.llm.constrain;

/**
 * A compiled, tokenizer-independent output language: a {@link ByteDfa} (regular) or a {@link Pushdown} automaton
 * (context-free: recursive grammars and schemas).
 */
sealed interface Language permits ByteDfa, Pushdown {
    /** Whether the UTF-8 {@code bytes} are a complete sentence. */
    boolean matches(byte[] bytes);
}
