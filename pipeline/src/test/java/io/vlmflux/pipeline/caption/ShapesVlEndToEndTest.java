package io.vlmflux.pipeline.caption;

import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.EncoderCacheStats;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;

import io.vlmflux.pipeline.Stages;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.time.Duration;
import java.util.List;

import static io.vlmflux.pipeline.caption.CaptionTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The embedded demo model through the whole pipeline (videotestsrc → sampling → preprocess → encode → prompt on the
 * cached prefix → generate) names what the test pattern shows on a majority of frames. If this fails, one stage is
 * wrong: compare with the vision and llm golden tests rather than loosening the check.
 */
class ShapesVlEndToEndTest {
    static VlmRuntime model;

    @BeforeAll static void load() { model = VlmRuntime.load(SHAPES, RuntimeOptions.defaults().withBackend(Backend.CPU)); }

    @AfterAll static void close() { model.close(); }

    @ParameterizedTest
    @CsvSource({"ball, white circle, black background", "smpte, vertical color bars, ", "snow, random noise, "})
    void namesWhatTheTestPatternShows(String pattern, String must, String alsoMust) {
        Tap tap = new Tap();
        List<Caption> caps = Sources.parse("test:" + pattern + "?live=false&num-buffers=35").frames()
                .transform(tap::apply)
                .transform(Stages.sample("7f"))
                .transform(CaptionStage.captions(model, CaptionOptions.defaults().withBackpressure(CaptionOptions.Backpressure.LOSSLESS)))
                .collectList().block(Duration.ofSeconds(90));
        assertEquals(5, caps.size(), "frames 0, 7, 14, 21, 28");
        long ok = caps.stream().filter(c -> c.text().contains(must) && (alsoMust == null || c.text().contains(alsoMust))).count();
        assertTrue(ok * 2 > caps.size(), pattern + ": " + caps.stream().map(Caption::text).toList());
        for (Caption c : caps) assertEquals(io.vlmflux.llm.FinishReason.STOP, c.finishReason(), c.text());
        assertEquals(0, tap.open());
        caps.forEach(c -> System.out.printf("%s #%d: %s  (%s)%n", pattern, c.frame().sequence(), c.text(), c.timings()));
    }
}
