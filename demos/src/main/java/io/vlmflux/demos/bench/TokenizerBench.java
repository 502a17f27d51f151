package io.vlmflux.demos.bench;

import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.llm.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code vlmflux bench tokenizer}: encode/decode throughput of the byte-level BPE tokenizer on a large text (a file, or
 * a built-in multilingual sample), repeated to {@code --mb} megabytes. "cold" is the first pass with an empty
 * pre-token cache (a fresh tokenizer), "warm" the best of the following passes.
 */
public final class TokenizerBench implements Command {
    static final String SAMPLE = """
            The quick brown fox jumps over the lazy dog. It's 2024-06-01 and we've measured 3.14159 units, \
            roughly 1,234,567 tokens/s on a good day!   Don't panic.
            def encode(self, text: str) -> list[int]:
                return [self.vocab[t] for t in self.pre_tokenize(text)]  # TODO: cache
            Über den Wolken muss die Freiheit wohl grenzenlos sein. Ça va? Ñandú, façade, naïve café.
            机器学习是人工智能的一个分支，它使计算机能够从数据中学习。视频中的物体正在移动。
            Видео с камеры обрабатывается в реальном времени. 日本語のテキストも含まれています。
            Emoji: 🚀🔥👍🏽 — "quotes", 'apostrophes', <tags> & {braces} [brackets] \t tabs\tand\nnewlines.
            """;

    @Override public String summary() { return "tokenizer encode/decode throughput (MB/s) on a large text"; }

    @Override public String usage() {
        return """
                vlmflux bench tokenizer --model DIR [--file F] [--mb N] [--iters N] [--json]
                  --model DIR   model folder with tokenizer.json
                  --file F      UTF-8 text to encode (default: a built-in multilingual sample with code and emoji)
                  --mb N        repeat the text to about N MB (default 5)
                  --iters N     warm passes (default 5)
                  --json        one JSON object on stdout""";
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("model", "file", "mb", "iters"), Set.of("json"));
        Path dir = Path.of(a.require("model"));
        double mb = a.getDouble("mb", 5);
        int iters = a.getInt("iters", 5);
        if (mb <= 0 || iters < 1) throw new UsageException("--mb must be > 0 and --iters >= 1");
        String unit = a.has("file") ? Files.readString(Path.of(a.get("file")), StandardCharsets.UTF_8) : SAMPLE;
        if (unit.isEmpty()) throw new UsageException("--file " + a.get("file") + " is empty");
        StringBuilder sb = new StringBuilder();
        long target = (long) (mb * 1e6);
        int unitBytes = unit.getBytes(StandardCharsets.UTF_8).length;
        for (long b = 0; b < target; b += unitBytes) sb.append(unit);
        String text = sb.toString();
        long bytes = text.getBytes(StandardCharsets.UTF_8).length;

        long t0 = System.nanoTime();
        Tokenizer tok = Tokenizer.load(dir);
        double loadMs = (System.nanoTime() - t0) / 1e6;

        t0 = System.nanoTime();
        int[] ids = tok.encode(text);
        double coldS = (System.nanoTime() - t0) / 1e9;
        double[] warm = new double[iters];
        for (int i = 0; i < iters; i++) {
            long s = System.nanoTime();
            int[] again = tok.encode(text);
            warm[i] = (System.nanoTime() - s) / 1e9;
            if (!Arrays.equals(again, ids)) throw new IllegalStateException("encode is not deterministic");
        }
        double warmS = Arrays.stream(warm).min().orElseThrow();
        t0 = System.nanoTime();
        String back = tok.decode(ids);
        double decodeS = (System.nanoTime() - t0) / 1e9;
        boolean roundTrip = back.equals(java.text.Normalizer.normalize(text, java.text.Normalizer.Form.NFC));

        double coldMBs = bytes / 1e6 / coldS, warmMBs = bytes / 1e6 / warmS, decMBs = bytes / 1e6 / decodeS;
        System.err.printf(Locale.ROOT, "tokenizer %s: %d ids, loaded in %.0f ms%n", tok.source(), tok.vocabSize(), loadMs);
        System.err.printf(Locale.ROOT, "text: %.2f MB (%s), %d tokens (%.2f bytes/token)%n", bytes / 1e6,
                a.has("file") ? a.get("file") : "built-in sample", ids.length, (double) bytes / ids.length);
        System.err.printf(Locale.ROOT, "  encode cold  %8.1f MB/s  %10.0f tokens/s%n", coldMBs, ids.length / coldS);
        System.err.printf(Locale.ROOT, "  encode warm  %8.1f MB/s  %10.0f tokens/s  (best of %d)%n", warmMBs, ids.length / warmS, iters);
        System.err.printf(Locale.ROOT, "  decode       %8.1f MB/s  %10.0f tokens/s   round trip %s%n", decMBs, ids.length / decodeS,
                roundTrip ? "exact" : "DIFFERS");
        if (a.flag("json")) {
            System.out.printf(Locale.ROOT, "{\"bench\":\"tokenizer\",\"model\":\"%s\",\"bytes\":%d,\"tokens\":%d,\"load_ms\":%.1f,"
                    + "\"encode_cold_mb_s\":%.2f,\"encode_warm_mb_s\":%.2f,\"decode_mb_s\":%.2f,\"round_trip\":%b}%n",
                    dir.toString().replace("\\", "\\\\").replace("\"", "\\\""), bytes, ids.length, loadMs, coldMBs, warmMBs,
                    decMBs, roundTrip);
        }
        return roundTrip ? 0 : 1;
    }
}
