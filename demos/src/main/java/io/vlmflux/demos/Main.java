package io.vlmflux.demos;

import io.vlmflux.pipeline.config.ConfigException;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Entry point of the {@code vlmflux} CLI. Dispatches to {@code io.vlmflux.demos.<Name>Command}. Errors are printed as
 * one line {@code error: ...} on stderr and exit non-zero (2 for usage errors, 1 otherwise).
 */
public final class Main {
    /** Commands listed by {@code --help}, in this order (only those present in the build are shown). */
    private static final List<String> KNOWN = List.of("caption", "generate", "watch", "tokenize", "probe", "bench", "serve", "fleet", "infer", "quantize", "eval");

    private Main() {}

    public static void main(String[] argv) {
        // One-line log records on stderr ("INFO vlmflux.sources: opened ..."); stdout carries data only.
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null)
            System.setProperty("java.util.logging.SimpleFormatter.format", "%4$s %3$s: %5$s%6$s%n");
        System.exit(run(argv));
    }

    public static int run(String[] argv) {
        PrintStream err = System.err;
        if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
            printHelp(argv.length == 0 ? err : System.out);
            return argv.length == 0 ? 2 : 0;
        }
        String name = argv[0];
        Command cmd = find(name);
        if (cmd == null) {
            err.println("error: unknown command '" + name + "' (try: vlmflux --help)");
            return 2;
        }
        List<String> rest = Arrays.asList(argv).subList(1, argv.length);
        if (rest.contains("--help") || rest.contains("-h")) {
            // `vlmflux bench llm --help` shows the benchmark's own usage
            Command sub = cmd instanceof BenchCommand && !rest.getFirst().startsWith("-") ? BenchCommand.find(rest.getFirst()) : null;
            System.out.println((sub != null ? sub : cmd).usage());
            return 0;
        }
        try {
            return cmd.run(rest);
        } catch (UsageException e) {
            err.println("error: " + e.getMessage());
            err.println("usage: " + firstLine(cmd.usage()) + "   (vlmflux " + name + " --help for more)");
            return 2;
        } catch (Throwable t) {
            err.println("error: " + describe(t));
            if (System.getenv("VLMFLUX_DEBUG") != null) t.printStackTrace(err);
            return 1;
        }
    }

    /** The command class for {@code name}, or null when there is none. */
    static Command find(String name) {
        if (!name.matches("[a-z][a-z0-9-]*")) return null;
        String simple = Character.toUpperCase(name.charAt(0)) + name.substring(1).toLowerCase(Locale.ROOT) + "Command";
        try {
            Class<?> c = Class.forName(Main.class.getPackageName() + "." + simple);
            if (!Command.class.isAssignableFrom(c)) return null;
            return (Command) c.getDeclaredConstructor().newInstance();
        } catch (ClassNotFoundException e) {
            return null;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot create command " + name + ": " + e, e);
        }
    }

    private static void printHelp(PrintStream out) {
        out.println("vlmflux — vision-language models on live video");
        out.println();
        out.println("usage: vlmflux COMMAND [OPTIONS]      (vlmflux COMMAND --help for details)");
        out.println();
        for (String n : KNOWN) {
            Command c = find(n);
            if (c != null) out.printf("  %-10s %s%n", n, c.summary());
        }
    }

    /**
     * One line naming the cause chain, without stack traces. The chain ends at a {@link ConfigException}: its message
     * is complete and its cause (the JSON parser's exception) is for VLMFLUX_DEBUG stack traces only.
     */
    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        Throwable cur = t;
        String last = null;
        while (cur != null) {
            String m = cur.getMessage();
            if (m == null || m.isBlank()) m = cur.getClass().getSimpleName();
            if (last == null || !last.contains(m)) {
                if (!sb.isEmpty()) sb.append(": ");
                sb.append(m);
                last = m;
            }
            cur = cur instanceof ConfigException || cur.getCause() == cur ? null : cur.getCause();
        }
        return sb.toString().replace('\n', ' ');
    }

    private static String firstLine(String s) {
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }
}
