package io.vlmflux.llm;

import java.util.Locale;

/** Why a generation ended. {@link #wire()} is the lowercase name used in JSON. */
public enum FinishReason {
    /** An end-of-sequence / stop token was generated. */
    STOP,
    /** A stop string appeared in the text. */
    STOP_STRING,
    /** The token limit was reached. */
    LENGTH,
    /** The subscriber cancelled. */
    CANCELLED;

    public String wire() { return name().toLowerCase(Locale.ROOT); }
}
