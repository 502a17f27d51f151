package io.vlmflux.llm;

import io.vlmflux.cuda.gpu.Gpu;

import java.util.Locale;

/**
 * Where a model computes. {@link #AUTO} is resolved once, when a model is loaded ({@link #resolve()}): {@link #CUDA}
 * where a usable GPU exists, else {@link #CPU}; the choice and its reason are logged.
 */
public enum Backend {
    AUTO, CPU, CUDA;

    private static final System.Logger LOG = System.getLogger("vlmflux.llm");

    /** The backend named {@code name} ({@code auto}, {@code cpu}, {@code cuda}; case-insensitive; null means auto). */
    public static Backend parse(String name) {
        if (name == null) return AUTO;
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "auto" -> AUTO;
            case "cpu" -> CPU;
            case "cuda" -> CUDA;
            default -> throw new IllegalArgumentException("unknown backend '" + name + "' (supported: auto, cpu, cuda)");
        };
    }

    /** The lower-case name used on the command line, in configs and in JSON. */
    public String wire() { return name().toLowerCase(Locale.ROOT); }

    /** A concrete backend and why it was chosen. */
    public record Choice(Backend backend, String reason) {}

    /**
     * The concrete backend: {@code AUTO} becomes {@code CUDA} when a usable GPU is present, else {@code CPU} (logged
     * with the reason); {@code CPU} and {@code CUDA} stay (a missing GPU then fails at load, naming the cause).
     */
    public Choice resolve() {
        if (this != AUTO) return new Choice(this, "requested");
        Choice c;
        try {
            c = Gpu.isAvailable() ? new Choice(CUDA, "a usable GPU is present")
                    : new Choice(CPU, "no usable GPU: " + Gpu.unavailableReason());
        } catch (LinkageError e) {   // CUDA presets missing from the class path
            c = new Choice(CPU, "the CUDA runtime classes cannot load: " + e);
        }
        LOG.log(System.Logger.Level.INFO, "backend auto -> {0} ({1})", c.backend().wire(), c.reason());
        return c;
    }
}
