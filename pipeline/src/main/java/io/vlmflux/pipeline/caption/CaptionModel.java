package io.vlmflux.pipeline.caption;

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
import io.vlmflux.pipeline.GpuSchedulers;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.llm.cuda.CudaDecoders;
import io.vlmflux.vision.CachingVisionEncoder;
import io.vlmflux.vision.ImageEmbeddings;
import io.vlmflux.vision.ImageProcessor;
import io.vlmflux.vision.VisionEncoder;
import io.vlmflux.vision.VisionEncoders;
import io.vlmflux.vision.cuda.GpuImageProcessor;
import io.vlmflux.vision.cuda.GpuVisionEncoder;
import reactor.core.scheduler.Scheduler;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A vision-language model loaded once from a Hugging Face folder: image processor ({@code preprocessor_config.json}),
 * vision encoder and text decoder ({@code config.json} + safetensors), tokenizer and chat template, sampling defaults
 * ({@code generation_config.json}), plus what every caption shares: the prefix cache (the system prompt and chat
 * header before the first image token are prefilled once and reused) and the single compute thread all model work
 * runs on ({@link GpuSchedulers#forDevice}: the encoder and the decoder are used from that thread only).
 *
 * <p>Backends: on {@code cuda} a frame never visits the host after its upload: GPU preprocessing, the GPU vision
 * encoder on the decoder's stream, and the image-token rows spliced on the device into the decoder's embeddings
 * (device {@link EmbeddingSpan}); only sampled ids come back. On {@code cpu} the reference processor and encoder make
 * host spans. Both put an encoder-output cache in front of the encoder ({@link #encoderCacheStats()}), so static
 * scenes skip it.
 *
 * <p>Thread-safe to share between pipelines (they queue on the one compute thread). {@link #close()} frees the
 * weights and the prefix cache; the shared scheduler stays.
 */
public final class CaptionModel implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.pipeline");
    /** Default prefix-cache budget: room for a few system prompts of a large model. */
    public static final long DEFAULT_PREFIX_CACHE_BYTES = 256L << 20;
    /** Default encoder-output cache budget (a 640x480 frame: ~1.6 MB rows + 0.9 MB frame copy on cuda). */
    public static final long DEFAULT_ENCODER_CACHE_BYTES = 64L << 20;
    /** Most concurrent captions whose decode steps run as one batched step (cuda). */
    public static final int MAX_BATCH = 16;

    private final Path dir;
    private final String backend;
    private final ImageProcessor processor;
    private final VisionEncoder encoder;
    private final DeviceVision deviceVision;   // cuda: GPU preprocessing + encoder + device rows; null on cpu
    private final Decoder decoder;
    private final Tokenizer tokenizer;
    private final ChatTemplate template;
    private final GenerationConfig generationConfig;
    private final PrefixCache prefixCache;   // null when disabled
    private final Scheduler scheduler;
    private final Generator generator;
    private final BatchGenerator batchGenerator;   // cuda: concurrent captions share decode steps; null on cpu
    private final int imagePadId;
    private final Set<Integer> stopTokens;
    private boolean closed;

    private CaptionModel(Path dir, String backend, ImageProcessor processor, VisionEncoder encoder, DeviceVision deviceVision, Decoder decoder,
                         Tokenizer tokenizer, ChatTemplate template, GenerationConfig generationConfig, PrefixCache prefixCache, Scheduler scheduler) {
        this.dir = dir;
        this.backend = backend;
        this.processor = processor;
        this.encoder = encoder;
        this.deviceVision = deviceVision;
        this.decoder = decoder;
        this.tokenizer = tokenizer;
        this.template = template;
        this.generationConfig = generationConfig;
        this.prefixCache = prefixCache;
        this.scheduler = scheduler;
        this.generator = new Generator(decoder, prefixCache, scheduler);
        this.batchGenerator = deviceVision != null ? new BatchGenerator(decoder, prefixCache, scheduler, MAX_BATCH) : null;
        ModelConfig c = decoder.config();
        int pad = c.imageTokenId();
        if (pad < 0) pad = tokenizer.tokenId("<|image_pad|>").orElse(-1);
        if (pad < 0)
            throw new IllegalArgumentException(dir.resolve("config.json") + ": no image_token_id and no <|image_pad|> token in " + tokenizer.source()
                    + ": not a vision-language model");
        this.imagePadId = pad;
        if (encoder.outHidden() != c.hiddenSize())
            throw new IllegalArgumentException(dir + ": the vision encoder outputs " + encoder.outHidden() + "-wide embeddings but the text model's hidden_size is "
                    + c.hiddenSize());
        Set<Integer> stops = new LinkedHashSet<>(c.eosTokenIds());
        stops.addAll(generationConfig.eosTokenIds());
        tokenizer.eosId().ifPresent(stops::add);
        tokenizer.tokenId("<|im_end|>").ifPresent(stops::add);
        this.stopTokens = Set.copyOf(stops);
    }

    /** Loads {@code dir} on {@code backend} ("auto", "cpu" or "cuda") with the default prefix and encoder caches. */
    public static CaptionModel load(Path dir, String backend) {
        return load(dir, backend, DEFAULT_PREFIX_CACHE_BYTES);
    }

    /** {@link #load(Path, String, long, long)} with the default encoder cache. */
    public static CaptionModel load(Path dir, String backend, long prefixCacheBytes) {
        return load(dir, backend, prefixCacheBytes, DEFAULT_ENCODER_CACHE_BYTES);
    }

    /**
     * Loads {@code dir} on {@code backend}; {@code prefixCacheBytes} 0 disables prefix reuse (every caption prefills
     * its whole prompt), {@code encoderCacheBytes} 0 the encoder-output cache. Errors name the folder and the file
     * that is missing or malformed.
     */
    public static CaptionModel load(Path dir, String backend, long prefixCacheBytes, long encoderCacheBytes) {
        if (prefixCacheBytes < 0) throw new IllegalArgumentException("prefix cache size must be >= 0, got " + prefixCacheBytes);
        if (encoderCacheBytes < 0) throw new IllegalArgumentException("encoder cache size must be >= 0, got " + encoderCacheBytes);
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException("model folder " + dir + " does not exist");
        for (String f : List.of("config.json", "tokenizer.json", "preprocessor_config.json"))
            if (!Files.isRegularFile(dir.resolve(f)))
                throw new IllegalArgumentException("model folder " + dir + " has no " + f + " (a vision-language model needs config.json, tokenizer.json, "
                        + "tokenizer_config.json with a chat template, preprocessor_config.json and safetensors weights)");
        String b = Models.resolve(backend == null ? "auto" : backend);   // "auto": cuda when a GPU is usable (logged)
        long t0 = System.nanoTime();
        ImageProcessor processor = ImageProcessor.load(dir);
        Tokenizer tokenizer = Tokenizer.load(dir);
        ChatTemplate template = ChatTemplate.load(dir).orElseThrow(() -> new IllegalArgumentException(
                "model folder " + dir + " has no chat template (tokenizer_config.json chat_template, chat_template.jinja or chat_template.json)"));
        GenerationConfig gen;
        try {
            gen = GenerationConfig.load(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Decoder decoder = null;
        VisionEncoder encoder = null;
        GpuImageProcessor gpuProcessor = null;
        DeviceVision dv = null;
        PrefixCache pc = null;
        try {
            decoder = Models.load(dir, b);
            GpuStream stream = CudaDecoders.stream(decoder).orElse(null);
            if (stream != null) {   // the vision path on the decoder's stream: device rows need no synchronization
                GpuVisionEncoder gpuEncoder = GpuVisionEncoder.load(dir, stream);
                encoder = gpuEncoder;
                gpuProcessor = GpuImageProcessor.load(dir, stream);
                dv = new DeviceVision(gpuProcessor, gpuEncoder, encoderCacheBytes);
            } else {
                VisionEncoder e = VisionEncoders.load(dir, "cpu");
                encoder = encoderCacheBytes > 0 ? new CachingVisionEncoder(e, encoderCacheBytes) : e;
            }
            pc = prefixCacheBytes == 0 ? null : new PrefixCache(prefixCacheBytes);
            CaptionModel m = new CaptionModel(dir, b, processor, encoder, dv, decoder, tokenizer, template, gen, pc, GpuSchedulers.forDevice(0));
            LOG.log(System.Logger.Level.INFO, "caption model {0} on {1} ready in {2} ms: vision {3}{4}", dir, b,
                    (System.nanoTime() - t0) / 1_000_000, encoder.describe(), dv != null ? ", GPU preprocessing, image rows spliced on the device" : "");
            return m;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load the text model of " + dir + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            if (dv != null) dv.close();
            else {
                if (gpuProcessor != null) gpuProcessor.close();
                if (encoder != null) encoder.close();
            }
            if (decoder != null) decoder.close();
            if (pc != null) pc.close();
            throw e;
        }
    }

    public Path dir() { return dir; }
    public String backend() { return backend; }
    public ImageProcessor processor() { return processor; }
    /** The vision encoder (on cpu wrapped in the encoder-output cache; on cuda the GPU encoder, whose cache is on the device path). */
    public VisionEncoder encoder() { return encoder; }
    /** Whether captions take the device path (GPU preprocessing, encoder and device-side splice). */
    public boolean onDevice() { return deviceVision != null; }
    DeviceVision deviceVision() { return deviceVision; }

    /** Hits, misses and evictions of the encoder-output cache. */
    public EncoderCacheStats encoderCacheStats() {
        if (deviceVision != null) return deviceVision.stats();
        if (encoder instanceof CachingVisionEncoder c)
            return new EncoderCacheStats(c.hits(), c.misses(), c.evictions(), c.size(), c.bytesUsed(), c.maxBytes(), 0);
        return EncoderCacheStats.NONE;
    }
    public Decoder decoder() { return decoder; }
    public Tokenizer tokenizer() { return tokenizer; }
    public GenerationConfig generationConfig() { return generationConfig; }
    /** The prefix cache shared by all captions of this model, or null when disabled. */
    public PrefixCache prefixCache() { return prefixCache; }
    /** The single compute thread where preprocessing, encoding and generation run. */
    public Scheduler scheduler() { return scheduler; }
    public Generator generator() { return generator; }

    /**
     * Generates one caption's tokens. On cuda, concurrent captions (several sources) go through the
     * {@link BatchGenerator}: their decode steps run as one batched step instead of taking turns
     * ({@code -Dvlmflux.batchDecode=false} turns that off, read per caption); otherwise the plain {@link Generator}.
     */
    public reactor.core.publisher.Flux<TokenEvent> generate(MultimodalPrompt prompt, GenerateOptions options) {
        if (batchGenerator != null && batchDecode()) return batchGenerator.generate(prompt, options, this::newTokenText);
        return generator.generate(prompt, options, this::newTokenText);
    }

    /** Whether concurrent captions batch their decode steps now (cuda, and not switched off). */
    public boolean batchDecode() {
        return batchGenerator != null && !"false".equalsIgnoreCase(System.getProperty("vlmflux.batchDecode", "true"));
    }

    /** Captions holding a KV cache now (plain and batched generation). */
    public int activeSequences() {
        return generator.activeSequences() + (batchGenerator == null ? 0 : batchGenerator.activeSequences());
    }

    /** Batched decode steps so far and the tokens they produced; {0, 0} without batching. */
    public long[] batchStats() { return batchGenerator == null ? new long[2] : batchGenerator.batchStats(); }
    public int imagePadId() { return imagePadId; }
    /** Token ids that end a caption: EOS of config.json, generation_config.json, the tokenizer, and {@code <|im_end|>}. */
    public Set<Integer> stopTokens() { return stopTokens; }

    /**
     * The prompt of {@code options} rendered through the chat template and tokenized, with the one image slot not yet
     * expanded. It does not depend on the image, so a stage computes it once.
     */
    public PromptTemplate promptTemplate(CaptionOptions options) {
        List<ChatMessage> messages = new ArrayList<>();
        if (options.systemPrompt() != null) messages.add(ChatMessage.system(options.systemPrompt()));
        messages.add(ChatMessage.userWithImage(options.prompt()));
        String text = template.render(messages, true);
        int[] ids = tokenizer.encode(text, false);
        int slots = ImageSlots.countSlots(ids, imagePadId);
        if (slots != 1)
            throw new IllegalArgumentException(template + " rendered " + slots + " image slots (token " + imagePadId + ") for one image: " + text);
        int at = 0;
        while (ids[at] != imagePadId) at++;
        return new PromptTemplate(text, ids, at);
    }

    /** A rendered, tokenized prompt with one unexpanded image slot at {@code slot}. */
    public record PromptTemplate(String text, int[] tokens, int slot) {
        public PromptTemplate { tokens = tokens.clone(); }
        @Override public int[] tokens() { return tokens.clone(); }
    }

    /** The prompt for one image: the slot expanded to the image's tokens, which the span fills with its embeddings. */
    public MultimodalPrompt prompt(PromptTemplate t, ImageEmbeddings emb) {
        if (emb.hidden() != decoder.config().hiddenSize())
            throw new IllegalArgumentException("image embeddings are " + emb.hidden() + " wide but " + dir + " has hidden_size " + decoder.config().hiddenSize());
        ImageSlots.Expanded e = ImageSlots.expand(t.tokens, imagePadId, new int[] {emb.tokens()});
        EmbeddingSpan span = new EmbeddingSpan(e.spanStarts()[0], emb.tokens(), emb.hidden(), emb.data(), emb.gridT(), emb.gridH(), emb.gridW(),
                emb.contentHash(), 0);
        return new MultimodalPrompt(e.tokens(), List.of(span));
    }

    /** The prompt for one image whose rows are on the device (cuda path): a device span at the expanded slot. */
    MultimodalPrompt prompt(PromptTemplate t, DeviceVision.Rows rows) {
        if (rows.hidden != decoder.config().hiddenSize())
            throw new IllegalArgumentException("image embeddings are " + rows.hidden + " wide but " + dir + " has hidden_size " + decoder.config().hiddenSize());
        ImageSlots.Expanded e = ImageSlots.expand(t.tokens, imagePadId, new int[] {rows.tokens});
        EmbeddingSpan span = new EmbeddingSpan(e.spanStarts()[0], rows.tokens, rows.hidden, null, rows.gridT, rows.gridH, rows.gridW,
                rows.contentHash, 0, rows.rows, true);
        return new MultimodalPrompt(e.tokens(), List.of(span));
    }

    /**
     * Generation settings of a caption: the options' sampling (else the model's defaults), stop at the stop tokens,
     * and the prompt positions before the image kept in the prefix cache.
     */
    public GenerateOptions generateOptions(CaptionOptions options, PromptTemplate t) {
        SamplingParams s = options.sampling() != null ? options.sampling() : generationConfig.toSampling(0);
        return new GenerateOptions(s, options.maxTokens(), stopTokens, List.of(), prefixCache == null ? 0 : t.slot(), null);
    }

    /** A fresh streaming detokenizer that skips special tokens. */
    public TokenText newTokenText() {
        return tokenizer.streamingDecoder(true);
    }

    /**
     * Frees the weights and the prefix cache; the shared compute scheduler keeps running. Idempotent. The release runs
     * on the compute thread, after work already queued there, so no step reads weights that are being unmapped.
     */
    @Override public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        Runnable release = () -> {
            generator.close();
            if (batchGenerator != null) batchGenerator.close();
            if (deviceVision != null) deviceVision.close();   // closes the GPU processor and encoder
            else encoder.close();
            decoder.close();
            if (prefixCache != null) prefixCache.close();
        };
        if (GpuSchedulers.isGpuThread() || scheduler.isDisposed()) { release.run(); return; }
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        scheduler.schedule(() -> { try { release.run(); } finally { done.countDown(); } });
        try {
            if (!done.await(30, java.util.concurrent.TimeUnit.SECONDS))
                LOG.log(System.Logger.Level.WARNING, "closing {0}: the compute thread stayed busy for 30 s; weights not released yet", this);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** True after {@link #close()}. */
    public synchronized boolean isClosed() { return closed; }

    @Override public String toString() { return "CaptionModel[" + dir + " on " + backend + "]"; }
}
