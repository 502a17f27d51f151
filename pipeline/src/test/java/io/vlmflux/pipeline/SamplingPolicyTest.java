package io.vlmflux.pipeline;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class SamplingPolicyTest {
    @Test
    void parsesEverySpecForm() {
        assertEquals(new SamplingPolicy.MinInterval(Duration.ofSeconds(1)), SamplingPolicy.parse("1s"));
        assertEquals(new SamplingPolicy.MinInterval(Duration.ofMillis(500)), SamplingPolicy.parse("500ms"));
        assertEquals(new SamplingPolicy.MinInterval(Duration.ofMillis(250)), SamplingPolicy.parse("0.25s"));
        assertEquals(new SamplingPolicy.MinInterval(Duration.ofMinutes(2)), SamplingPolicy.parse("2m"));
        assertEquals(new SamplingPolicy.MinInterval(Duration.ofMillis(200)), SamplingPolicy.parse("5fps"));
        assertEquals(new SamplingPolicy.EveryNFrames(30), SamplingPolicy.parse("30f"));
        assertEquals(new SamplingPolicy.SceneChange(0.1), SamplingPolicy.parse("scene:0.1"));
        assertEquals(new SamplingPolicy.SceneChange(0.1), SamplingPolicy.parse("scene"));
        assertEquals(new SamplingPolicy.All(), SamplingPolicy.parse(" ALL "));
        assertEquals(new SamplingPolicy.AllOf(List.of(new SamplingPolicy.SceneChange(0.05), new SamplingPolicy.MinInterval(Duration.ofSeconds(1)))),
                SamplingPolicy.parse("scene:0.05+1s"));
    }

    @Test
    void specRoundTrips() {
        for (String s : List.of("1s", "500ms", "30f", "scene:0.2", "all", "scene:0.05+2s", "7fps"))
            assertEquals(SamplingPolicy.parse(s), SamplingPolicy.parse(SamplingPolicy.parse(s).spec()), s);
    }

    @Test
    void badSpecsNameTheSpecAndThePart() {
        var e = assertThrows(IllegalArgumentException.class, () -> SamplingPolicy.parse("1s+abc"));
        assertTrue(e.getMessage().contains("'1s+abc'") && e.getMessage().contains("'abc'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SamplingPolicy.parse("0f"));
        assertTrue(e.getMessage().contains("at least 1, got 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SamplingPolicy.parse("scene:1.5"));
        assertTrue(e.getMessage().contains("[0, 1], got 1.5"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SamplingPolicy.parse("-1s"));
        assertTrue(e.getMessage().contains("positive"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SamplingPolicy.parse("2.5f"));
        assertTrue(e.getMessage().contains("'2.5' is not a whole frame count"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> SamplingPolicy.parse(""));
        assertThrows(IllegalArgumentException.class, () -> SamplingPolicy.parse("0fps"));
    }
}
