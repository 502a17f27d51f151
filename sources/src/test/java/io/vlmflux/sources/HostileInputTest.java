package io.vlmflux.sources;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.Disposable;
import reactor.test.StepVerifier;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.*;

/** Damaged files, malformed specs and specs that try to smuggle elements into a launch line. */
class HostileInputTest {

    @Test
    void imageFolderSkipsCorruptAndTruncatedFilesAndReadsTheRest(@TempDir Path dir) throws Exception {
        byte[] chelsea = Files.readAllBytes(Media.media("chelsea.png"));
        Files.write(dir.resolve("a.png"), chelsea);
        byte[] corrupt = Arrays.copyOf(chelsea, 32_000);                  // a real PNG header, then noise
        byte[] noise = new byte[30_000];
        new Random(7).nextBytes(noise);
        System.arraycopy(noise, 0, corrupt, 2_000, noise.length);
        Files.write(dir.resolve("b.png"), corrupt);
        Files.copy(Media.media("astronaut.png"), dir.resolve("c.png"));
        Files.write(dir.resolve("d.png"), Arrays.copyOf(chelsea, chelsea.length / 10)); // truncated
        Files.write(dir.resolve("e.png"), chelsea);

        FrameSource src = Sources.parse("images:" + dir);
        List<SourceEvent> events = new CopyOnWriteArrayList<>();
        Disposable ev = src.events().subscribe(events::add);
        List<FrameInfo> frames = new ArrayList<>();
        try {
            StepVerifier.create(src.frames().doOnNext(f -> { try (f) { frames.add(f.info()); } }).count())
                    .expectNext(3L).verifyComplete();
        } finally {
            ev.dispose();
        }
        assertEquals(List.of("a.png", "c.png", "e.png"), frames.stream().map(FrameInfo::label).toList());
        assertEquals(List.of(0L, 1L, 2L), frames.stream().map(FrameInfo::sequence).toList());
        assertEquals(List.of(451, 512, 451), frames.stream().map(FrameInfo::width).toList());
        for (int i = 1; i < frames.size(); i++)
            assertTrue(frames.get(i).ptsNanos() > frames.get(i - 1).ptsNanos(), "pts increase from still to still: " + frames);
        assertEquals(2, src.stats().skipped());
        List<SourceEvent> skips = events.stream().filter(e -> e.type() == SourceEvent.Type.SOURCE_SKIPPED).toList();
        assertEquals(2, skips.size(), events.toString());
        assertTrue(skips.get(0).message().contains("b.png") && skips.get(0).message().length() > dir.resolve("b.png").toString().length() + 10, skips.toString());
        assertTrue(skips.get(1).message().contains("d.png"), skips.toString());
        assertEquals("source_skipped", skips.get(0).type().wire());
    }

    @Test
    void aFolderOfOnlyBrokenImagesFailsNamingTheLastOne(@TempDir Path dir) throws Exception {
        Files.write(dir.resolve("x.png"), new byte[] {(byte) 0x89, 'P', 'N', 'G', 1, 2, 3});
        StepVerifier.create(Sources.parse("images:" + dir).frames())
                .expectErrorSatisfies(e -> {
                    assertTrue(e.getMessage().contains("none of the 1 file could be decoded"), e.getMessage());
                    assertTrue(e.getMessage().contains("x.png"), e.getMessage());
                }).verify(Duration.ofSeconds(20));
    }

    @Test
    void truncatedMp4DeliversWhatDecodedAndWarnsNamingTheFile(@TempDir Path dir) throws Exception {
        // realshort.mp4 has its index at the end; remux it with the index first (as streaming-friendly files are),
        // then cut it in half: the demuxer knows the full duration but finds only half of the samples.
        Path fast = dir.resolve("fast.mp4");
        MemorySegment p = GstNative.parseLaunch("filesrc location=" + Sources.quote(Media.media("realshort.mp4").toString())
                + " ! qtdemux ! h264parse ! mp4mux faststart=true ! filesink location=" + Sources.quote(fast.toString()));
        try {
            GstNative.setState(p, GstNative.STATE_PLAYING);
            MemorySegment bus = GstNative.getBus(p);
            long end = System.nanoTime() + 20_000_000_000L;
            GstNative.BusMessage m = null;
            while (m == null && System.nanoTime() < end) {
                m = GstNative.popMessage(bus, GstNative.MSG_EOS | GstNative.MSG_ERROR);
                if (m == null) Thread.sleep(10);
            }
            GstNative.unrefObject(bus);
            assertNotNull(m, "remux did not finish");
            GstNative.BusMessage done = m;
            assertEquals(GstNative.MSG_EOS, done.type(), () -> "remux failed: " + done.describe());
        } finally {
            GstNative.destroyPipeline(p);
        }
        StepVerifier.create(Sources.parse(fast.toString()).frames().doOnNext(Frame::close).count()).expectNext(36L).verifyComplete();
        byte[] whole = Files.readAllBytes(fast);
        Path half = dir.resolve("half.mp4");
        Files.write(half, Arrays.copyOf(whole, whole.length / 2));

        FrameSource src = Sources.parse(half.toString());
        List<SourceEvent> events = new CopyOnWriteArrayList<>();
        Disposable ev = src.events().subscribe(events::add);
        long n;
        try {
            n = src.frames().doOnNext(Frame::close).count().block(Duration.ofSeconds(30));
        } finally {
            ev.dispose();
        }
        assertTrue(n > 5 && n < 36, "frames of the half file: " + n);
        assertEquals(1, src.stats().warnings(), src.stats().toString());
        List<SourceEvent> warnings = events.stream().filter(e -> e.type() == SourceEvent.Type.SOURCE_WARNING).toList();
        assertEquals(1, warnings.size(), events.toString());
        assertTrue(warnings.getFirst().message().contains(half.toString()), warnings.toString());
        assertTrue(warnings.getFirst().message().contains("truncated"), warnings.toString());
        // the intact file gives no warning
        FrameSource ok = Sources.parse(Media.media("realshort.mp4").toString());
        ok.frames().doOnNext(Frame::close).blockLast(Duration.ofSeconds(30));
        assertEquals(0, ok.stats().warnings());
    }

