package io.vlmflux.pipeline.config;

import java.nio.file.Path;
import java.util.Locale;

/**
 * Which model runs and where.
 *
 * @param dir     Hugging Face model folder (relative paths resolve against the working directory)
 * @param backend {@code auto} (cuda when a GPU is usable, else cpu), {@code cpu} or {@code cuda}; default {@code auto}
 * @param device  CUDA device index; default 0
 */
public record ModelConfig(String dir, String backend, Integer device) {
    public ModelConfig {
        if (dir == null || dir.isBlank()) throw new IllegalArgumentException("field 'dir' must name a model folder, got " + SourceConfig.quote(dir));
        if (backend == null) backend = "auto";
        backend = backend.toLowerCase(Locale.ROOT);
        if (!backend.equals("auto") && !backend.equals("cpu") && !backend.equals("cuda"))
            throw new IllegalArgumentException("field 'backend' must be auto, cpu or cuda, got '" + backend + "'");
        if (device == null) device = 0;
        if (device < 0) throw new IllegalArgumentException("field 'device' must be >= 0, got " + device);
    }

    public Path path() { return Path.of(dir); }
}
