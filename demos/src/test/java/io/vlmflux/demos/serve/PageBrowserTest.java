package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.SamplingPolicy;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.sources.Sources;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The page in a real headless Chromium (Debian's {@code chromium}), driven over the Chrome DevTools Protocol with
 * the JDK's own WebSocket client (no driver, no extra dependency): the live view and the captions of
 * {@code test:ball} appear, a question typed into the box is answered, no script error or CSP violation happens, and a
 * screenshot is saved to {@code target/browser/serve-page.png}. Skips, saying why, where no Chromium is installed
 * ({@code ./vlmflux test} installs it: apt-get install chromium).
 */
class PageBrowserTest {
    private static final System.Logger LOG = System.getLogger("vlmflux.test");
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final Path SCREENSHOT = Path.of("target", "browser", "serve-page.png");
    static final ObjectMapper JSON = new ObjectMapper();
    static final Duration WAIT = Duration.ofSeconds(90);

    static String chromium() {
        String env = System.getenv("VLMFLUX_CHROMIUM");
        if (env != null && !env.isBlank() && new File(env).canExecute()) return env;
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(File.pathSeparator))
            for (String name : List.of("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))
                if (new File(dir, name).canExecute()) return new File(dir, name).getPath();
        return null;
    }

    @Test @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void thePageShowsTheLiveViewCaptionsAndAnswersAQuestion() throws Exception {
        page(null, SCREENSHOT);
    }

    /**
     * With {@code --api-key}: the page asks for the key (the server answered 401), then shows the live view and the
     * captions (events read with fetch and the Authorization header) and gets its question answered; no URL the
     * browser requested contains the key, and the events request carried it as a header.
     */
    @Test @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void withAnApiKeyThePageAsksForItAndThenShowsCaptions() throws Exception {
        page("k3y-" + Long.toHexString(System.nanoTime()), SCREENSHOT.resolveSibling("serve-page-api-key.png"));
    }

    private void page(String apiKey, Path screenshot) throws Exception {
        String browser = chromium();
        if (browser == null) {
            String why = "no Chromium found (chromium, chromium-browser, google-chrome on PATH, or VLMFLUX_CHROMIUM): the browser test is skipped; "
                    + "install it with 'apt-get install chromium' (./vlmflux test does so as root)";
            LOG.log(System.Logger.Level.WARNING, why);
            Assumptions.abort(why);
        }
        Path profile = Files.createTempDirectory("vlmflux-chromium");
        Process chrome = null;
        try (VlmRuntime runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU));
             LiveStreams streams = new LiveStreams(runtime, LiveStreams.Options.defaults())) {
            streams.add("ball", "test:ball", Sources.parse("test:ball"), CaptionOptions.defaults().withMaxTokens(16), SamplingPolicy.parse("1s"));
            ChatServer server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withApiKey(apiKey), streams);
            try {
                streams.start();
                chrome = new ProcessBuilder(browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                        "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0", "--remote-allow-origins=*",
                        "--user-data-dir=" + profile, "--window-size=1280,1000", "about:blank").redirectErrorStream(true).start();
                String ws = devToolsUrl(chrome);
                try (Cdp cdp = Cdp.connect(pageTarget(ws))) {
                    cdp.call("Runtime.enable", null);
                    cdp.call("Log.enable", null);
                    cdp.call("Page.enable", null);
                    cdp.call("Network.enable", null);
                    cdp.call("Page.navigate", JSON.createObjectNode().put("url", server.url() + "/"));
                    if (apiKey != null) {
                        cdp.await("(() => { const f = document.getElementById('key-form'); return f !== null && !f.hidden; })()", "the API key form");
                        assertEquals("API key required", cdp.evaluate("document.getElementById('server-status').textContent"));
                        assertEquals("true", cdp.evaluate("document.querySelector('[data-stream]') === null"), "no stream is listed without the key");
                        cdp.evaluate("document.getElementById('api-key').focus()");
                        cdp.call("Input.insertText", JSON.createObjectNode().put("text", apiKey));
                        enter(cdp);
                    }

                    String card = "document.querySelector('[data-stream=\"ball\"]')";
                    cdp.await(card + " !== null", "the stream's card");
                    cdp.await(card + ".querySelector('img.view').naturalWidth > 0", "the live view's first frame");
                    String caption = cdp.await("(() => { const c = " + card + ".querySelector('.captions li.caption'); return c ? c.firstChild.textContent : ''; })()",
                            "a caption under the view");
                    assertFalse(caption.isBlank());

                    cdp.evaluate(card + ".querySelector('input.question').focus()");
                    cdp.call("Input.insertText", JSON.createObjectNode().put("text", "What shape is in the image?"));
                    enter(cdp);
                    String answer = cdp.await("(() => { const a = " + card + ".querySelector('.answer[data-done=\"true\"]:not(.failed) .a'); return a ? a.textContent : ''; })()",
                            "the answer to the typed question");
                    assertFalse(answer.isBlank());
                    assertEquals("What shape is in the image?", cdp.evaluate(card + ".querySelector('.answer .q').textContent").replaceFirst("^Q: ", ""));

                    JsonNode shot = cdp.call("Page.captureScreenshot", JSON.createObjectNode().put("format", "png"));
                    byte[] png = Base64.getDecoder().decode(shot.get("data").asText());
                    Files.createDirectories(screenshot.getParent());
                    Files.write(screenshot, png);
                    assertTrue(png.length > 10_000 && png[1] == 'P' && png[2] == 'N' && png[3] == 'G', "a PNG screenshot of " + png.length + " bytes");
                    LOG.log(System.Logger.Level.INFO, "page screenshot: " + screenshot.toAbsolutePath() + " (caption '" + caption + "', answer '" + answer + "')");
                    List<String> problems = cdp.problems();
                    if (apiKey != null) {
                        // the 401s that made the page ask for the key, and frame.jpg's 503 before the first view frame, are logged by the browser
                        problems.removeIf(p -> p.startsWith("log: Failed to load resource: the server responded with a status of 401")
                                || p.startsWith("log: Failed to load resource: the server responded with a status of 503") && p.endsWith("/frame.jpg"));
                        List<String> urls = cdp.requests().stream().map(r -> r.get("url").asText()).toList();
                        assertFalse(urls.isEmpty());
                        for (String u : urls) assertFalse(u.contains(apiKey), "the key is in a URL: " + u);
                        assertTrue(cdp.requests().stream().anyMatch(r -> r.get("url").asText().endsWith("/v1/streams/ball/events")
                                && ("Bearer " + apiKey).equals(r.path("headers").path("Authorization").asText())), "the events request carried the key: " + urls);
                        assertTrue(cdp.requests().stream().anyMatch(r -> r.get("url").asText().endsWith("/v1/streams/ball/frame.jpg")), "the view was fetched: " + urls);
                    }
                    assertEquals(List.of(), problems, "script errors or content-policy violations on the page");
                }
            } finally {
                if (chrome != null) {
                    // Chromium's helpers (zygote, network service) outlive a killed parent and keep writing to the profile
                    List<ProcessHandle> helpers = chrome.descendants().toList();
                    chrome.destroy();
                    if (!chrome.waitFor(10, TimeUnit.SECONDS)) chrome.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    for (ProcessHandle h : helpers) {
                        h.destroy();
                        try {
                            h.onExit().get(10, TimeUnit.SECONDS);
                        } catch (java.util.concurrent.TimeoutException e) {
                            h.destroyForcibly();
                        }
                    }
                }
                streams.close();
                server.close();
            }
        } finally {
            deleteTree(profile);
        }
    }

    /** Deletes a folder tree; entries that vanish meanwhile (a browser helper still exiting) are skipped, not errors. */
    static void deleteTree(Path root) throws IOException {
        Files.walkFileTree(root, new java.nio.file.SimpleFileVisitor<>() {
            @Override public java.nio.file.FileVisitResult visitFile(Path f, java.nio.file.attribute.BasicFileAttributes a) throws IOException {
                Files.deleteIfExists(f);
                return java.nio.file.FileVisitResult.CONTINUE;
            }

            @Override public java.nio.file.FileVisitResult visitFileFailed(Path f, IOException e) throws IOException {
                if (e instanceof java.nio.file.NoSuchFileException) return java.nio.file.FileVisitResult.CONTINUE;
                throw e;
            }

            @Override public java.nio.file.FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                if (e != null && !(e instanceof java.nio.file.NoSuchFileException)) throw e;
                try {
                    Files.deleteIfExists(d);
                } catch (java.nio.file.DirectoryNotEmptyException late) {
                    // a helper wrote a file after the walk listed the folder: leave it to the OS's tmp cleaning
                }
                return java.nio.file.FileVisitResult.CONTINUE;
            }
        });
    }

    static void enter(Cdp cdp) throws Exception {
        for (String type : List.of("keyDown", "keyUp"))
            cdp.call("Input.dispatchKeyEvent", JSON.createObjectNode().put("type", type).put("key", "Enter").put("code", "Enter")
                    .put("windowsVirtualKeyCode", 13).put("text", type.equals("keyDown") ? "\r" : ""));
    }

    /** Reads Chromium's output until it names its DevTools endpoint; keeps draining it after. */
    static String devToolsUrl(Process chrome) throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(chrome.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<String> url = new CompletableFuture<>();
        List<String> output = new CopyOnWriteArrayList<>();
        Thread t = new Thread(() -> {
            try {
                String line;
                while ((line = r.readLine()) != null) {
                    if (output.size() < 200) output.add(line);
                    int i = line.indexOf("ws://");
                    if (line.startsWith("DevTools listening on") && i >= 0) url.complete(line.substring(i).strip());
                }
            } catch (Exception ignored) {
                // the process ended
            }
            url.completeExceptionally(new IllegalStateException("Chromium exited without a DevTools endpoint: " + output));
        }, "chromium-output");
        t.setDaemon(true);
        t.start();
        return url.get(60, TimeUnit.SECONDS);
    }

    /** The WebSocket address of the browser's first page, from its /json/list. */
    static String pageTarget(String browserWs) throws Exception {
        URI u = URI.create(browserWs);
        try (HttpClient http = HttpClient.newHttpClient()) {
            long end = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (true) {
                String body = http.send(HttpRequest.newBuilder(URI.create("http://" + u.getHost() + ":" + u.getPort() + "/json/list")).build(),
                        HttpResponse.BodyHandlers.ofString()).body();
                for (JsonNode t : JSON.readTree(body)) if (t.get("type").asText().equals("page")) return t.get("webSocketDebuggerUrl").asText();
                if (System.nanoTime() > end) fail("Chromium shows no page target: " + body);
                Thread.sleep(50);
            }
        }
    }

    /** A minimal Chrome DevTools Protocol client: numbered calls answered by id; script errors and console errors kept. */
    static final class Cdp implements WebSocket.Listener, AutoCloseable {
        private final Map<Integer, CompletableFuture<JsonNode>> calls = new ConcurrentHashMap<>();
        private final AtomicInteger ids = new AtomicInteger();
        private final List<String> problems = new CopyOnWriteArrayList<>();
        private final List<JsonNode> requests = new CopyOnWriteArrayList<>();
        private final StringBuilder partial = new StringBuilder();
        private final HttpClient http = HttpClient.newHttpClient();
        private WebSocket ws;

        static Cdp connect(String url) throws Exception {
            Cdp c = new Cdp();
            c.ws = c.http.newWebSocketBuilder().buildAsync(URI.create(url), c).get(30, TimeUnit.SECONDS);
            return c;
        }

        JsonNode call(String method, ObjectNode params) throws Exception {
            int id = ids.incrementAndGet();
            CompletableFuture<JsonNode> f = new CompletableFuture<>();
            calls.put(id, f);
            ObjectNode msg = JSON.createObjectNode().put("id", id).put("method", method);
            if (params != null) msg.set("params", params);
            synchronized (this) {
                ws.sendText(JSON.writeValueAsString(msg), true).get(30, TimeUnit.SECONDS);
            }
            JsonNode r = f.get(60, TimeUnit.SECONDS);
            if (r.has("error")) fail(method + " failed: " + r.get("error"));
            return r.get("result");
        }

        /** The value of a JavaScript expression, as text. */
        String evaluate(String expression) throws Exception {
            JsonNode r = call("Runtime.evaluate", JSON.createObjectNode().put("expression", expression).put("returnByValue", true));
            if (r.has("exceptionDetails")) fail("'" + expression + "' threw: " + r.get("exceptionDetails"));
            JsonNode v = r.get("result").get("value");
            return v == null || v.isNull() ? "" : v.asText();
        }

        /** Evaluates until the value is truthy (non-empty, not false/0); returns it. */
        String await(String expression, String what) throws Exception {
            long end = System.nanoTime() + WAIT.toNanos();
            while (true) {
                String v = evaluate(expression);
                if (!v.isEmpty() && !v.equals("false") && !v.equals("0")) return v;
                if (System.nanoTime() > end) fail("the page did not show " + what + " within " + WAIT + " (problems: " + problems + ")");
                Thread.sleep(100);
            }
        }

        List<String> problems() { return new ArrayList<>(problems); }

        /** The requests the page sent (Network.requestWillBeSent's request: url, method, headers). */
        List<JsonNode> requests() { return List.copyOf(requests); }

        @Override public CompletionStage<?> onText(WebSocket w, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                String text = partial.toString();
                partial.setLength(0);
                try {
                    JsonNode m = JSON.readTree(text);
                    if (m.has("id")) {
                        CompletableFuture<JsonNode> f = calls.remove(m.get("id").asInt());
                        if (f != null) f.complete(m);
                    } else if (m.path("method").asText().equals("Network.requestWillBeSent")) {
                        requests.add(m.path("params").path("request"));
                    } else if (m.path("method").asText().equals("Runtime.exceptionThrown")) {
                        problems.add("exception: " + m.path("params").path("exceptionDetails"));
                    } else if (m.path("method").asText().equals("Log.entryAdded") && m.path("params").path("entry").path("level").asText().equals("error")) {
                        problems.add("log: " + m.path("params").path("entry").path("text").asText() + " " + m.path("params").path("entry").path("url").asText());
                    }
                } catch (Exception e) {
                    problems.add("unreadable DevTools message: " + e.getMessage());
                }
            }
            w.request(1);
            return null;
        }

        @Override public void close() {
            try {
                call("Browser.close", null);
            } catch (Exception ignored) {
                // the browser is going away
            }
            ws.abort();
            http.close();
        }
    }
}
