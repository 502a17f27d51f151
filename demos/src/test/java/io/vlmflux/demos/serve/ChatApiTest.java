package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.models.ResponseFormatJsonSchema;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionTokenLogprob;
import com.openai.models.chat.completions.StructuredChatCompletion;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static io.vlmflux.demos.serve.ChatServerTest.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The OpenAI API surface beyond plain chat: {@code response_format} through constrained decoding, {@code logprobs}
 * (plain and streamed), {@code logit_bias}, {@code GET /metrics}, CORS, an API key on a non-loopback binding, and the
 * errors of requests the server cannot serve. The real server on the demo model (cpu), the official client and raw HTTP.
 */
class ChatApiTest {
    static VlmRuntime runtime;
    static ChatServer server;
    static OpenAIClient client;

    static final String SCHEMA = """
            {"type":"object","properties":{"shape":{"type":"string","enum":["circle","square","triangle"]},
             "count":{"type":"integer","minimum":0,"maximum":9},"note":{"type":"string","maxLength":12}},
             "required":["shape","count","note"],"additionalProperties":false}""";

    @BeforeAll static void start() {
        runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU));
        server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withMaxTokens(512).withCorsOrigins(List.of("https://app.example")));
        client = OpenAIOkHttpClient.builder().baseUrl(server.url() + "/v1").apiKey("unused").maxRetries(0).build();
    }

    @AfterAll static void stop() {
        if (client != null) client.close();
        if (server != null) server.close();
        if (runtime != null) runtime.close();
    }

    // ---- response_format ---------------------------------------------------------------------------------------------

    @Test void jsonSchemaOutputParsesAndValidates() throws Exception {
        Map<String, JsonValue> schema = new HashMap<>();
        JSON.readTree(SCHEMA).properties().forEach(e -> schema.put(e.getKey(), JsonValue.from(JSON.convertValue(e.getValue(), Object.class))));
        ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder().model("shapes-vl")
                .addUserMessage("a red circle").maxCompletionTokens(120).temperature(0.0)
                .responseFormat(ResponseFormatJsonSchema.builder().jsonSchema(ResponseFormatJsonSchema.JsonSchema.builder().name("scene").strict(true)
                        .schema(ResponseFormatJsonSchema.JsonSchema.Schema.builder().putAllAdditionalProperties(schema).build()).build()).build())
                .build());
        String text = c.choices().getFirst().message().content().orElseThrow();
        assertEquals("stop", c.choices().getFirst().finishReason().asString(), text);
        JsonNode o = JSON.readTree(text);
        assertTrue(List.of("circle", "square", "triangle").contains(o.get("shape").asText()), text);
        assertTrue(o.get("count").isInt() && o.get("count").asInt() >= 0 && o.get("count").asInt() <= 9, text);
        assertTrue(o.get("note").isTextual() && o.get("note").asText().length() <= 12, text);
        assertEquals(3, o.size(), text);
        assertTrue(ConstraintSpec.jsonSchema(SCHEMA).matches(text), text);
    }

    /** The official client's typed structured outputs: it derives the schema from a class and parses the answer into it. */
    public enum Shape { circle, square, triangle }

    public record Scene(Shape shape, boolean filled) {}

    @Test void theClientsTypedStructuredOutputRoundTrips() {
        StructuredChatCompletion<Scene> c = client.chat().completions().create(ChatCompletionCreateParams.builder().model("shapes-vl")
                .addUserMessage("a blue square").maxCompletionTokens(80).temperature(0.0).responseFormat(Scene.class).build());
        Scene s = c.choices().getFirst().message().content().orElseThrow();   // parsed by the client: it would throw on bad JSON
        assertNotNull(s.shape());
        assertEquals("stop", c.choices().getFirst().finishReason().asString());
    }

    @Test void jsonObjectOutputIsAJsonObject() throws Exception {
        HttpResponse<String> r = post(server, """
                {"model":"shapes-vl","messages":[{"role":"user","content":"a green triangle"}],"max_tokens":300,"temperature":0,
                 "response_format":{"type":"json_object"},"logit_bias":{"%d":5}}""".formatted(firstId("}")), List.of());
        assertEquals(200, r.statusCode(), r.body());
        JsonNode c = JSON.readTree(r.body()).at("/choices/0");
        String text = c.at("/message/content").asText();
        assertTrue(text.startsWith("{"), text);
        if (c.get("finish_reason").asText().equals("stop")) assertTrue(JSON.readTree(text).isObject(), text);
        else assertTrue(ResponseFormats.JSON_OBJECT.matches(text) || !text.endsWith("}"), "a cut-off answer is a prefix of an object: " + text);
    }

    @Test void badResponseFormatsAre400NamingTheField() throws Exception {
        JsonNode e = error(post(server, body("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"$ref\":\"#/a\"}}}"), List.of()), 400);
        assertEquals("response_format.json_schema.schema", e.get("param").asText(), e.toString());
        assertTrue(e.get("message").asText().contains("$ref"), e.toString());
        e = error(post(server, body("\"response_format\":{\"type\":\"yaml\"}"), List.of()), 400);
        assertEquals("response_format.type", e.get("param").asText(), e.toString());
        e = error(post(server, body("\"response_format\":{\"type\":\"json_schema\"}"), List.of()), 400);
        assertEquals("response_format.json_schema", e.get("param").asText(), e.toString());
    }

    // ---- logprobs and logit_bias -------------------------------------------------------------------------------------

    @Test void logprobsHaveOpenAisShapeAndAgreeWithTheTextAndTheStream() {
        ChatCompletion c = client.chat().completions().create(greedy("a red circle").logprobs(true).topLogprobs(3).build());
        String text = c.choices().getFirst().message().content().orElseThrow();
        List<ChatCompletionTokenLogprob> lps = c.choices().getFirst().logprobs().orElseThrow().content().orElseThrow();
        assertFalse(lps.isEmpty());
        StringBuilder joined = new StringBuilder();
        for (ChatCompletionTokenLogprob t : lps) {
            joined.append(t.token());
            assertTrue(t.logprob() <= 0, t.toString());
            assertEquals(3, t.topLogprobs().size(), t.toString());
            for (int i = 1; i < 3; i++) assertTrue(t.topLogprobs().get(i - 1).logprob() >= t.topLogprobs().get(i).logprob(), t.toString());
            // greedy: the chosen token is the best one
            assertEquals(t.topLogprobs().getFirst().token(), t.token(), t.toString());
            assertEquals(t.topLogprobs().getFirst().logprob(), t.logprob(), 1e-6);
            byte[] b = new byte[t.bytes().orElseThrow().size()];
            for (int i = 0; i < b.length; i++) b[i] = t.bytes().get().get(i).byteValue();
            assertEquals(t.token(), new String(b, StandardCharsets.UTF_8));
        }
        assertEquals(text, joined.toString());
        long completion = c.usage().orElseThrow().completionTokens();
        assertTrue(lps.size() == completion || lps.size() == completion - 1, "one entry per token, the end-of-turn token left out: " + lps.size() + " of " + completion);

        List<ChatCompletionTokenLogprob> streamed = new ArrayList<>();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(greedy("a red circle").logprobs(true).topLogprobs(3).build())) {
            s.stream().forEach(ch -> ch.choices().forEach(choice -> choice.logprobs().flatMap(l -> l.content()).ifPresent(streamed::addAll)));
        }
        assertEquals(lps.stream().map(ChatCompletionTokenLogprob::token).toList(), streamed.stream().map(ChatCompletionTokenLogprob::token).toList());
        for (int i = 0; i < lps.size(); i++) assertEquals(lps.get(i).logprob(), streamed.get(i).logprob(), 1e-5);
    }

    @Test void logitBiasSteersTheChoice() throws Exception {
        ChatCompletion c = client.chat().completions().create(greedy("a red circle").logprobs(true).topLogprobs(2).build());
        ChatCompletionTokenLogprob first = c.choices().getFirst().logprobs().orElseThrow().content().orElseThrow().getFirst();
        String second = first.topLogprobs().get(1).token();
        int secondId = firstId(second);
        HttpResponse<String> r = post(server, """
                {"model":"shapes-vl","messages":[{"role":"user","content":"a red circle"}],"max_tokens":4,"temperature":0,"seed":7,
                 "logprobs":true,"logit_bias":{"%d":100}}""".formatted(secondId), List.of());
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(second, JSON.readTree(r.body()).at("/choices/0/logprobs/content/0/token").asText(), r.body());
        // banning the greedy first token: something else comes first
        r = post(server, """
                {"model":"shapes-vl","messages":[{"role":"user","content":"a red circle"}],"max_tokens":4,"temperature":0,
                 "logprobs":true,"logit_bias":{"%d":-100}}""".formatted(firstId(first.token())), List.of());
        assertNotEquals(first.token(), JSON.readTree(r.body()).at("/choices/0/logprobs/content/0/token").asText(), r.body());
    }

    @Test void badLogprobAndBiasFieldsAre400() throws Exception {
        assertEquals("top_logprobs", error(post(server, body("\"top_logprobs\":3"), List.of()), 400).get("param").asText());
        assertEquals("top_logprobs", error(post(server, body("\"logprobs\":true,\"top_logprobs\":21"), List.of()), 400).get("param").asText());
        assertEquals("logit_bias", error(post(server, body("\"logit_bias\":{\"abc\":1}"), List.of()), 400).get("param").asText());
        assertEquals("logit_bias", error(post(server, body("\"logit_bias\":{\"5\":101}"), List.of()), 400).get("param").asText());
        JsonNode e = error(post(server, body("\"logit_bias\":{\"99999999\":1}"), List.of()), 400);
        assertTrue(e.get("message").asText().contains("99999999"), e.toString());
    }

    // ---- metrics -----------------------------------------------------------------------------------------------------

    @Test void metricsParseAsPrometheusTextAndCountersMove() throws Exception {
        Map<String, Double> before = scrape(server);
        server.metrics().source("cam-1").frameIn();
        server.metrics().source("cam-1").frameIn();
        server.metrics().source("cam-1").framesDropped(1);
        assertEquals(200, post(server, body("\"max_tokens\":3"), List.of()).statusCode());
        error(post(server, "{\"model\":", List.of()), 400);
        // a request is counted when its exchange completes, which may be just after the client has read the response
        String ok = "vlmflux_requests_total{endpoint=\"chat\",status=\"200\"}";
        String bad = "vlmflux_requests_total{endpoint=\"chat\",status=\"400\"}";
        io.vlmflux.demos.Await.until(java.time.Duration.ofSeconds(10), "both requests counted", () -> {
            try {
                Map<String, Double> m = scrape(server);
                return m.getOrDefault(ok, 0.0) >= before.getOrDefault(ok, 0.0) + 1 && m.getOrDefault(bad, 0.0) >= before.getOrDefault(bad, 0.0) + 1;
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
        Map<String, Double> after = scrape(server);
        assertEquals(before.getOrDefault(ok, 0.0) + 1, after.get(ok), after.keySet().toString());
        assertEquals(before.getOrDefault(bad, 0.0) + 1, after.get(bad));
        assertTrue(after.get("vlmflux_generated_tokens_total") >= before.getOrDefault("vlmflux_generated_tokens_total", 0.0) + 1);
        assertEquals(before.getOrDefault("vlmflux_chat_ttft_seconds_count", 0.0) + 1, after.get("vlmflux_chat_ttft_seconds_count"));
        assertEquals(2.0, after.get("vlmflux_frames_in_total{source=\"cam-1\"}"));
        assertEquals(1.0, after.get("vlmflux_frames_dropped_total{source=\"cam-1\"}"));
        assertTrue(after.containsKey("vlmflux_encoder_cache_hits"), after.keySet().toString());
        assertTrue(after.containsKey("vlmflux_prefix_cache_hit_ratio"), after.keySet().toString());
        assertFalse(after.keySet().stream().anyMatch(k -> k.startsWith("vlmflux_gpu_memory")), "no GPU meters on cpu");
    }

    /** Parses the Prometheus text format (every line a comment or {@code name{labels} value}); fails on anything else. */
    static Map<String, Double> scrape(ChatServer s) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(s.url() + "/metrics")).GET().build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"), r.headers().toString());
        Map<String, Double> out = new HashMap<>();
        var line = java.util.regex.Pattern.compile("([a-zA-Z_:][a-zA-Z0-9_:]*(?:\\{(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\]|\\\\.)*\",?)*})?) (\\S+)( \\d+)?");
        for (String l : r.body().split("\n")) {
            if (l.isEmpty() || l.startsWith("# HELP ") || l.startsWith("# TYPE ")) continue;
            var m = line.matcher(l);
            assertTrue(m.matches(), "not Prometheus text: " + l);
            String v = m.group(2);
            out.put(m.group(1), v.equals("NaN") ? Double.NaN : v.equals("+Inf") ? Double.POSITIVE_INFINITY : Double.parseDouble(v));
        }
        return out;
    }

    @Test void aFullServerIs429WithRetryAfterAndCountsIt() throws Exception {
        try (ChatServer one = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withMaxConcurrent(1).withMaxTokens(2000))) {
            HttpResponse<InputStream> held = openLongStream(one);
            try (BufferedReader in = new BufferedReader(new InputStreamReader(held.body(), StandardCharsets.UTF_8))) {
                firstData(in);   // the stream is admitted and running: the one slot is taken until it is closed
                for (int i = 0; i < 3; i++) {
                    HttpResponse<String> busy = post(one, body("\"max_tokens\":2"), List.of());
                    assertEquals("rate_limit_exceeded", error(busy, 429).get("type").asText());
                    assertEquals("1", busy.headers().firstValue("Retry-After").orElseThrow());
                }
                assertEquals(3.0, scrape(one).get("vlmflux_rejected_total{reason=\"busy\"}"));
                assertEquals(1.0, scrape(one).get("vlmflux_active_completions"));
            }
        }
    }

    // ---- security ----------------------------------------------------------------------------------------------------

    @Test void corsOnlyForConfiguredOrigins() throws Exception {
        HttpResponse<String> pre = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/chat/completions"))
                .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).header("Origin", "https://app.example")
                .header("Access-Control-Request-Method", "POST").build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(204, pre.statusCode(), pre.body());
        assertEquals("https://app.example", pre.headers().firstValue("Access-Control-Allow-Origin").orElseThrow());
        assertTrue(pre.headers().firstValue("Access-Control-Allow-Headers").orElseThrow().contains("Authorization"));
        HttpResponse<String> evil = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/chat/completions"))
                .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).header("Origin", "https://evil.example")
                .header("Access-Control-Request-Method", "POST").build(), HttpResponse.BodyHandlers.ofString());
        error(evil, 403);
        assertTrue(evil.headers().firstValue("Access-Control-Allow-Origin").isEmpty());
        HttpResponse<String> models = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/models")).header("Origin", "https://evil.example").GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertTrue(models.headers().firstValue("Access-Control-Allow-Origin").isEmpty(), "no CORS grant for other origins");
        try (ChatServer plain = ChatServer.start(runtime, ServeOptions.defaults().withPort(0))) {
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(plain.url() + "/v1/models")).header("Origin", "https://app.example").GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode());
            assertTrue(r.headers().firstValue("Access-Control-Allow-Origin").isEmpty(), "CORS is off unless configured");
        }
    }

    @Test void aServerOnAllInterfacesWithAKeyRefusesRequestsWithoutIt() throws Exception {
        try (ChatServer open = ChatServer.start(runtime, ServeOptions.defaults().withHost("0.0.0.0").withPort(0).withApiKey("k-123"))) {
            assertFalse(InetAddress.getByName("0.0.0.0").isLoopbackAddress());
            URI models = URI.create("http://127.0.0.1:" + open.port() + "/v1/models");
            assertEquals("missing_api_key", error(HTTP.send(HttpRequest.newBuilder(models).GET().build(), HttpResponse.BodyHandlers.ofString()), 401).get("code").asText());
            URI metrics = URI.create("http://127.0.0.1:" + open.port() + "/metrics");
            error(HTTP.send(HttpRequest.newBuilder(metrics).GET().build(), HttpResponse.BodyHandlers.ofString()), 401);
            assertEquals(200, HTTP.send(HttpRequest.newBuilder(models).header("Authorization", "Bearer k-123").GET().build(), HttpResponse.BodyHandlers.ofString()).statusCode());
        }
    }

    @Test void anUnreachableImageUrlIs400NamingIt() throws Exception {
        int closed;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) { closed = s.getLocalPort(); }
        try (ChatServer fetching = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withFetchImages(true),
                new ImageFetcher(1 << 20, Duration.ofSeconds(5), a -> true))) {
            String url = "http://127.0.0.1:" + closed + "/x.png";
            JsonNode e = error(post(fetching, imageRequest(List.of(url)), List.of()), 400);
            assertEquals("invalid_image_url", e.get("code").asText(), e.toString());
            assertTrue(e.get("message").asText().contains(url), e.toString());
        }
    }

    @Test void aFileUrlIsNeverRead() throws Exception {
        try (ChatServer fetching = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withFetchImages(true))) {
            for (String url : List.of("file:///etc/passwd", "FILE:/etc/hostname", "jar:file:/x.jar!/a.png")) {
                JsonNode e = error(post(fetching, imageRequest(List.of(url)), List.of()), 400);
                assertEquals("messages[0].content[0].image_url.url", e.get("param").asText(), e.toString());
                assertFalse(e.get("message").asText().contains("root:"), e.toString());
            }
        }
    }

    // ---- helpers -----------------------------------------------------------------------------------------------------

    static String body(String extra) {
        return "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"a red circle\"}]," + extra + "}";
    }

    /** The id of the vocabulary token whose text is {@code text}. */
    static int firstId(String text) {
        var tok = runtime.tokenizer();
        byte[] want = text.getBytes(StandardCharsets.UTF_8);
        for (int id = 0; id < tok.vocabSize(); id++) if (!tok.isSpecial(id) && Arrays.equals(want, tok.tokenBytes(id))) return id;
        throw new AssertionError("no token is '" + text + "'");
    }
}
