package io.vlmflux.sources;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.*;

class FileSourceTest {

    @Test
    void realshortHas36FramesOf320x240InOrderUnderRequestOnePacing() {
        FrameSource src = Sources.parse(Media.media("realshort.mp4").toString());
        assertFalse(src.isLive());
        AtomicLong next = new AtomicLong();
        AtomicLong lastPts = new AtomicLong(-1);
        StepVerifier.Step<Frame> step = StepVerifier.create(src.frames(), 0).expectSubscription();
        for (int i = 0; i < 36; i++) {
            step = step.thenRequest(1).assertNext(f -> {
                try (f) {
                    assertEquals(320, f.width());
                    assertEquals(240, f.height());
                    assertEquals(PixelFormat.RGB, f.format());
                    assertEquals(next.getAndIncrement(), f.sequence());
                    assertTrue(f.ptsNanos() > lastPts.get(), "pts increases");
                    lastPts.set(f.ptsNanos());
                }
            });
            // nothing is pushed beyond demand (completion may come without demand once the file has ended)
            if (i < 35) step = step.expectNoEvent(Duration.ofMillis(i == 0 ? 100 : 1));
        }
        step.expectComplete().verify(Duration.ofSeconds(30));
        assertEquals(36, src.stats().emitted());
        assertEquals(0, src.stats().dropped());
    }

    @Test
    void cockatooHas280FramesOf1280x720AndScalesInsideGstreamer() {
        StepVerifier.create(Sources.parse("file://" + Media.media("cockatoo.mp4")).frames().doOnNext(Frame::close).count())
                .expectNext(280L).verifyComplete();
        StepVerifier.create(Sources.parse(Media.media("cockatoo.mp4").toString(), new SourceOptions(320, 180, PixelFormat.GRAY8)).frames().take(3))
                .thenConsumeWhile(f -> {
                    try (f) {
                        return f.width() == 320 && f.height() == 180 && f.format() == PixelFormat.GRAY8;
                    }
                }).verifyComplete();
    }

    @Test
    void stillImagesSingleFolderAndGlob(@TempDir Path dir) throws Exception {
        StepVerifier.create(Sources.parse(Media.media("astronaut.png").toString()).frames())
                .assertNext(f -> { try (f) { assertEquals(512, f.width()); assertEquals(512, f.height()); assertEquals(0, f.sequence()); } })
                .verifyComplete();
        Files.copy(Media.media("chelsea.png"), dir.resolve("a.png"));
        Files.copy(Media.media("astronaut.png"), dir.resolve("b.png"));
        Files.writeString(dir.resolve("notes.txt"), "not an image");
        List<int[]> sizes = new java.util.ArrayList<>();
        StepVerifier.create(Sources.parse("images:" + dir).frames(), 0)
                .thenRequest(1).assertNext(f -> { try (f) { sizes.add(new int[] {f.width(), f.height(), (int) f.sequence()}); } })
                .thenRequest(1).assertNext(f -> { try (f) { sizes.add(new int[] {f.width(), f.height(), (int) f.sequence()}); } })
                .thenRequest(1).verifyComplete();
        assertArrayEquals(new int[] {451, 300, 0}, sizes.get(0));
        assertArrayEquals(new int[] {512, 512, 1}, sizes.get(1));
        StepVerifier.create(Sources.parse("images:" + dir + "/b*.png").frames().map(f -> { try (f) { return f.width(); } }))
                .expectNext(512).verifyComplete();
    }

    @Test
    void chelseaPixelsMatchAcrossFormats() {
        // The same image as RGB and BGR: channels swap exactly.
        Frame rgb = Sources.parse("images:" + Media.media("chelsea.png")).frames().blockFirst();
        Frame bgr = Sources.parse("images:" + Media.media("chelsea.png") + "?format=BGR").frames().blockFirst();
        try (rgb; bgr) {
            for (int y = 0; y < 300; y += 37)
                for (int x = 0; x < 451; x += 41) {
                    int[] a = Media.rgb(rgb, x, y), b = Media.rgb(bgr, x, y);
                    assertArrayEquals(a, new int[] {b[2], b[1], b[0]});
                }
        }
    }

    @Test
    void missingFileNamesSpecAndCause() {
        String spec = "/nonexistent/dir/missing.mp4";
        StepVerifier.create(Sources.parse(spec).frames())
                .expectErrorSatisfies(e -> {
                    assertInstanceOf(SourceException.class, e);
                    assertTrue(e.getMessage().contains(spec), e.getMessage());
                    assertTrue(e.getMessage().toLowerCase().contains("not found") || e.getMessage().contains("No such file"), e.getMessage());
                }).verify(Duration.ofSeconds(20));
    }

    @Test
    void corruptFileEndsWithError(@TempDir Path dir) throws Exception {
        Path bad = dir.resolve("garbage.mp4");
        byte[] junk = new byte[64 * 1024];
        new Random(42).nextBytes(junk);
        Files.write(bad, junk);
        StepVerifier.create(Sources.parse(bad.toString()).frames())
                .expectErrorSatisfies(e -> {
                    assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());
                    assertTrue(e.getMessage().length() > bad.toString().length() + 15, e.getMessage());
                }).verify(Duration.ofSeconds(20));
    }

    @Test
    void cancelMidFileReleasesEverything() throws Exception {
        int before = GstNative.livePipelines();
        StepVerifier.create(Sources.parse(Media.media("cockatoo.mp4").toString()).frames().take(5).doOnNext(Frame::close))
                .expectNextCount(5).verifyComplete();
        // take(5) cancels on the pump thread, which tears the pipeline down right after: wait for it, bounded
        long end = System.nanoTime() + 5_000_000_000L;
        while (GstNative.livePipelines() > before && System.nanoTime() < end) Thread.onSpinWait();
        assertEquals(before, GstNative.livePipelines());
        List<Frame> kept = Flux.from(Sources.parse(Media.media("realshort.mp4").toString()).frames().take(10)).collectList().block();
        assertEquals(10, kept.size());
        kept.forEach(f -> assertEquals(320, f.width())); // pixels stay valid after the pipeline is gone (beyond the map limit: copies)
        kept.forEach(Frame::close);
        assertTrue(kept.stream().allMatch(Frame::isReleased));
    }
}
