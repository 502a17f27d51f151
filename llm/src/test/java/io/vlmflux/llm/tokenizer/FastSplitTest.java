package io.vlmflux.llm.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The hand-written splitter must find exactly the regex's matches (Qwen and Llama 3 patterns). */
class FastSplitTest {
    static final String QWEN = FastSplit.PATTERN_PREFIX + FastSplit.PATTERN_SUFFIX;
    static final String LLAMA3 = FastSplit.PATTERN_PREFIX + "{1,3}" + FastSplit.PATTERN_SUFFIX;

    static List<String> byRegex(Pattern p, String s) {
        List<String> r = new ArrayList<>();
        Matcher m = p.matcher(s);
        int last = 0;
        while (m.find()) {
            if (m.start() > last) r.add("GAP:" + s.substring(last, m.start()));
            r.add(m.group());
            last = m.end();
        }
        if (last < s.length()) r.add("GAP:" + s.substring(last));
        return r;
    }

    static List<String> byFast(FastSplit f, String s) {
        List<String> r = new ArrayList<>();
        for (int i = 0; i < s.length(); ) { int e = f.matchEnd(s, i); r.add(s.substring(i, e)); i = e; }
        return r;
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void agreesWithTheRegex(boolean llama) throws Exception {
        String re = llama ? LLAMA3 : QWEN;
        Pattern p = PreTokenizer.compile(re);
        FastSplit f = FastSplit.forPattern(re);
        assertNotNull(f);
        List<String> texts = new ArrayList<>();
        for (String name : List.of("ggml-vocab-qwen2.gguf.inp", "ggml-vocab-llama-bpe.gguf.inp"))
            texts.addAll(List.of(Files.readString(RealTokenizers.testResources().resolve("tokenizers").resolve(name))
                    .split("\n__ggml_vocab_test__\n")));
        String[] alphabet = {"a", "Z", "é", "ſ", "S", "T", "r", "e", "v", "l", "L", "m", "d", "'", "’", "1", "٣", "½", "Ⅻ",
                " ", "  ", "\t", "\n", "\r", "\r\n", "\u00A0", "\u3000", "\u2028", "\u000B", "\u0085", ".", "!", "-", "_",
                "中", "文", "🚀", "👍🏽", "\u0301", "\u200D", "\uFE0F", "$", "<", ">", "\u001F", "𝔘", "𝟙"};
        Random rnd = new Random(42);
        for (int t = 0; t < 20_000; t++) {
            StringBuilder sb = new StringBuilder();
            int len = rnd.nextInt(14);
            for (int i = 0; i < len; i++) sb.append(alphabet[rnd.nextInt(alphabet.length)]);
            texts.add(sb.toString());
        }
        for (String s : texts) assertEquals(byRegex(p, s), byFast(f, s), () -> "text " + TokenizerFixtureTest.quote(s));
    }
}
