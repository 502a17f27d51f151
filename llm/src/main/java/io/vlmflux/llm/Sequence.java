package io.vlmflux.llm;

import io.vlmflux.llm.cache.PrefixCache;
import io.vlmflux.llm.constrain.LogitsProcessor;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.llm.constrain.Logprobs;
import io.vlmflux.llm.sampling.Sampler;
import io.vlmflux.llm.sampling.StopMatcher;

import java.util.Arrays;
import java.util.List;

/**
 * The imperative core of one generation: {@link #prefill()} then {@link #step()} until an event carries a finish
 * reason. Owns its KV cache ({@link #close()} frees it). Not thread-safe; the generator drives it from one thread.
 *
 * <p>Token selection: where the decoder {@linkplain Decoder#samplesOnDevice samples on the device} for these sampling
 * settings (CUDA: greedy, temperature/top-k/top-p), each forward is {@link Decoder#forwardSample} and only the token id
 * reaches the host; otherwise the last position's logits come back and the sequence's own {@link Sampler} picks.
 * Token controls (constraint, logit bias, log-probabilities) force the host path: a {@link LogitsProcessor} biases and
 * masks the logits before the sampler and advances the constraint with the chosen token. With a constraint, only its
 * end tokens finish with {@code stop} (allowed exactly where the output is complete); a stop token the constraint
 * allows as text is text — compile the constraint with the stop tokens as end tokens.
 */
