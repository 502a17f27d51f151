package io.vlmflux.sources;

/** A source could not be parsed, opened or kept running; the message starts with the source spec. */
public final class SourceException extends RuntimeException {
    private final String spec;

    public SourceException(String spec, String cause) {
        super("source '" + spec + "': " + cause);
        this.spec = spec;
    }

    public SourceException(String spec, String cause, Throwable t) {
        super("source '" + spec + "': " + cause, t);
        this.spec = spec;
    }

    /** The spec (or id) of the source that failed. */
    public String spec() { return spec; }
}
