package io.vlmflux.demos;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.demos.infer.EdgeLlmRequests;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.llm.runtime.PromptTemplate;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.Images;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * {@code vlmflux infer --input requests.json --output responses.json}: runs a request file of TensorRT Edge-LLM's
 * {@code llm_inference} example ({@link EdgeLlmRequests}) through one {@link VlmRuntime} and writes its response file
 * ({@code {"input_file", "responses": [{"output_text", "request_idx", "batch_idx", "messages", ...}]}}), so that
 * Edge-LLM users can switch with their files. The requests of one batch run concurrently. A request that fails gets
 * Edge-LLM's failure text as its {@code output_text} and the reason in {@code error}; the command then exits 1.
 */
public final class InferCommand implements Command {
    /** What Edge-LLM writes as the output of a failed request (its accuracy scripts skip it). */
    static final String FAILED = "TensorRT Edge LLM cannot handle this request. Fails.";
    /** Largest image file read, and the pixel bound of one decoded image. */
    static final long MAX_IMAGE_BYTES = 64L << 20, MAX_IMAGE_PIXELS = 1L << 24;
    private static final Set<String> VALUED = Set.of("input", "output", "model", "backend", "device", "batch-size", "max-generate-length", "num-logprobs");

    @Override public String summary() { return "run a TensorRT Edge-LLM llm_inference request file, write its response file"; }

    @Override public String usage() {
        return """
                vlmflux infer --input requests.json --output responses.json [--model DIR] [--backend auto|cpu|cuda] [--device N]
                              [--batch-size N] [--max-generate-length N] [--num-logprobs N]
                  --input FILE               requests in TensorRT Edge-LLM's llm_inference input format (docs/serve.md)
                  --output FILE              responses in its output format ("responses": [{"output_text", ...}])
                  --model DIR                model folder (default demos/models/shapes-vl)
                  --batch-size, --max-generate-length, --num-logprobs   override the file's values, as llm_inference's flags do
                Image paths in the file are read relative to the working folder. Exit status 1 when a request failed.""";
    }

