package io.vlmflux.pipeline.caption;

import io.vlmflux.sources.Frame;
import reactor.core.publisher.Flux;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** Paths of the repository's fixtures and a tap that remembers every frame that went by. */
final class CaptionTestSupport {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    static final Path TINY_VL = ROOT.resolve("llm/src/test/resources/fixtures/tiny-qwen2vl");
    static final Path SHAPES = ROOT.resolve("demos/models/shapes-vl");
    static final Path COCKATOO = ROOT.resolve("sources/src/test/resources/media/cockatoo.mp4");

    private CaptionTestSupport() {}

    /** Records frames as they leave the source, to check later that each was closed. */
    static final class Tap {
        final List<Frame> seen = new CopyOnWriteArrayList<>();

        Flux<Frame> apply(Flux<Frame> frames) { return frames.doOnNext(seen::add); }

        long open() { return seen.stream().filter(f -> !f.isReleased()).count(); }

        void awaitAllReleased(long millis) throws InterruptedException {
            long deadline = System.nanoTime() + millis * 1_000_000;
            while (open() > 0 && System.nanoTime() < deadline) Thread.sleep(10);
        }
    }
}
