package io.vlmflux.llm.tokenizer;

/** An added token of {@code tokenizer.json} ({@code added_tokens}) with Hugging Face's matching flags. */
record AddedToken(int id, String content, boolean special, boolean lstrip, boolean rstrip, boolean singleWord,
                  boolean normalized) {}
