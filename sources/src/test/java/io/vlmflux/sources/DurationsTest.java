package io.vlmflux.sources;

import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.*;

class DurationsTest {
    @Test void unitsFractionsAndBareSeconds() {
        assertEquals(Duration.ofNanos(250), Durations.parse("250ns"));
        assertEquals(Duration.ofNanos(1500), Durations.parse("1.5us"));
        assertEquals(Duration.ofMillis(500), Durations.parse("500ms"));
        assertEquals(Duration.ofMillis(1500), Durations.parse(" 1.5S "));
        assertEquals(Duration.ofSeconds(90), Durations.parse("1.5m"));
        assertEquals(Duration.ofHours(2), Durations.parse("2h"));
        assertEquals(Duration.ofMillis(2500), Durations.parse("2.5"));
        assertEquals(Duration.ZERO, Durations.parse("0ms"));
    }

    @Test void unitDetectionLeavesFramesAndFpsAlone() {
        assertTrue(Durations.hasUnit("500ms"));
        assertTrue(Durations.hasUnit("2 s"));
        assertFalse(Durations.hasUnit("30f"));
        assertFalse(Durations.hasUnit("5fps"));
        assertFalse(Durations.hasUnit("2.5"));
        assertFalse(Durations.hasUnit("ms"));
    }

    @Test void badTextIsNamed() {
        for (String bad : new String[] {"fast", "ms", "-1s", "NaNs", "1x", ""}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Durations.parse(bad), bad);
            assertTrue(e.getMessage().contains("'" + bad + "'"), e.getMessage());
        }
    }
}