final class Sequence implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.llm");
    private static final java.util.concurrent.atomic.AtomicBoolean HOST_PATH_LOGGED = new java.util.concurrent.atomic.AtomicBoolean();
    private final Decoder decoder;
    private final PrefixCache prefixCache;
    private final MultimodalPrompt prompt;
    private final GenerateOptions opts;
    private final TokenText text;
    private final Sampler sampler;
    private final StopMatcher stops;
    private final LogitsProcessor processor;   // null without token controls
    private final boolean deviceMask;          // the constraint masks on the device (CUDA), the decoder selects there
    private final Runnable onClose;
    private KvCache cache;
    private final boolean onDevice;
    private float[] logits;       // host path: logits of the last position fed
    private int chosen = -1;      // device path: the token the decoder selected after the last forward
    private boolean prefilled;
    private int pending = -1;     // sampled token not yet fed to the model
    private int generated;
    private boolean finished;
    private int reused;

    Sequence(Decoder decoder, PrefixCache prefixCache, MultimodalPrompt prompt, GenerateOptions opts, TokenText text, Runnable onClose) {
        this.decoder = decoder;
        this.prefixCache = prefixCache;
        this.prompt = prompt;
        this.opts = opts;
        this.text = text == null ? TokenText.none() : text;
        this.onClose = onClose;
        ModelConfig c = decoder.config();
        int capacity = (int) Math.min(c.maxPositionEmbeddings(), (long) prompt.length() + opts.maxTokens() + 1);
        if (prompt.length() > capacity)
            throw new IllegalArgumentException("prompt of " + prompt.length() + " tokens exceeds the model's context of " + c.maxPositionEmbeddings());
        this.cache = decoder.newCache(capacity);
        this.processor = opts.controls().isEmpty() ? null : new LogitsProcessor(opts.controls());
        boolean device = decoder.samplesOnDevice(opts.sampling());
        this.onDevice = processor == null && device;
        // a constraint alone masks on the device where the backend can (CUDA): the logits never leave the GPU;
        // logit_bias and logprobs need the logits on the host
        TokenControls tc = opts.controls();
        this.deviceMask = processor != null && tc.constraint() != null && tc.logitBias().isEmpty() && tc.logprobs() == 0
                && decoder.masksOnDevice(opts.sampling());
        if (device && processor != null && !deviceMask)
            LOG.log(HOST_PATH_LOGGED.getAndSet(true) ? System.Logger.Level.DEBUG : System.Logger.Level.INFO,
                    "token controls with logit_bias or logprobs select host sampling on " + decoder.backend());
        this.sampler = onDevice || deviceMask ? null : new Sampler(opts.sampling(), c.vocabSize());
        this.stops = new StopMatcher(opts.stopStrings());
        if (sampler != null) sampler.observe(prompt.tokens());
    }

    /** The constraint's allowed ids in its current state, as the device mask takes them. */
    private long[] allowedWords() {
        int vocab = decoder.config().vocabSize();
        long[] w = processor.controls().constraint().allowedWords(processor.state(), vocab);   // cached per state: read only
        for (long x : w) if (x != 0) return w;
        throw new IllegalStateException("the constraint allows no token of the model's vocabulary in state " + processor.state());
    }

    /** Whether a constraint masks the logits on the device (no logits download). */
    boolean masksOnDevice() { return deviceMask; }

    /** Prompt positions taken from the prefix cache by the last prefill. */
    int reusedPrefix() { return reused; }

    /** Whether tokens are selected on the device (only ids cross to the host). */
    boolean samplesOnDevice() { return onDevice; }

    /** Runs the prompt (minus any cached prefix) and keeps the logits of its last position (or the device's choice). */
    void prefill() {
        long t0 = System.nanoTime();
        int n = prompt.length();
        int[] tokens = prompt.tokens();
        boolean mrope = decoder.config().rope().isMrope();
        MropePositions mp = mrope ? MropePositions.compute(prompt, decoder.config()) : null;
        int keep = prefixCache == null ? 0 : PrefixCache.safeLength(prompt, Math.min(opts.cachePrefix(), n - 1));
        reused = prefixCache == null ? 0 : prefixCache.restore(prompt, n - 1, cache);
        int from = reused;
        if (keep > from) {   // prefill up to the shareable prefix first, store it, then the rest
            decoder.forward(cache, input(tokens, mp, from, keep), false);
            prefixCache.store(prompt, keep, cache);
            from = keep;
        }
        ForwardInput rest = input(tokens, mp, from, n);
        if (onDevice) chosen = decoder.forwardSample(cache, rest, opts.sampling());
        else if (deviceMask) chosen = decoder.forwardSampleMasked(cache, rest, opts.sampling(), allowedWords());
        else logits = decoder.forward(cache, rest, false);
        prefilled = true;
        if (mp != null) cache.positionDelta(mp.delta());
        if (opts.onPrefillNanos() != null) opts.onPrefillNanos().accept(System.nanoTime() - t0);
    }

    private ForwardInput input(int[] tokens, MropePositions mp, int from, int to) {
        int[] chunk = Arrays.copyOfRange(tokens, from, to);
        List<EmbeddingSpan> spans = prompt.spans().stream().filter(s -> s.start() >= from && s.end() <= to).map(s -> s.at(s.start() - from)).toList();
        for (EmbeddingSpan s : prompt.spans())
            if (s.start() < to && s.end() > from && !(s.start() >= from && s.end() <= to))
                throw new IllegalStateException("chunk [" + from + ", " + to + ") cuts the image span at " + s.start());
        int[][] pos = null;
        if (mp != null) {
            pos = new int[3][];
            for (int a = 0; a < 3; a++) pos[a] = Arrays.copyOfRange(mp.positions()[a], from, to);
        }
        return new ForwardInput(chunk, spans, pos);
    }

    /** Generates one token. The returned event is the last one when its finish reason is set. */
    TokenEvent step() {
        if (finished) throw new IllegalStateException("sequence already finished");
        if (cache == null) throw new IllegalStateException("sequence closed");
        if (!prefilled) prefill();
        if (opts.maxTokens() == 0) { finished = true; return new TokenEvent(-1, "", 0, FinishReason.LENGTH); }
        if (pending >= 0) {
            if (cache.length() + 1 > cache.capacity()) {
                finished = true;
                return new TokenEvent(pending, text.flush() + stops.flush(), generated, FinishReason.LENGTH);
            }
            if (onDevice) chosen = decoder.forwardSample(cache, ForwardInput.tokens(pending), opts.sampling());
            else if (deviceMask) chosen = decoder.forwardSampleMasked(cache, ForwardInput.tokens(pending), opts.sampling(), allowedWords());
            else logits = decoder.forward(cache, ForwardInput.tokens(pending), false);
            pending = -1;
        }
        Logprobs lp = null;
        boolean constraintEnd = false;
        int tok;
        if (onDevice) tok = chosen;
        else if (deviceMask) {
            tok = chosen;
            constraintEnd = processor.accept(tok);
        } else {
            if (processor != null) processor.apply(logits);
            tok = sampler.sample(logits);
            if (processor != null) {
                lp = processor.logprobs(logits, tok);
                constraintEnd = processor.accept(tok);
            }
        }
        int index = generated++;
        FinishReason fin = null;
        String delta;
        boolean constrained = processor != null && processor.controls().constraint() != null;
        if (constraintEnd || (!constrained && opts.stopTokens().contains(tok))) {
            fin = FinishReason.STOP;
            delta = stops.push(text.flush()).emit() + stops.flush();
        } else {
            StopMatcher.Result r = stops.push(text.push(tok));
            delta = r.emit();
            if (r.stopped()) fin = FinishReason.STOP_STRING;
        }
        if (fin == null && generated >= opts.maxTokens()) {
            fin = FinishReason.LENGTH;
            StopMatcher.Result r = stops.push(text.flush());
            delta += r.emit();
            if (r.stopped()) fin = FinishReason.STOP_STRING;
            else delta += stops.flush();
        }
        if (fin != null) finished = true;
        else pending = tok;
        return new TokenEvent(tok, delta, index, fin, lp);
    }

    boolean isFinished() { return finished; }

    /**
     * For a batched decode ({@link BatchGenerator}): the token the next {@link #step()} would feed through a device-
     * sampling forward, or -1 when the next step needs no such forward (not prefilled, host sampling, nothing pending,
     * the cache is full, finished). After the batch ran it, {@link #chosenByBatch} hands the result in.
     */
    int pendingDecodeToken() {
        if (finished || cache == null || !prefilled || !onDevice || pending < 0 || opts.maxTokens() == 0) return -1;
        if (cache.length() + 1 > cache.capacity()) return -1;
        return pending;
    }

    KvCache cache() { return cache; }

    SamplingParams sampling() { return opts.sampling(); }

    /** The device's choice after a batched forward of {@link #pendingDecodeToken()} (the cache already holds it). */
    void chosenByBatch(int token) {
        if (pending < 0) throw new IllegalStateException("no pending token to accept a batched result for");
        chosen = token;
        pending = -1;
    }

    @Override public void close() {
        if (cache != null) {
            cache.close();
            cache = null;
            if (onClose != null) onClose.run();
        }
    }
}
