package io.vlmflux.demos.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.handler.codec.http.HttpMethod;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.GenerationConfig;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.constrain.ConstraintException;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.llm.runtime.Prompt;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.SignalType;
import reactor.core.scheduler.Schedulers;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An OpenAI-compatible HTTP server on one {@link VlmRuntime}: {@code GET /healthz}, {@code GET /v1/models},
 * {@code POST /v1/chat/completions} (plain or server-sent events). Owns the listening socket, the admission count
 * (at most {@code maxConcurrent} completions; more are answered 429), the body and token bounds, the request deadline
 * and the API key check. It does not own the runtime: the caller closes it after {@link #close()}.
 *
 * <p>A completion's generation is the runtime's demand-driven {@code Flux}: a client that goes away cancels it, and
 * the runtime frees the sequence's KV cache.
 */
public final class ChatServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.serve");
    /**
     * Largest image a request may send, in pixels (4096x4096; preprocessing scales to far fewer anyway): a small
     * compressed upload must not make the server allocate hundreds of MiB.
     */
    static final long MAX_IMAGE_PIXELS = 1L << 24;
    /** How much of an oversized body is read and dropped before the 413 (then the connection is closed). */
    static final long DRAIN_BYTES = 16L << 20;
    /** Largest fetched image (--fetch-images), and the time one fetch may take. */
    static final long MAX_FETCH_BYTES = 20L << 20;
    static final Duration FETCH_TIMEOUT = Duration.ofSeconds(20);

    private final VlmRuntime runtime;
    private final ServeOptions options;
    private final String modelId;
    private final long created = System.currentTimeMillis() / 1000;
    private final ObjectMapper json;
    private final Semaphore admission;
    private final byte[] apiKey;
    private final AtomicLong cancelled = new AtomicLong();
    private final ImageFetcher fetcher;   // null: http(s) image URLs are refused
    private final ServeMetrics metrics;
    private final DisposableServer server;
    private final Routes extra;   // null: none
    private final java.util.concurrent.atomic.AtomicInteger connections = new java.util.concurrent.atomic.AtomicInteger();

    /**
     * More routes served next to the API (e.g. {@link LiveStreams}): asked for every path the server does not know,
     * after the API key check for {@code /v1} paths. Returns null for a path it does not serve; may throw
     * {@link ApiException}.
     */
    @FunctionalInterface
    public interface Routes {
        Publisher<Void> route(String path, HttpServerRequest req, HttpServerResponse res);
    }

    private ChatServer(VlmRuntime runtime, ServeOptions options, ImageFetcher fetcher) { this(runtime, options, fetcher, null); }

    private ChatServer(VlmRuntime runtime, ServeOptions options, ImageFetcher fetcher, Routes extra) {
        this.extra = extra;
        this.runtime = runtime;
        this.options = options;
        this.modelId = runtime.dir().toAbsolutePath().normalize().getFileName().toString();
        this.json = new ObjectMapper();
        // a body may be one large base64 image: let strings be as long as the body bound allows
        json.getFactory().setStreamReadConstraints(StreamReadConstraints.builder()
                .maxStringLength((int) Math.min(Integer.MAX_VALUE, options.maxBodyBytes())).build());
        this.admission = new Semaphore(options.maxConcurrent());
        this.apiKey = options.apiKey() == null ? null : options.apiKey().getBytes(StandardCharsets.UTF_8);
        this.fetcher = fetcher;
        this.metrics = new ServeMetrics(runtime);
        try {
            this.server = HttpServer.create().host(options.host()).port(options.port())
                    .doOnConnection(c -> {
                        connections.incrementAndGet();
                        c.onDispose(connections::decrementAndGet);
                    })
                    .handle(this::handle)
                    .bindNow(Duration.ofSeconds(10));
        } catch (RuntimeException e) {
            Throwable c = e.getCause() != null ? e.getCause() : e;
            throw new IllegalStateException("cannot listen on " + options.host() + ":" + options.port() + ": " + c.getMessage(), e);
        }
    }

    /** Binds {@code options.host():options.port()} and serves {@code runtime} until {@link #close()}. */
    public static ChatServer start(VlmRuntime runtime, ServeOptions options) {
        return new ChatServer(runtime, options, options.fetchImages() ? new ImageFetcher(MAX_FETCH_BYTES, FETCH_TIMEOUT) : null);
    }

    /** With a given fetcher (tests: one that may reach loopback). */
    static ChatServer start(VlmRuntime runtime, ServeOptions options, ImageFetcher fetcher) {
        return new ChatServer(runtime, options, fetcher);
    }

    /** {@link #start(VlmRuntime, ServeOptions)} that also serves {@code extra} (e.g. {@link LiveStreams}). */
    public static ChatServer start(VlmRuntime runtime, ServeOptions options, Routes extra) {
        return new ChatServer(runtime, options, options.fetchImages() ? new ImageFetcher(MAX_FETCH_BYTES, FETCH_TIMEOUT) : null, extra);
    }

    /** Open client connections now. */
    public int openConnections() { return connections.get(); }

    /** The bound port (the ephemeral one when the options asked for 0). */
    public int port() { return server.port(); }

    /** {@code http://host:port}, IPv6 literals bracketed. */
    public String url() {
        String h = options.host().contains(":") ? "[" + options.host() + "]" : options.host();
        return "http://" + h + ":" + port();
    }

    /** The model's id in {@code /v1/models} and in requests: its folder name. */
    public String modelId() { return modelId; }

    /**
     * The server's meters ({@code GET /metrics}): other parts of the server (live streams) register theirs here,
     * e.g. {@code metrics().source(id).frameIn()}.
     */
    public ServeMetrics metrics() { return metrics; }

    /** Blocks until the server is closed. */
    public void awaitClose() { server.onDispose().block(); }

    /** Completions whose generation was cancelled (a client went away, or the deadline passed). */
    long cancelledGenerations() { return cancelled.get(); }

    /** Stops listening and closes open connections (their generations are cancelled). Idempotent. */
    @Override public void close() { server.disposeNow(Duration.ofSeconds(10)); }

    // ---- routing ---------------------------------------------------------------------------------------------------

    private Publisher<Void> handle(HttpServerRequest req, HttpServerResponse res) {
        String path = req.fullPath();
        if (path.length() > 1 && path.endsWith("/")) path = path.substring(0, path.length() - 1);
        HttpMethod method = req.method();
        try {
            if (cors(req, res, path)) return res.status(204).header("Content-Length", "0").send();
            if (path.equals("/healthz")) {
                allow(method, HttpMethod.GET, path);
                ObjectNode o = json.createObjectNode().put("status", "ok").put("model", modelId).put("backend", runtime.backend().wire());
                return sendJson(res, 200, o);
            }
            if (path.equals("/metrics")) {
                allow(method, HttpMethod.GET, path);
                authorize(req);
                byte[] text = metrics.scrape().getBytes(StandardCharsets.UTF_8);
                return res.status(200).header("Content-Type", ServeMetrics.CONTENT_TYPE).header("Content-Length", Integer.toString(text.length))
                        .sendByteArray(Mono.just(text)).then();
            }
            if (path.equals("/v1") || path.startsWith("/v1/")) {
                authorize(req);
                if (path.equals("/v1/models")) {
                    allow(method, HttpMethod.GET, path);
                    ObjectNode o = json.createObjectNode().put("object", "list");
                    o.putArray("data").add(modelObject());
                    return sendJson(res, 200, o);
                }
                if (path.startsWith("/v1/models/")) {
                    allow(method, HttpMethod.GET, path);
                    String id = path.substring("/v1/models/".length());
                    if (!id.equals(modelId)) throw unknownModel(id, null);
                    return sendJson(res, 200, modelObject());
                }
                if (path.equals("/v1/chat/completions")) {
                    allow(method, HttpMethod.POST, path);
                    return chat(req, res);
                }
            }
            if (extra != null) {
                Publisher<Void> p = extra.route(path, req, res);
                if (p != null) return p;
            }
            throw new ApiException(404, "invalid_request_error", "Invalid URL (" + method.name() + " " + path + ")", null, "unknown_url");
        } catch (ApiException e) {
            return sendError(res, e);
        }
    }

    private static void allow(HttpMethod method, HttpMethod allowed, String path) {
        if (!method.equals(allowed) && !(allowed.equals(HttpMethod.GET) && method.equals(HttpMethod.HEAD)))
            throw new ApiException(405, "invalid_request_error", path + " takes " + allowed.name() + ", got " + method.name(), null, "method_not_allowed");
    }

    private void authorize(HttpServerRequest req) {
        if (apiKey == null) return;
        String h = req.requestHeaders().get("Authorization");
        String token = h != null && h.regionMatches(true, 0, "Bearer ", 0, 7) ? h.substring(7).strip() : null;
        if (token == null) {
            metrics.rejected("unauthorized");
            throw new ApiException(401, "invalid_request_error", "missing API key: send the header 'Authorization: Bearer KEY'", null, "missing_api_key");
        }
        if (!MessageDigest.isEqual(token.getBytes(StandardCharsets.UTF_8), apiKey)) {
            metrics.rejected("unauthorized");
            throw new ApiException(401, "invalid_request_error", "incorrect API key", null, "invalid_api_key");
        }
    }

    /**
     * CORS (only with {@code corsOrigins} configured): an allowed {@code Origin} gets {@code Access-Control-Allow-Origin}
     * on the answer; true for a preflight ({@code OPTIONS} with {@code Access-Control-Request-Method}) that is answered
     * 204 at once. A preflight from an origin not allowed is 403. Without configured origins nothing is added, and
     * browsers refuse cross-origin calls.
     */
    private boolean cors(HttpServerRequest req, HttpServerResponse res, String path) {
        List<String> allowed = options.corsOrigins();
        String origin = req.requestHeaders().get("Origin");
        if (allowed.isEmpty() || origin == null) return false;
        boolean ok = allowed.contains("*") || allowed.contains(origin);
        boolean preflight = req.method().equals(HttpMethod.OPTIONS) && req.requestHeaders().contains("Access-Control-Request-Method");
        if (!ok) {
            if (preflight) throw new ApiException(403, "invalid_request_error", "the origin " + ChatRequest.abbreviate(origin)
                    + " may not call this server (--cors-origin)", null, "cors_origin_not_allowed");
            return false;
        }
        res.header("Access-Control-Allow-Origin", allowed.contains("*") ? "*" : origin);
        res.header("Vary", "Origin");
        if (!preflight) return false;
        res.header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.header("Access-Control-Max-Age", "600");
        return true;
    }

    private ObjectNode modelObject() {
        return json.createObjectNode().put("id", modelId).put("object", "model").put("created", created).put("owned_by", "vlmflux");
    }

    private ApiException unknownModel(String id, String param) {
        return ApiException.notFound("The model '" + id + "' does not exist; this server serves '" + modelId + "'", param, "model_not_found");
    }

    // ---- chat completions ------------------------------------------------------------------------------------------

    private Mono<Void> chat(HttpServerRequest req, HttpServerResponse res) {
        String length = req.requestHeaders().get("Content-Length");
        if (length != null) {
            long n;
            try { n = Long.parseLong(length.trim()); } catch (NumberFormatException e) { n = -1; }
            if (n > options.maxBodyBytes()) {
                metrics.rejected("too_large");
                ApiException e = tooLarge(n + " bytes");
                // read what the client is sending (up to a bound) before answering: closing on unread data resets
                // the connection, and the client would see that instead of the 413
                if (n > options.maxBodyBytes() + DRAIN_BYTES) return sendError(res, e);
                return req.receive().then().timeout(options.requestTimeout()).onErrorResume(x -> Mono.empty()).then(Mono.defer(() -> sendError(res, e)));
            }
        }
        if (!admission.tryAcquire()) {
            metrics.rejected("busy");
            res.header("Retry-After", "1");
            return sendError(res, new ApiException(429, "rate_limit_exceeded", "the server is busy: " + options.maxConcurrent()
                    + " completion(s) are running; retry after 1 s", null, "too_many_requests"));
        }
        metrics.admitted();
        AtomicBoolean released = new AtomicBoolean();
        Runnable release = () -> { if (released.compareAndSet(false, true)) { admission.release(); metrics.released(); } };
        long start = System.nanoTime();
        return readBody(req)
                .timeout(options.requestTimeout())   // a client that uploads too slowly gives its slot back
                .publishOn(Schedulers.boundedElastic())   // JSON, base64 and image decoding stay off the event loop
                .map(this::parse)
                .flatMap(r -> complete(r, res, start))
                // once an event stream has begun its errors travel inside it; a failed write means the client left
                .onErrorResume(e -> res.hasSentHeaders() ? Mono.empty() : sendError(res, toApi(e)))
                .doFinally(s -> {
                    release.run();
                    metrics.requestDone("chat", res.status().code());
                });
    }

    private ApiException tooLarge(String what) {
        return new ApiException(413, "invalid_request_error", "the request body is " + what + "; this server accepts at most "
                + options.maxBodyBytes() + " bytes (--max-body-bytes)", null, "request_too_large");
    }

    /**
     * The body, at most {@code maxBodyBytes} (a chunked body is counted as it arrives). Past the bound the rest is read
     * and dropped, up to {@link #DRAIN_BYTES} more, so that the client reads the 413 rather than a reset connection.
     */
    private Mono<byte[]> readBody(HttpServerRequest req) {
        long max = options.maxBodyBytes();
        long[] total = {0};
        return req.receive()
                .reduceWith(ByteArrayOutputStream::new, (out, buf) -> {
                    int n = buf.readableBytes();
                    total[0] += n;
                    if (total[0] > max + DRAIN_BYTES) throw tooLarge("over " + max + " bytes");
                    if (total[0] > max) return out;
                    byte[] b = new byte[n];
                    buf.getBytes(buf.readerIndex(), b);
                    out.write(b, 0, n);
                    return out;
                })
                .map(out -> {
                    if (total[0] > max) throw tooLarge(total[0] + " bytes");
                    return out.toByteArray();
                });
    }

    private ChatRequest parse(byte[] body) {
        JsonNode node;
        try {
            node = json.readTree(body);
        } catch (JsonProcessingException e) {
            throw ApiException.invalid(null, "the request body is not valid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")" : ""));
        } catch (java.io.IOException e) {
            throw ApiException.invalid(null, "cannot read the request body: " + e.getMessage());
        }
        if (node == null || node.isMissingNode()) throw ApiException.invalid(null, "the request body is empty; a JSON object is expected");
        ChatRequest r = ChatRequest.parse(node, fetcher != null);
        if (!r.model().equals(modelId)) throw unknownModel(r.model(), "model");
        if (r.maxTokens() != null && r.maxTokens() > options.maxTokens()) {
            String field = node.hasNonNull("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
            throw ApiException.invalid(field, field + " " + r.maxTokens() + " is over this server's limit of " + options.maxTokens() + " (--max-tokens)");
        }
        return r;
    }

    /** Renders, fetches and decodes the images, prepares and generates; answers JSON or an event stream once the prompt is ready. */
    private Mono<Void> complete(ChatRequest r, HttpServerResponse res, long start) {
        PromptTemplate template;
        try {
            template = runtime.promptTemplate(r.messages());
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid("messages", e.getMessage());
        }
        int maxTokens = r.maxTokens() != null ? r.maxTokens() : options.maxTokens();
        GenerateOptions go = new GenerateOptions(sampling(r), maxTokens, r.ignoreEos() ? Set.of() : runtime.stopTokens(), r.stop(),
                runtime.cachedPrefix(template.sharedPrefix()), null).withControls(controls(r));
        Duration deadline = options.requestTimeout();
        String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
        long createdAt = System.currentTimeMillis() / 1000;
        return Flux.fromIterable(r.images())
                .concatMap(im -> im.bytes() != null ? Mono.just(im) : fetcher.fetch(im.url(), im.param()).map(b -> new ChatRequest.Image(b, im.url(), im.param())))
                .collectList()
                .publishOn(Schedulers.boundedElastic())
                .flatMap(images -> runtime.prepare(template, decodeImages(images)))
                .onErrorMap(IllegalArgumentException.class, e -> ApiException.invalid("messages", e.getMessage()))
                .timeout(deadline)
                .flatMap(prompt -> {
                    int promptTokens = prompt.length();
                    int context = runtime.config().maxPositionEmbeddings();
                    if (promptTokens >= context) {
                        prompt.close();
                        return Mono.error(new ApiException(400, "invalid_request_error", "the prompt is " + promptTokens + " tokens (images included); "
                                + modelId + " has a context of " + context + " positions", "messages", "context_length_exceeded"));
                    }
                    Duration left = deadline.minusNanos(System.nanoTime() - start);
                    if (left.isNegative() || left.isZero()) left = Duration.ofMillis(1);
                    Flux<TokenEvent> tokens = withDeadline(generate(prompt, go), left);
                    return r.stream() ? stream(r, res, id, createdAt, promptTokens, tokens, start)
                            : plain(r, res, id, createdAt, promptTokens, tokens, start);
                });
    }

    /** response_format, logprobs and logit_bias as the runtime's token controls (a schema is compiled here, cached by the runtime). */
    private TokenControls controls(ChatRequest r) {
        int vocab = runtime.config().vocabSize();
        for (int id : r.logitBias().keySet())
            if (id >= vocab) throw ApiException.invalid("logit_bias", "'logit_bias' names token " + id + "; " + modelId + " has " + vocab + " tokens");
        if (r.format() == null && !r.logprobs() && r.logitBias().isEmpty()) return TokenControls.none();
        TokenControls c;
        try {
            c = runtime.controls(r.format(), r.logprobs() ? Math.max(1, r.topLogprobs()) : 0);
        } catch (ConstraintException e) {
            String param = r.format() instanceof ConstraintSpec.JsonSchema ? "response_format.json_schema.schema" : "response_format";
            throw new ApiException(400, "invalid_request_error", "'" + param + "': " + e.getMessage(), param, "invalid_response_format");
        }
        return r.logitBias().isEmpty() ? c : c.withLogitBias(r.logitBias());
    }

    /** OpenAI's {@code logprobs.content} entries for the events' tokens (special tokens, such as end of turn, left out). */
    private ArrayNode logprobs(ChatRequest r, List<TokenEvent> events) {
        ArrayNode content = json.createArrayNode();
        var tok = runtime.tokenizer();
        for (TokenEvent ev : events) {
            if (ev.logprobs() == null || ev.tokenId() < 0 || tok.isSpecial(ev.tokenId())) continue;
            ObjectNode e = tokenLogprob(ev.tokenId(), ev.logprobs().chosen());
            ArrayNode top = e.putArray("top_logprobs");
            for (var t : ev.logprobs().top().subList(0, Math.min(r.topLogprobs(), ev.logprobs().top().size())))
                top.add(tokenLogprob(t.tokenId(), t.logprob()));
            content.add(e);
        }
        return content;
    }

    private ObjectNode tokenLogprob(int id, float logprob) {
        byte[] b = runtime.tokenizer().tokenBytes(id);
        if (b == null) b = new byte[0];
        ObjectNode e = json.createObjectNode();
        e.put("token", new String(b, StandardCharsets.UTF_8));
        e.put("logprob", Float.isInfinite(logprob) ? -9999.0 : logprob);   // OpenAI writes -9999.0 for "impossible"
        ArrayNode bytes = e.putArray("bytes");
        for (byte x : b) bytes.add(x & 0xFF);
        return e;
    }

    private ObjectNode logprobsObject(ArrayNode content) {
        ObjectNode o = json.createObjectNode();
        o.set("content", content);
        o.putNull("refusal");
        return o;
    }

    private Flux<TokenEvent> generate(Prompt prompt, GenerateOptions go) {
        return runtime.generate(prompt, go).doFinally(s -> { if (s == SignalType.CANCEL) cancelled.incrementAndGet(); });
    }

    /** {@code tokens} cancelled (the runtime frees the sequence) and ended by a TimeoutException once {@code left} passes. */
    private Flux<TokenEvent> withDeadline(Flux<TokenEvent> tokens, Duration left) {
        return Flux.defer(() -> {
            AtomicBoolean late = new AtomicBoolean();
            return tokens.takeUntilOther(Mono.delay(left).doOnNext(x -> late.set(true)))
                    .concatWith(Mono.defer(() -> late.get() ? Mono.error(new TimeoutException()) : Mono.empty()));
        });
    }

    private List<Frame> decodeImages(List<ChatRequest.Image> images) {
        List<Frame> frames = new ArrayList<>();
        try {
            for (ChatRequest.Image im : images) {
                try {
                    frames.add(Images.decode(im.bytes(), "'" + im.param() + "'", MAX_IMAGE_PIXELS));
                } catch (IllegalArgumentException e) {
                    throw ApiException.invalid(im.param(), e.getMessage());
                }
            }
            return frames;
        } catch (RuntimeException e) {
            for (Frame f : frames) f.close();
            throw e;
        }
    }

    private SamplingParams sampling(ChatRequest r) {
        GenerationConfig gen = runtime.generationConfig();
        long seed = r.seed() != null ? r.seed() : ThreadLocalRandom.current().nextLong();
        if (r.temperature() == null && r.topP() == null) return gen.toSampling(seed);
        double t = r.temperature() != null ? r.temperature() : gen.doSample() ? gen.temperature() : 1.0;
        if (t < SamplingParams.GREEDY_BELOW) return SamplingParams.greedyDecoding().withRepetitionPenalty(gen.repetitionPenalty());
        double topP = r.topP() != null ? r.topP() : gen.doSample() ? gen.topP() : 1.0;
        return new SamplingParams(false, t, gen.doSample() ? gen.topK() : 0, topP, gen.doSample() ? gen.minP() : 0.0, gen.repetitionPenalty(), seed);
    }

    /** Records the time to the first token of a completion admitted at {@code start}; returns it. */
    private long firstToken(long start) {
        long t = System.nanoTime() - start;
        metrics.firstToken(t);
        return t;
    }

    private static String finish(FinishReason f) {
        return switch (f) {
            case STOP, STOP_STRING -> "stop";
            case LENGTH -> "length";
            case CANCELLED -> "cancelled";
        };
    }

    /** One {@code chat.completion} object once generation ends. */
    private Mono<Void> plain(ChatRequest r, HttpServerResponse res, String id, long createdAt, int promptTokens, Flux<TokenEvent> tokens, long start) {
        StringBuilder text = new StringBuilder();
        int[] count = {0};
        long[] ttft = {-1};
        FinishReason[] reason = {FinishReason.LENGTH};
        List<TokenEvent> withLogprobs = new ArrayList<>();
        return tokens.doOnNext(ev -> {
                    if (ttft[0] < 0) ttft[0] = firstToken(start);
                    text.append(ev.textDelta());
                    if (ev.tokenId() >= 0) count[0]++;
                    if (ev.finishReason() != null) reason[0] = ev.finishReason();
                    if (r.logprobs()) withLogprobs.add(ev);
                })
                .then(Mono.defer(() -> {
                    ObjectNode o = head(id, "chat.completion", createdAt);
                    ObjectNode c = o.putArray("choices").addObject();
                    c.put("index", 0);
                    ObjectNode m = c.putObject("message");
                    m.put("role", "assistant").put("content", text.toString()).putNull("refusal");
                    if (r.logprobs()) c.set("logprobs", logprobsObject(logprobs(r, withLogprobs)));
                    else c.putNull("logprobs");
                    c.put("finish_reason", finish(reason[0]));
                    o.set("usage", usage(promptTokens, count[0]));
                    metrics.completed(count[0], Math.max(0, ttft[0]), System.nanoTime() - start);
                    log(r, 200, promptTokens, count[0], start);
                    return sendJson(res, 200, o);
                }));
    }

    /** Server-sent events: a role chunk, one chunk per text delta, a finish chunk, the usage chunk if asked, [DONE]. */
    private Mono<Void> stream(ChatRequest r, HttpServerResponse res, String id, long createdAt, int promptTokens, Flux<TokenEvent> tokens, long start) {
        int[] count = {0};
        long[] ttft = {-1};
        ObjectNode roleDelta = json.createObjectNode().put("role", "assistant").put("content", "");
        List<TokenEvent> pendingLogprobs = new ArrayList<>();   // tokens whose text has not been sent yet (partial UTF-8, held stop prefix)
        Flux<String> events = Flux.concat(
                Mono.fromSupplier(() -> chunk(r, id, createdAt, roleDelta, null, null)),
                tokens.concatMapIterable(ev -> {
                    if (ttft[0] < 0) ttft[0] = firstToken(start);
                    if (ev.tokenId() >= 0) count[0]++;
                    if (r.logprobs()) pendingLogprobs.add(ev);
                    List<String> out = new ArrayList<>(2);
                    boolean last = ev.finishReason() != null;
                    if (!ev.textDelta().isEmpty() || (last && r.logprobs() && !pendingLogprobs.isEmpty())) {
                        ObjectNode lp = null;
                        if (r.logprobs()) {
                            lp = logprobsObject(logprobs(r, pendingLogprobs));
                            pendingLogprobs.clear();
                        }
                        out.add(chunk(r, id, createdAt, json.createObjectNode().put("content", ev.textDelta()), null, lp));
                    }
                    if (last) out.add(chunk(r, id, createdAt, json.createObjectNode(), finish(ev.finishReason()), null));
                    return out;
                }),
                Mono.fromSupplier(() -> {
                    metrics.completed(count[0], Math.max(0, ttft[0]), System.nanoTime() - start);
                    log(r, 200, promptTokens, count[0], start);
                    if (!r.includeUsage()) return "";
                    ObjectNode o = head(id, "chat.completion.chunk", createdAt);
                    o.putArray("choices");
                    o.set("usage", usage(promptTokens, count[0]));
                    return write(o);
                }).filter(s -> !s.isEmpty()),
                Mono.just("[DONE]"))
                .onErrorResume(e -> Mono.just(write(toApi(e).body(json))))
                .map(s -> "data: " + s + "\n\n");
        return res.status(200)
                .header("Content-Type", "text/event-stream; charset=utf-8")
                .header("Cache-Control", "no-cache")
                .sendString(events, StandardCharsets.UTF_8)
                .then();
    }

    private ObjectNode head(String id, String object, long createdAt) {
        ObjectNode o = json.createObjectNode();
        o.put("id", id).put("object", object).put("created", createdAt).put("model", modelId).putNull("system_fingerprint");
        return o;
    }

    private String chunk(ChatRequest r, String id, long createdAt, ObjectNode delta, String finish, ObjectNode logprobs) {
        ObjectNode o = head(id, "chat.completion.chunk", createdAt);
        ObjectNode c = o.putArray("choices").addObject();
        c.put("index", 0);
        c.set("delta", delta);
        if (logprobs != null) c.set("logprobs", logprobs);
        else c.putNull("logprobs");
        c.put("finish_reason", finish);
        if (r.includeUsage()) o.putNull("usage");
        return write(o);
    }

    private ObjectNode usage(int prompt, int completion) {
        return json.createObjectNode().put("prompt_tokens", prompt).put("completion_tokens", completion).put("total_tokens", prompt + completion);
    }

    private void log(ChatRequest r, int status, int promptTokens, int completion, long start) {
        LOG.log(System.Logger.Level.INFO, () -> String.format("POST /v1/chat/completions %d%s: %d prompt + %d completion tokens, %d image(s), %d ms",
                status, r.stream() ? " (stream)" : "", promptTokens, completion, r.images().size(), (System.nanoTime() - start) / 1_000_000));
    }

    // ---- responses -------------------------------------------------------------------------------------------------

    private ApiException toApi(Throwable e) {
        if (e instanceof ApiException a) return a;
        if (e instanceof TimeoutException)
            return new ApiException(504, "timeout", "the completion did not finish within " + options.requestTimeout() + " (request timeout)", null, "timeout");
        LOG.log(System.Logger.Level.ERROR, "chat completion failed", e);
        return new ApiException(500, "server_error", "internal error: " + e.getMessage(), null, null);
    }

    private Mono<Void> sendError(HttpServerResponse res, ApiException e) {
        if (e.status >= 500 || e.status == 413) res.keepAlive(false);
        return sendJson(res, e.status, e.body(json));
    }

    private Mono<Void> sendJson(HttpServerResponse res, int status, JsonNode body) {
        byte[] b = write(body).getBytes(StandardCharsets.UTF_8);
        return res.status(status)
                .header("Content-Type", "application/json")
                .header("Content-Length", Integer.toString(b.length))
                .sendByteArray(Mono.just(b))
                .then();
    }

    private String write(JsonNode n) {
        try {
            return json.writeValueAsString(n);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize a response: " + e.getMessage(), e);
        }
    }
}
