package io.vlmflux.llm;

import java.util.Set;

/** One model family: which configs it accepts and the {@link TextModelSpec} its checkpoints follow. */
public interface ModelFamily {
    String name();

    /** {@code architectures} entries this family serves. */
    Set<String> architectures();

    /** {@code model_type} values this family serves (used when {@code architectures} is absent). */
    Set<String> modelTypes();

    /** The layout for this config; {@code tensorNames} lets a family pick between weight-name prefixes. */
    TextModelSpec spec(ModelConfig config, Set<String> tensorNames);

    /** Whether the cuda backend runs this family (default true); others load on the cpu backend only. */
    default boolean runsOnCuda() { return true; }

    /** Throws naming the family and the config file when {@code backend} (resolved) cannot run it. */
    default void checkBackend(Backend backend, java.nio.file.Path config) {
        if (backend == Backend.CUDA && !runsOnCuda())
            throw new UnsupportedOperationException(config + ": " + name() + " (" + String.join(", ", architectures())
                    + ") runs on the cpu backend for now; load it with backend cpu");
    }
}
