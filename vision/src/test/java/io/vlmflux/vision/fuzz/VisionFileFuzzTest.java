package io.vlmflux.vision.fuzz;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.vision.Fixtures;
import io.vlmflux.vision.PreprocessorConfig;
import io.vlmflux.vision.SmartResize;
import io.vlmflux.vision.qwen2vl.VisionConfig;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import io.vlmflux.vision.qwen3vl.Qwen3VLVisionConfig;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Seeded fuzzing of the vision files of the tiny-qwen2vl and tiny-qwen3vl fixtures: mutants of preprocessor_config.json (loaded, then
 * a 320x240 frame resized with it) and config.json (the vision tower config). Same contract as the llm module's
 * ModelFileFuzzTest: load, or an IllegalArgumentException / IllegalStateException / IOException naming the file and
 * the mutated field, within a per-mutant time bound. {@code -Dvlmflux.fuzz.mutants=N}, {@code -Dvlmflux.fuzz.seed=S}.
 */
class VisionFileFuzzTest {
    static final int MUTANTS = Integer.getInteger("vlmflux.fuzz.mutants", 200);
    static final long SEED = Long.getLong("vlmflux.fuzz.seed", 20260904L);
    private static final ObjectMapper JSON = new ObjectMapper();
    @TempDir Path dir;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"tiny-qwen2vl, preprocessor_config.json", "tiny-qwen2vl, config.json",
                "tiny-qwen3vl, preprocessor_config.json", "tiny-qwen3vl, config.json"})
    void mutantsFailCleanlyNamingFileAndField(String model, String file) throws Exception {
        var original = JSON.readTree(Fixtures.fixture(model).resolve(file).toFile());
        Path target = dir.resolve(file);
        Random r = new Random(SEED ^ file.hashCode() ^ (model.equals("tiny-qwen2vl") ? 0 : model.hashCode()));
        ExecutorService exec = Executors.newSingleThreadExecutor(run -> { Thread t = new Thread(run, "fuzz"); t.setDaemon(true); return t; });
        List<String> failures = new ArrayList<>();
        int loaded = 0, rejected = 0;
        long t0 = System.nanoTime();
        try {
            for (int i = 0; i < MUTANTS && failures.size() < 25; i++) {
                JsonMutator.Mutant m = JsonMutator.mutate(original, r);
                Files.write(target, JSON.writeValueAsBytes(m.root()));
                Future<?> f = exec.submit(() -> {
                    if (file.startsWith("preprocessor")) {
                        PreprocessorConfig c = PreprocessorConfig.load(dir);
                        SmartResize.resize(240, 320, c.factor(), c.minPixels(), c.maxPixels());
                    } else if (model.equals("tiny-qwen3vl")) {
                        Qwen3VLVisionConfig.load(dir);
                    } else {
                        VisionConfig.load(dir);
                    }
                    return null;
                });
                try {
                    f.get(20, TimeUnit.SECONDS);
                    loaded++;
                } catch (TimeoutException e) {
                    f.cancel(true);
                    failures.add("#" + i + " " + m.description() + ": HANG");
                    break;
                } catch (java.util.concurrent.ExecutionException ee) {
                    Throwable t = ee.getCause();
                    String msg = String.valueOf(t.getMessage());
                    String what = "#" + i + " " + m.description() + ": ";
                    if (!(t instanceof IllegalArgumentException || t instanceof IllegalStateException || t instanceof IOException
                            || t instanceof UncheckedIOException))
                        failures.add(what + "unclean " + t + (t.getStackTrace().length > 0 ? " at " + t.getStackTrace()[0] : ""));
                    else if (!msg.contains(file)) failures.add(what + "message does not name " + file + ": " + msg);
                    else if (m.field() != null && !msg.contains(m.field())) failures.add(what + "message does not name '" + m.field() + "': " + msg);
                    else rejected++;
                }
            }
        } finally {
            exec.shutdownNow();
        }
        System.out.printf("fuzz " + model + " %s: %d mutants (seed %d): %d loaded, %d rejected cleanly, %d failures, %.1f s%n", file, MUTANTS, SEED,
                loaded, rejected, failures.size(), (System.nanoTime() - t0) / 1e9);
        assertEquals(List.of(), failures, file + " mutants");
    }
}
