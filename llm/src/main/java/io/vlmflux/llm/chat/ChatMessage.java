package io.vlmflux.llm.chat;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * One chat turn: a role ({@code system}, {@code user}, {@code assistant}, ...) and its content parts in order. A
 * template sees the content as a plain string when every part is text, and otherwise as a list of
 * {@code {"type": "image"}} / {@code {"type": "video"}} / {@code {"type": "text", "text": ...}} items, the two shapes
 * Hugging Face chat templates accept.
 */
public record ChatMessage(String role, List<Part> content) {
    /** A content part. */
    public sealed interface Part permits Text, Image, Video {}

    /** Text. */
    public record Text(String text) implements Part {
        public Text { Objects.requireNonNull(text, "text"); }
    }

    /** One image slot; the model's image tokens take its place (Qwen2-VL: {@code <|vision_start|><|image_pad|><|vision_end|>}). */
    public record Image() implements Part {}

    /** One video slot ({@code {"type": "video"}}; Qwen-VL templates write {@code <|vision_start|><|video_pad|><|vision_end|>}). */
    public record Video() implements Part {}

    public ChatMessage {
        Objects.requireNonNull(role, "role");
        if (role.isBlank()) throw new IllegalArgumentException("chat message role is blank");
        content = List.copyOf(content);
    }

    public static ChatMessage of(String role, String text) { return new ChatMessage(role, List.of(new Text(text))); }
    public static ChatMessage system(String text) { return of("system", text); }
    public static ChatMessage user(String text) { return of("user", text); }
    public static ChatMessage assistant(String text) { return of("assistant", text); }

    /** A user turn with one image followed by the text (the order the Qwen2-VL fixtures use). */
    public static ChatMessage userWithImage(String text) {
        List<Part> parts = new ArrayList<>();
        parts.add(new Image());
        if (text != null && !text.isEmpty()) parts.add(new Text(text));
        return new ChatMessage("user", parts);
    }

    /** Number of image parts. */
    public int imageCount() { return (int) content.stream().filter(p -> p instanceof Image).count(); }

    /** Number of video parts. */
    public int videoCount() { return (int) content.stream().filter(p -> p instanceof Video).count(); }

    /** The concatenated text parts. */
    public String text() {
        StringBuilder sb = new StringBuilder();
        for (Part p : content) if (p instanceof Text t) sb.append(t.text());
        return sb.toString();
    }
}
