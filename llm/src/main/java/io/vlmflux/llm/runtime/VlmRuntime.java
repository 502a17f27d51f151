package io.vlmflux.llm.runtime;

import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.cuda.gpu.GpuDevice;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.BatchGenerator;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.GenerationConfig;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.ImageSlots;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.TokenText;
import io.vlmflux.llm.cache.PrefixCache;
import io.vlmflux.llm.chat.ChatMessage;
import io.vlmflux.llm.chat.ChatTemplate;
import io.vlmflux.llm.tokenizer.Tokenizer;
import io.vlmflux.sources.Frame;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.VisionEncoders;
import io.vlmflux.vision.cuda.GpuImageProcessor;
import io.vlmflux.vision.cuda.GpuVisionEncoder;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One loaded model — the counterpart of TensorRT Edge-LLM's {@code LLMInferenceRuntime}. Built once from a Hugging
 * Face folder ({@code config.json} + safetensors, {@code tokenizer.json}, {@code tokenizer_config.json} with the chat
 * template, {@code generation_config.json}, and for vision-language models {@code preprocessor_config.json}) with a
 * {@link Backend} (AUTO resolved once, the reason logged) and a device index.
 *
 * <p>It owns ONE compute context — the device, one CUDA stream shared by the vision encoder and the decoder (device
 * image rows need no synchronization before the prefill that reads them), and the single compute thread
 * ({@link #scheduler()}) where all model work runs — plus the tokenizer, chat template, generation defaults and stop
 * tokens, the prefix cache, ONE encoder-output cache for both backends, the generator, and on cuda the batched
 * generator (concurrent callers share decode steps).
 *
 * <p>Use: {@link #promptTemplate} once per question, {@link #prepare} per set of frames (preprocess, encode, expand
 * the image slots: host or device rows are the runtime's business), {@link #generate} for the tokens. Everything
 * above it — pipeline stages, the CLI, the server, a robot application — talks to this object only.
 *
 * <p>Thread-safe: calls queue on the compute thread. {@link #close()} (idempotent) frees the weights and caches after
 * the work already queued, then stops the compute thread.
 */
public final class VlmRuntime implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.runtime");

    private final Path dir;
    private final Backend backend;
    private final int device;
    private final Decoder decoder;
    private final GpuStream stream;              // cuda: the one stream of this runtime; null on cpu
    private final VisionPath<?> vision;          // null for a text-only model
    private final Tokenizer tokenizer;
    private final ChatTemplate template;         // null when the model has none
    private final GenerationConfig generationConfig;
    private final PrefixCache prefixCache;       // null when disabled
    private final ComputeThread compute;
    private final Generator generator;
    private final BatchGenerator batchGenerator; // cuda with batching on; else null
    private final int imagePadId;
    private final Set<Integer> eosTokens, stopTokens;
    private boolean closed;

    private VlmRuntime(Path dir, Backend backend, int device, Decoder decoder, GpuStream stream, VisionPath<?> vision, Tokenizer tokenizer,
                       ChatTemplate template, GenerationConfig generationConfig, PrefixCache prefixCache, ComputeThread compute, int maxBatch,
                       boolean batchDecode) {
        this.dir = dir;
        this.backend = backend;
        this.device = device;
        this.decoder = decoder;
        this.stream = stream;
        this.vision = vision;
        this.tokenizer = tokenizer;
        this.template = template;
        this.generationConfig = generationConfig;
        this.prefixCache = prefixCache;
        this.compute = compute;
        this.generator = new Generator(decoder, prefixCache, compute.scheduler());
        this.batchGenerator = backend == Backend.CUDA && batchDecode ? new BatchGenerator(decoder, prefixCache, compute.scheduler(), maxBatch) : null;
        ModelConfig c = decoder.config();
        int pad = c.imageTokenId();
        if (pad < 0) pad = tokenizer.tokenId("<|image_pad|>").orElse(-1);
        if (vision != null && pad < 0)
            throw new IllegalArgumentException(dir.resolve("config.json") + ": no image_token_id and no <|image_pad|> token in " + tokenizer.source()
                    + ", yet the folder has a preprocessor_config.json: not a vision-language model this runtime supports");
        this.imagePadId = pad;
        Set<Integer> eos = new LinkedHashSet<>(generationConfig.eosTokenIds());
        eos.addAll(c.eosTokenIds());
        if (eos.isEmpty()) tokenizer.eosId().ifPresent(eos::add);
        this.eosTokens = Set.copyOf(eos);
        Set<Integer> stops = new LinkedHashSet<>(eos);
        tokenizer.eosId().ifPresent(stops::add);
        if (template != null && template.template().contains("<|im_end|>")) tokenizer.tokenId("<|im_end|>").ifPresent(stops::add);
        if (template != null && template.template().contains("<|eot_id|>")) tokenizer.tokenId("<|eot_id|>").ifPresent(stops::add);
        this.stopTokens = Set.copyOf(stops);
    }

    /** Loads {@code dir} with {@link RuntimeOptions#defaults()} (auto backend, device 0). */
    public static VlmRuntime load(Path dir) { return load(dir, RuntimeOptions.defaults()); }

    /**
     * Loads {@code dir}. Errors name the folder and the file that is missing or malformed, the device that does not
     * exist, or why the requested backend cannot run.
     */
    public static VlmRuntime load(Path dir, RuntimeOptions options) {
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException("model folder " + dir + " does not exist");
        for (String f : List.of(options.configFile(), "tokenizer.json"))
            if (!Files.isRegularFile(dir.resolve(f)))
                throw new IllegalArgumentException("model folder " + dir + " has no " + f + " (a model needs " + options.configFile()
                        + ", tokenizer.json, safetensors weights, and for a vision-language model tokenizer_config.json with a chat template and preprocessor_config.json)");
        long t0 = System.nanoTime();
        Backend.Choice choice = options.backend().resolve();
        Backend b = choice.backend();
        GpuDevice dev = null;
        if (b == Backend.CUDA) {
            checkFamilyOnCuda(dir, options.configFile());
            if (!Gpu.isAvailable()) throw new IllegalStateException("backend 'cuda' cannot run here: " + Gpu.unavailableReason());
            dev = Gpu.device(options.device());
        } else if (options.device() != 0) {
            throw new IllegalArgumentException("device " + options.device() + " was requested, but the backend is cpu (" + choice.reason()
                    + "): the cpu backend has only device 0");
        }
        boolean vlm = Files.isRegularFile(dir.resolve("preprocessor_config.json"));
        Tokenizer tokenizer = Tokenizer.load(dir);
        ChatTemplate template = ChatTemplate.load(dir).orElse(null);
        if (vlm && template == null)
            throw new IllegalArgumentException("model folder " + dir + " has no chat template (tokenizer_config.json chat_template, chat_template.jinja or chat_template.json)");
        GenerationConfig gen;
        try {
            gen = GenerationConfig.load(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dir.resolve("generation_config.json") + ": " + e.getMessage(), e);
        }
        Tuning tuning = options.tuning() != null ? options.tuning() : Tuning.fromSystemProperties();   // read once, here
        boolean batchDecode = tuning.batchDecode();
        GpuStream stream = null;
        Decoder decoder = null;
        VisionPath<?> vision = null;
        GpuImageProcessor gpuProcessor = null;
        GpuVisionEncoder gpuEncoder = null;
        io.vlmflux.vision.VisionEncoder cpuEncoder = null;
        PrefixCache pc = null;
        ComputeThread compute = null;
        try {
            if (dev != null) stream = dev.newStream();
            decoder = Models.load(dir, options.configFile(), b, stream, tuning);
            if (vlm) {
                if (stream != null) {
                    gpuEncoder = GpuVisionEncoder.load(dir, stream, tuning);
                    gpuProcessor = GpuImageProcessor.load(dir, stream);
                    vision = new DeviceVision(gpuProcessor, gpuEncoder, options.encoderCacheBytes(), tuning.liveDevicePreprocess());
                } else {
                    cpuEncoder = VisionEncoders.load(dir, "cpu");
                    vision = new HostVision(ImageProcessor.load(dir), cpuEncoder, options.encoderCacheBytes());
                }
                int deepstack = stream != null ? gpuEncoder.deepstackLayers() : cpuEncoder.deepstackLayers();
                if (deepstack > decoder.config().numLayers())
                    throw new IllegalArgumentException(dir + ": the vision encoder makes " + deepstack
                            + " DeepStack features (vision_config.deepstack_visual_indexes) but the text model has only "
                            + decoder.config().numLayers() + " decoder layers to add them to");
                int outHidden = stream != null ? gpuEncoder.outHidden() : cpuEncoder.outHidden();
                if (outHidden != decoder.config().hiddenSize())
                    throw new IllegalArgumentException(dir + ": the vision encoder outputs " + outHidden + "-wide embeddings but the text model's hidden_size is "
                            + decoder.config().hiddenSize());
            }
            pc = options.prefixCacheBytes() == 0 ? null : new PrefixCache(options.prefixCacheBytes());
            compute = new ComputeThread(b, options.device());
            VlmRuntime r = new VlmRuntime(dir, b, options.device(), decoder, stream, vision, tokenizer, template, gen, pc, compute,
                    options.maxBatch(), batchDecode);
            LOG.log(System.Logger.Level.INFO, "{0} ready in {1} ms ({2}): {3}{4}", r, (System.nanoTime() - t0) / 1_000_000, choice.reason(), r.describe(),
                    tuning.changes().isEmpty() ? "" : "; tuning " + tuning.changes());
            return r;
        } catch (IOException e) {
            closeAll(vision, gpuProcessor, gpuEncoder, cpuEncoder, decoder, pc, compute, stream);
            throw new UncheckedIOException("cannot load the text model of " + dir + ": " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            closeAll(vision, gpuProcessor, gpuEncoder, cpuEncoder, decoder, pc, compute, stream);
            throw e;
        }
    }

    /** Refuses, before anything is allocated, a model whose family does not run on the cuda backend. */
    private static void checkFamilyOnCuda(Path dir, String configFile) {
        ModelConfig config;
        try {
            config = ModelConfig.load(dir, configFile);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dir.resolve(configFile) + ": " + e.getMessage(), e);
        }
        io.vlmflux.llm.ModelFamily family;
        try {
            family = Models.family(config);
        } catch (IllegalArgumentException e) {
            return;   // Models.load reports an unsupported architecture with the file named
        }
        family.checkBackend(Backend.CUDA, dir.resolve(configFile));
    }

    private static void closeAll(VisionPath<?> vision, GpuImageProcessor gp, GpuVisionEncoder ge, io.vlmflux.vision.VisionEncoder ce, Decoder decoder,
                                 PrefixCache pc, ComputeThread compute, GpuStream stream) {
        if (vision != null) vision.close();   // closes the processor and encoder it holds
        else {
            if (gp != null) gp.close();
            if (ge != null) ge.close();
            if (ce != null) ce.close();
        }
        if (decoder != null) decoder.close();
        if (pc != null) pc.close();
        if (compute != null) compute.dispose();
        if (stream != null) stream.close();
    }

    // ---- what the model is -------------------------------------------------------------------------------------

    public Path dir() { return dir; }
    /** The concrete backend (never AUTO). */
    public Backend backend() { return backend; }
    /** The device index (0 on cpu). */
    public int device() { return device; }
    public ModelConfig config() { return decoder.config(); }
    public Tokenizer tokenizer() { return tokenizer; }
    public Optional<ChatTemplate> chatTemplate() { return Optional.ofNullable(template); }
    public GenerationConfig generationConfig() { return generationConfig; }
    /** Whether the model takes images (a vision encoder was loaded). */
    public boolean hasVision() { return vision != null; }
    /** The image-pad token id, -1 for a text-only model. */
    public int imagePadId() { return imagePadId; }
    /** EOS of {@code generation_config.json} and {@code config.json} (the tokenizer's when both are silent): what ends a raw completion. */
    public Set<Integer> eosTokens() { return eosTokens; }
    /** {@link #eosTokens()} plus the tokenizer's EOS and the chat template's end-of-turn token: what ends a chat answer. */
    public Set<Integer> stopTokens() { return stopTokens; }
    /** The single compute thread where preprocessing, encoding and generation run. */
    public Scheduler scheduler() { return compute.scheduler(); }
    /** Whether concurrent generations share batched decode steps (cuda, and {@code Tuning.batchDecode()} at load). */
    public boolean batchDecode() { return batchGenerator != null; }

    /** The decoder, for {@link LiveSession} (same package; runs only on the compute thread). */
    Decoder decoder() { checkOpen(); return decoder; }

    /** Whether the caller runs on this runtime's compute thread. */
    boolean onComputeThread() { return compute.isCurrentThread(); }

    /** The vision path (null for a text-only model), for {@link LiveSession}. */
    VisionPath<?> visionPath() { return vision; }

    /** Backend, device, model and vision path, for logs and {@code probe}. */
    public String describe() {
        ModelConfig c = decoder.config();
        return backend.wire() + (backend == Backend.CUDA ? ":" + device : "") + ", " + c.numLayers() + " layers, hidden " + c.hiddenSize()
                + (vision == null ? ", text only" : ", vision " + vision.describe()) + (batchGenerator != null ? ", batched decode" : "");
    }

    // ---- prompts -------------------------------------------------------------------------------------------------

    /** Renders {@code messages} through the chat template (assistant turn opened) and tokenizes it. */
    public PromptTemplate promptTemplate(List<ChatMessage> messages) {
        if (template == null) throw new IllegalArgumentException("model folder " + dir + " has no chat template (tokenizer_config.json chat_template); use a raw prompt");
        String text = template.render(messages, true);
        PromptTemplate t = rawPrompt(text);
        int images = messages.stream().mapToInt(ChatMessage::imageCount).sum();
        if (t.images() != images)
            throw new IllegalArgumentException(template + " rendered " + t.images() + " image slot(s) (token " + imagePadId + ") for " + images + " image(s): " + text);
        return t;
    }

    /** A system turn (nullable: the template's default), then a user turn of {@code images} images and {@code user}. */
    public PromptTemplate promptTemplate(String system, String user, int images) {
        List<ChatMessage> messages = new ArrayList<>();
        if (system != null) messages.add(ChatMessage.system(system));
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (int i = 0; i < images; i++) parts.add(new ChatMessage.Image());
        parts.add(new ChatMessage.Text(user));
        messages.add(new ChatMessage("user", parts));
        return promptTemplate(messages);
    }

    /** {@code text} tokenized verbatim (special tokens honoured); each image-pad token is one image slot. */
    public PromptTemplate rawPrompt(String text) {
        int[] ids = tokenizer.encode(text);
        int n = imagePadId < 0 ? 0 : ImageSlots.countSlots(ids, imagePadId);
        int[] slots = new int[n];
        for (int i = 0, k = 0; i < ids.length && k < n; i++) if (ids[i] == imagePadId) slots[k++] = i;
        return new PromptTemplate(text, ids, slots);
    }

    /**
     * Preprocesses and encodes {@code images} (one per slot of {@code t}, in order) on the compute thread and expands
     * the slots. From subscription on the returned Mono owns the frames: it closes each once its pixels are copied,
     * and all of them on error or on a cancel that comes before encoding started.
     */
    public Mono<Prompt> prepare(PromptTemplate t, List<Frame> images) {
        return Mono.defer(() -> {
            if (isClosed()) {
                closeFrames(images);
                return Mono.error(new IllegalStateException(this + " is closed"));
            }
            AtomicReference<List<Frame>> owned = new AtomicReference<>(List.copyOf(images));
            return Mono.fromCallable(() -> {
                        List<Frame> fs = owned.getAndSet(null);
                        if (fs == null) throw new IllegalStateException("the frames of this prompt were released before encoding");
                        return prepareOnComputeThread(t, fs);
                    })
                    .subscribeOn(compute.scheduler())
                    .doOnCancel(() -> closeFrames(owned.getAndSet(null)));
        });
    }

    /** {@link #prepare} for callers that may block (CLI, tests): waits for the compute thread. */
    public Prompt prepareBlocking(PromptTemplate t, List<Frame> images) {
        return prepare(t, images).block();
    }

    /**
     * One image for several questions: preprocesses and encodes {@code image} once (on the compute thread) and expands
     * it into each of {@code templates} (one image slot each), so watches of one frame share its vision encoding. The
     * prompts share the image rows (reference counted: each prompt lets go of its own). Owns the frame from
     * subscription, as {@link #prepare} does; only the first prompt reports the preprocess and encode time.
     */
    public Mono<List<Prompt>> prepareShared(List<PromptTemplate> templates, Frame image) {
        return Mono.defer(() -> {
            if (isClosed()) {
                image.close();
                return Mono.error(new IllegalStateException(this + " is closed"));
            }
            AtomicReference<Frame> owned = new AtomicReference<>(image);
            return Mono.fromCallable(() -> {
                        Frame f = owned.getAndSet(null);
                        if (f == null) throw new IllegalStateException("the frame of these prompts was released before encoding");
                        return prepareSharedOnComputeThread(List.copyOf(templates), f);
                    })
                    .subscribeOn(compute.scheduler())
                    .doOnCancel(() -> {
                        Frame f = owned.getAndSet(null);
                        if (f != null) f.close();
                    });
        });
    }

    private List<Prompt> prepareSharedOnComputeThread(List<PromptTemplate> templates, Frame f) {
        VisionPath.Encoded e;
        try {
            if (templates.isEmpty()) throw new IllegalArgumentException("prepareShared needs at least one prompt template");
            for (PromptTemplate t : templates)
                if (t.images() != 1) throw new IllegalArgumentException("each shared prompt takes exactly one image, " + t + " has " + t.images() + " slot(s)");
            if (vision == null) throw new IllegalArgumentException(dir + " is a text-only model (no preprocessor_config.json): it cannot take images");
            e = vision.encode(f);
        } finally {
            f.close();
        }
        List<Prompt> out = new ArrayList<>();
        try {
            for (int i = 0; i < templates.size(); i++) {
                if (i > 0) vision.retain(e.rows());   // one reference per prompt; the first is encode's
                out.add(imagePrompt(templates.get(i), e.rows(), i == 0 ? e.preprocessNanos() : 0, i == 0 ? e.encodeNanos() : 0, e.cacheHit() ? 1 : 0));
            }
            return out;
        } catch (RuntimeException | Error x) {
            for (Prompt p : out) p.close();
            vision.release(e.rows());   // the reference of the prompt that failed
            throw x;
        }
    }

    /** {@code t} (one image slot) with the slot expanded to {@code r}; the prompt takes one reference of {@code r}. */
    private Prompt imagePrompt(PromptTemplate t, ImageRows r, long pre, long enc, int hits) {
        int hidden = decoder.config().hiddenSize();
        if (r.hidden != hidden) throw new IllegalArgumentException("image embeddings are " + r.hidden + " wide but " + dir + " has hidden_size " + hidden);
        ImageSlots.Expanded ex = ImageSlots.expand(t.tokens(), imagePadId, new int[]{r.tokens});
        EmbeddingSpan span = r.span(ex.spanStarts()[0], 0, r.tokens, r.gridT, r.contentHash, 0);
        return new Prompt(new MultimodalPrompt(ex.tokens(), List.of(span)), vision, List.of(r), pre, enc, hits);
    }

    /** A text-only prompt from token ids. */
    public Prompt prompt(int[] tokens) {
        return new Prompt(MultimodalPrompt.text(tokens), null, List.of(), 0, 0, 0);
    }

    private Prompt prepareOnComputeThread(PromptTemplate t, List<Frame> frames) {
        List<ImageRows> held = new ArrayList<>();
        long pre = 0, enc = 0;
        int hits = 0;
        try {
            if (frames.size() != t.images())
                throw new IllegalArgumentException("the prompt has " + t.images() + " image slot(s) but " + frames.size() + " image(s) were given");
            if (!frames.isEmpty() && vision == null)
                throw new IllegalArgumentException(dir + " is a text-only model (no preprocessor_config.json): it cannot take images");
            for (int i = 0; i < frames.size(); i++) {
                Frame f = frames.get(i);
                VisionPath.Encoded e;
                try {
                    e = vision.encode(f);
                } finally {
                    f.close();
                }
                held.add(e.rows());
                pre += e.preprocessNanos();
                enc += e.encodeNanos();
                if (e.cacheHit()) hits++;
            }
            int hidden = decoder.config().hiddenSize();
            MultimodalPrompt input;
            if (held.isEmpty()) input = MultimodalPrompt.text(t.tokens());
            else {
                int[] counts = held.stream().mapToInt(r -> r.tokens).toArray();
                ImageSlots.Expanded ex = ImageSlots.expand(t.tokens(), imagePadId, counts);
                List<EmbeddingSpan> spans = new ArrayList<>();
                for (int i = 0; i < held.size(); i++) {
                    ImageRows r = held.get(i);
                    if (r.hidden != hidden)
                        throw new IllegalArgumentException("image embeddings are " + r.hidden + " wide but " + dir + " has hidden_size " + hidden);
                    spans.add(r.span(ex.spanStarts()[i], 0, r.tokens, r.gridT, r.contentHash, 0));
                }
                input = new MultimodalPrompt(ex.tokens(), spans);
            }
            return new Prompt(input, vision, held, pre, enc, hits);
        } catch (RuntimeException | Error e) {
            for (ImageRows r : held) vision.release(r);
            closeFrames(frames);
            throw e;
        }
    }

    /**
     * A prompt with one video. Qwen2-VL / Qwen2.5-VL (cpu and cuda): the single {@code <|video_pad|>} of {@code text}
     * expands to the clip's {@code t * h/m * w/m} pads, one embedding span of grid {@code (t, h, w)} with
     * {@code second_per_grid_t = temporal_patch_size / fps} (see {@code Qwen2VideoPrompts}).
     * Qwen3-VL (cpu and cuda): {@code text} is tokenized verbatim and must hold exactly one
     * {@code <|video_pad|>} (as the chat template writes it, inside {@code <|vision_start|>…<|vision_end|>});
     * {@code clip} are the frames already sampled at {@code fps} frames per second (frame i at i / fps seconds). As
     * transformers' {@code Qwen3VLProcessor}, the pad becomes, per temporal group g of {@code merge_size} frames (the last
     * frame repeated to fill the last group), {@code <T seconds><|vision_start|>} + the group's pads +
     * {@code <|vision_end|>}, T the mean time of the group's first and last frame to one decimal (half-even, as
     * Python's {@code :.1f}); each group is one embedding span with its DeepStack rows. Not cached by the encoder-output
     * cache. Closes the frames.
     */
    public Mono<Prompt> prepareVideo(String text, List<Frame> clip, double fps) {
        return Mono.defer(() -> {
            AtomicReference<List<Frame>> owned = new AtomicReference<>(List.copyOf(clip));
            return Mono.fromCallable(() -> {
                        List<Frame> fs = owned.getAndSet(null);
                        if (fs == null) throw new IllegalStateException("the frames of this video prompt were released before encoding");
                        return prepareVideoOnComputeThread(text, fs, fps);
                    })
                    .subscribeOn(compute.scheduler())
                    .doOnCancel(() -> closeFrames(owned.getAndSet(null)));
        });
    }

    /** {@link #prepareVideo} for callers that may block (CLI, tests). */
    public Prompt prepareVideoBlocking(String text, List<Frame> clip, double fps) {
        return prepareVideo(text, clip, fps).block();
    }

    private Prompt prepareVideoOnComputeThread(String text, List<Frame> clip, double fps) {
        ImageRows rows = null;
        try {
            checkOpen();
            ModelConfig c = decoder.config();
            if (Qwen2VideoPrompts.supports(c)) return Qwen2VideoPrompts.prepare(dir, c, tokenizer, imagePadId, vision, text, clip, fps);
            if (vision == null || !c.modelType().startsWith("qwen3_vl") || c.videoTokenId() < 0)
                throw new IllegalArgumentException("video prompts need a Qwen2-VL or Qwen2.5-VL model or a Qwen3-VL model (cpu or cuda); " + dir + " is '"
                        + c.modelType() + "' on " + backend.wire());
            if (!(fps > 0 && fps < 1e4)) throw new IllegalArgumentException("video fps must be in (0, 1e4), got " + fps);
            if (clip.isEmpty()) throw new IllegalArgumentException("a video needs at least one frame");
            int[] ids = tokenizer.encode(text);
            int pad = c.videoTokenId(), slots = ImageSlots.countSlots(ids, pad);
            if (slots != 1 || ImageSlots.countSlots(ids, imagePadId) != 0)
                throw new IllegalArgumentException("a video prompt needs exactly one <|video_pad|> (token " + pad + ") and no image slot, got " + slots
                        + " video slot(s): " + text);
            int start = c.visionStartTokenId();
            int end = tokenizer.tokenId("<|vision_end|>").orElse(-1);
            if (start < 0 || end < 0) throw new IllegalArgumentException(dir + ": no vision_start_token_id in the config or no <|vision_end|> token");
            io.vlmflux.vision.qwen3vl.Qwen3VLVideoProcessor vp = io.vlmflux.vision.qwen3vl.Qwen3VLVideoProcessor.load(dir);
            long t0 = System.nanoTime();
            rows = vision.encodeClip(vp.process(clip));   // host preprocessing; the encoder of the backend (device rows on cuda)
            long t1 = System.nanoTime();
            int merge = vp.config().mergeSize(), groups = rows.gridT;
            List<Integer> idx = new ArrayList<>();
            for (int i = 0; i < clip.size(); i++) idx.add(i);
            while (idx.size() % merge != 0) idx.add(idx.get(idx.size() - 1));
            if (idx.size() / merge != groups)
                throw new IllegalStateException("clip of " + clip.size() + " frames gave " + groups + " temporal groups, timestamps give " + idx.size() / merge);
            if (rows.tokens % groups != 0) throw new IllegalStateException("clip rows " + rows.tokens + " do not split into " + groups + " groups");
            int per = rows.tokens / groups, H = rows.hidden;
            List<Integer> out = new ArrayList<>();
            List<EmbeddingSpan> spans = new ArrayList<>();
            for (int id : ids) {
                if (id != pad) { out.add(id); continue; }
                for (int g = 0; g < groups; g++) {
                    double ts = (idx.get(g * merge) / fps + idx.get(g * merge + merge - 1) / fps) / 2;
                    String stamp = "<" + new java.math.BigDecimal(ts).setScale(1, java.math.RoundingMode.HALF_EVEN).toPlainString() + " seconds>";
                    for (int x : tokenizer.encode(stamp)) out.add(x);
                    out.add(start);
                    spans.add(rows.span(out.size(), g * per, per, 1, rows.contentHash * 31 + g, 0));
                    for (int k = 0; k < per; k++) out.add(pad);
                    out.add(end);
                }
            }
            MultimodalPrompt input = new MultimodalPrompt(out.stream().mapToInt(Integer::intValue).toArray(), spans);
            Prompt p = new Prompt(input, vision, List.of(rows), 0, t1 - t0, 0);
            rows = null;
            return p;
        } finally {
            if (rows != null) vision.release(rows);
            closeFrames(clip);
        }
    }

    private static void closeFrames(List<Frame> frames) {
        if (frames != null) for (Frame f : frames) f.close();
    }

    // ---- generation ------------------------------------------------------------------------------------------------

    /**
     * Settings for one generation: {@code sampling} (null: the model's {@code generation_config.json}), at most
     * {@code maxTokens}, stop at {@link #stopTokens()} and {@code stopStrings}, and keep the first {@code sharedPrefix}
     * prompt positions in the prefix cache (ignored when the cache is off).
     */
    public GenerateOptions generateOptions(SamplingParams sampling, int maxTokens, List<String> stopStrings, int sharedPrefix) {
        SamplingParams s = sampling != null ? sampling : generationConfig.toSampling(0);
        return new GenerateOptions(s, maxTokens, stopTokens, stopStrings, cachedPrefix(sharedPrefix), null);
    }

    /**
     * Shorter shared prefixes than this are prefilled again on cuda rather than restored from the prefix cache:
     * restoring copies every layer's keys and values per kv head (hundreds of small device copies), which costs
     * more than recomputing a few dozen positions inside the prefill GEMMs. On cpu every position saved counts.
     */
    public static final int MIN_CUDA_CACHED_PREFIX = 64;

    /** How many leading prompt positions go through the prefix cache for a prompt whose shared part is {@code n}. */
    public int cachedPrefix(int n) {
        if (prefixCache == null || n <= 0) return 0;
        return backend == Backend.CUDA && n < MIN_CUDA_CACHED_PREFIX ? 0 : n;
    }

    /**
     * Generates from {@code prompt} (cold: one sequence with its own KV cache per subscription; demand-driven;
     * cancel stops before the next step and frees the cache). On cuda with batching on, concurrent generations share
     * decode steps. The prompt's image rows are released once its prefill is enqueued, the prompt closed at the end.
     */
    public Flux<TokenEvent> generate(Prompt prompt, GenerateOptions options) {
        return Flux.defer(() -> {
            checkOpen();
            prompt.claim();
            java.util.function.LongConsumer user = options.onPrefillNanos();
            GenerateOptions go = options.withPrefillListener(ns -> {
                prompt.close();   // the prefill that reads the rows is enqueued on the same stream: the buffers may be reused
                if (user != null) user.accept(ns);
            });
            Flux<TokenEvent> tokens = batchGenerator != null ? batchGenerator.generate(prompt.input(), go, this::newTokenText)
                    : generator.generate(prompt.input(), go, this::newTokenText);
            return tokens.doFinally(s -> prompt.close());
        });
    }

    /**
     * Token controls that constrain an answer to {@code spec} (compiled once per spec and cached), with this model's
     * {@link #stopTokens()} ending it where the constraint accepts; {@code logprobs} top entries per token (0: none).
     *
     * @throws io.vlmflux.llm.constrain.ConstraintException naming the position and the reason
     */
    public io.vlmflux.llm.constrain.TokenControls controls(io.vlmflux.llm.constrain.ConstraintSpec spec, int logprobs) {
        io.vlmflux.llm.constrain.TokenControls c = spec == null ? io.vlmflux.llm.constrain.TokenControls.none()
                : io.vlmflux.llm.constrain.TokenControls.constrained(io.vlmflux.llm.constrain.Constraints.compile(spec, tokenizer,
                        stopTokens.stream().mapToInt(Integer::intValue).toArray()));
        return logprobs > 0 ? c.withLogprobs(logprobs) : c;
    }

    /** A fresh streaming detokenizer that skips special tokens. */
    public TokenText newTokenText() { return tokenizer.streamingDecoder(true); }

    /** Hits, misses and evictions of the encoder-output cache ({@link EncoderCacheStats#NONE} for a text-only model). */
    public EncoderCacheStats encoderCacheStats() { return vision == null ? EncoderCacheStats.NONE : vision.stats(); }

    /** Generations holding a KV cache now. */
    public int activeSequences() {
        return generator.activeSequences() + (batchGenerator == null ? 0 : batchGenerator.activeSequences());
    }

    /** Batched decode steps so far and the tokens they produced; {0, 0} without batching. */
    public long[] batchStats() { return batchGenerator == null ? new long[2] : batchGenerator.batchStats(); }

    /** {free, total} bytes of this runtime's device memory on cuda (all processes' use counts); null on cpu. */
    public long[] deviceMemory() {
        return backend == Backend.CUDA && !isClosed() ? Gpu.device(device).memoryInfo() : null;
    }

    /** The prefix cache, or null when disabled. */
    public PrefixCache prefixCache() { return prefixCache; }

    // ---- lifecycle ----------------------------------------------------------------------------------------------

    /**
     * Frees the weights and caches, then stops the compute thread. Idempotent. The release runs on the compute thread
     * after the work already queued there, so no step reads weights that are being freed.
     */
    @Override public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        Runnable release = () -> {
            generator.close();
            if (batchGenerator != null) batchGenerator.close();
            if (vision != null) vision.close();
            decoder.close();
            if (prefixCache != null) prefixCache.close();
            if (stream != null) stream.close();
        };
        if (compute.isCurrentThread()) { release.run(); compute.dispose(); return; }
        CountDownLatch done = new CountDownLatch(1);
        try {
            compute.scheduler().schedule(() -> { try { release.run(); } finally { done.countDown(); } });
            if (!done.await(30, TimeUnit.SECONDS))
                LOG.log(System.Logger.Level.WARNING, "closing {0}: the compute thread stayed busy for 30 s; weights not released yet", this);
            else compute.dispose();
        } catch (java.util.concurrent.RejectedExecutionException e) {
            release.run();   // the scheduler is gone already
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void checkOpen() {
        if (isClosed()) throw new IllegalStateException(this + " is closed");
    }

    /** True after {@link #close()}. */
    public synchronized boolean isClosed() { return closed; }

    @Override public String toString() { return "VlmRuntime[" + dir + " on " + backend.wire() + (backend == Backend.CUDA ? ":" + device : "") + "]"; }

    /** The compute thread of one runtime: a single daemon thread, named after the backend and device. */
    static final class ComputeThread {
        private final Scheduler scheduler;
        private volatile Thread thread;

        ComputeThread(Backend backend, int device) {
            String name = "vlmflux-compute-" + backend.wire() + device;
            this.scheduler = Schedulers.newSingle(r -> {
                Thread t = new Thread(r, name);
                t.setDaemon(true);
                thread = t;
                return t;
            });
        }

        Scheduler scheduler() { return scheduler; }
        boolean isCurrentThread() { return Thread.currentThread() == thread; }
        void dispose() { scheduler.dispose(); }
    }
}
