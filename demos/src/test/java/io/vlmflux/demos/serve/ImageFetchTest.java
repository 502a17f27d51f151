package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServer;

import java.net.InetAddress;
import java.time.Duration;
import java.util.Base64;
import java.util.List;

import static io.vlmflux.demos.serve.ChatServerTest.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --fetch-images}: http(s) image URLs fetched from a real image server on loopback (a fetcher that may reach
 * loopback), and refused for loopback, private and link-local targets by the default fetcher.
 */
class ImageFetchTest {
    static VlmRuntime runtime;
    static DisposableServer images;
    static ChatServer open, guarded;
    static final int MAX = 64 * 1024;

    @BeforeAll static void start() throws Exception {
        byte[] png = Base64.getDecoder().decode(circlePngDataUrl().substring("data:image/png;base64,".length()));
        images = HttpServer.create().host("127.0.0.1").port(0).route(r -> r
                .get("/circle.png", (req, res) -> res.header("Content-Type", "image/png").sendByteArray(Mono.just(png)))
                .get("/text", (req, res) -> res.header("Content-Type", "text/plain").sendString(Mono.just("hello")))
                .get("/big.png", (req, res) -> res.header("Content-Type", "image/png")   // chunked: no Content-Length
                        .sendByteArray(Flux.range(0, 64).map(i -> new byte[4096])))
                .get("/moved", (req, res) -> res.sendRedirect("/circle.png"))).bindNow();
        runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU));
        ServeOptions o = ServeOptions.defaults().withPort(0).withFetchImages(true);
        open = ChatServer.start(runtime, o, new ImageFetcher(MAX, Duration.ofSeconds(10), a -> true));
        guarded = ChatServer.start(runtime, o);
    }

    @AfterAll static void stop() {
        if (open != null) open.close();
        if (guarded != null) guarded.close();
        if (images != null) images.disposeNow();
        if (runtime != null) runtime.close();
    }

    static String at(String path) { return "http://127.0.0.1:" + images.port() + path; }

    @Test void aFetchedImageIsSeen() throws Exception {
        var r = post(open, imageRequest(List.of(at("/circle.png"))).replace("\"max_tokens\":4", "\"max_tokens\":32,\"temperature\":0"), List.of());
        assertEquals(200, r.statusCode(), r.body());
        String text = JSON.readTree(r.body()).at("/choices/0/message/content").asText();
        assertTrue(text.contains("circle"), text);
    }

    @Test void badAnswersAre400NamingTheFieldAndUrl() throws Exception {
        for (String path : List.of("/text", "/big.png", "/moved", "/missing")) {
            JsonNode e = error(post(open, imageRequest(List.of(at(path))), List.of()), 400);
            assertEquals("messages[0].content[0].image_url.url", e.get("param").asText(), e.toString());
            assertEquals("invalid_image_url", e.get("code").asText(), e.toString());
            assertTrue(e.get("message").asText().contains(at(path)), e.toString());
        }
    }

    @Test void nonPublicTargetsAreRefused() throws Exception {
        for (String url : List.of(at("/circle.png"), "http://localhost:" + images.port() + "/circle.png", "http://[::1]:" + images.port() + "/circle.png",
                "http://10.1.2.3/x.png", "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]:" + images.port() + "/circle.png")) {
            JsonNode e = error(post(guarded, imageRequest(List.of(url)), List.of()), 400);
            assertTrue(e.get("message").asText().contains("non-public"), url + ": " + e);
        }
        JsonNode e = error(post(guarded, imageRequest(List.of("ftp://example.com/x.png")), List.of()), 400);
        assertEquals("messages[0].content[0].image_url.url", e.get("param").asText(), e.toString());
    }

    @Test void publicAddressesAreThoseRoutedOnTheInternet() throws Exception {
        for (String a : List.of("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"))
            assertTrue(ImageFetcher.isPublic(InetAddress.getByName(a)), a);
        for (String a : List.of("127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "255.255.255.255",
                "224.0.0.1", "::1", "::", "fe80::1", "fd12:3456::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:7f00:1::1", "64:ff9b::7f00:1"))
            assertFalse(ImageFetcher.isPublic(InetAddress.getByName(a)), a);
    }
}