    @Override public int run(List<String> argv) throws Exception {
        Args a = Args.parse(argv, VALUED, Set.of());
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        Path input = Path.of(a.require("input"));
        Path output = Path.of(a.require("output"));
        Integer batch = a.has("batch-size") ? positive(a, "batch-size") : null;
        Integer length = a.has("max-generate-length") ? positive(a, "max-generate-length") : null;
        Integer logprobs = a.has("num-logprobs") ? a.getInt("num-logprobs", 0) : null;
        if (logprobs != null && (logprobs < 0 || logprobs > EdgeLlmRequests.MAX_LOGPROBS))
            throw new UsageException("--num-logprobs must be in [0, " + EdgeLlmRequests.MAX_LOGPROBS + "], got " + logprobs);
        EdgeLlmRequests file = EdgeLlmRequests.read(input, batch, length, logprobs);
        Path dir = CaptionCommand.modelDir(a.get("model", CaptionCommand.DEFAULT_MODEL));
        Backend backend;
        try {
            backend = Backend.parse(a.get("backend", "auto"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--backend: " + e.getMessage());
        }
        int device = a.getInt("device", 0);
        try (VlmRuntime runtime = VlmRuntime.load(dir, RuntimeOptions.defaults().withBackend(backend).withDevice(device))) {
            ObjectNode out = run(runtime, file, input.toString());
            int failed = 0;
            for (var r : out.withArray("responses")) if (r.has("error")) failed++;
            Path parent = output.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(output.toFile(), out);
            System.err.printf("vlmflux: %d request(s) in %d batch(es) of up to %d, %d failed; responses in %s%n",
                    file.requests().size(), file.batches().size(), file.batchSize(), failed, output);
            return failed == 0 ? 0 : 1;
        }
    }

    private static int positive(Args a, String name) {
        int v = a.getInt(name, 1);
        if (v < 1) throw new UsageException("--" + name + " must be >= 1, got " + v);
        return v;
    }

    /** The response document for {@code file} ({@code inputName} is echoed as {@code input_file}). */
    public static ObjectNode run(VlmRuntime runtime, EdgeLlmRequests file, String inputName) {
        ObjectMapper json = new ObjectMapper();
        ObjectNode out = json.createObjectNode().put("input_file", inputName);
        ArrayNode responses = out.putArray("responses");
        List<List<EdgeLlmRequests.Request>> batches = file.batches();
        for (int b = 0; b < batches.size(); b++) {
            List<EdgeLlmRequests.Request> batch = batches.get(b);
            int requestIdx = b;
            List<ObjectNode> done = Flux.range(0, batch.size())
                    .flatMapSequential(i -> one(runtime, file, batch.get(i), json)
                            .onErrorResume(e -> Mono.just(json.createObjectNode().put("output_text", FAILED).put("error", message(e))))
                            .map(o -> finish(json, o, batch.get(i), requestIdx, i)), batch.size())
                    .collectList().block();
            if (done != null) done.forEach(responses::add);
        }
        return out;
    }

    private static String message(Throwable e) {
        return e.getMessage() != null ? e.getMessage() : e.toString();
    }

    /** Orders the members as llm_inference writes them, then VLMFlux's additions. */
    private static ObjectNode finish(ObjectMapper json, ObjectNode result, EdgeLlmRequests.Request r, int requestIdx, int batchIdx) {
        ObjectNode o = json.createObjectNode();
        o.set("output_text", result.get("output_text"));
        o.put("request_idx", requestIdx).put("batch_idx", batchIdx);
        o.set("messages", r.echo());
        o.put("formatted_system_prompt", "");
        o.put("formatted_complete_request", result.path("formatted_complete_request").asText(r.raw() == null ? "" : r.raw()));
        result.remove(List.of("output_text", "formatted_complete_request"));
        o.setAll(result);
        return o;
    }

    private static Mono<ObjectNode> one(VlmRuntime runtime, EdgeLlmRequests file, EdgeLlmRequests.Request r, ObjectMapper json) {
        return Mono.defer(() -> {
            PromptTemplate template = r.raw() != null ? runtime.rawPrompt(r.raw()) : runtime.promptTemplate(r.messages());
            List<Frame> frames = new ArrayList<>();
            try {
                for (Path p : r.images()) {
                    long size = Files.size(p);
                    if (size > MAX_IMAGE_BYTES) throw new IllegalArgumentException(p + " is " + size + " bytes; images are read up to " + MAX_IMAGE_BYTES);
                    frames.add(Images.decode(Files.readAllBytes(p), p.toString(), MAX_IMAGE_PIXELS));
                }
            } catch (IOException | RuntimeException e) {
                frames.forEach(Frame::close);
                return Mono.error(e instanceof IOException ? new IllegalArgumentException("cannot read an image: " + e.getMessage(), e) : e);
            }
            int vocab = runtime.config().vocabSize();
            for (int id : r.logitBias().keySet())
                if (id >= vocab) return Mono.error(new IllegalArgumentException("logit_bias names token " + id + "; the model has " + vocab + " tokens"));
            TokenControls controls = r.numLogprobs() == 0 && r.logitBias().isEmpty() ? TokenControls.none()
                    : runtime.controls(null, r.numLogprobs()).withLogitBias(r.logitBias());
            SamplingParams sampling = file.temperature() < SamplingParams.GREEDY_BELOW ? SamplingParams.greedyDecoding()
                    : new SamplingParams(false, file.temperature(), file.topK(), file.topP(), 0.0, 1.0, file.seed());
            GenerateOptions go = new GenerateOptions(sampling, file.maxGenerateLength(), runtime.stopTokens(), r.stop(),
                    runtime.cachedPrefix(template.sharedPrefix()), null).withControls(controls);
            return runtime.prepare(template, frames).flatMap(prompt -> {
                int promptTokens = prompt.length();
                StringBuilder text = new StringBuilder();
                ArrayNode lps = json.createArrayNode();
                int[] count = {0};
                FinishReason[] fin = {FinishReason.LENGTH};
                return runtime.generate(prompt, go).doOnNext(ev -> {
                    text.append(ev.textDelta());
                    if (ev.tokenId() >= 0) count[0]++;
                    if (ev.finishReason() != null) fin[0] = ev.finishReason();
                    if (ev.logprobs() != null && !runtime.tokenizer().isSpecial(ev.tokenId())) lps.add(logprob(runtime, json, ev));
                }).then(Mono.fromSupplier(() -> {
                    ObjectNode o = json.createObjectNode();
                    o.put("output_text", text.toString());
                    o.put("formatted_complete_request", template.text());
                    o.put("finish_reason", fin[0] == FinishReason.LENGTH ? "length" : "stop");
                    o.put("prompt_tokens", promptTokens).put("completion_tokens", count[0]);
                    if (r.numLogprobs() > 0) o.set("logprobs", lps);
                    return o;
                }));
            });
        });
    }

    private static ObjectNode logprob(VlmRuntime runtime, ObjectMapper json, TokenEvent ev) {
        ObjectNode e = entry(runtime, json, ev.tokenId(), ev.logprobs().chosen());
        ArrayNode top = e.putArray("top_logprobs");
        for (var t : ev.logprobs().top()) top.add(entry(runtime, json, t.tokenId(), t.logprob()));
        return e;
    }

    private static ObjectNode entry(VlmRuntime runtime, ObjectMapper json, int id, float logprob) {
        byte[] b = runtime.tokenizer().tokenBytes(id);
        return json.createObjectNode().put("token_id", id).put("token", b == null ? "" : new String(b, StandardCharsets.UTF_8))
                .put("logprob", Float.isInfinite(logprob) ? -9999.0 : logprob);
    }
}
