package io.vlmflux.llm.tokenizer;

/** A tokenizer or chat-template file that is missing, malformed or of an unsupported kind; the message names the file. */
public final class TokenizerException extends IllegalArgumentException {
    public TokenizerException(String message) { super(message); }
    public TokenizerException(String message, Throwable cause) { super(message, cause); }
}
