package io.vlmflux.llm.runtime;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class CaptionAgreementTest {
    @Test void wordF1CountsSharedWordsAsAMultiset() {
        assertEquals(1.0, CaptionAgreement.wordF1("A red circle.", "a red CIRCLE"), 1e-12, "case and punctuation do not count");
        assertEquals(1.0, CaptionAgreement.wordF1("", " "), 1e-12);
        assertEquals(0.0, CaptionAgreement.wordF1("a red circle", ""), 1e-12);
        // 3 of 4 words shared: 2 * 3 / (4 + 4)
        assertEquals(0.75, CaptionAgreement.wordF1("a red circle left", "a red circle right"), 1e-12);
        // repeated words count as often as both have them: {a:2, red} vs {a:1, red}: 2 * 2 / (3 + 2)
        assertEquals(0.8, CaptionAgreement.wordF1("a a red", "a red"), 1e-12);
    }
}
