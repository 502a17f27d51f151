package io.vlmflux.demos;

import io.vlmflux.llm.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.StringJoiner;

/**
 * {@code vlmflux tokenize}: prints the token ids of a text for a model folder (only {@code tokenizer.json} and,
 * optionally, {@code tokenizer_config.json} are needed).
 */
public final class TokenizeCommand implements Command {
    @Override public String summary() { return "print the token ids of a text (byte-level BPE from tokenizer.json)"; }

    @Override public String usage() {
        return """
                vlmflux tokenize --model DIR (--text TEXT | --text-file FILE|-) [--add-special] [--json]
                  --model DIR        model folder with tokenizer.json (a folder holding only the tokenizer is fine)
                  --text TEXT        the text, taken literally (no escape processing)
                  --text-file FILE   read the text from a UTF-8 file as is (trailing newline included); - reads stdin
                  --add-special      apply the post-processor (e.g. Llama 3's BOS); default: plain encode
                  --json             print {"ids":[...]} instead of space-separated ids
                Special tokens written in the text (e.g. <|im_start|>) are matched as single tokens.""";
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("model", "text", "text-file"), Set.of("add-special", "json"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        String model = a.require("model");
        if (a.has("text") == a.has("text-file")) throw new UsageException("give exactly one of --text or --text-file");
        String text = a.has("text") ? a.get("text") : readText(a.get("text-file"));
        Path dir = Path.of(model);
        if (!Files.exists(dir)) throw new UsageException("--model " + model + ": no such folder");
        Tokenizer tok = Tokenizer.load(dir);
        int[] ids = tok.encode(text, a.flag("add-special"));
        System.out.println(format(ids, a.flag("json")));
        System.out.flush();
        return 0;
    }

    static String format(int[] ids, boolean json) {
        StringJoiner j = json ? new StringJoiner(",", "{\"ids\":[", "]}") : new StringJoiner(" ");
        for (int id : ids) j.add(Integer.toString(id));
        return j.toString();
    }

    private static String readText(String file) throws IOException {
        if (file.equals("-")) return new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        Path p = Path.of(file);
        if (!Files.isRegularFile(p)) throw new UsageException("--text-file " + file + ": no such file");
        return Files.readString(p, StandardCharsets.UTF_8);
    }
}
