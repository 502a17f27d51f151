package io.vlmflux.llm.quant;

import io.vlmflux.llm.tokenizer.Tokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Token windows for calibration ({@code quantize --method awq}) and evaluation ({@code eval}): a UTF-8 text file (or
 * the built-in sample) tokenized with the model folder's {@code tokenizer.json}. A folder without a tokenizer (random
 * test checkpoints) gets deterministic pseudo-random ids instead, said in {@link #source()}.
 */
public record TextSet(List<int[]> windows, String source) {
    /** A few varied English paragraphs: enough to exercise a model, not a benchmark. */
    public static final String SAMPLE = """
            The quick brown fox jumps over the lazy dog. A camera on the loading dock recorded a forklift moving three pallets \
            of boxes from the truck to the warehouse shelves, while two workers in orange vests checked the labels.
            In 1969, the Apollo 11 mission landed the first humans on the Moon. Neil Armstrong and Buzz Aldrin spent about \
            two and a half hours outside the lunar module, collecting samples and setting up experiments.
            def fibonacci(n):
                a, b = 0, 1
                for _ in range(n):
                    a, b = b, a + b
                return a
            The recipe needs 200 grams of flour, two eggs, a pinch of salt and 300 millilitres of milk. Whisk until smooth, \
            rest the batter for thirty minutes, then cook thin pancakes in a hot pan.
            A robot arm picks a red cube from the conveyor belt and places it in the bin on the left; the blue cubes go right. \
            When the belt stops, the arm returns to its home position and waits for the next batch.
            """;

    public static TextSet load(Path modelDir, Path file, int window, int maxWindows, int vocab) throws IOException {
        String text = file == null ? SAMPLE : Files.readString(file);
        String what = file == null ? "built-in sample text" : file.toString();
        int[] ids;
        if (Files.isRegularFile(modelDir.resolve("tokenizer.json"))) {
            ids = Tokenizer.load(modelDir).encode(text);
        } else {
            SplittableRandom r = new SplittableRandom(text.hashCode());
            ids = new int[Math.min(text.length(), window * Math.max(1, maxWindows))];
            for (int i = 0; i < ids.length; i++) ids[i] = r.nextInt(vocab);
            what = "pseudo-random token ids (no tokenizer.json in " + modelDir + ")";
        }
        if (ids.length == 0) throw new IllegalArgumentException(what + ": no tokens");
        return new TextSet(Evaluator.windows(ids, window, maxWindows), what);
    }
}
