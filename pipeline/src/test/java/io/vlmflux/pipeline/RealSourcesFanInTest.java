package io.vlmflux.pipeline;

import io.vlmflux.pipeline.config.PipelineConfig;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.SourceEvent;
import io.vlmflux.sources.SourceOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.Test;
import reactor.core.Disposable;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

/** Real GStreamer sources through the fan-in: ids of sources sharing a spec, and one failing source among several. */
class RealSourcesFanInTest {
    private static final String SPEC = "test:ball?live=false&num-buffers=4&width=64&height=48";

    @Test
    void sourcesSharingAUriKeepTheirOwnIds() {
        StringBuilder json = new StringBuilder("{\"sources\": [");
        for (int i = 0; i < 6; i++) json.append(i == 0 ? "" : ",").append("{\"uri\": \"").append(SPEC).append("\", \"id\": \"s").append(i).append("\"}");
        json.append("], \"model\": {\"dir\": \"demos/models/shapes-vl\"}}");
        PipelineConfig c = PipelineConfig.parse(json.toString(), "inline");
        List<String> seen = VlmPipeline.builder()
                .config(c, s -> Sources.parse(s.uri(), new SourceOptions(0, 0, s.pixelFormat())))
                .frames().flux()
                .map(f -> { try (f) { return f.sourceId() + "#" + f.sequence(); } })
                .collectList().block(Duration.ofSeconds(30));
        assertNotNull(seen);
        Map<String, List<String>> bySource = new TreeMap<>(seen.stream().collect(Collectors.groupingBy(s -> s.substring(0, s.indexOf('#')))));
        assertEquals(List.of("s0", "s1", "s2", "s3", "s4", "s5"), List.copyOf(bySource.keySet()), seen.toString());
        bySource.forEach((id, l) -> assertEquals(List.of(id + "#0", id + "#1", id + "#2", id + "#3"), l));
    }

    @Test
    void aFailingSourceIsRemovedAndTheOthersRunOn() {
        FrameSource bad = Sources.parse("/nonexistent/dir/missing.mp4").named("bad");
        List<SourceEvent> events = new CopyOnWriteArrayList<>();
        Disposable ev = bad.events().subscribe(events::add);
        PipelineMetrics m = new PipelineMetrics();
        try {
            List<String> got = VlmPipeline.builder()
                    .source(Sources.parse(SPEC).named("good"))
                    .source(bad)
                    .source(Sources.parse(SPEC).named("other"))
                    .metrics(m)
                    .frames().flux()
                    .map(f -> { try (f) { return f.sourceId(); } })
                    .collectList().block(Duration.ofSeconds(30));
            assertNotNull(got);
            assertEquals(4, got.stream().filter("good"::equals).count(), got.toString());
            assertEquals(4, got.stream().filter("other"::equals).count(), got.toString());
        } finally {
            ev.dispose();
        }
        assertEquals(1, m.snapshot().stage("fan-in/bad").errors());
        assertEquals(1, events.size(), events.toString());
        assertEquals(SourceEvent.Type.SOURCE_FAILED, events.getFirst().type());
        assertEquals("bad", events.getFirst().sourceId());
        assertTrue(events.getFirst().message().contains("missing.mp4"), events.toString());
    }
}
