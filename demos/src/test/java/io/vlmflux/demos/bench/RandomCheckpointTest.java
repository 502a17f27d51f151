package io.vlmflux.demos.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bench's own checkpoint writer: what it writes loads as the named family and runs; the same seed, the same bytes. */
class RandomCheckpointTest {
    @TempDir Path tmp;

    @Test
    void qwen2AndQwen3ShapesLoadAndRun() throws Exception {
        RandomCheckpoint.Shape q2 = RandomCheckpoint.Shape.named("tiny");
        RandomCheckpoint.Shape q3 = new RandomCheckpoint.Shape("tiny-qwen3", 64, 2, 4, 2, 32, 96, 300, false, false, true, 512);
        for (RandomCheckpoint.Shape s : new RandomCheckpoint.Shape[] {q2, q3}) {
            Path dir = tmp.resolve(s.name());
            RandomCheckpoint.write(dir, s, 5);
            long bytes = Files.size(dir.resolve("model.safetensors"));
            long params = (long) s.vocab() * s.hidden() * (s.tied() ? 1 : 2);
            assertTrue(bytes > 2 * params, s + ": " + bytes + " bytes");
            try (Decoder d = Models.load(dir, "cpu"); KvCache c = d.newCache(16)) {
                assertEquals(s.layers(), d.config().numLayers());
                assertEquals(s.vocab(), d.config().vocabSize());
                float[] logits = d.forward(c, ForwardInput.tokens(new int[] {1, 2, 3}), false);
                assertEquals(s.vocab(), logits.length);
                for (float v : logits) assertTrue(Float.isFinite(v), s + ": non-finite logit");
            }
        }
    }

    @Test
    void deterministicPerSeedAndNamesChecked() throws Exception {
        RandomCheckpoint.Shape s = RandomCheckpoint.Shape.named("tiny");
        RandomCheckpoint.write(tmp.resolve("a"), s, 3);
        RandomCheckpoint.write(tmp.resolve("b"), s, 3);
        RandomCheckpoint.write(tmp.resolve("c"), s, 4);
        byte[] a = Files.readAllBytes(tmp.resolve("a/model.safetensors"));
        assertArrayEquals(a, Files.readAllBytes(tmp.resolve("b/model.safetensors")));
        assertTrue(!java.util.Arrays.equals(a, Files.readAllBytes(tmp.resolve("c/model.safetensors"))));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> RandomCheckpoint.Shape.named("qwen9"));
        assertTrue(e.getMessage().contains("qwen2.5-3b") && e.getMessage().contains("qwen3-0.6b"), e.getMessage());
    }
}
