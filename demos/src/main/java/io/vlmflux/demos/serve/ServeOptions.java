package io.vlmflux.demos.serve;

import java.time.Duration;
import java.util.List;

/**
 * How {@link ChatServer} listens and what it bounds.
 *
 * @param host           address to bind (loopback unless an API key or an explicit opt-out says otherwise; the
 *                       command checks that)
 * @param port           TCP port, 0 for an ephemeral one
 * @param apiKey         the Bearer token every {@code /v1} request must carry, or null for none
 * @param maxConcurrent  chat completions admitted at once; more are answered 429 with Retry-After
 * @param maxBodyBytes   largest request body; more is 413
 * @param maxTokens      largest {@code max_tokens} a request may ask for, and the default when it asks none
 * @param requestTimeout longest a completion may run; a non-streamed one is answered 504 after it
 * @param fetchImages    whether http(s) image URLs are fetched (public addresses only, bounded); refused otherwise
 * @param corsOrigins    browser origins ({@code https://app.example:8443}) allowed to call the API cross-origin, or
 *                       {@code *} for any; empty: no CORS headers (browsers refuse cross-origin calls)
 */
public record ServeOptions(String host, int port, String apiKey, int maxConcurrent, long maxBodyBytes, int maxTokens, Duration requestTimeout,
                           boolean fetchImages, List<String> corsOrigins) {
    public static final int DEFAULT_PORT = 8080;

    public ServeOptions(String host, int port, String apiKey, int maxConcurrent, long maxBodyBytes, int maxTokens, Duration requestTimeout,
                        boolean fetchImages) {
        this(host, port, apiKey, maxConcurrent, maxBodyBytes, maxTokens, requestTimeout, fetchImages, List.of());
    }

    public ServeOptions {
        if (host == null || host.isBlank()) throw new IllegalArgumentException("host must not be blank");
        if (port < 0 || port > 65535) throw new IllegalArgumentException("port must be in 0..65535, got " + port);
        if (apiKey != null && apiKey.isBlank()) throw new IllegalArgumentException("the API key must not be blank");
        if (maxConcurrent < 1) throw new IllegalArgumentException("max concurrent requests must be >= 1, got " + maxConcurrent);
        if (maxBodyBytes < 1024) throw new IllegalArgumentException("max body bytes must be >= 1024, got " + maxBodyBytes);
        if (maxTokens < 1) throw new IllegalArgumentException("max tokens must be >= 1, got " + maxTokens);
        if (requestTimeout == null || requestTimeout.isNegative() || requestTimeout.isZero())
            throw new IllegalArgumentException("request timeout must be positive, got " + requestTimeout);
        corsOrigins = corsOrigins == null ? List.of() : List.copyOf(corsOrigins);
        for (String o : corsOrigins)
            if (!o.equals("*") && !o.matches("https?://[A-Za-z0-9.\\-\\[\\]:]+"))
                throw new IllegalArgumentException("a CORS origin is '*' or scheme://host[:port] (no path), got '" + o + "'");
    }

    /** Loopback, port 8080, no key, 4 concurrent completions, 20 MiB bodies, 2048 tokens, 5 minutes, no image fetching. */
    public static ServeOptions defaults() {
        return new ServeOptions("127.0.0.1", DEFAULT_PORT, null, 4, 20L << 20, 2048, Duration.ofMinutes(5), false);
    }

    public ServeOptions withHost(String h) { return new ServeOptions(h, port, apiKey, maxConcurrent, maxBodyBytes, maxTokens, requestTimeout, fetchImages, corsOrigins); }
    public ServeOptions withPort(int p) { return new ServeOptions(host, p, apiKey, maxConcurrent, maxBodyBytes, maxTokens, requestTimeout, fetchImages, corsOrigins); }
    public ServeOptions withApiKey(String k) { return new ServeOptions(host, port, k, maxConcurrent, maxBodyBytes, maxTokens, requestTimeout, fetchImages, corsOrigins); }
    public ServeOptions withMaxConcurrent(int n) { return new ServeOptions(host, port, apiKey, n, maxBodyBytes, maxTokens, requestTimeout, fetchImages, corsOrigins); }
    public ServeOptions withMaxBodyBytes(long n) { return new ServeOptions(host, port, apiKey, maxConcurrent, n, maxTokens, requestTimeout, fetchImages, corsOrigins); }
    public ServeOptions withMaxTokens(int n) { return new ServeOptions(host, port, apiKey, maxConcurrent, maxBodyBytes, n, requestTimeout, fetchImages, corsOrigins); }
    public ServeOptions withRequestTimeout(Duration d) { return new ServeOptions(host, port, apiKey, maxConcurrent, maxBodyBytes, maxTokens, d, fetchImages, corsOrigins); }

    public ServeOptions withFetchImages(boolean f) { return new ServeOptions(host, port, apiKey, maxConcurrent, maxBodyBytes, maxTokens, requestTimeout, f, corsOrigins); }

    public ServeOptions withCorsOrigins(List<String> o) { return new ServeOptions(host, port, apiKey, maxConcurrent, maxBodyBytes, maxTokens, requestTimeout, fetchImages, o); }

    @Override public String toString() {
        return "ServeOptions[" + host + ":" + port + (apiKey != null ? ", api key set" : "") + ", " + maxConcurrent + " concurrent, body <= "
                + maxBodyBytes + " B, max_tokens <= " + maxTokens + ", timeout " + requestTimeout + (fetchImages ? ", fetches image URLs" : "")
                + (corsOrigins.isEmpty() ? "" : ", CORS " + corsOrigins) + "]";
    }
}
