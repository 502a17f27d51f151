package io.vlmflux.sources;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.Disposable;
import reactor.test.StepVerifier;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.foreign.MemorySegment;
import java.net.DatagramSocket;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.*;

class NetworkSourceTest {
    private static final String STREAM = "videotestsrc is-live=true pattern=red ! video/x-raw,width=160,height=120,framerate=30/1"
            + " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 config-interval=1";
    private Process server;
    private MemorySegment sender;

    @AfterEach
    void cleanup() {
        if (server != null) server.destroyForcibly();
        if (sender != null) GstNative.destroyPipeline(sender);
    }

    static int freeTcpPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) { return s.getLocalPort(); }
    }

    static Process startRtspServer(int port) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                RtspServerMain.class.getName(), String.valueOf(port), "/cam", STREAM).redirectErrorStream(true).start();
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line = r.readLine();
        if (!"READY".equals(line)) { p.destroyForcibly(); throw new IllegalStateException("RTSP server did not start: " + line); }
        Thread drain = new Thread(() -> { try { while (r.readLine() != null) { } } catch (IOException ignored) { } });
        drain.setDaemon(true);
        drain.start();
        return p;
    }

    static void await(String what, Duration max, BooleanSupplier cond) throws InterruptedException {
        long end = System.nanoTime() + max.toNanos();
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > end) fail("timed out after " + max + " waiting for " + what);
            Thread.sleep(20);
        }
    }

    @Test
    void rtspStreamsReconnectsAfterServerRestartAndResumes() throws Exception {
        int port = freeTcpPort();
        server = startRtspServer(port);
        FrameSource src = Sources.parse("rtsp://127.0.0.1:" + port + "/cam?backoff=200ms&timeout=3s&latency=50");
        assertTrue(src.isLive());
        AtomicInteger frames = new AtomicInteger();
        AtomicReference<Throwable> error = new AtomicReference<>();
        List<int[]> colours = new CopyOnWriteArrayList<>();
        List<FrameInfo> infos = new CopyOnWriteArrayList<>();
        List<SourceEvent> events = new CopyOnWriteArrayList<>();
        Disposable ev = src.events().subscribe(events::add);
        Disposable d = src.frames().subscribe(f -> {
            try (f) {
                if (f.width() != 160 || f.height() != 120) error.set(new AssertionError("size " + f));
                if (colours.size() < 3) colours.add(Media.rgb(f, 80, 60));
                infos.add(f.info());
                frames.incrementAndGet();
            }
        }, error::set);
        try {
            await("first RTSP frames", Duration.ofSeconds(20), () -> frames.get() >= 10 || error.get() != null);
            assertNull(error.get());
            Media.assertNear(new int[] {255, 0, 0}, colours.get(0), 40, "red over RTSP");
            server.destroyForcibly().waitFor();
            await("a reconnect attempt", Duration.ofSeconds(15), () -> src.stats().reconnects() >= 1);
            int before = frames.get();
            server = startRtspServer(port);
            await("frames after the server restarted", Duration.ofSeconds(30), () -> frames.get() >= before + 10 || error.get() != null);
            assertNull(error.get(), () -> "stream ended: " + error.get());
            assertTrue(src.stats().reconnects() >= 1);
            // seq counts on, pts never go back across the reconnect
            for (int i = 1; i < infos.size(); i++) {
                assertEquals(infos.get(i - 1).sequence() + 1, infos.get(i).sequence(), "seq at " + i);
                assertTrue(infos.get(i).ptsNanos() > infos.get(i - 1).ptsNanos(), "pts at " + i + ": " + infos.get(i - 1) + " -> " + infos.get(i));
            }
            // the lifecycle in order; GStreamer may or may not post a warning ("the server closed the connection") first,
            // depending on whether rtspsrc notices the closed socket before the end of stream: warnings are not lifecycle
            List<SourceEvent.Type> types = events.stream().map(SourceEvent::type).filter(t -> t != SourceEvent.Type.SOURCE_WARNING).distinct().toList();
            assertEquals(List.of(SourceEvent.Type.SOURCE_DOWN, SourceEvent.Type.SOURCE_RETRY, SourceEvent.Type.SOURCE_UP), types, events.toString());
            assertTrue(events.stream().allMatch(e -> e.sourceId().equals(src.id())));
        } finally {
            d.dispose();
            ev.dispose();
        }
    }

    @Test
    void unreachableRtspHostGivesUpAfterBoundedRetries() throws Exception {
        int port = freeTcpPort(); // closed now
        String spec = "rtsp://127.0.0.1:" + port + "/x?retries=2&backoff=50ms";
        FrameSource src = Sources.parse(spec);
        StepVerifier.create(src.frames())
                .expectErrorSatisfies(e -> {
                    assertTrue(e.getMessage().startsWith("source '" + spec + "'"), e.getMessage());
                    assertTrue(e.getMessage().contains("gave up after 2 reconnect attempts"), e.getMessage());
                }).verify(Duration.ofSeconds(60));
        assertEquals(2, src.stats().reconnects());
    }

    @Test
    void httpFileIsDecodedLosslessly() throws Exception {
        com.sun.net.httpserver.HttpServer http = com.sun.net.httpserver.HttpServer.create(new java.net.InetSocketAddress("127.0.0.1", 0), 0);
        byte[] body = java.nio.file.Files.readAllBytes(Media.media("realshort.mp4"));
        http.createContext("/secret.mp4", ex -> { ex.getResponseHeaders().add("WWW-Authenticate", "Basic realm=\"cams\""); ex.sendResponseHeaders(401, -1); ex.close(); });
        http.createContext("/forbidden.mp4", ex -> { ex.sendResponseHeaders(403, -1); ex.close(); });
        http.createContext("/clip.mp4", ex -> {
            ex.getResponseHeaders().add("Content-Type", "video/mp4");
            ex.sendResponseHeaders(200, body.length);
            try (var os = ex.getResponseBody()) { os.write(body); }
        });
        http.start();
        try {
            String spec = "http://127.0.0.1:" + http.getAddress().getPort() + "/clip.mp4?width=160&height=120";
            FrameSource src = Sources.parse(spec);
            assertFalse(src.isLive());
            StepVerifier.create(src.frames().doOnNext(f -> { assertEquals(160, f.width()); f.close(); }).count())
                    .expectNext(36L).verifyComplete();
            // 404, 401 and 403 are permanent: no retry (even with retries left), the status in the message
            String base = "http://127.0.0.1:" + http.getAddress().getPort();
            for (String[] c : new String[][] {{"/missing.mp4", "404"}, {"/secret.mp4", "401"}, {"/forbidden.mp4", "403"}}) {
                String badSpec = base + c[0] + "?retries=5&backoff=2s&live=true";
                FrameSource bad = Sources.parse(badSpec);
                StepVerifier.create(bad.frames())
                        .expectErrorSatisfies(e -> {
                            assertTrue(e.getMessage().startsWith("source '" + badSpec + "'"), e.getMessage());
                            assertTrue(e.getMessage().contains("not retried"), e.getMessage());
                            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
                        })
                        .verify(Duration.ofSeconds(10));
                // no retry: counted before every wait (a wall-clock bound under the 2 s backoff was load-dependent)
                assertEquals(0, bad.stats().reconnects(), c[0]);
            }
        } finally {
            http.stop(0);
        }
    }

    @Test
    void rtpOverUdpFromASenderPipeline() throws Exception {
        int port;
        try (DatagramSocket s = new DatagramSocket(0)) { port = s.getLocalPort(); }
        FrameSource src = Sources.parse("udp://@:" + port + "?encoding=H264&width=80&height=60");
        sender = GstNative.parseLaunch(STREAM.replace("name=pay0 ", "") + " ! udpsink host=127.0.0.1 port=" + port);
        GstNative.setState(sender, GstNative.STATE_PLAYING);
        StepVerifier.create(src.frames().take(5))
                .thenConsumeWhile(f -> {
                    try (f) {
                        assertEquals(80, f.width());
                        assertEquals(60, f.height());
                        Media.assertNear(new int[] {255, 0, 0}, Media.rgb(f, 40, 30), 40, "red over RTP/UDP");
                        return true;
                    }
                })
                .verifyComplete();
    }
}
