package io.vlmflux.demos;

import io.vlmflux.demos.serve.ServeOptions;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux serve}'s flags: loopback by default, a reachable address only with a key or --insecure. */
class ServeCommandTest {
    static final Set<String> VALUED = Set.of("model", "host", "port", "api-key", "max-concurrent", "max-body-bytes", "max-tokens",
            "request-timeout", "backend", "device", "cors-origin");

    static ServeOptions options(String env, String... args) {
        return ServeCommand.options(Args.parse(List.of(args), VALUED, Set.of("insecure", "fetch-images")), env);
    }

    @Test void defaultsBindLoopbackWithoutAKey() {
        ServeOptions o = options(null);
        assertEquals("127.0.0.1", o.host());
        assertEquals(8080, o.port());
        assertNull(o.apiKey());
        assertFalse(o.fetchImages());
        assertTrue(options(null, "--fetch-images").fetchImages());
        assertTrue(ServeCommand.isLoopback("localhost"));
        assertTrue(ServeCommand.isLoopback("::1"));
        assertFalse(ServeCommand.isLoopback("0.0.0.0"));
    }

    @Test void aReachableHostNeedsAnApiKeyOrInsecure() {
        UsageException e = assertThrows(UsageException.class, () -> options(null, "--host", "0.0.0.0"));
        assertTrue(e.getMessage().contains("0.0.0.0") && e.getMessage().contains("--api-key") && e.getMessage().contains("--insecure"), e.getMessage());
        assertEquals("k1", options(null, "--host", "0.0.0.0", "--api-key", "k1").apiKey());
        assertEquals("from-env", options("from-env", "--host", "0.0.0.0").apiKey());
        assertNull(options(null, "--host", "0.0.0.0", "--insecure").apiKey());
    }

    @Test void corsIsOffUnlessOriginsAreGiven() {
        assertEquals(List.of(), options(null).corsOrigins());
        assertEquals(List.of("https://a.example", "http://b.example:8000", "*"),
                options(null, "--cors-origin", "https://a.example,http://b.example:8000", "--cors-origin", "*").corsOrigins());
        UsageException e = assertThrows(UsageException.class, () -> options(null, "--cors-origin", "https://a.example/path"));
        assertTrue(e.getMessage().contains("--cors-origin") && e.getMessage().contains("/path"), e.getMessage());
    }

    @Test void boundsAreParsedAndChecked() {
        ServeOptions o = options(null, "--port", "0", "--max-concurrent", "2", "--max-body-bytes", "65536", "--max-tokens", "64", "--request-timeout", "30s");
        assertEquals(0, o.port());
        assertEquals(2, o.maxConcurrent());
        assertEquals(65536, o.maxBodyBytes());
        assertEquals(64, o.maxTokens());
        assertEquals(Duration.ofSeconds(30), o.requestTimeout());
        assertThrows(UsageException.class, () -> options(null, "--port", "70000"));
        assertThrows(UsageException.class, () -> options(null, "--max-concurrent", "0"));
        assertThrows(UsageException.class, () -> options(null, "--request-timeout", "soon"));
        assertFalse(o.toString().contains("k1"));
        assertFalse(options(null, "--api-key", "hidden-key").toString().contains("hidden-key"), "the key stays out of logs");
    }

    @Test void theCommandReportsAFlagErrorAsOneLine() {
        CaptionCommandTest.Result r = CaptionCommandTest.run("serve", "--host", "0.0.0.0", "--port", "0");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().startsWith("error: --host 0.0.0.0 is reachable"), r.err());
    }
}
