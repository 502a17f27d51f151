package io.vlmflux.demos;

import io.vlmflux.llm.constrain.ConstraintException;
import io.vlmflux.llm.constrain.ConstraintSpec;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The output-constraint flags shared by {@code generate} and {@code caption}: at most one of {@code --json-schema FILE},
 * {@code --regex RE}, {@code --choice A,B,C}, {@code --grammar FILE} (GBNF; a {@code .lark} or {@code .ebnf} file is read
 * as the Lark-like syntax). The spec is checked at once, so errors name the flag, then the position and the reason.
 */
final class ConstraintFlags {
    static final List<String> NAMES = List.of("json-schema", "regex", "choice", "grammar");

    private ConstraintFlags() {}

    /** The spec, or null when no constraint flag is given. */
    static ConstraintSpec spec(Args a) throws IOException {
        List<String> given = NAMES.stream().filter(a::has).toList();
        if (given.size() > 1) throw new UsageException("give at most one of --json-schema, --regex, --choice, --grammar");
        if (given.isEmpty()) return null;
        String flag = given.get(0);
        try {
            ConstraintSpec spec = switch (flag) {
                case "json-schema" -> ConstraintSpec.jsonSchema(read(a, flag));
                case "regex" -> ConstraintSpec.regex(a.get("regex"));
                case "choice" -> new ConstraintSpec.Choice(List.of(a.get("choice").split(",", -1)));
                default -> {
                    String name = a.get("grammar").toLowerCase(java.util.Locale.ROOT);
                    yield ConstraintSpec.grammar(read(a, flag), name.endsWith(".lark") || name.endsWith(".ebnf")
                            ? ConstraintSpec.Syntax.LARK : ConstraintSpec.Syntax.GBNF);
                }
            };
            return spec.check();
        } catch (ConstraintException e) {
            throw new UsageException("--" + flag + ": " + e.getMessage());
        }
    }

    private static String read(Args a, String flag) throws IOException {
        Path f = Path.of(a.get(flag));
        if (!Files.isRegularFile(f)) throw new UsageException("--" + flag + " " + f + ": no such file");
        return Files.readString(f, StandardCharsets.UTF_8);
    }
}