    @Test
    void malformedUrlsFailAtOnceNamingTheUri() {
        for (String spec : List.of("rtsp://", "rtsp://[::1", "rtsps:///cam", "http://", "https://host:99999/x", "rtsp://cam/a b")) {
            SourceException e = assertThrows(SourceException.class, () -> Sources.parse(spec), spec);
            assertTrue(e.getMessage().contains("malformed URL '" + spec.replace("?", "") + "'"), e.getMessage());
            // "at once": the error is delivered during subscribe, on the caller's thread (nothing is opened or
            // waited for), which a wall-clock bound only approximated and a loaded machine could break
            java.util.concurrent.atomic.AtomicReference<Throwable> failed = new java.util.concurrent.atomic.AtomicReference<>();
            Sources.frames(spec, null).subscribe(Frame::close, failed::set);
            assertNotNull(failed.get(), spec + ": no error during subscribe");
            assertTrue(failed.get().getMessage().startsWith("source '" + spec + "'"), failed.get().getMessage());
        }
    }

    @Test
    void specsThatTryToInjectElementsAreRejectedNamingTheField(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("x");
        String udp = "udp://1.2.3.4 ! filesink location=" + target + " ! fakesrc@:5000";
        SourceException e = assertThrows(SourceException.class, () -> Sources.parse(udp));
        assertTrue(e.getMessage().contains("field 'host'"), e.getMessage());
        StepVerifier.create(Sources.frames(udp, null)).expectError(SourceException.class).verify(Duration.ofSeconds(5));

        String[][] cases = {
                {"udp://@:5000 ! filesink location=" + target, "field 'port'"},
                {"udp://@:5000?encoding=H264 ! filesink location=" + target, "unsupported RTP encoding"},
                {"udp://@:5000?latency=1 ! filesink location=" + target, "option 'latency' expects an integer"},
                {"rtsp://cam/x\" ! filesink location=" + target + " ! fakesrc name=\"y", "malformed URL"},
                {"rtsp://cam/x?transport=tcp ! filesink location=" + target, "option 'transport'"},
                {"v4l2:///dev/video0\" ! filesink location=" + target + " ! fakesrc name=\"y", "field 'device'"},
                {"test:ball ! filesink location=" + target, "bad test pattern name"},
                {"test:ball?format=RGB,width=1 ! filesink location=" + target, "format"},
        };
        for (String[] c : cases) {
            SourceException x = assertThrows(SourceException.class, () -> Sources.parse(c[0]), c[0]);
            assertTrue(x.getMessage().contains(c[1]), c[0] + " -> " + x.getMessage());
        }
        // a file name is a path, quoted: even one that reads like a launch line is just a (valid) image
        Path sneaky = dir.resolve("a\" ! filesink location=\"" + "pwned.txt\" ! fakesrc name=\"z.png");
        Files.copy(Media.media("chelsea.png"), sneaky);
        StepVerifier.create(Sources.parse("images:" + dir).frames().map(f -> { try (f) { return f.label(); } }))
                .expectNext(sneaky.getFileName().toString()).verifyComplete();
        assertFalse(Files.exists(target), "a spec wrote " + target);
        assertFalse(Files.exists(Path.of("pwned.txt")), "a file name wrote pwned.txt");
        assertFalse(Files.exists(dir.resolve("pwned.txt")));
    }

    @Test
    void sourcesOfTheSameSpecKeepTheirOwnIds() {
        String spec = "test:ball?live=false&num-buffers=3&width=64&height=48";
        List<FrameSource> named = new ArrayList<>();
        for (int i = 0; i < 5; i++) named.add(Sources.parse(spec).named("s" + i));
        for (int i = 0; i < 5; i++) {
            String want = "s" + i;
            assertEquals(want, named.get(i).id());
            StepVerifier.create(named.get(i).frames().map(f -> { try (f) { return f.sourceId() + "#" + f.sequence(); } }))
                    .expectNext(want + "#0", want + "#1", want + "#2").verifyComplete();
        }
        // a wrapped (non-GStreamer) source is relabelled frame by frame; the pixels pass on unchanged
        PushSource push = Sources.push("cam");
        FrameSource renamed = push.named("left");
        Frame original = Frame.builder().format(PixelFormat.GRAY8).size(2, 2).data(MemorySegment.ofArray(new byte[] {1, 2, 3, 4})).sourceId("cam").build();
        StepVerifier.create(renamed.frames())
                .then(() -> { push.push(original); push.complete(); })
                .assertNext(f -> { try (f) { assertEquals("left", f.sourceId()); assertEquals(4, f.data().byteSize()); } })
                .verifyComplete();
        assertTrue(original.isReleased());
    }
}
