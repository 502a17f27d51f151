package io.vlmflux.llm.runtime;

import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.TokenText;
import io.vlmflux.llm.constrain.LogitsProcessor;
import io.vlmflux.llm.constrain.Logprobs;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.sources.Frame;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One live video source's session on a {@link VlmRuntime} (Qwen2-VL / Qwen2.5-VL / Qwen3-VL): its own KV cache holding a fixed
 * prefix (system prompt and chat header up to {@code <|vision_start|>}, the attention sink) followed by the video of
 * the last {@link Options#window()} as temporal groups of {@code temporal_patch_size} frames.
 *
 * <p><b>Incremental prefill.</b> {@link #append} encodes one group and prefills only its tokens at the end of the cache;
 * earlier groups are never recomputed. The groups form ONE video in transformers' M-RoPE layout: group {@code k} of a
 * segment that starts at position {@code b} has positions {@code (b + tk, b + row, b + col)}, {@code tk = k} (Qwen2-VL)
 * or {@code (int)(k * second_per_grid_t * tokens_per_second)} (Qwen2.5-VL, {@code second_per_grid_t =
 * temporal_patch_size / fps}), exactly as a one-shot prefill of the whole video would place them.
 *
 * <p><b>Window.</b> Before a group is appended, the oldest groups that ended more than the window before the new group's
 * end are evicted: their positions are removed from the KV cache ({@link KvCache#evict}) and the later ones move down.
 * The rotary positions of retained tokens are NOT rewritten (they are baked into the cached keys) and new groups
 * continue at increasing positions — so the next answer equals a from-scratch prefill of exactly the retained tokens
 * at their original positions (a gap in the position ids between the sink and the oldest retained group). The
 * alternative, re-prefilling the window from scratch at compacted positions, would cost a full window prefill per
 * eviction and change the retained groups' hidden states (each group then attends to fewer earlier groups); here
 * every retained group keeps the states it got when it was appended, which attended to groups since evicted — the
 * window is a sliding attention window with a sink, as in StreamingLLM-style streaming, not a re-read clip. See
 * docs/live.md.
 *
 * <p><b>Questions.</b> {@link #ask} appends {@code <|vision_end|>} + the question turn + the assistant header after the
 * window, streams the answer, then removes question and answer from the cache again (the session is exactly as before
 * the question) — or, with {@link Options#keepDialogue()}, keeps them as dialogue memory (closed turn, a new user turn
 * and a new video segment after it; evicted with the window like the groups). One answer at a time per session;
 * {@link #append} during an answer is refused (the pipeline's {@code LiveVideo} queues frames meanwhile).
 *
 * <p>Thread: all model work runs on the runtime's compute thread. Appends of several sessions on one runtime run one
 * after the other; their answers decode together: every tick of the runtime's {@link LiveBatch} steps all answers
 * that have demand in ONE {@link Decoder#forwardSampleBatch} ({@link #decodeStats}). Cancel of an answer rolls the
 * cache back; {@link #close()} frees the cache.
 *
 * <p><b>Qwen3-VL.</b> Each group is its own block as transformers' {@code Qwen3VLProcessor} writes it: {@code <T seconds>}
 * (T from the frames' pts, relative to the session's first frame), {@code <|vision_start|>}, the pads (with DeepStack
 * rows), {@code <|vision_end|>}; positions as Qwen3-VL's {@code get_rope_index} (text runs on, each group a block
 * after it, see {@link Qwen3Groups}). The sink still ends with the template's {@code <|vision_start|>} and the question
 * starts with {@code <|vision_end|>}, as the chat template and processor of {@link VlmRuntime#prepareVideo} produce.
 * Its video processor sizes frames by the whole clip: {@link Options#sizeFrames()}.
 */
public final class LiveSession implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.live");

    /**
     * @param systemPrompt   the system turn (standing instruction), part of the fixed prefix; null: the template's default
     * @param fps            frames per second the source is sampled at (the group duration is temporal_patch_size / fps)
     * @param window         video kept in the cache, by presentation time
     * @param maxAnswerTokens default limit of an answer
     * @param keepDialogue   keep each question and answer in the cache as dialogue memory (evicted with the window)
     * @param sampling       answer sampling (null: greedy)
     * @param eviction       how groups leave the window ({@link Eviction#SLIDE}: drop their cache positions;
     *                       {@link Eviction#REPREFILL}: re-prefill the retained window, exact)
     * @param sizeFrames     Qwen3-VL (whose video processor sizes frames by the pixels of the WHOLE clip): the clip length
     *                       in frames that the frame size is chosen for; 0: the frames of one window
     *                       ({@code round(window * fps)}), the clip a one-shot prompt of the window would be. Qwen2-VL and
     *                       Qwen2.5-VL size every frame alone and ignore it.
     */
    public record Options(String systemPrompt, double fps, Duration window, int maxAnswerTokens, boolean keepDialogue, SamplingParams sampling,
                          Eviction eviction, int sizeFrames) {
        public Options {
            if (eviction == null) eviction = Eviction.SLIDE;
            if (sizeFrames < 0) throw new IllegalArgumentException("live size frames must be >= 0 (0: the window's), got " + sizeFrames);
            if (!(fps > 0 && fps <= 240)) throw new IllegalArgumentException("live fps must be in (0, 240], got " + fps);
            if (window == null || window.isNegative() || window.isZero()) throw new IllegalArgumentException("live window must be positive, got " + window);
            if (maxAnswerTokens <= 0) throw new IllegalArgumentException("max answer tokens must be positive, got " + maxAnswerTokens);
        }

        public static Options defaults() { return new Options(null, 2, Duration.ofSeconds(30), 64, false, null, Eviction.SLIDE, 0); }
        public Options withSystemPrompt(String s) { return new Options(s, fps, window, maxAnswerTokens, keepDialogue, sampling, eviction, sizeFrames); }
        public Options withFps(double f) { return new Options(systemPrompt, f, window, maxAnswerTokens, keepDialogue, sampling, eviction, sizeFrames); }
        public Options withWindow(Duration w) { return new Options(systemPrompt, fps, w, maxAnswerTokens, keepDialogue, sampling, eviction, sizeFrames); }
        public Options withMaxAnswerTokens(int n) { return new Options(systemPrompt, fps, window, n, keepDialogue, sampling, eviction, sizeFrames); }
        public Options withKeepDialogue(boolean k) { return new Options(systemPrompt, fps, window, maxAnswerTokens, k, sampling, eviction, sizeFrames); }
        public Options withSampling(SamplingParams s) { return new Options(systemPrompt, fps, window, maxAnswerTokens, keepDialogue, s, eviction, sizeFrames); }
        public Options withSizeFrames(int n) { return new Options(systemPrompt, fps, window, maxAnswerTokens, keepDialogue, sampling, eviction, n); }
        public Options withEviction(Eviction e) { return new Options(systemPrompt, fps, window, maxAnswerTokens, keepDialogue, sampling, e, sizeFrames); }
    }

    /**
     * How groups leave the window. {@code SLIDE}: their positions are cut out of the KV cache ({@link KvCache#evict});
     * retained groups keep the keys and values they were computed with (which attended to the evicted groups) —
     * O(retained positions) copies, no model work. {@code REPREFILL}: the retained groups are prefilled again from their
     * kept embeddings at their original positions, so the cache is exactly what a from-scratch prefill of the retained
     * tokens gives; to amortize, it evicts only once an eighth of the window (at least one group) has fallen out.
     * REPREFILL keeps every retained group's embedding rows (host, or device rows on cuda) until it is evicted.
     */
    public enum Eviction { SLIDE, REPREFILL }

    /**
     * What one {@link #append} did. Times in nanoseconds; pts in nanoseconds of the source; {@code encodeNanos} is the
     * vision-tower pass that encoded the group, shared with the other sessions' groups of that pass; {@code evictNanos}
     * is the host time of evicting what fell out of the window (on cuda the copies it enqueues run on the device before
     * the prefill, so their device time is inside {@code prefillNanos}).
     */
    public record Appended(long group, int tokens, long startPts, long endPts, int evictedItems, int cacheLength, long kvBytes,
                           long preprocessNanos, long encodeNanos, long prefillNanos, long evictNanos) {}

    /** The video the cache holds now: from the oldest retained group's start to the newest's end (-1, -1 when empty). */
    public record Window(long startPts, long endPts, int groups, int cacheLength, long kvBytes) {}

    private enum Kind { GROUP, TURN }

    /** A run of cache positions after the sink: one temporal group, or a kept question + answer. */
    private record Item(Kind kind, int length, long startPts, long endPts, int[] tokens, int[][] positions, ImageRows rows, EmbeddingSpan span) {}

    private final VlmRuntime rt;
    private final Options options;
    private final Decoder decoder;
    private final VisionPath<?> vision;
    private final int[] prefix;            // the sink: chat header up to and including <|vision_start|>
    private final int videoPad, visionEnd, temporalPatch, merge;
    private final boolean timeScaled;
    private final Qwen3Groups qwen3;     // Qwen3-VL: per-group timestamps and vision blocks; null for Qwen2/2.5-VL
    private long originPts = Long.MIN_VALUE;   // Qwen3-VL: the session's first frame (timestamps count from it)
    private int[] sizeFor;                     // input width, height -> resized height, width
    private final double secondPerGridT;
    private final io.vlmflux.vision.VideoProcessor videoProcessor;
    private final io.vlmflux.llm.MropePositions.Temporal temporal;
    private final SamplingParams sampling;

    // compute-thread state
    private KvCache cache;
    private final ArrayDeque<Item> items = new ArrayDeque<>();
    private int segmentBase, segmentGroups, nextFree;
    private boolean answering, closed;
    private long groupsAppended, itemsEvicted;
    private volatile Window window = new Window(-1, -1, 0, 0, 0);

    private LiveSession(VlmRuntime rt, Options options) {
        this.rt = rt;
        this.options = options;
        this.decoder = rt.decoder();
        this.vision = rt.visionPath();
        ModelConfig c = decoder.config();
        if (vision == null) throw new IllegalArgumentException(rt.dir() + " is a text-only model: a live session needs a vision-language model");
        String type = c.modelType();
        boolean q3 = type.startsWith("qwen3_vl");
        if (!c.rope().isMrope() || !(type.startsWith("qwen2_vl") || type.startsWith("qwen2_5_vl") || q3))
            throw new IllegalArgumentException("live sessions run Qwen2-VL, Qwen2.5-VL and Qwen3-VL models (M-RoPE video); " + rt.dir()
                    + " is '" + type + "'");
        this.timeScaled = type.startsWith("qwen2_5_vl");
        if (q3) {
            this.qwen3 = new Qwen3Groups(rt);
            this.videoProcessor = io.vlmflux.vision.qwen3vl.Qwen3VLVideoProcessor.load(rt.dir()).video();
        } else {
            this.qwen3 = null;
            this.videoProcessor = io.vlmflux.vision.VideoProcessor.loadQwen2VL(rt.dir());
        }
        this.temporalPatch = videoProcessor.config().temporalPatchSize();
        this.merge = c.spatialMergeSize();
        if (videoProcessor.config().mergeSize() != merge)
            throw new IllegalArgumentException(rt.dir() + ": the video processor's merge_size " + videoProcessor.config().mergeSize()
                    + " differs from the model's spatial_merge_size " + merge);
        this.secondPerGridT = videoProcessor.secondPerGrid(options.fps());
        this.temporal = q3 ? io.vlmflux.llm.MropePositions.Temporal.UNSCALED : io.vlmflux.llm.MropePositions.Temporal.of(c, secondPerGridT);
        int vpad = c.videoTokenId();
        this.videoPad = vpad >= 0 ? vpad : rt.imagePadId();
        this.visionEnd = rt.tokenizer().tokenId("<|vision_end|>")
                .orElseThrow(() -> new IllegalArgumentException(rt.tokenizer().source() + " has no <|vision_end|> token"));
        PromptTemplate t = rt.promptTemplate(options.systemPrompt(), "", 1);
        int[] toks = t.tokens();
        int slot = t.slots()[0];
        if (slot == 0 || toks[slot - 1] != c.visionStartTokenId())
            throw new IllegalArgumentException(rt.dir() + ": the chat template does not write <|vision_start|> right before the image slot; a live session needs it");
        this.prefix = Arrays.copyOf(toks, slot);
        this.sampling = options.sampling() != null ? options.sampling() : SamplingParams.greedyDecoding();
    }

    /** A new session on {@code runtime} (no model work yet: the prefix is prefilled with the first group or question). */
    public static LiveSession open(VlmRuntime runtime, Options options) {
        if (runtime == null || options == null) throw new IllegalArgumentException("live session needs a runtime and options");
        return new LiveSession(runtime, options);
    }

    public Options options() { return options; }

    /** Frames per temporal group ({@code temporal_patch_size}). */
    public int framesPerGroup() { return temporalPatch; }

    /** The window now (any thread). */
    public Window window() { return window; }

    /** Groups appended and items (groups, kept turns) evicted so far. */
    public long[] counts() { return new long[]{groupsAppended, itemsEvicted}; }

    // ---- append ------------------------------------------------------------------------------------------------

    /**
     * Encodes {@code group} (1 to temporal_patch_size consecutive frames of one size; fewer are padded with the last
     * one) and prefills its tokens after the window, evicting groups that fall out of it first. Owns the frames from
     * subscription on (closed after encoding, or on cancel/error). Refused while an answer is in progress.
     */
    public Mono<Appended> append(List<Frame> group) {
        return Mono.defer(() -> {
            AtomicReference<List<Frame>> owned = new AtomicReference<>(List.copyOf(group));
            return Mono.<Appended>create(sink -> {
                sink.onCancel(() -> closeFrames(owned.getAndSet(null)));
                LiveAppends.of(rt).submit(this, owned, sink);
            });
        });
    }

    /** {@link #append} for callers that may block (tests, benchmarks). */
    public Appended appendBlocking(List<Frame> group) { return append(group).block(); }

    /**
     * A group between its preprocessing and its prefill ({@link LiveAppends} encodes several sessions' groups at once):
     * host pixels, or — where the vision path preprocesses groups on the device ({@code vlmflux.live.devicePreprocess})
     * — the frames and their size in {@code onDevice}, which then owns the frames until it is encoded ({@link #close}).
     */
    record Prepared(io.vlmflux.vision.PixelValues pixels, long start, long end, long lastPts, int frames, long preprocessNanos,
                    VisionPath.FrameGroup onDevice) {
        /** Closes the frames a device-preprocessed group still owns (after its encode, or when it failed). */
        void close() { if (onDevice != null) closeFrames(onDevice.frames()); }
    }

    /**
     * Compute thread: checks and preprocesses a group. Host preprocessing closes the frames whatever happens; a group
     * left for the device keeps them in its {@link Prepared#onDevice()} (closed on failure here).
     */
    Prepared prepareAppend(List<Frame> frames) {
        boolean handedOn = false;
        try {
            checkAppendable();
            if (frames.isEmpty() || frames.size() > temporalPatch)
                throw new IllegalArgumentException("a temporal group takes 1 to " + temporalPatch + " frames, got " + frames.size());
            long start = frames.getFirst().ptsNanos(), frameNs = Math.round(1e9 / options.fps());
            long lastPts = frames.getLast().ptsNanos(), end = lastPts + frameNs;
            if (!items.isEmpty() && start < items.getLast().endPts() - frameNs)
                LOG.log(System.Logger.Level.DEBUG, "live group starts at {0} ns, before the previous end {1} ns (source restarted?)", start, items.getLast().endPts());
            ensureStarted();
            int[] size = frameSize(frames.getFirst());
            if (vision.preprocessesGroups(videoProcessor.config())) {   // resized, normalised and patchified with the encode
                Prepared g = new Prepared(null, start, end, lastPts, frames.size(), 0, new VisionPath.FrameGroup(List.copyOf(frames), size[0], size[1]));
                handedOn = true;
                return g;
            }
            long p0 = System.nanoTime();
            io.vlmflux.vision.PixelValues px = videoProcessor.process(frames, size[0], size[1]);   // the video config's size bounds
            return new Prepared(px, start, end, lastPts, frames.size(), System.nanoTime() - p0, null);
        } finally {
            if (!handedOn) closeFrames(frames);
        }
    }

    private void checkAppendable() {
        checkUsable();
        if (answering) throw new IllegalStateException("an answer is in progress on this live session: append after it (LiveVideo queues frames meanwhile)");
    }

    /**
     * Compute thread: evicts what falls out of the window and prefills the encoded group {@code rows} (Qwen3-VL: with
     * its DeepStack rows) at the end of the cache; releases the rows (or keeps them for re-prefill eviction).
     */
    Appended finishAppend(Prepared g, ImageRows rows, long encodeNanos) {
        try {
            checkAppendable();
            if (rows.gridT != 1) throw new IllegalStateException("a group of " + g.frames() + " frames gave " + rows.gridT + " temporal patches, expected 1");
            if (rows.hidden != decoder.config().hiddenSize())
                throw new IllegalArgumentException("video embeddings are " + rows.hidden + " wide but the model's hidden_size is " + decoder.config().hiddenSize());
            long start = g.start(), end = g.end();
            // evict what falls out of the window ending at this group's end
            long e0 = System.nanoTime();
            int evicted = evictBefore(end - options.window().toNanos());
            long t0 = System.nanoTime();
            int[] toks;
            int[][] pos;
            EmbeddingSpan span;
            if (qwen3 != null) {
                if (originPts == Long.MIN_VALUE) originPts = start;
                Qwen3Groups.Group q = qwen3.group(rows, nextFree, start - originPts, g.lastPts() - originPts, merge, videoPad);
                toks = q.tokens();
                pos = q.positions();
                span = q.span();
                nextFree = q.next();
            } else {
                int n = rows.tokens;
                pos = groupPositions(segmentGroups, rows.gridH, rows.gridW, n);
                toks = new int[n];
                Arrays.fill(toks, videoPad);
                span = new EmbeddingSpan(0, n, rows.hidden, rows.spanRows(), 1, rows.gridH, rows.gridW, rows.contentHash,
                        timeScaled ? secondPerGridT : 0);
            }
            int n = toks.length;
            ensureCapacity(cache.length() + n + 1);
            decoder.forward(cache, new ForwardInput(toks, List.of(span), pos), false);
            long prefill = System.nanoTime() - t0;
            segmentGroups++;
            boolean keepRows = options.eviction() == Eviction.REPREFILL;
            items.addLast(new Item(Kind.GROUP, n, start, end, toks, pos, keepRows ? rows : null, keepRows ? span : null));
            if (keepRows) rows = null;   // held until evicted
            long index = groupsAppended++;
            updateWindow();
            return new Appended(index, n, start, end, evicted, cache.length(), cache.bytes(), g.preprocessNanos(), encodeNanos, prefill, t0 - e0);
        } finally {
            if (rows != null) vision.release(rows);   // the prefill reading them is enqueued on the same stream
        }
    }

    /**
     * Positions of group {@code k} of the current segment (grid {@code gridH x gridW} before the merge), as
     * {@link io.vlmflux.llm.MropePositions#videoGroups} gives them for one video span; advances {@link #nextFree}.
     */
    private int[][] groupPositions(int k, int gridH, int gridW, int n) {
        int[][] p = io.vlmflux.llm.MropePositions.videoGroups(segmentBase, k, 1, gridH, gridW, merge, temporal);
        if (p[0].length != n) throw new IllegalStateException("group of " + n + " tokens does not match its grid " + gridH + "x" + gridW);
        nextFree = Math.max(nextFree, io.vlmflux.llm.MropePositions.nextAfter(segmentBase, k + 1, gridH, gridW, merge, temporal));
        return p;
    }

    /**
     * The size every frame of a group is resized to: Qwen2-VL / Qwen2.5-VL size each frame alone; Qwen3-VL's processor
     * sizes a clip by its total pixels, so the session takes the clip of {@link Options#sizeFrames()} frames (0: one
     * window's). Fixed per input size.
     */
    private int[] frameSize(Frame f) {
        if (sizeFor == null || sizeFor[0] != f.width() || sizeFor[1] != f.height()) {
            int clip = temporalPatch;
            if (videoProcessor.rule() == io.vlmflux.vision.VideoProcessor.SizeRule.WHOLE_CLIP)
                clip = options.sizeFrames() > 0 ? options.sizeFrames()
                        : (int) Math.max(temporalPatch, Math.min(1 << 20, Math.round(options.window().toNanos() / 1e9 * options.fps())));
            int[] hw = videoProcessor.resizedSize(clip, f.width(), f.height());
            sizeFor = new int[]{f.width(), f.height(), hw[0], hw[1]};
        }
        return new int[]{sizeFor[2], sizeFor[3]};
    }

    /** Evicts leading items that ended at or before {@code windowStart}; returns how many. */
    private int evictBefore(long windowStart) {
        if (options.eviction() == Eviction.REPREFILL && !items.isEmpty()) {
            long slack = options.window().toNanos() / 8;
            if (items.getFirst().endPts() > windowStart - slack) return 0;   // amortize: wait until an eighth is out
        }
        int count = 0, positions = 0;
        while (!items.isEmpty() && items.getFirst().endPts() <= windowStart) {
            Item it = items.removeFirst();
            if (it.rows() != null) vision.release(it.rows());
            positions += it.length();
            count++;
        }
        itemsEvicted += count;
        if (positions == 0) return 0;
        if (options.eviction() == Eviction.SLIDE) {
            cache.evict(prefix.length, positions);
            return count;
        }
        // REPREFILL: the retained items again, from their tokens, rows and original positions, in one chunk
        int delta = cache.positionDelta();
        cache.reset(prefix.length);
        int n = 0;
        for (Item it : items) n += it.length();
        if (n > 0) {
            int[] toks = new int[n];
            int[][] pos = new int[3][n];
            List<EmbeddingSpan> spans = new ArrayList<>();
            int o = 0;
            for (Item it : items) {
                System.arraycopy(it.tokens(), 0, toks, o, it.length());
                for (int a = 0; a < 3; a++) System.arraycopy(it.positions()[a], 0, pos[a], o, it.length());
                if (it.span() != null) spans.add(it.span().at(o + it.span().start()));
                o += it.length();
            }
            decoder.forward(cache, new ForwardInput(toks, spans, pos), false);
        }
        cache.positionDelta(delta + positions);
        return count;
    }

    // ---- questions -------------------------------------------------------------------------------------------------

    /** {@link #ask(String, int)} with {@link Options#maxAnswerTokens()}. */
    public Flux<TokenEvent> ask(String question) { return ask(question, options.maxAnswerTokens()); }

    /**
     * Answers {@code question} over the current window: cold, demand-driven (one decode step per requested event, on
     * the compute thread, batched with the answers of other sessions of the runtime that have demand too); at the end, on cancel or on error the question and answer leave the cache (unless
     * {@link Options#keepDialogue()} and the answer finished). One answer at a time per session.
     */
    public Flux<TokenEvent> ask(String question, int maxTokens) { return ask(question, maxTokens, TokenControls.none()); }

    /**
     * {@link #ask(String, int)} with token controls ({@link VlmRuntime#controls}): a constraint restricts the answer
     * (it ends where the constraint accepts an end token) and {@code logprobs > 0} puts the chosen token's
     * log-probability (after bias and mask) on every event. Controls select host sampling (the logits are read back).
     */
    public Flux<TokenEvent> ask(String question, int maxTokens, TokenControls controls) {
        if (question == null) throw new IllegalArgumentException("question must not be null");
        if (maxTokens <= 0) throw new IllegalArgumentException("max tokens must be positive, got " + maxTokens);
        TokenControls tc = controls == null ? TokenControls.none() : controls;
        return Flux.create(sink -> {
            LiveBatch batch = LiveBatch.of(rt);
            try {
                rt.scheduler().schedule(() -> {
                    Answer a;
                    try {
                        if (sink.isCancelled()) return;
                        a = begin(question, maxTokens, tc);
                    } catch (Throwable e) {
                        sink.error(e);
                        return;
                    }
                    batch.join(a, sink);
                });
            } catch (java.util.concurrent.RejectedExecutionException e) {
                sink.error(new IllegalStateException(rt + " is closed", e));
            }
        }, reactor.core.publisher.FluxSink.OverflowStrategy.ERROR);   // events are emitted only on demand
    }

    /**
     * Decode steps of this runtime's live answers so far ({@link LiveBatch}): steps taken, steps that decoded several
     * sessions' answers in one {@link Decoder#forwardSampleBatch}, tokens decoded, the largest batch.
     */
    public static DecodeStats decodeStats(VlmRuntime runtime) { return LiveBatch.of(runtime).stats(); }

    /** How the appends of {@code runtime}'s live sessions were encoded: groups, vision-tower passes, the largest pass. */
    public static AppendStats appendStats(VlmRuntime runtime) { return LiveAppends.of(runtime).stats(); }

    /** @param groups appended groups; @param passes encoder passes they took; @param largest most groups in one pass */
    public record AppendStats(long groups, long passes, int largest) {}

    /**
     * @param steps        batched decode calls (one per tick that had device-sampled answers to step)
     * @param multiSteps   of those, calls that held answers of two or more sessions
     * @param tokens       tokens decoded through those calls
     * @param maxBatch     the most answers in one call
     */
    public record DecodeStats(long steps, long multiSteps, long tokens, int maxBatch) {}

    /**
     * The logits that would pick the first answer token to {@code question} over the current window; the cache is
     * rolled back after. For tests and tools that compare the live cache with a reference prefill.
     */
    public Mono<float[]> questionLogits(String question) {
        return Mono.fromCallable(() -> {
            Answer a = begin(question, 1, TokenControls.none());
            try {
                return a.firstLogits;
            } finally {
                a.finish(false);
            }
        }).subscribeOn(rt.scheduler());
    }

    /** The tokens that follow the window for {@code question}: {@code <|vision_end|>}, the user text, the assistant header. */
    int[] questionTokens(String question) {
        PromptTemplate t = rt.promptTemplate(options.systemPrompt(), question, 1);
        int[] toks = t.tokens();
        int slot = t.slots()[0];
        if (slot != prefix.length || !Arrays.equals(toks, 0, slot, prefix, 0, slot))
            throw new IllegalStateException("the chat template renders a different prefix for question '" + question + "': a live session needs the video first");
        int[] rest = Arrays.copyOfRange(toks, slot + 1, toks.length);
        if (rest.length == 0 || rest[0] != visionEnd) throw new IllegalStateException("the chat template does not close the video with <|vision_end|>");
        return rest;
    }

    /** The sink tokens (chat header up to {@code <|vision_start|>}). */
    public int[] prefixTokens() { return prefix.clone(); }

    /** The video token each group position holds. */
    public int videoPadToken() { return videoPad; }

    private Answer begin(String question, int maxTokens, TokenControls controls) {
        checkUsable();
        if (answering) throw new IllegalStateException("this live session is already answering a question: one answer at a time");
        ensureStarted();
        int[] q = questionTokens(question);
        Answer a = new Answer(q, maxTokens, controls);
        answering = true;
        try {
            a.prefill();
        } catch (RuntimeException | Error e) {
            a.finish(false);
            throw e;
        }
        return a;
    }

    /** One answer's state (compute thread). */
    final class Answer {
        final int[] question;
        final int maxTokens;
        final int rollbackLength, rollbackDelta, rollbackNextFree;
        final TokenText text = rt.newTokenText();
        final long started = System.nanoTime();
        float[] firstLogits;
        int chosen = -1, pending = -1, generated, lastUnfed = -1;
        boolean done, finished;
        final StringBuilder answer = new StringBuilder();
        final List<Integer> answerTokens = new ArrayList<>();

        final LogitsProcessor processor;   // null without token controls: device sampling as before
        final io.vlmflux.llm.sampling.Sampler hostSampler;
        Logprobs chosenLp;
        boolean chosenEnds;

        Answer(int[] question, int maxTokens, TokenControls controls) {
            this.question = question;
            this.maxTokens = maxTokens;
            this.processor = controls.isEmpty() ? null : new LogitsProcessor(controls);
            this.hostSampler = processor == null ? null
                    : new io.vlmflux.llm.sampling.Sampler(sampling.withSeed(sampling.seed() + cache.length()), decoder.config().vocabSize());
            this.rollbackLength = cache.length();
            this.rollbackDelta = cache.positionDelta();
            this.rollbackNextFree = nextFree;
        }

        void prefill() {
            int n = question.length;
            ensureCapacity(cache.length() + n + maxTokens + 8);
            int[][] pos = sequential(nextFree, n);
            int len = cache.length();
            firstLogits = decoder.forward(cache, new ForwardInput(question, List.of(), pos), false);
            cache.positionDelta(nextFree - len);   // decode at cache position p uses p + delta on all axes
            nextFree += n;
            if (processor == null) chosen = pick(firstLogits);
            else select(firstLogits.clone());
        }

        /** Host selection under the controls: bias and mask, sample, log-probability, constraint state. */
        void select(float[] logits) {
            processor.apply(logits);
            chosen = hostSampler.sample(logits);
            chosenLp = processor.logprobs(logits, chosen);
            chosenEnds = processor.accept(chosen);
        }

        int pick(float[] logits) {
            return new io.vlmflux.llm.sampling.Sampler(sampling.withSeed(sampling.seed() + cache.length()), decoder.config().vocabSize()).sample(logits);
        }

        /** Whether the next step feeds a token and samples on the device (the step {@link LiveBatch} batches). */
        boolean deviceStepDue() { return pending >= 0 && processor == null && !done; }

        KvCache cache() { return cache; }

        int pendingToken() { return pending; }

        SamplingParams sampling() { return sampling; }

        /** The batched step fed {@link #pendingToken()} and chose {@code token}. */
        void stepped(int token) {
            chosen = token;
            nextFree++;
            pending = -1;
        }

        boolean isDone() { return done; }

        boolean isFinished() { return finished; }

        TokenEvent step() {
            if (pending >= 0) {
                if (processor == null) chosen = decoder.forwardSample(cache, ForwardInput.tokens(pending), sampling);
                else select(decoder.forward(cache, ForwardInput.tokens(pending), false));
                nextFree++;
                pending = -1;
            }
            int tok = chosen;
            int index = generated++;
            FinishReason fin = null;
            String delta;
            boolean constrained = processor != null && processor.controls().constraint() != null;
            if (constrained ? chosenEnds : rt.stopTokens().contains(tok)) {
                fin = FinishReason.STOP;
                delta = text.flush();
            } else {
                delta = text.push(tok);
                answerTokens.add(tok);
                if (generated >= maxTokens) {
                    fin = FinishReason.LENGTH;
                    lastUnfed = tok;
                    delta += text.flush();
                } else pending = tok;
            }
            answer.append(delta);
            if (fin != null) done = true;
            return new TokenEvent(tok, delta, index, fin, chosenLp);
        }

        /** Rolls the cache back to before the question, or keeps the closed turn as dialogue memory. */
        void finish(boolean completed) {
            if (finished) return;
            finished = true;
            answering = false;
            if (cache == null || cache.isClosed()) return;
            if (completed && done && options.keepDialogue() && !closed) {
                try {
                    keepTurn();
                    return;
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.WARNING, "live session: keeping the dialogue turn failed, rolled back: " + e);
                }
            }
            cache.reset(rollbackLength);
            cache.positionDelta(rollbackDelta);
            nextFree = rollbackNextFree;
            updateWindow();
        }

        /**
         * Feeds the answer's last token (when the length limit ended it), then ChatML's end of turn and a new user turn
         * opening a new video segment: {@code <|im_end|>\n<|im_start|>user\n<|vision_start|>}.
         */
        private void keepTurn() {
            List<Integer> tail = new ArrayList<>();
            if (lastUnfed >= 0) tail.add(lastUnfed);   // length-limited answer: its last token was not fed yet
            for (int x : rt.tokenizer().encode("<|im_end|>\n<|im_start|>user\n<|vision_start|>")) tail.add(x);
            int[] toks = tail.stream().mapToInt(Integer::intValue).toArray();
            ensureCapacity(cache.length() + toks.length + 1);
            int[][] tailPos = sequential(nextFree, toks.length);
            decoder.forward(cache, new ForwardInput(toks, List.of(), tailPos), false);
            int kept = cache.length() - rollbackLength;
            // the whole turn (question, answer, closing tokens) as one item, with its positions
            int[] turn = new int[kept];
            int[][] turnPos = sequential(rollbackNextFree, kept);
            int o = 0;
            System.arraycopy(question, 0, turn, o, question.length);
            o += question.length;
            for (int i = 0; i < answerTokens.size() - (lastUnfed >= 0 ? 1 : 0); i++) turn[o++] = answerTokens.get(i);
            System.arraycopy(toks, 0, turn, o, toks.length);
            nextFree += toks.length;
            long endPts = window.endPts();
            items.addLast(new Item(Kind.TURN, kept, endPts, endPts, turn, turnPos, null, null));
            segmentBase = nextFree;   // a new video segment after the turn
            segmentGroups = 0;
            updateWindow();
        }
    }

    private static int[][] sequential(int from, int n) {
        int[][] p = new int[3][n];
        for (int a = 0; a < 3; a++) for (int i = 0; i < n; i++) p[a][i] = from + i;
        return p;
    }

    // ---- cache -------------------------------------------------------------------------------------------------

    /** Allocates the cache and prefills the sink on first use. */
    private void ensureStarted() {
        if (cache != null) return;
        int cap = roundUp(prefix.length + 512);
        cache = decoder.newCache(Math.min(cap, decoder.config().maxPositionEmbeddings()));
        try {
            decoder.forward(cache, new ForwardInput(prefix, List.of(), sequential(0, prefix.length)), false);
        } catch (RuntimeException | Error e) {
            cache.close();
            cache = null;
            throw e;
        }
        segmentBase = prefix.length;
        nextFree = prefix.length;
        segmentGroups = 0;
        updateWindow();
    }

    /** Grows the cache (a copy into a larger one) so that it holds {@code need} positions; a full window stops growing it. */
    private void ensureCapacity(int need) {
        if (cache.capacity() >= need) return;
        int max = decoder.config().maxPositionEmbeddings();
        if (need > max) throw new IllegalStateException("the live window needs " + need + " cache positions, more than the model's context of " + max
                + ": shorten the window or lower the fps");
        int cap = Math.min(max, roundUp(need + need / 4));
        KvCache bigger = decoder.newCache(cap);
        try {
            bigger.copyFrom(cache, cache.length());
        } catch (RuntimeException | Error e) {
            bigger.close();
            throw e;
        }
        cache.close();
        cache = bigger;
    }

    private static int roundUp(int n) { return (n + 255) / 256 * 256; }

    private void updateWindow() {
        long s = -1, e = -1;
        int groups = 0;
        for (Item it : items) {
            if (it.kind() != Kind.GROUP) continue;
            if (s < 0) s = it.startPts();
            e = it.endPts();
            groups++;
        }
        window = new Window(s, e, groups, cache == null ? 0 : cache.length(), cache == null ? 0 : cache.bytes());
    }

    private void checkUsable() {
        if (closed) throw new IllegalStateException("this live session is closed");
        if (rt.isClosed()) throw new IllegalStateException(rt + " is closed");
    }

    private static void closeFrames(List<Frame> frames) {
        if (frames != null) for (Frame f : frames) f.close();
    }

    /**
     * Frees the KV cache on the compute thread, after work already queued there: waits for it, except on a Reactor
     * non-blocking thread (a cancel from a timer), where it is only scheduled. Idempotent.
     */
    @Override public void close() {
        Runnable free = () -> {
            closed = true;
            if (cache != null) cache.close();
            cache = null;
            for (Item it : items) if (it.rows() != null) vision.release(it.rows());
            items.clear();
            window = new Window(-1, -1, 0, 0, 0);
        };
        if (rt.isClosed() || rt.onComputeThread()) { free.run(); return; }
        try {
            if (reactor.core.scheduler.Schedulers.isInNonBlockingThread()) rt.scheduler().schedule(free);   // a Reactor thread: do not wait
            else Mono.fromRunnable(free).subscribeOn(rt.scheduler()).block(Duration.ofSeconds(30));
        } catch (java.util.concurrent.RejectedExecutionException e) {
            free.run();
        }
    }

    /** Whether {@link #close()} ran. */
    public boolean isClosed() { return closed; }
}
