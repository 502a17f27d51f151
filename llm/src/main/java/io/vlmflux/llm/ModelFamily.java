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
}
