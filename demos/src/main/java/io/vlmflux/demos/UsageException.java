package io.vlmflux.demos;

/** Bad command-line arguments: printed as {@code error: MESSAGE} plus a hint to {@code --help}, exit code 2. */
public final class UsageException extends RuntimeException {
    public UsageException(String message) { super(message); }
}
