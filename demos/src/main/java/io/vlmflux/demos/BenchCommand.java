package io.vlmflux.demos;

import java.util.List;
import java.util.Locale;

/**
 * {@code vlmflux bench WHAT ...}: dispatches to {@code io.vlmflux.demos.bench.<What>Bench} (a {@link Command}), so each
 * benchmark lives in its own class. Benchmarks print a human table on stderr and, with {@code --json}, one JSON
 * object on stdout.
 */
public final class BenchCommand implements Command {
    private static final List<String> KNOWN = List.of("sources", "tokenizer", "llm", "vlm", "serve", "int4", "live");

    @Override public String summary() { return "benchmarks: " + String.join(", ", present()); }

    @Override public String usage() {
        StringBuilder sb = new StringBuilder("vlmflux bench WHAT [OPTIONS]   (WHAT: " + String.join(" | ", present()) + ")\n");
        for (String n : present()) sb.append("\n  ").append(n).append(": ").append(find(n).summary());
        return sb.toString();
    }

    @Override public int run(List<String> args) throws Exception {
        if (args.isEmpty()) throw new UsageException("bench needs a benchmark name: " + String.join(", ", present()));
        Command c = find(args.get(0));
        if (c == null) throw new UsageException("unknown benchmark '" + args.get(0) + "' (have: " + String.join(", ", present()) + ")");
        return c.run(args.subList(1, args.size()));
    }

    private static List<String> present() { return KNOWN.stream().filter(n -> find(n) != null).toList(); }

    static Command find(String name) {
        if (!name.matches("[a-z][a-z0-9]*")) return null;
        String cls = BenchCommand.class.getPackageName() + ".bench." + Character.toUpperCase(name.charAt(0)) + name.substring(1).toLowerCase(Locale.ROOT) + "Bench";
        try {
            return (Command) Class.forName(cls).getDeclaredConstructor().newInstance();
        } catch (ClassNotFoundException e) {
            return null;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot create benchmark " + name + ": " + e, e);
        }
    }
}
