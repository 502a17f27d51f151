package io.vlmflux.demos;

import java.util.List;

/**
 * One CLI sub-command. {@link Main} finds {@code io.vlmflux.demos.<Name>Command} by the command name
 * ({@code probe} → {@code ProbeCommand}), so adding a command touches no shared file. Implementations need a public
 * no-argument constructor. Data goes to {@code System.out}, logs and progress to {@code System.err}.
 */
public interface Command {
    /** One line for {@code vlmflux --help}. */
    String summary();

    /** Full usage text for {@code vlmflux NAME --help}. */
    String usage();

    /** Runs the command; returns the process exit code. Throw {@link UsageException} for bad arguments. */
    int run(List<String> args) throws Exception;
}
