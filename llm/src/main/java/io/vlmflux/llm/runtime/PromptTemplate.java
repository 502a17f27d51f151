package io.vlmflux.llm.runtime;

import java.util.Arrays;

/**
 * A rendered, tokenized prompt whose image slots are not expanded yet: one image-pad token per image at
 * {@link #slots()}. It does not depend on the images, so a stage renders it once and prepares it for every frame
 * ({@link VlmRuntime#prepare}).
 *
 * @param text   the rendered text (chat template applied, or the raw prompt)
 * @param tokens its token ids
 * @param slots  positions of the image slots in {@code tokens}, ascending
 */
public record PromptTemplate(String text, int[] tokens, int[] slots) {
    public PromptTemplate {
        if (text == null || tokens == null || slots == null) throw new IllegalArgumentException("prompt template fields must not be null");
        if (tokens.length == 0) throw new IllegalArgumentException("the prompt '" + text + "' has no tokens");
        tokens = tokens.clone();
        slots = slots.clone();
        for (int i = 0; i < slots.length; i++)
            if (slots[i] < 0 || slots[i] >= tokens.length || (i > 0 && slots[i] <= slots[i - 1]))
                throw new IllegalArgumentException("image slots must be ascending positions inside the prompt, got " + Arrays.toString(slots));
    }

    @Override public int[] tokens() { return tokens.clone(); }
    @Override public int[] slots() { return slots.clone(); }

    /** How many images the prompt takes. */
    public int images() { return slots.length; }

    /**
     * Prompt positions identical for every image (the system prompt and chat header before the first image): what the
     * prefix cache keeps. 0 for a prompt without images.
     */
    public int sharedPrefix() { return slots.length == 0 ? 0 : slots[0]; }

    @Override public String toString() { return "PromptTemplate[" + tokens.length + " tokens, " + slots.length + " image slot(s)]"; }
}
