package io.vlmflux.llm.constrain;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** The byte automaton against java.util.regex on random regexes and strings, UTF-8 range splitting, and regex errors. */
class RegexAutomatonTest {
    private static final String[] ALPHABET = {"a", "b", "c", "1", " ", "é", "中", "😀", "\n", "x", "-"};
    private static final String[] ATOMS = {"a", "b", "c", "é", "中", "😀", ".", "\\d", "\\w", "\\s", "\\D", "[abc]", "[^a]",
            "[a-c]", "[à-中]", "[^\\d中]", "[\\w-]", "\\.", "\\-", "x", "[😀b]", "\\u4e2d", "\\x61"};

    static String randomRegex(SplittableRandom r, int depth) {
        int k = depth > 3 ? 0 : r.nextInt(6);
        return switch (k) {
            case 0, 1 -> ATOMS[r.nextInt(ATOMS.length)];
            case 2 -> randomRegex(r, depth + 1) + randomRegex(r, depth + 1);
            case 3 -> "(" + randomRegex(r, depth + 1) + "|" + randomRegex(r, depth + 1) + ")";
            case 4 -> "(?:" + randomRegex(r, depth + 1) + ")" + new String[] {"*", "+", "?", "{2}", "{1,3}", "{0,}", "*?"}[r.nextInt(7)];
            default -> randomRegex(r, depth + 1) + randomRegex(r, depth + 1) + randomRegex(r, depth + 1);
        };
    }

    @Test void randomRegexesAgreeWithJavaRegexOnRandomStrings() {
        SplittableRandom r = new SplittableRandom(1234);
        int positives = 0, checks = 0;
        for (int i = 0; i < 300; i++) {
            String re = randomRegex(r, 0);
            Pattern ref = Pattern.compile(re);
            ByteDfa dfa = Constraints.automaton(ConstraintSpec.regex(re));
            for (int j = 0; j < 200; j++) {
                StringBuilder sb = new StringBuilder();
                int n = r.nextInt(7);
                for (int k = 0; k < n; k++) sb.append(ALPHABET[r.nextInt(ALPHABET.length)]);
                String s = sb.toString();
                boolean want = ref.matcher(s).matches();
                assertEquals(want, dfa.matches(s.getBytes(StandardCharsets.UTF_8)), () -> "regex " + re + " on \"" + s + "\"");
                if (want) positives++;
                checks++;
            }
        }
        assertTrue(positives > checks / 50, "too few matching samples to mean anything: " + positives + " of " + checks);
    }

    @Test void codePointRangesEncodeExactlyTheirUtf8() {
        SplittableRandom r = new SplittableRandom(99);
        int[] edges = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF};
        for (int i = 0; i < 200; i++) {
            int a = r.nextBoolean() ? edges[r.nextInt(edges.length)] : r.nextInt(0x110000);
            int b = r.nextBoolean() ? edges[r.nextInt(edges.length)] : r.nextInt(0x110000);
            int lo = Math.min(a, b), hi = Math.max(a, b);
            ByteDfa dfa = ByteDfa.compile(Rx.range(lo, hi));
            int[] probes = {lo, hi, lo - 1, hi + 1, lo + (hi - lo) / 2, r.nextInt(0x110000), 0x7F, 0x80, 0x800, 0x10000, 0xFFFF};
            for (int cp : probes) {
                if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) continue;
                byte[] enc = Character.toString(cp).getBytes(StandardCharsets.UTF_8);
                assertEquals(cp >= lo && cp <= hi, dfa.matches(enc), "U+" + Integer.toHexString(cp) + " in [" + Integer.toHexString(lo) + ", " + Integer.toHexString(hi) + "]");
            }
            assertFalse(dfa.matches(new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80}), "a UTF-8-encoded surrogate is never accepted");
            assertFalse(dfa.matches(new byte[] {(byte) 0xC0, (byte) 0x80}), "an overlong encoding is never accepted");
        }
    }

    private static String error(String re) {
        return assertThrows(ConstraintException.class, () -> Constraints.automaton(ConstraintSpec.regex(re))).getMessage();
    }

    @Test void badRegexesNameThePositionAndReason() {
        assertTrue(error("ab(cd").contains("position 2") && error("ab(cd").contains("unclosed '('"), error("ab(cd"));
        assertTrue(error("abc)").contains("position 3") && error("abc)").contains("unmatched ')'"), error("abc)"));
        assertTrue(error("a{3,1}").contains("position 1") && error("a{3,1}").contains("max < min"), error("a{3,1}"));
        assertTrue(error("x*+").contains("possessive"), error("x*+"));
        assertTrue(error("(a)\\1").contains("position 3") && error("(a)\\1").contains("backreferences"), error("(a)\\1"));
        assertTrue(error("a\\bc").contains("word boundaries"), error("a\\bc"));
        assertTrue(error("(?=a)b").contains("position 1") && error("(?=a)b").contains("lookaround"), error("(?=a)b"));
        assertTrue(error("[z-a]").contains("range out of order"), error("[z-a]"));
        assertTrue(error("[abc").contains("unclosed '['"), error("[abc"));
        assertTrue(error("*a").contains("nothing to repeat"), error("*a"));
        assertTrue(error("a^b").contains("position 1"), error("a^b"));
        assertTrue(error("a{5000}").contains("above 1000"), error("a{5000}"));
        assertTrue(error("[^\\x00-\\x{10FFFF}]").contains("position"), error("[^\\x00-\\x{10FFFF}]"));
    }

    @Test void anchorsAtTheEndsAreAccepted() {
        ByteDfa d = Constraints.automaton(ConstraintSpec.regex("^ab+$"));
        assertTrue(d.matches("abbb".getBytes(StandardCharsets.UTF_8)));
        assertFalse(d.matches("ab$".getBytes(StandardCharsets.UTF_8)));
        assertTrue(Constraints.automaton(ConstraintSpec.regex("a\\$")).matches("a$".getBytes(StandardCharsets.UTF_8)));
    }

    @Test void emptyLanguageIsRefused() {
        assertTrue(error("[^\\s\\S]").contains("matches no output"), error("[^\\s\\S]"));
    }

    @Test void automatonBeyondTheStateLimitIsRefused() {
        // "an 'a' 18 characters before the end" needs 2^18 DFA states
        String m = error("[ab]*a[ab]{17}");
        assertTrue(m.contains("too large") && m.contains(Integer.toString(ByteDfa.MAX_STATES)), m);
    }

    @Test void bytesNoEdgeDistinguishesShareAColumn() {
        ByteDfa d = Constraints.automaton(ConstraintSpec.regex("[a-f]+x"));
        assertEquals(5, d.byteClasses(), "classes: below a, a-f, g-w, x, above x: " + d.byteClasses());
        assertTrue(d.matches("abcx".getBytes(StandardCharsets.UTF_8)));
    }
}
