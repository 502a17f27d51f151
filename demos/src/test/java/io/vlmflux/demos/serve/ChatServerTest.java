package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.models.Model;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link ChatServer} on 127.0.0.1 (ephemeral ports) serving the embedded demo model on the cpu backend, spoken to by
 * the official OpenAI Java client and by raw {@link HttpClient} requests for the error paths and the bounds.
 */
class ChatServerTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    /** Long enough to still be running when the test acts on it (shapes-vl has 2048 positions). */
    static final int LONG = 1800;

    static VlmRuntime runtime;
    static ChatServer server;
    static OpenAIClient client;

    @BeforeAll static void start() {
        runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CPU));
        server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withMaxTokens(2000).withMaxBodyBytes(256 * 1024));
        client = OpenAIOkHttpClient.builder().baseUrl(server.url() + "/v1").apiKey("unused").maxRetries(0).build();
    }

    @AfterAll static void stop() {
        if (client != null) client.close();
        if (server != null) server.close();
        if (runtime != null) runtime.close();
    }

    // ---- the official client -----------------------------------------------------------------------------------------

    static ChatCompletionCreateParams.Builder greedy(String user) {
        return ChatCompletionCreateParams.builder().model("shapes-vl").addUserMessage(user).maxCompletionTokens(24).temperature(0.0).seed(7);
    }

    @Test void plainAndStreamedCompletionsAgreeUnderGreedyDecoding() {
        ChatCompletion c = client.chat().completions().create(greedy("a red circle").build());
        String text = c.choices().getFirst().message().content().orElseThrow();
        assertFalse(text.isBlank(), c.toString());
        assertEquals("shapes-vl", c.model());
        var usage = c.usage().orElseThrow();
        assertTrue(usage.promptTokens() > 0 && usage.completionTokens() > 0, usage.toString());
        assertEquals(usage.promptTokens() + usage.completionTokens(), usage.totalTokens());
        String finish = c.choices().getFirst().finishReason().asString();
        assertTrue(finish.equals("stop") || finish.equals("length"), finish);

        StringBuilder streamed = new StringBuilder();
        List<ChatCompletionChunk> chunks = new ArrayList<>();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(
                greedy("a red circle").streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            s.stream().forEach(ch -> {
                chunks.add(ch);
                for (var choice : ch.choices()) choice.delta().content().ifPresent(streamed::append);
            });
        }
        assertEquals(text, streamed.toString());
        assertTrue(chunks.size() >= 3, "role, content and finish chunks: " + chunks);
        String streamedFinish = chunks.stream().flatMap(ch -> ch.choices().stream()).filter(ch -> ch.finishReason().isPresent())
                .map(ch -> ch.finishReason().get().asString()).findFirst().orElseThrow();
        assertEquals(finish, streamedFinish);
        var last = chunks.getLast();
        assertTrue(last.choices().isEmpty(), "the usage chunk has no choices: " + last);
        assertEquals(usage.completionTokens(), last.usage().orElseThrow().completionTokens());
        assertEquals(usage.promptTokens(), last.usage().orElseThrow().promptTokens());
    }

    @Test void anImageAsADataUrlIsSeen() throws Exception {
        var image = ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(circlePngDataUrl()).build()).build());
        var text = ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text("Describe the image.").build());
        ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder().model("shapes-vl")
                .addUserMessageOfArrayOfContentParts(List.of(image, text)).maxCompletionTokens(32).temperature(0.0).build());
        String answer = c.choices().getFirst().message().content().orElseThrow();
        assertTrue(answer.contains("circle"), answer);
        assertTrue(c.usage().orElseThrow().promptTokens() > 40, "the image tokens count as prompt tokens: " + c.usage());
    }

    @Test void modelsListsTheLoadedModel() {
        List<Model> models = client.models().list().data();
        assertEquals(List.of("shapes-vl"), models.stream().map(Model::id).toList());
    }

    // ---- raw HTTP: errors and bounds -----------------------------------------------------------------------------------

    @Test void malformedJsonIs400InOpenAisShape() throws Exception {
        HttpResponse<String> r = post(server, "{\"model\": \"shapes-vl\", \"messages\": [", List.of());
        JsonNode e = error(r, 400);
        assertEquals("invalid_request_error", e.get("type").asText());
        assertTrue(e.get("message").asText().contains("not valid JSON"), e.toString());
        assertTrue(e.has("param") && e.has("code"), e.toString());
    }

    @Test void badFieldsAre400NamingTheField() throws Exception {
        JsonNode e = error(post(server, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}", List.of()), 400);
        assertEquals("temperature", e.get("param").asText(), e.toString());
        e = error(post(server, "{\"model\":\"shapes-vl\",\"messages\":[]}", List.of()), 400);
        assertEquals("messages", e.get("param").asText(), e.toString());
        e = error(post(server, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5000}", List.of()), 400);
        assertTrue(e.get("message").asText().contains("5000") && e.get("message").asText().contains("2000"), e.toString());
        assertEquals("max_tokens", e.get("param").asText(), e.toString());
        e = error(post(server, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":5000}", List.of()), 400);
        assertEquals("max_completion_tokens", e.get("param").asText(), e.toString());
    }

    @Test void aHugeBodyIs413() throws Exception {
        String filler = "x".repeat(1 << 20);
        HttpResponse<String> r = post(server, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"" + filler + "\"}]}", List.of());
        JsonNode e = error(r, 413);
        assertTrue(e.get("message").asText().contains(Long.toString(256 * 1024)), e.toString());
    }

    @Test void aHugeChunkedBodyIs413WhileItArrives() throws Exception {
        byte[] big = ("{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"" + "y".repeat(1 << 20) + "\"}]}").getBytes(StandardCharsets.UTF_8);
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.url() + "/v1/chat/completions")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(big))).build();   // no Content-Length
        error(HTTP.send(req, HttpResponse.BodyHandlers.ofString()), 413);
    }

    @Test void aCompletionPastTheRequestTimeoutIs504AndFreesItsSequence() throws Exception {
        try (ChatServer quick = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withMaxTokens(2000).withRequestTimeout(Duration.ofMillis(100)))) {
            JsonNode e = error(post(quick, """
                    {"model":"shapes-vl","messages":[{"role":"user","content":"a red circle"}],"max_tokens":%d,"ignore_eos":true}""".formatted(LONG), List.of()), 504);
            assertEquals("timeout", e.get("code").asText(), e.toString());
            awaitTrue(() -> runtime.activeSequences() == 0, "the timed-out generation to be freed");
            assertTrue(quick.cancelledGenerations() <= 1, "at most the one generation (the deadline may pass while the prompt is prepared)");
        }
    }

    @Test void aPromptLongerThanTheContextIs400() throws Exception {
        JsonNode e = error(post(server, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"" + "red circle ".repeat(1500) + "\"}]}", List.of()), 400);
        assertEquals("context_length_exceeded", e.get("code").asText(), e.toString());
        assertTrue(e.get("message").asText().contains("2048"), e.toString());
    }

    @Test void aClientThatGivesUpOnAPlainCompletionCancelsIt() throws Exception {
        long before = server.cancelledGenerations();
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.url() + "/v1/chat/completions")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("""
                        {"model":"shapes-vl","messages":[{"role":"user","content":"a red circle"}],"max_tokens":%d,"ignore_eos":true}""".formatted(LONG)))
                .build();
        var pending = HTTP.sendAsync(req, HttpResponse.BodyHandlers.ofString());
        awaitTrue(() -> runtime.activeSequences() == 1, "the generation to start");
        pending.cancel(true);   // closes the connection
        awaitTrue(() -> runtime.activeSequences() == 0, "the runtime to free the sequence");
        assertEquals(before + 1, server.cancelledGenerations(), "cancelled, not run to the end");
    }

    @Test void aPortInUseFailsNamingIt() {
        var e = assertThrows(IllegalStateException.class, () -> ChatServer.start(runtime, ServeOptions.defaults().withPort(server.port())));
        assertTrue(e.getMessage().contains("127.0.0.1:" + server.port()), e.getMessage());
    }

    @Test void unknownModelAndPathAre404() throws Exception {
        JsonNode e = error(post(server, "{\"model\":\"gpt-9\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", List.of()), 404);
        assertEquals("model_not_found", e.get("code").asText());
        assertTrue(e.get("message").asText().contains("gpt-9"), e.toString());
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/v1/nothing-here")).GET().build(), HttpResponse.BodyHandlers.ofString());
        error(r, 404);
    }

    @Test void badBase64ImageIs400NamingTheField() throws Exception {
        String body = """
                {"model":"shapes-vl","messages":[{"role":"user","content":[{"type":"text","text":"Describe the image."},
                 {"type":"image_url","image_url":{"url":"data:image/png;base64,@@not*base64@@"}}]}]}""";
        JsonNode e = error(post(server, body, List.of()), 400);
        assertEquals("messages[0].content[1].image_url.url", e.get("param").asText(), e.toString());
        assertTrue(e.get("message").asText().contains("base64"), e.toString());
        // valid base64 that is no image: named the same way
        String notPng = Base64.getEncoder().encodeToString("hello, not a picture".getBytes(StandardCharsets.UTF_8));
        e = error(post(server, body.replace("@@not*base64@@", notPng), List.of()), 400);
        assertEquals("messages[0].content[1].image_url.url", e.get("param").asText(), e.toString());
        // remote URLs are refused, not fetched
        e = error(post(server, body.replace("data:image/png;base64,@@not*base64@@", "http://169.254.169.254/latest/meta-data"), List.of()), 400);
        assertEquals("unsupported_image_url", e.get("code").asText(), e.toString());
        assertTrue(e.get("message").asText().contains("--fetch-images"), e.toString());
    }

    @Test void imagesAreBoundedInSizeAndCount() throws Exception {
        // 4097x4096 gray compresses to a few KiB but would decode to 48 MiB of RGB: refused before decoding
        BufferedImage big = new BufferedImage(4097, 4096, BufferedImage.TYPE_BYTE_GRAY);
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        assertTrue(ImageIO.write(big, "png", png));
        String url = "data:image/png;base64," + Base64.getEncoder().encodeToString(png.toByteArray());
        JsonNode e = error(post(server, imageRequest(List.of(url)), List.of()), 400);
        assertEquals("messages[0].content[0].image_url.url", e.get("param").asText(), e.toString());
        assertTrue(e.get("message").asText().contains("4097x4096"), e.toString());
        String small = circlePngDataUrl();
        e = error(post(server, imageRequest(java.util.Collections.nCopies(ChatRequest.MAX_IMAGES + 1, small)), List.of()), 400);
        assertEquals("messages[0].content[" + ChatRequest.MAX_IMAGES + "].image_url.url", e.get("param").asText(), e.toString());
    }

    static String imageRequest(List<String> urls) throws Exception {
        var root = JSON.createObjectNode().put("model", "shapes-vl").put("max_tokens", 4);
        var content = root.putArray("messages").addObject().put("role", "user").putArray("content");
        for (String u : urls) content.addObject().put("type", "image_url").putObject("image_url").put("url", u);
        content.addObject().put("type", "text").put("text", "Describe the image.");
        return JSON.writeValueAsString(root);
    }

    @Test void anApiKeyIsRequiredOnV1WhenSet() throws Exception {
        try (ChatServer keyed = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withApiKey("s3cret"))) {
            URI models = URI.create(keyed.url() + "/v1/models");
            JsonNode e = error(HTTP.send(HttpRequest.newBuilder(models).GET().build(), HttpResponse.BodyHandlers.ofString()), 401);
            assertEquals("missing_api_key", e.get("code").asText());
            e = error(HTTP.send(HttpRequest.newBuilder(models).header("Authorization", "Bearer wrong").GET().build(), HttpResponse.BodyHandlers.ofString()), 401);
            assertEquals("invalid_api_key", e.get("code").asText());
            e = error(post(keyed, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", List.of("Authorization", "Bearer nope")), 401);
            assertEquals("invalid_api_key", e.get("code").asText());
            HttpResponse<String> ok = HTTP.send(HttpRequest.newBuilder(models).header("Authorization", "Bearer s3cret").GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ok.statusCode(), ok.body());
            HttpResponse<String> health = HTTP.send(HttpRequest.newBuilder(URI.create(keyed.url() + "/healthz")).GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, health.statusCode(), "the health check needs no key");
        }
    }

    @Test void admissionFullIs429WithRetryAfterAndFreesWhenTheStreamEnds() throws Exception {
        try (ChatServer one = ChatServer.start(runtime, ServeOptions.defaults().withPort(0).withMaxConcurrent(1).withMaxTokens(2000))) {
            HttpResponse<InputStream> held = openLongStream(one);
            try (BufferedReader in = new BufferedReader(new InputStreamReader(held.body(), StandardCharsets.UTF_8))) {
                assertTrue(firstData(in).contains("chat.completion.chunk"));
                HttpResponse<String> busy = post(one, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}", List.of());
                JsonNode e = error(busy, 429);
                assertEquals("rate_limit_exceeded", e.get("type").asText());
                assertTrue(busy.headers().firstValue("Retry-After").isPresent(), busy.headers().toString());
            }
            // the client went away: its slot comes back
            awaitTrue(() -> runtime.activeSequences() == 0, "the held generation to be cancelled");
            awaitTrue(() -> {
                try {
                    return post(one, "{\"model\":\"shapes-vl\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}", List.of()).statusCode() == 200;
                } catch (Exception ex) {
                    throw new AssertionError(ex);
                }
            }, "a request to be admitted again");
        }
    }

    @Test void aClientThatDisconnectsMidStreamCancelsTheGeneration() throws Exception {
        long before = server.cancelledGenerations();
        HttpResponse<InputStream> r = openLongStream(server);
        try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            String line;
            do line = firstData(in); while (!line.contains("\"delta\":{\"content\""));   // a token arrived: the sequence exists
            assertEquals(1, runtime.activeSequences(), "the generation runs while the client reads");
        }
        awaitTrue(() -> runtime.activeSequences() == 0, "the runtime to free the sequence");
        assertEquals(before + 1, server.cancelledGenerations(), "the generation ended by cancellation, not by running out of tokens");
    }

    // ---- helpers -----------------------------------------------------------------------------------------------------

    static HttpResponse<InputStream> openLongStream(ChatServer s) throws Exception {
        String body = """
                {"model":"shapes-vl","messages":[{"role":"user","content":"a red circle"}],"max_tokens":%d,"ignore_eos":true,"stream":true}"""
                .formatted(LONG);
        HttpResponse<InputStream> r = HTTP.send(HttpRequest.newBuilder(URI.create(s.url() + "/v1/chat/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
        assertEquals(200, r.statusCode());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"), r.headers().toString());
        return r;
    }

    static String firstData(BufferedReader in) throws Exception {
        for (String line; (line = in.readLine()) != null; ) if (line.startsWith("data: ")) return line;
        throw new AssertionError("the stream ended without a data line");
    }

    static HttpResponse<String> post(ChatServer s, String body, List<String> headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(s.url() + "/v1/chat/completions")).timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body));
        for (int i = 0; i < headers.size(); i += 2) b.header(headers.get(i), headers.get(i + 1));
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The OpenAI error object of a response that must have {@code status}. */
    static JsonNode error(HttpResponse<String> r, int status) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"), r.headers().toString());
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertNotNull(e, r.body());
        assertTrue(e.get("message").isTextual() && !e.get("message").asText().isBlank(), r.body());
        assertTrue(e.get("type").isTextual(), r.body());
        return e;
    }

    static void awaitTrue(BooleanSupplier condition, String what) throws InterruptedException {
        io.vlmflux.demos.Await.until(Duration.ofSeconds(15), Duration.ofMillis(5), what, condition);
    }

    static String circlePngDataUrl() throws Exception {
        BufferedImage img = new BufferedImage(320, 240, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setColor(Color.WHITE);
        g.fillOval(200, 130, 80, 80);   // the demo model's training scenes: a shape on a 3x3 grid
        g.dispose();
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        assertTrue(ImageIO.write(img, "png", png));
        return "data:image/png;base64," + Base64.getEncoder().encodeToString(png.toByteArray());
    }
}
