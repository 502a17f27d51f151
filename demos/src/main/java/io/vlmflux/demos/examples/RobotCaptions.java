package io.vlmflux.demos.examples;

import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.VlmPipeline;
import io.vlmflux.pipeline.caption.Caption;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.sources.Sources;

import java.nio.file.Path;

/**
 * What a robot application writes to get captions of its camera: source → sampling → caption → subscribe.
 * Run: {@code java -cp "demos/target/vlmflux-demos-*.jar:demos/target/lib/*" io.vlmflux.demos.examples.RobotCaptions [SOURCE] [MODEL]}
 * (defaults: {@code test:ball} and the demo model; use {@code v4l2:///dev/video0} for a camera).
 */
public final class RobotCaptions {
    private RobotCaptions() {}

    public static void main(String[] args) {
        String source = args.length > 0 ? args[0] : "test:ball";
        Path modelDir = Path.of(args.length > 1 ? args[1] : "demos/models/shapes-vl");

        try (VlmRuntime model = VlmRuntime.load(modelDir)) {                   // weights, tokenizer, template: once (cuda when a GPU is usable)
            VlmPipeline<Caption> pipeline = VlmPipeline.builder()
                    .source(Sources.parse(source))                                    // camera, RTSP, file, test pattern
                    .every("1s")                                                      // at most one frame a second
                    .captions(model, CaptionOptions.defaults());                     // files: every sample; cameras: newest frame wins
            pipeline.flux()
                    .take(10)                                                         // or run until disposed
                    .doOnNext(c -> System.out.printf("[seq %d] %s%n", c.frame().sequence(), c.text()))
                    .blockLast();
        }
    }
}
