package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.Tuning;
import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.cuda.cpu.Rope;
import io.vlmflux.cuda.gpu.BatchDecodeOps;
import io.vlmflux.cuda.gpu.Blas;
import io.vlmflux.cuda.gpu.CudaException;
import io.vlmflux.cuda.gpu.CudaGraph;
import io.vlmflux.cuda.gpu.DeviceArena;
import io.vlmflux.cuda.gpu.DeviceBuffer;
import io.vlmflux.cuda.gpu.GpuDevice;
import io.vlmflux.cuda.gpu.GpuEvent;
import io.vlmflux.cuda.gpu.GpuOps;
import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.cuda.gpu.Int4Device;
import io.vlmflux.cuda.gpu.Int4Ops;
import io.vlmflux.cuda.gpu.PinnedBuffer;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.EmbeddingSpan;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.RopeConfig;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TextModelSpec;
import io.vlmflux.llm.sampling.Sampler;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The decoder on one CUDA device, for every family the CPU decoder supports (Qwen2/2.5 qkv bias, Qwen3 q/k norm,
 * Llama 3 rope scaling, Qwen2-VL M-RoPE + embedding spans; any GQA ratio, any even head dim up to 256).
 *
 * <p>Memory: weights are uploaded once as bf16 into one arena (q/k/v fused into one [q+2kv, hidden] matrix, gate/up
 * into one [2*inter, hidden] matrix; biases fp32); the same arena holds every activation buffer, sized for a prefill
 * chunk of {@link #chunk} tokens. Nothing is allocated per step; each {@link CudaKvCache} is one allocation.
 *
 * <p>Prefill runs chunks through cuBLAS GEMMs (bf16 in, fp32 accumulate; residual adds fused as beta = 1) and the tiled
 * causal attention. Decode (one token) runs GEMVs with the residual add fused, and split-sequence GQA attention; the
 * whole step reads its token, positions and cache length from device memory, so it is captured once per cache as a
 * CUDA graph and replayed every token ({@code -Dvlmflux.cuda.graphs=false} or a failed capture: eager, logged).
 * {@link #forwardSample} selects the token on the device; only its id is copied to the host.
 *
 * <p>Batched decode ({@link #forwardSampleBatch}, one token for each of B sequences): one pass over the weights (the
 * skinny GEMM of {@link BatchDecodeOps#gemvRows} up to 4 rows, cuBLAS beyond), rope/KV write and split attention for all
 * rows in one launch each. Each row's cache addresses, position and length sit in device tables written before the
 * step, so the step is captured once per (batch size, split count) and replayed for any set of caches: sequences join
 * and leave without a re-capture. {@code -Dvlmflux.cuda.batchGraphs=false}, graphs off, or a failed capture (logged):
 * eager steps with per-row rope/attention launches (same numbers); {@code -Dvlmflux.cuda.skinnyGemm=false}: cuBLAS.
 *
 * <p>Residual stream fp32; normalized activations and attention output bf16 (matmul inputs); K/V cache bf16.
 * Not thread-safe: one decoder, one thread (the generator's scheduler); all work on one stream.
 */
public final class CudaDecoder implements Decoder {
    private static final System.Logger LOG = System.getLogger("vlmflux.llm.cuda");
    private static final int LOGIT_ROWS = 32;     // rows of all-position logits computed per lm-head GEMM

    private final ModelConfig c;
    private final GpuDevice dev;
    private final GpuStream st;
    private final boolean ownsStream;
    private final GpuOps ops;
    private final Blas blas;
    private final DeviceArena arena;
    private final PinnedBuffer pin;
    private final int H, Q, KV, QKV, I, V, hd, nq, nkv, chunk, sec1, sec2;
    private final float eps, scale;
    private final boolean useGraphs;
    private String graphOffReason;
    private final long weightBytes;

    // weights
    private final DeviceBuffer embed, lmHead, finalNorm, invFreq;
    private final Layer[] layers;
    // activations [chunk, ...]
    private final DeviceBuffer x, xn, qkv, qr, att, gu, act, stage, ids, pos, start, logits, argmaxWs, sampleWs, outId, counter;
    /** DeepStack rows of the current prefill chunk (Qwen3-VL), allocated on first use; null before. */
    private io.vlmflux.cuda.gpu.DeviceArena deepArena;
    private DeviceBuffer deepRows;
    // decode scalars: [0..2] rope position t/h/w, [3] cache slot, [4] kv length, [5] token id
    private final DeviceBuffer step, stepPos, stepStart, stepLen, stepId, decodeWs;
    // batched decode (several caches, one pass over the weights): per row the same 8 scalars as `step`, then the ids
    private final DeviceBuffer batchStep, batchOut;
    // constrained decoding: the allowed ids of the step, uint64 [(vocab + 63) / 64], uploaded through maskPin
    private final DeviceBuffer maskBits;
    private final PinnedBuffer maskPin;
    private final PinnedBuffer batchPin;
    private final PinnedBuffer selectPin;           // Tuning.batchSelect: the rows' settings table (GpuOps#putSelectRow), else null
    private DeviceArena selectArena;                // grown on demand: the table's device copy and GpuOps#selectRows's workspace
    private DeviceBuffer selectTable, selectWs;
    private int selectRows;                         // rows they hold
    private boolean batchLogged;
    // graph-captured batched decode: per row the K/V cache addresses of every layer, read by the captured kernels, so one
    // graph per (batch size, split count) serves any set of caches; partials workspace grown on demand (own allocation)
    private final BatchDecodeOps bops;
    private final DeviceBuffer batchKv;             // uint64 [LOGIT_ROWS, layers, 2]
    private final PinnedBuffer batchKvPin;
    private final Map<Long, CudaGraph> batchGraphs = new HashMap<>();   // key: rows << 32 | splits
    private DeviceArena batchWsArena;
    private DeviceBuffer batchWs;
    private String batchGraphOffReason;
    private final int maxSplits = 256;
    /**
     * Decode: RMSNorm fused into the following GEMV ({@link Tuning#fusedNorm()}, default true), SiLU-gate into the
     * down GEMV ({@link Tuning#fusedSilu()}, default false); each only where k fits the fused kernel.
     */
    private final boolean fuseNorm, fuseSilu;
    /** Batched decode GEMMs of 2..{@link #SKINNY_MAX_ROWS} rows through {@link BatchDecodeOps#gemvRows} ({@link Tuning#skinnyGemm()}), cuBLAS otherwise. */
    private final boolean skinnyGemm;
    private final boolean splitKvPrefill;   // Tuning.prefillSplitKv
    private final boolean int4Tiles;        // Tuning.int4Mma && (int4Tiled || int4Ring on sm_90+): 4-bit matrices the tensor-core GEMV takes stored in tiles
    final boolean evictKernel;              // Tuning.evictKernel (read by CudaKvCache.evict)
    private final boolean bf16GateUp;       // Tuning.prefillBf16GateUp
    private final Map<String, String> tuningChanges;   // Tuning.changes(), for info()
    private volatile boolean closed;
    /** Rounding of cache capacities (positions), so that caches of similar sequences can be reused. */
    static final int CACHE_BUCKET = 256;
    /** Most idle caches kept for reuse. */
    static final int POOL_CACHES = 8;
    private final java.util.ArrayDeque<CudaKvCache> idleCaches = new java.util.ArrayDeque<>();

    /**
     * 4-bit (W4A16) linears of a quantized checkpoint, keyed by the buffer that stands for the weight in
     * {@link Layer} (the packed words): {@link #linear} routes them to {@link Int4Ops} (decode GEMV up to
     * {@link Int4Ops#MAX_ROWS} rows; prefill: dequantized into {@link #int4Scratch}, reused by every layer, then cuBLAS).
     */
    private final Map<DeviceBuffer, Int4Device> int4 = new HashMap<>();
    private final Int4Ops i4;
    private DeviceBuffer int4Scratch;
    /**
     * Tuning.int4PrefillOverlap: during a prefill the next 4-bit linear (in layer order: q/k/v, o, gate/up, down, then
     * the next layer's) is dequantized on {@link #int4Side} into the other of two buffers ({@link #int4Scratch} and
     * {@code int4Slots[1]}) while the current one's GEMM runs. {@code int4Tags[s]}: the weight slot s holds (null:
     * unknown); {@code int4Done[s]}: recorded on the side stream after its dequantization into s; {@code int4Free[s]}:
     * recorded on the decoder's stream after the last GEMM that read s. Decode-time dequantizations (more than
     * {@link Int4Ops#MAX_ROWS} rows, possibly inside a captured graph) use slot 0 without events: a prefill ends with
     * the decoder's stream waiting for the side stream, and starts by recording both slots free.
     */
    private final boolean int4Overlap;
    private final long int4SliceBytes;      // Tuning.int4PrefillChunkKiB in bytes: a prefill product's matrix dequantized in row slices of about this size (0: whole)
    private DeviceBuffer[] int4Slots;
    private final Int4Device[] int4Tags = new Int4Device[2];
    private GpuEvent[] int4Done, int4Free;
    private GpuStream int4Side;
    private Int4Ops int4SideOps;
    private final Map<Int4Device, Int4Device> int4Next = new HashMap<>();
    private boolean prefilling;

    private static final class Layer {
        DeviceBuffer attnNorm, mlpNorm, wqkv, bqkv, wo, bo, qNorm, kNorm, wgu, wd;
    }

    /**
     * Tuning.decodePrefetchMiB (0: off): in a decode step (single sequence or batched rows) each layer's q/k/v product
     * is followed, on {@link #pfSide}, by L2 prefetches of the next {@code prefetchBytes} of weights in the order the
     * step reads them ({@link #pfOrder}: every layer's q/k/v, o, gate/up, down, then the lm head; 16-bit only), from
     * where the step stands or where the previous prefetch stopped ({@link #pfFrontier}), so the o, gate/up and down
     * products find their weights in L2 after rope and attention, which leave DRAM idle. The side stream forks from the
     * decoder's stream after the product and joins it at the end of the step (inside a captured graph: a branch).
     * Prefetches change no memory: every result is the same.
     */
    private final long prefetchBytes;
    private DeviceBuffer[] pfOrder;
    private long[] pfStart;
    private final Map<DeviceBuffer, Integer> pfIndex = new HashMap<>();
    private long pfFrontier;
    private boolean pfForked;
    private GpuStream pfSide;
    private GpuOps pfOps;
    private GpuEvent pfFork, pfJoin;

    /**
     * Tuning.decodeMegakernel: single-sequence decode steps run as one persistent kernel (GpuOps#decodeMega) where the
     * model and the cache allow; {@link #megaOff} says why not (null: on), {@link #megaTable} holds the layers' weight
     * addresses.
     */
    private String megaOff;
    private DeviceBuffer megaTable;

    /**
     * Tuning.decodeAhead: a greedy single-sequence decode step whose graph exists enqueues the next step before it returns
     * its token — {@code vf_decode_advance} moves the step's scalars on and takes the id the device chose, then the
     * cache's decode graph and the argmax run again, their id copied into pinned slot 40 or 44 (alternating, each with
     * its event) — so the GPU runs step n + 1 while the host handles token n instead of waiting for the host's next call.
     * {@link #ahead} is that step, valid for one call: forwardSample on the same cache at the same version (every change
     * of its length or content moves it on) with the token just returned, greedy — its cache is {@link #lastDecoded} and its
     * input {@link #lastReturned}, which the call that enqueued it set and anything else clears; the call then commits it,
     * enqueues the one after, and returns its id. Any
     * other call, a cache change ({@link CudaKvCache#version}) or close discards it: it only wrote past the cache's
     * committed length and into the decoder's scratch, which the next work rewrites in stream order. A step goes ahead
     * only after a decode step of the same cache whose input was the token the call before it returned
     * ({@link #lastDecoded}, {@link #lastReturned}): sequences taking turns single steps on one decoder, and callers that
     * feed tokens of their own (forced or teacher-forced decoding), do not pay a discarded step each; a greedy sequence
     * goes ahead from its second decode step. The last cache a step went ahead for ({@link #aheadCache}) is waited for
     * before it closes, even when the call that would have taken or discarded its step failed.
     */
    private record Ahead(long version, int slot) {}   // for lastDecoded, input lastReturned
    private final boolean decodeAhead;
    private Ahead ahead;
    private GpuEvent tokenCopied;
    private GpuEvent[] aheadDone;
    private int aheadSlot;
    private long aheadUsed, aheadDiscarded;
    private CudaKvCache lastDecoded;   // the cache of the last single-sequence decode call, if nothing came between
    private int lastReturned = -1;     // the token that call returned
    private CudaKvCache aheadCache;    // the cache of the last step enqueued ahead, until a close of it waited for the stream

    /** A decoder with the knobs of {@link Tuning#fromSystemProperties()}, on a stream of its own. */
    CudaDecoder(ModelConfig c, TextModelSpec spec, WeightStore store, GpuDevice dev) {
        this(c, spec, store, dev.newStream(), true, Tuning.fromSystemProperties());
    }

    /**
     * Uploads the weights to {@code stream}'s device; all work runs on {@code stream} (closed with the decoder when
     * {@code ownsStream}); {@code tuning}'s per-model knobs (graphs, prefill chunk, fusions, GEMV/GEMM paths).
     */
    CudaDecoder(ModelConfig c, TextModelSpec spec, WeightStore store, GpuStream stream, boolean ownsStream, Tuning tuning) {
        this.c = c;
        this.dev = stream.device();
        this.st = stream;
        this.ownsStream = ownsStream;
        H = c.hiddenSize(); Q = c.qDim(); KV = c.kvDim(); QKV = Q + 2 * KV; I = c.intermediateSize(); V = c.vocabSize();
        hd = c.headDim(); nq = c.numHeads(); nkv = c.numKvHeads();
        if (hd > 256) throw new IllegalArgumentException("cuda backend: head_dim " + hd + " > 256 is not supported");
        eps = c.rmsNormEps();
        scale = (float) (1.0 / Math.sqrt(hd));
        chunk = Math.max(1, Math.min(tuning.prefillChunk(), c.maxPositionEmbeddings()));
        // RMSNorm -> GEMV fusion is on by default; SiLU-gate -> down GEMV is off by default: measured on the H100 at the
        // Qwen2.5-3B shape, its per-block prologue (silu over all of gate/up, 88 KB from L2 in each of only 128 blocks)
        // cost more than the launch it saves (docs/performance.md).
        boolean quantized = c.quantization() != null;   // the fused GEMVs read bf16 weights: 4-bit models take the plain path
        fuseNorm = !quantized && tuning.fusedNorm() && H % 8 == 0 && H <= GpuOps.FUSED_GEMV_MAX_K;
        fuseSilu = !quantized && tuning.fusedSilu() && I % 8 == 0 && I <= GpuOps.FUSED_GEMV_MAX_K;
        skinnyGemm = tuning.skinnyGemm();
        splitKvPrefill = tuning.prefillSplitKv();
        // tiles for the tiled tensor-core GEMV, or for the ring GEMV where this device has it (sm_90+ native code)
        int4Tiles = tuning.int4Mma() && (tuning.int4Tiled() || (tuning.int4Ring() && stream.device().kernels().pdlCapable()));
        int4Overlap = quantized && tuning.int4PrefillOverlap();
        int4SliceBytes = 1024L * tuning.int4PrefillChunkKiB();
        evictKernel = tuning.evictKernel();
        decodeAhead = tuning.decodeAhead();
        bf16GateUp = tuning.prefillBf16GateUp();
        prefetchBytes = Math.min((long) tuning.decodePrefetchMiB() << 20, stream.device().l2CacheBytes());
        tuningChanges = java.util.Collections.unmodifiableMap(tuning.changes());
        useGraphs = tuning.graphs();
        if (!useGraphs) graphOffReason = "disabled (-Dvlmflux.cuda.graphs=false / --no-cuda-graph)";
        if (!useGraphs) batchGraphOffReason = graphOffReason;
        else if (!tuning.batchGraphs())
            batchGraphOffReason = "disabled (-Dvlmflux.cuda.batchGraphs=false)";
        int[] sec = c.rope().mropeSection();
        if (spec.mrope() && sec != null && spec.mropeInterleaved()) {   // Qwen3-VL: t,h,w,t,h,w,... (as TextModelSpec.mropeAxes)
            int[] il = GpuOps.interleavedSections(sec);
            sec1 = il[0]; sec2 = il[1];
        } else if (spec.mrope() && sec != null) { sec1 = sec[0]; sec2 = sec[0] + sec[1]; }
        else { sec1 = hd / 2; sec2 = hd / 2; }

        // ---- plan the arena: weights then activations, each rounded to 256 bytes
        String p = spec.prefix();
        long w = 0;
        w += r(2L * V * H);                                           // embed
        if (!c.tieWordEmbeddings()) w += r(2L * V * H);               // lm head
        w += r(2L * H) + r(4L * (hd / 2));
        long perLayer = 2 * r(2L * H);
        w += linearsBytes(c, spec, store);
        long scratch = quantized ? r(2L * Math.max(Math.max(QKV, 2L * I) * H, Math.max((long) H * Q, (long) H * I))) : 0;
        w += scratch;
        if (int4Overlap) w += scratch;   // the second buffer the next linear is dequantized into
        if (spec.qkvBias()) perLayer += r(4L * QKV);
        if (spec.oBias()) perLayer += r(4L * H);
        if (spec.qkNorm()) perLayer += 2 * r(2L * hd);
        w += perLayer * c.numLayers();
        weightBytes = w;
        long C = chunk;
        long acts = r(4 * C * H) + r(2 * C * H) + r(4 * C * QKV) + r(4 * C * Q) + r(2 * C * Q) + r(8 * C * I) + r(2 * C * I)
                + r(4 * C * H) + r(4 * C) + r(12 * C) + r(4) + r(4L * LOGIT_ROWS * V) + r(GpuOps.argmaxWorkspaceBytes()) + r(GpuOps.sampleWorkspaceBytes(V)) + r(4) + r(8)
                + r(32) + r(4L * nq * maxSplits * (hd + 2)) + r(40L * LOGIT_ROWS) + r(4L * LOGIT_ROWS) + (32L << 20)
                + r(16L * LOGIT_ROWS * c.numLayers()) + r(8L * ((V + 63) / 64)) + r((long) GpuOps.MEGA_LAYER_BYTES * c.numLayers());
        dev.makeCurrent();
        ops = new GpuOps(st, tuning);
        arena = dev.newArena("decoder " + spec.family(), w + acts);
        pin = new PinnedBuffer(64);
        batchPin = new PinnedBuffer(44L * LOGIT_ROWS);
        selectPin = tuning.batchSelect() ? new PinnedBuffer((long) GpuOps.SELECT_ROW_BYTES * LOGIT_ROWS) : null;
        maskPin = new PinnedBuffer(8L * ((V + 63) / 64));
        batchKvPin = new PinnedBuffer(16L * LOGIT_ROWS * c.numLayers());
        bops = new BatchDecodeOps(st, tuning);
        i4 = quantized ? new Int4Ops(st, Math.max(Math.max(H, Q), I), tuning) : null;
        try {
            long t0 = System.nanoTime();
            Uploader up = new Uploader(store, weightBytes);
            embed = up.bf16(p + "embed_tokens.weight");
            lmHead = c.tieWordEmbeddings() ? embed : up.bf16(spec.lmHead());
            finalNorm = up.bf16(p + "norm.weight");
            layers = new Layer[c.numLayers()];
            for (int i = 0; i < layers.length; i++) {
                Layer l = new Layer();
                l.attnNorm = up.bf16(spec.layer(i, "input_layernorm.weight"));
                l.mlpNorm = up.bf16(spec.layer(i, "post_attention_layernorm.weight"));
                Fused[] f = fusedLinears(c, spec, i);
                l.wqkv = up.linear(f[0]);
                if (spec.qkvBias()) l.bqkv = up.f32Concat("layer " + i + " qkv bias", spec.layer(i, "self_attn.q_proj.bias"),
                        spec.layer(i, "self_attn.k_proj.bias"), spec.layer(i, "self_attn.v_proj.bias"));
                l.wo = up.linear(f[1]);
                if (spec.oBias()) l.bo = up.f32Concat("layer " + i + " o bias", spec.layer(i, "self_attn.o_proj.bias"));
                if (spec.qkNorm()) {
                    l.qNorm = up.bf16(spec.layer(i, "self_attn.q_norm.weight"));
                    l.kNorm = up.bf16(spec.layer(i, "self_attn.k_norm.weight"));
                }
                l.wgu = up.linear(f[2]);
                l.wd = up.linear(f[3]);
                layers[i] = l;
            }
            up.progress.finish();
            if (quantized) {
                int4Scratch = arena.alloc("int4 prefill: dequantized weight bf16 (reused by every linear)", scratch);
                i4.reserveGather();
                if (int4Overlap) {
                    int4Slots = new DeviceBuffer[]{int4Scratch, arena.alloc("int4 prefill: the next linear's dequantized weight bf16", scratch)};
                    int4Done = new GpuEvent[]{new GpuEvent(), new GpuEvent()};
                    int4Free = new GpuEvent[]{new GpuEvent(), new GpuEvent()};
                    int4Side = dev.newStream();
                    int4SideOps = new Int4Ops(int4Side, Math.max(Math.max(H, Q), I), tuning);
                    Int4Device prev = null, first = null;   // the order a prefill chunk reads them, wrapping to the next chunk
                    for (Layer l : layers)
                        for (DeviceBuffer b : new DeviceBuffer[]{l.wqkv, l.wo, l.wgu, l.wd}) {
                            Int4Device d = int4.get(b);
                            if (d == null) continue;
                            if (prev != null) int4Next.put(prev, d);
                            else first = d;
                            prev = d;
                        }
                    if (prev != null && first != prev) int4Next.put(prev, first);
                }
            }
            if (prefetchBytes > 0) planPrefetch(tuning);
            invFreq = arena.alloc("rope inv_freq", 4L * (hd / 2));
            st.upload(invFreq, invFreq(c.rope(), hd));

            x = arena.alloc("x (residual) fp32 [chunk, hidden]", 4 * C * H);
            xn = arena.alloc("xn bf16 [chunk, hidden]", 2 * C * H);
            qkv = arena.alloc("qkv fp32 [chunk, q+2kv]", 4 * C * QKV);
            qr = arena.alloc("q rotated fp32 [chunk, q]", 4 * C * Q);
            att = arena.alloc("attention out bf16 [chunk, q]", 2 * C * Q);
            gu = arena.alloc("gate/up fp32 [chunk, 2*inter]", 8 * C * I);
            act = arena.alloc("silu(gate)*up bf16 [chunk, inter]", 2 * C * I);
            stage = arena.alloc("span staging fp32 [chunk, hidden]", 4 * C * H);
            ids = arena.alloc("token ids int32 [chunk]", 4 * C);
            pos = arena.alloc("positions int32 [3, chunk]", 12 * C);
            start = arena.alloc("chunk start int32", 4);
            logits = arena.alloc("logits fp32 [" + LOGIT_ROWS + ", vocab]", 4L * LOGIT_ROWS * V);
            argmaxWs = arena.alloc("argmax partials", GpuOps.argmaxWorkspaceBytes());
            sampleWs = arena.alloc("sampling workspace", GpuOps.sampleWorkspaceBytes(V));
            outId = arena.alloc("sampled id int32", 4);
            counter = arena.alloc("sampling counter uint64", 8);
            st.memsetAsync(counter, 0, 8);
            step = arena.alloc("decode step scalars int32 [8]", 32);
            stepPos = step.slice(0, 12, "decode positions int32 [3]");
            stepStart = step.slice(12, 4, "decode cache slot int32");
            stepLen = step.slice(16, 4, "decode kv length int32");
            stepId = step.slice(20, 4, "decode token id int32");
            batchStep = arena.alloc("batched decode: per row scalars int32 [" + LOGIT_ROWS + ", 8] + token ids int32 [" + LOGIT_ROWS + "]", 36L * LOGIT_ROWS);
            batchOut = arena.alloc("batched decode: chosen ids int32 [" + LOGIT_ROWS + "]", 4L * LOGIT_ROWS);
            batchKv = arena.alloc("batched decode: K/V cache addresses uint64 [" + LOGIT_ROWS + ", layers, 2]", 16L * LOGIT_ROWS * c.numLayers());
            decodeWs = arena.alloc("decode attention partials", 4L * nq * maxSplits * (hd + 2));
            maskBits = arena.alloc("constraint allowed ids uint64 [(vocab + 63) / 64]", 8L * ((V + 63) / 64));
            blas = new Blas(st, arena.alloc("cublas workspace", 32L << 20), tuning.gemmTune());
            planMega(tuning, quantized);
            if (decodeAhead) { tokenCopied = new GpuEvent(); aheadDone = new GpuEvent[] {new GpuEvent(), new GpuEvent()}; }
            st.synchronize();
            LOG.log(System.Logger.Level.INFO, "cuda decoder on {0}: {1} MB weights (bf16" + (c.quantization() != null ? ", linears 4-bit" : "") + ") uploaded in {2} ms, {3} MB arena, prefill chunk {4}, kernels {5}, decode graphs {6}",
                    dev, weightBytes >> 20, (System.nanoTime() - t0) / 1_000_000, arena.bytesInUse() >> 20, chunk, ops.kernelOrigin(),
                    useGraphs ? "on" : "off: " + graphOffReason);
        } catch (RuntimeException | Error e) {
            release();
            throw e;
        } finally {
            store.close();   // everything is on the device now
        }
    }

    private static long r(long b) { return (b + 255) / 256 * 256; }

    /** The persistent decode step's layer table and settings, or why it stays off ({@link #megaOff}). */
    private void planMega(Tuning tuning, boolean quantized) {
        if (!tuning.decodeMegakernel()) { megaOff = "off (-Dvlmflux.cuda.decodeMegakernel=false)"; return; }
        megaOff = quantized ? "4-bit linears (the persistent step reads 16-bit weights)" : ops.megaUnsupported(hd, H, Q, I);
        if (megaOff != null) {
            LOG.log(System.Logger.Level.INFO, "persistent decode step not used: {0}", megaOff);
            return;
        }
        long[] t = new long[10 * layers.length];
        for (int i = 0; i < layers.length; i++) {
            Layer l = layers[i];
            DeviceBuffer[] row = {l.attnNorm, l.mlpNorm, l.wqkv, l.bqkv, l.wo, l.bo, l.qNorm, l.kNorm, l.wgu, l.wd};
            for (int j = 0; j < row.length; j++) t[10 * i + j] = row[j] == null ? 0L : row[j].address();
        }
        megaTable = arena.alloc("persistent decode layer table", (long) GpuOps.MEGA_LAYER_BYTES * layers.length);
        st.upload(megaTable, t);
        LOG.log(System.Logger.Level.INFO, "persistent decode step on: {0} blocks of 256 threads ({1})", ops.megaGrid(hd), ops.megaKernel(hd));
    }

    /** Why single-sequence decode steps do not run as one persistent kernel, or null when they do (where the cache allows). */
    public String megakernelOffReason() { return megaOff; }

    /** Linears reading one input, stacked along the output rows: {@code outs[i]} rows of weight {@code names[i]}, {@code in} columns. */
    record Fused(String label, int[] outs, int in, String... names) {
        int rows() {
            int r = 0;
            for (int o : outs) r = Math.addExact(r, o);
            return r;
        }
    }

    /** The linears of layer {@code i} as the decoder fuses them: q/k/v, o, gate/up, down. */
    static Fused[] fusedLinears(ModelConfig c, TextModelSpec spec, int i) {
        int H = c.hiddenSize(), Q = c.qDim(), KV = c.kvDim(), I = c.intermediateSize();
        return new Fused[]{
                new Fused("layer " + i + " qkv", new int[]{Q, KV, KV}, H, spec.layer(i, "self_attn.q_proj.weight"),
                        spec.layer(i, "self_attn.k_proj.weight"), spec.layer(i, "self_attn.v_proj.weight")),
                new Fused("layer " + i + " o", new int[]{H}, Q, spec.layer(i, "self_attn.o_proj.weight")),
                new Fused("layer " + i + " gate/up", new int[]{I, I}, H, spec.layer(i, "mlp.gate_proj.weight"), spec.layer(i, "mlp.up_proj.weight")),
                new Fused("layer " + i + " down", new int[]{H}, I, spec.layer(i, "mlp.down_proj.weight"))};
    }

    /**
     * Arena bytes of every layer's linears as the {@link Uploader} stores them: bf16, or the 4-bit layout when stored
     * packed, with as many act-order permutations as {@link Int4Device.Layout#concat} keeps (each linear's g_idx is
     * read: they may differ between linears and layers, and a compressed-tensors config does not tell).
     */
    static long linearsBytes(ModelConfig c, TextModelSpec spec, WeightStore store) {
        long w = 0;
        for (int i = 0; i < c.numLayers(); i++)
            for (Fused f : fusedLinears(c, spec, i)) {
                if (c.quantization() == null || store.has(f.names()[0])) { w += r(2L * f.rows() * f.in()); continue; }
                int gs = c.quantization().groupSizeFor(f.in());
                w += Int4Device.plannedBytes(f.rows(), f.in(), Math.min(gs, f.in()),
                        io.vlmflux.llm.quant.QuantizedLinears.permParts(c, store, f.in(), f.names()));
            }
        return w;
    }

    static float[] invFreq(RopeConfig r, int hd) {
        float[] f = Rope.defaultInvFreq(hd, r.theta());
        return switch (r.type()) {
            case "llama3" -> Rope.llama3(f, r.factor(), r.lowFreqFactor(), r.highFreqFactor(), r.originalMaxPositionEmbeddings());
            case "linear" -> Rope.linear(f, r.factor());
            default -> f;
        };
    }

    /** Converts checkpoint tensors (bf16 copied as is; f16/f32 rounded to bf16) into arena buffers. */
    private final class Uploader {
        final WeightStore store;
        final io.vlmflux.cuda.safetensors.LoadProgress progress;
        Uploader(WeightStore store, long bf16Bytes) {
            this.store = store;
            this.progress = new io.vlmflux.cuda.safetensors.LoadProgress("uploading weights to " + dev + " (bf16)", bf16Bytes);
        }

        DeviceBuffer bf16(String name) { return bf16Concat(name, name); }

        /**
         * A linear (several sharing their input stacked along the output rows, {@code outs[i]} rows each, {@code in}
         * columns): bf16 as stored, or, when the checkpoint stores it packed, the 4-bit device layout (registered in
         * {@link #int4}; the returned buffer stands for it). All parts must be stored alike.
         */
        DeviceBuffer linear(Fused f) {
            String label = f.label();
            int[] outs = f.outs();
            int in = f.in();
            String[] names = f.names();
            if (c.quantization() == null || store.has(names[0])) {
                for (String n : names)
                    if (!store.has(n)) throw new IllegalArgumentException(store.location() + ": " + n + " is stored packed (4-bit) but "
                            + names[0] + " is 16-bit; the cuda backend fuses " + label + " and needs them stored alike");
                return bf16Concat(label, names);
            }
            Int4Device.Layout[] parts = new Int4Device.Layout[names.length];
            for (int i = 0; i < names.length; i++) {
                if (store.has(names[i])) throw new IllegalArgumentException(store.location() + ": " + names[i] + " is 16-bit but "
                        + names[0] + " is stored packed (4-bit); the cuda backend fuses " + label + " and needs them stored alike");
                try {
                    parts[i] = Int4Device.Layout.of(io.vlmflux.llm.quant.QuantizedLinears.load(c, store, names[i], new long[]{outs[i], in}));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(store.location() + ": " + e.getMessage(), e);
                }
            }
            Int4Device d = Int4Device.upload(st, arena, Int4Device.Layout.concat(label, parts), int4Tiles);
            int4.put(d.q(), d);
            progress.advance(d.layout().bytes(), label);
            return d.q();
        }

        DeviceBuffer bf16Concat(String label, String... names) {
            long total = 0;
            List<TensorView> ts = new ArrayList<>();
            for (String n : names) { TensorView t = store.tensor(n); ts.add(t); total += t.numel(); }
            DeviceBuffer b = arena.alloc(label, 2 * total);
            long off = 0;
            for (TensorView t : ts) {
                DeviceBuffer dst = b.slice(off, 2 * t.numel(), t.name());
                if (t.dtype() == DType.BF16) {
                    st.uploadFromAddress(dst, t.segment().address(), 2 * t.numel());
                } else {
                    int step = 1 << 20;
                    float[] f = new float[step];
                    short[] h = new short[step];
                    for (long i = 0; i < t.numel(); i += step) {
                        int n = (int) Math.min(step, t.numel() - i);
                        t.copyTo(i, f, 0, n);
                        for (int j = 0; j < n; j++) h[j] = bf16Bits(f[j]);
                        st.upload(dst.slice(2 * i, 2L * n, t.name()), n == step ? h : java.util.Arrays.copyOf(h, n));
                    }
                }
                off += 2 * t.numel();
                progress.advance(2 * t.numel(), t.name());
            }
            return b;
        }

        DeviceBuffer f32Concat(String label, String... names) {
            List<float[]> parts = new ArrayList<>();
            int total = 0;
            for (String n : names) { float[] f = store.tensor(n).toFloatArray(); parts.add(f); total += f.length; }
            float[] all = new float[total];
            int off = 0;
            for (float[] f : parts) { System.arraycopy(f, 0, all, off, f.length); off += f.length; }
            DeviceBuffer b = arena.alloc(label, 4L * total);
            st.upload(b, all);
            return b;
        }
    }

    /** Round-to-nearest-even bf16 bits of {@code f} (NaN stays NaN). */
    static short bf16Bits(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (short) ((u >>> 16) | 0x40);
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    GpuDevice device() { return dev; }

    GpuStream stream() { return st; }

    /** The decoder's kernels (on {@link #stream()}). */
    GpuOps ops() { return ops; }

    @Override public ModelConfig config() { return c; }

    @Override public String backend() { return "cuda"; }

    /** Bytes of bf16 weights on the device. */
    public long weightBytes() { return weightBytes; }

    /** Bytes of the decoder's arena (weights + activation buffers); KV caches are extra ({@link KvCache#bytes()}). */
    public long arenaBytes() { return arena.capacity(); }

    /** Whether decode steps replay a CUDA graph; if not, {@link #graphOffReason()} says why. */
    public boolean graphsEnabled() { return graphOffReason == null; }

    public String graphOffReason() { return graphOffReason; }

    @Override public Map<String, Object> info() {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("backend", backend());
        m.put("device", dev.name());
        m.put("weight_bytes", weightBytes);
        m.put("decoder_bytes", arena.capacity());
        long[] mem = dev.memoryInfo();
        m.put("device_used_bytes", mem[1] - mem[0]);
        m.put("cuda_graphs", graphsEnabled());
        m.put("batch_graphs", batchGraphsEnabled());
        m.put("batch_graphs_captured", batchGraphCount());
        m.put("tuning", tuningChanges);   // the knobs this decoder was built with that differ from the defaults
        if (decodeAhead) m.put("decode_ahead", Map.of("used", aheadUsed, "discarded", aheadDiscarded));
        return m;
    }

    /**
     * A cache of {@code capacity} positions. Its storage is rounded up to {@value #CACHE_BUCKET} positions and closed
     * caches are kept for reuse (up to {@value #POOL_CACHES} idle ones): a stream of captions then allocates no
     * device memory (cudaMalloc/cudaFree, which synchronize) and re-captures no decode graph (a graph is keyed by the
     * cache's buffers, which stay the same).
     */
    @Override public KvCache newCache(int capacity) {
        open();
        int max = Math.max(1, c.maxPositionEmbeddings());
        int want = Math.min(Math.max(1, capacity), max);
        int bucket = (int) Math.min(max, ((long) want + CACHE_BUCKET - 1) / CACHE_BUCKET * CACHE_BUCKET);
        synchronized (idleCaches) {
            for (java.util.Iterator<CudaKvCache> it = idleCaches.iterator(); it.hasNext(); ) {
                CudaKvCache k = it.next();
                if (k.stride() == bucket) {
                    it.remove();
                    k.reopen(want);
                    return k;
                }
            }
        }
        CudaKvCache k = new CudaKvCache(this, c.numLayers(), nkv, hd, bucket, true);
        k.reopen(want);
        return k;
    }

    /** Takes a closed pooled cache back; false when the pool is full or the decoder closed (the cache frees itself). */
    boolean recycle(CudaKvCache k) {
        synchronized (idleCaches) {
            if (closed || idleCaches.size() >= POOL_CACHES) return false;
            idleCaches.addFirst(k);
            return true;
        }
    }

    private void open() { if (closed) throw new IllegalStateException("decoder is closed"); }

    private CudaKvCache cacheOf(KvCache kv) {
        if (!(kv instanceof CudaKvCache cache) || cache.owner != this)
            throw new IllegalArgumentException("the CUDA decoder needs a cache from its own newCache(), got " + kv);
        cache.open();
        return cache;
    }

    @Override public float[] forward(KvCache kv, ForwardInput in, boolean allLogits) {
        open();
        dev.makeCurrent();
        CudaKvCache cache = cacheOf(kv);
        discardAhead();
        if (isDecode(in)) {
            decode(cache, in);
            return st.downloadFloats(logits, V);
        }
        return prefill(cache, in, allLogits, true);
    }

    /**
     * Runs {@code in} and picks the next token from its last position on the device: argmax when {@code p} is greedy
     * (repetition penalty 1), the multi-block device sampler for temperature/top-k/top-p/min-p; a repetition penalty
     * downloads the logits and uses the host {@link Sampler}. Only the token id crosses to the host otherwise.
     */
    @Override public boolean profilerRange(boolean on) { return io.vlmflux.cuda.gpu.Gpu.profilerRange(on); }

    /** Set while {@link #profileForward} runs: the pieces of the pass are marked on it ({@link #mark}). */
    private io.vlmflux.cuda.gpu.GpuTimeline timeline;

    /** The work enqueued since the previous mark is {@code what}'s, where a timeline records (never in a capture). */
    private void mark(String what) {
        if (timeline != null) timeline.mark(what);
    }

    @Override public java.util.Map<String, double[]> profileForward(KvCache kv, ForwardInput in) {
        open();
        dev.makeCurrent();
        cacheOf(kv);
        st.synchronize();
        timeline = new io.vlmflux.cuda.gpu.GpuTimeline(st);
        try {
            forward(kv, in, false);
            return timeline.totals();
        } finally {
            timeline.close();
            timeline = null;
        }
    }

    @Override public int forwardSample(KvCache kv, ForwardInput in, SamplingParams p) {
        open();
        dev.makeCurrent();
        CudaKvCache cache = cacheOf(kv);
        // a decode step of this cache that follows the token the last call returned: the sequence runs on its own tokens
        boolean again = isDecode(in) && cache == lastDecoded && in.tokens()[0] == lastReturned;
        lastDecoded = isDecode(in) ? cache : null;
        int tok = forwardSample(cache, in, p, again);
        lastReturned = tok;
        return tok;
    }

    private int forwardSample(CudaKvCache cache, ForwardInput in, SamplingParams p, boolean again) {
        if (ahead != null) {
            Ahead a = ahead;
            ahead = null;
            if (again && a.version == cache.version && goesAhead(cache, in, p)) {   // again: its cache, its input
                aheadUsed++;
                return continueAhead(cache, a.slot, in, p);
            }
            aheadDiscarded++;
        }
        if (isDecode(in)) decode(cache, in);
        else prefill(cache, in, false, false);   // leaves the last position's logits in logits[0, V)
        if (p.repetitionPenalty() != 1.0) {
            return new Sampler(p.withSeed(p.seed() + cache.length()), V).sample(st.downloadFloats(logits, V));
        }
        if (p.greedy()) ops.argmax(outId, logits, V, argmaxWs);
        else ops.sample(outId, logits, V, (float) p.temperature(), p.topK(), (float) p.topP(), (float) p.minP(), p.seed(), counter, sampleWs);
        st.copyAsync(pin, 32, outId, 4);
        if (again && goesAhead(cache, in, p)) {   // the next step runs while this token goes to the host
            tokenCopied.record(st);
            int slot = enqueueAhead(cache);
            tokenCopied.synchronize();
            int tok = pin.buffer().getInt(32);
            ahead = new Ahead(cache.version, slot);
            return tok;
        }
        st.synchronize();
        return pin.buffer().getInt(32);
    }

    /** Whether a step after this decode step of {@code cache} may be enqueued before its token reaches the host. */
    private boolean goesAhead(CudaKvCache cache, ForwardInput in, SamplingParams p) {
        return decodeAhead && in.positions() == null && p.greedy() && p.repetitionPenalty() == 1.0 && graphOffReason == null
                && cache.decodeGraph != null && cache.length() + 1 <= cache.capacity();   // (graphs are captured inside decode(), never around this call)
    }

    /** The step after the last one enqueued for {@code cache}, its input the id the device chose; returns its pinned slot. */
    private int enqueueAhead(CudaKvCache cache) {
        ops.decodeAdvance(step, outId);
        aheadCache = cache;
        cache.decodeGraph.launch(st);
        ops.argmax(outId, logits, V, argmaxWs);
        int slot = aheadSlot ^= 1;
        st.copyAsync(pin, 40 + 4L * slot, outId, 4);
        aheadDone[slot].record(st);
        return slot;
    }

    /** The step enqueued ahead continues the sequence: commit it, enqueue the next one where allowed, return its id. */
    private int continueAhead(CudaKvCache cache, int slot, ForwardInput in, SamplingParams p) {
        cache.commit(1);   // its K/V row at the old length
        int next = goesAhead(cache, in, p) ? enqueueAhead(cache) : -1;
        aheadDone[slot].synchronize();
        int tok = pin.buffer().getInt(40 + 4 * slot);
        if (next >= 0) ahead = new Ahead(cache.version, next);
        return tok;
    }

    private void discardAhead() {
        lastDecoded = null;
        if (ahead != null) { ahead = null; aheadDiscarded++; }
    }

    /** Before {@code cache} closes: a step enqueued ahead for it finishes first (its graph and buffers may go). */
    void dropAhead(CudaKvCache cache) {
        if (lastDecoded == cache) discardAhead();   // a step ahead is for lastDecoded
        if (aheadCache == cache) {   // its last step ahead may still run (taken, discarded or left by a failed call)
            aheadCache = null;
            st.synchronize();
        }
    }

    /**
     * Constrained decoding on the device: the allowed set of this step ({@code [(vocab + 63) / 64]} words) goes up through
     * a pinned buffer (~19 KB for a 150k vocabulary), one kernel sets every other logit to -inf, then the device argmax or
     * sampler picks the token as in {@link #forwardSample}; the logits never leave the GPU.
     */
    @Override public int forwardSampleMasked(KvCache kv, ForwardInput in, SamplingParams p, long[] allowed) {
        if (!samplesOnDevice(p)) return Decoder.super.forwardSampleMasked(kv, in, p, allowed);
        open();
        dev.makeCurrent();
        CudaKvCache cache = cacheOf(kv);
        discardAhead();
        int words = (V + 63) / 64;
        if (allowed.length < words)
            throw new IllegalArgumentException("allowed set has " + allowed.length + " words, the vocabulary of " + V + " needs " + words);
        if (isDecode(in)) decode(cache, in);
        else prefill(cache, in, false, false);
        java.nio.ByteBuffer b = maskPin.buffer().order(java.nio.ByteOrder.nativeOrder());
        b.clear();
        b.asLongBuffer().put(allowed, 0, words);
        st.copyAsync(maskBits, maskPin, 0, 8L * words);
        ops.maskLogits(logits, maskBits, V);
        if (p.greedy()) ops.argmax(outId, logits, V, argmaxWs);
        else ops.sample(outId, logits, V, (float) p.temperature(), p.topK(), (float) p.topP(), (float) p.minP(), p.seed(), counter, sampleWs);
        st.copyAsync(pin, 32, outId, 4);
        st.synchronize();   // also makes maskPin free for the next step
        return pin.buffer().getInt(32);
    }

    @Override public boolean masksOnDevice(SamplingParams p) { return samplesOnDevice(p); }

    /** Greedy and temperature/top-k/top-p/min-p select on the device; the repetition penalty needs the host sampler. */
    @Override public boolean samplesOnDevice(SamplingParams p) { return p.repetitionPenalty() == 1.0; }

    private static boolean isDecode(ForwardInput in) { return in.length() == 1 && in.spans().isEmpty(); }

    // ---------------------------------------------------------------------------------------------------------
    // decode: one token, logits of it into logits[0, V)

    private void decode(CudaKvCache cache, ForwardInput in) {
        int s = cache.length();
        if (s + 1 > cache.capacity())
            throw new IllegalStateException("context length exceeded: " + (s + 1) + " positions > KV cache capacity " + cache.capacity());
        int tok = in.tokens()[0];
        if (tok < 0 || tok >= V) throw new IllegalArgumentException("token id " + tok + " at position " + s + " outside vocab [0, " + V + ")");
        ByteBuffer b = pin.buffer();
        int[][] ps = in.positions();
        for (int a = 0; a < 3; a++) b.putInt(4 * a, ps == null ? s + cache.positionDelta() : ps[Math.min(a, ps.length - 1)][0]);
        b.putInt(12, s).putInt(16, s + 1).putInt(20, tok);
        st.copyAsync(step, pin, 0, 24);
        if (graphOffReason == null) {
            if (cache.decodeGraph == null) {
                for (int attempt = 0; cache.decodeGraph == null && graphOffReason == null; attempt++) {
                    String megaBefore = megaOff;
                    try {
                        cache.decodeSplits = splitsFor(cache);
                        cache.decodeGraph = CudaGraph.capture("decode step", st, () -> enqueueDecode(cache, cache.decodeSplits));
                    } catch (CudaException e) {
                        // a capture (or instantiation) with the persistent step failed: once more with the per-kernel step
                        if (attempt == 0 && megaBefore == null && cache.layerSpacing() > 0) {
                            if (megaOff == null) {
                                megaOff = "its graph capture failed (" + e.getMessage() + ")";
                                LOG.log(System.Logger.Level.WARNING, "persistent decode step off, per-kernel steps from now on: {0}", megaOff);
                            }
                            continue;
                        }
                        graphOffReason = "capture failed: " + e.getMessage();
                        LOG.log(System.Logger.Level.WARNING, "CUDA graph decode off, running eagerly: {0}", graphOffReason);
                    }
                }
            }
            if (cache.decodeGraph != null) cache.decodeGraph.launch(st);
            else enqueueDecode(cache, splitsFor(cache));
        } else {
            enqueueDecode(cache, splitsFor(cache));
        }
        cache.commit(1);
    }

    private int splitsFor(CudaKvCache cache) { return Math.min(maxSplits, ops.decodeSplits(shape(cache))); }

    private GpuOps.AttnShape shape(CudaKvCache cache) { return new GpuOps.AttnShape(nq, nkv, hd, cache.stride()); }

    /** The decode step's kernels; everything that varies per step is read from {@link #step}. */
    private void enqueueDecode(CudaKvCache cache, int splits) {
        if (megaOff == null && cache.layerSpacing() > 0) {   // one persistent kernel: every layer and the lm head
            ops.embedGather(x, embed, stepId, 1, H, V);
            long sp = cache.layerSpacing();
            try {
                ops.decodeMega(megaTable, layers.length, finalNorm, lmHead, x, qkv, decodeWs, att, act, logits, step, invFreq,
                        cache.k[0].address(), 2 * sp, sp, H, nq, nkv, hd, I, V, cache.stride(),
                        GpuOps.megaSplits(ops.megaGrid(hd), nq, nkv, cache.stride(), maxSplits), sec1, sec2, eps, scale);
                return;
            } catch (CudaException e) {   // e.g. fewer SMs than the device reports (MPS limits): the per-kernel step from now on
                megaOff = "its cooperative launch was refused (" + e.getMessage() + ")";
                LOG.log(System.Logger.Level.WARNING, "persistent decode step off, per-kernel steps from now on: {0}", megaOff);
                if (st.capturing()) throw e;   // a refused launch ends a graph capture: the caller captures again
            }
        }
        Pass p = new Decode(cache, shape(cache), splits);
        ops.embedGather(x, embed, stepId, 1, H, V);
        prefetchBegin();
        allLayers(p);
        head(p);
        prefetchJoin();
    }

    // ---------------------------------------------------------------------------------------------------------
    // batched decode: one token for each of B caches in one pass over the weights (GEMMs of B rows). Graph path: rope/KV
    // write and attention for all rows in one launch each, reading every row's cache addresses, position and length from
    // device tables (batchStep, batchKv) that the host rewrites before each replay, so one graph per (batch size, split
    // count) serves any set of caches: sequences come and go without a re-capture. Eager path (graphs off, or a failed
    // capture, logged): the same GEMMs with rope/attention launched per row against its own cache.

    /** Whether batched decode steps replay a captured graph per batch size; if not, {@link #batchGraphOffReason()} says why. */
    public boolean batchGraphsEnabled() { return batchGraphOffReason == null; }

    public String batchGraphOffReason() { return batchGraphOffReason; }

    /** Batched-decode graphs captured so far (one per batch size and split count in use). */
    public int batchGraphCount() { return batchGraphs.size(); }

    @Override public int[] forwardSampleBatch(KvCache[] kvs, int[] tokens, SamplingParams[] params) {
        int n = kvs.length;
        if (n != tokens.length || n != params.length)
            throw new IllegalArgumentException("batched step needs one token and one sampling setting per cache: " + n + " caches, "
                    + tokens.length + " tokens, " + params.length + " settings");
        boolean device = true;
        for (SamplingParams p : params) device &= samplesOnDevice(p);
        if (n == 1 || !device) return Decoder.super.forwardSampleBatch(kvs, tokens, params);
        discardAhead();
        if (n > LOGIT_ROWS) {   // in slices of LOGIT_ROWS rows
            int[] out = new int[n];
            for (int b0 = 0; b0 < n; b0 += LOGIT_ROWS) {
                int b1 = Math.min(n, b0 + LOGIT_ROWS);
                int[] part = forwardSampleBatch(java.util.Arrays.copyOfRange(kvs, b0, b1), java.util.Arrays.copyOfRange(tokens, b0, b1),
                        java.util.Arrays.copyOfRange(params, b0, b1));
                System.arraycopy(part, 0, out, b0, part.length);
            }
            return out;
        }
        open();
        dev.makeCurrent();
        CudaKvCache[] cs = new CudaKvCache[n];
        ByteBuffer b = batchPin.buffer();
        ByteBuffer kb = batchKvPin.buffer();
        int L = layers.length, splits = 1;
        for (int i = 0; i < n; i++) {
            cs[i] = cacheOf(kvs[i]);
            for (int j = 0; j < i; j++)
                if (cs[j] == cs[i]) throw new IllegalArgumentException("batched step: cache " + i + " is also cache " + j);
            int s = cs[i].length(), tok = tokens[i];
            if (s + 1 > cs[i].capacity())
                throw new IllegalStateException("batched step, row " + i + ": context length exceeded: " + (s + 1) + " positions > KV cache capacity " + cs[i].capacity());
            if (tok < 0 || tok >= V) throw new IllegalArgumentException("batched step, row " + i + ": token id " + tok + " outside vocab [0, " + V + ")");
            int p = s + cs[i].positionDelta();
            b.putInt(32 * i, p).putInt(32 * i + 4, p).putInt(32 * i + 8, p).putInt(32 * i + 12, s).putInt(32 * i + 16, s + 1).putInt(32 * i + 20, tok)
                    .putInt(32 * i + 24, cs[i].stride()).putInt(32 * i + 28, 0);
            b.putInt(32 * LOGIT_ROWS + 4 * i, tok);
            for (int l = 0; l < L; l++)
                kb.putLong(16 * (i * L + l), cs[i].k[l].address()).putLong(16 * (i * L + l) + 8, cs[i].v[l].address());
            splits = Math.max(splits, splitsFor(cs[i]));
        }
        st.copyAsync(batchStep, batchPin, 0, 36L * LOGIT_ROWS);
        if (batchGraphOffReason == null) st.copyAsync(batchKv, batchKvPin, 0, 16L * n * L);
        if (!batchLogged) {
            batchLogged = true;
            LOG.log(System.Logger.Level.INFO, "batched decode on {0}: {1}", dev, batchGraphOffReason == null
                    ? "one CUDA graph per batch size (B-row GEMMs, all rows' rope/attention in one launch each)"
                    : "eager passes (B-row GEMMs, per-row rope/attention), graphs " + batchGraphOffReason);
        }
        boolean replayed = false;
        if (batchGraphOffReason == null) {
            long key = ((long) n << 32) | splits;
            CudaGraph g = batchGraphs.get(key);
            if (g == null) {
                try {
                    ensureBatchWorkspace(n, splits);
                    final int rows = n, sp = splits;
                    g = CudaGraph.capture("batched decode step (" + n + " rows)", st, () -> enqueueBatchRows(rows, sp));
                    batchGraphs.put(key, g);
                    LOG.log(System.Logger.Level.DEBUG, "batched decode graph captured: {0} rows, {1} attention splits", n, splits);
                } catch (CudaException e) {
                    batchGraphOffReason = "capture failed: " + e.getMessage();
                    LOG.log(System.Logger.Level.WARNING, "batched decode graphs off, running eagerly: {0}", batchGraphOffReason);
                }
            }
            if (g != null) { g.launch(st); replayed = true; }
        }
        if (!replayed) enqueueBatchEager(cs, n);
        if (selectPin != null) {   // every row's token in one launch a stage
            ByteBuffer t = selectPin.buffer();
            int draws = 0;
            for (int i = 0; i < n; i++) {
                SamplingParams p = params[i];
                float temp = p.greedy() ? 0f : (float) p.temperature();
                if (GpuOps.putSelectRow(t, GpuOps.SELECT_ROW_BYTES * i, temp, p.topK(), (float) p.topP(), (float) p.minP(), p.seed(), draws)) draws++;
            }
            ensureSelectRows(n);
            st.copyAsync(selectTable, selectPin, 0, (long) GpuOps.SELECT_ROW_BYTES * n);
            ops.selectRows(batchOut, logits, V, n, selectTable, draws, counter, selectWs);
        } else {
            for (int i = 0; i < n; i++) {
                SamplingParams p = params[i];
                DeviceBuffer li = logits.slice(4L * i * V, 4L * V, "logits row " + i), o = batchOut.slice(4L * i, 4, "id " + i);
                if (p.greedy()) ops.argmax(o, li, V, argmaxWs);
                else ops.sample(o, li, V, (float) p.temperature(), p.topK(), (float) p.topP(), (float) p.minP(), p.seed(), counter, sampleWs);
            }
        }
        st.copyAsync(batchPin, 36L * LOGIT_ROWS, batchOut, 4L * n);
        st.synchronize();
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = b.getInt(36 * LOGIT_ROWS + 4 * i);
            cs[i].commit(1);
        }
        return out;
    }

    /** Logits rows [n, vocab] of the last batched step (tests compare paths on them). */
    float[] lastBatchLogits(int n) { return st.downloadFloats(logits, n * V); }

    /** Grows the batched attention partials to hold {@code n} rows of {@code splits} (graphs baked on the old one go). */
    private void ensureBatchWorkspace(int n, int splits) {
        long need = BatchDecodeOps.workspaceBytes(n, nq, hd, splits);
        if (batchWs != null && batchWs.bytes() >= need) return;
        int rows = Math.min(LOGIT_ROWS, Math.max(4, Integer.highestOneBit(Math.max(1, n - 1)) << 1));
        long bytes = Math.max(need, BatchDecodeOps.workspaceBytes(rows, nq, hd, splits));
        st.synchronize();
        for (CudaGraph g : batchGraphs.values()) g.close();
        batchGraphs.clear();
        if (batchWsArena != null) batchWsArena.close();
        batchWs = null;
        batchWsArena = dev.newArena("batched decode attention partials", bytes + 256);
        batchWs = batchWsArena.alloc("batched decode partials fp32 [rows, nq, splits, hd+2]", bytes);
    }

    /**
     * The batched token choice's table and workspace for at least n rows ({@link GpuOps#selectRowsWorkspaceBytes}: ~1.9 MB
     * a row at a 152k vocabulary), grown to the next power of two on demand rather than held for {@link #LOGIT_ROWS}.
     */
    private void ensureSelectRows(int n) {
        if (n <= selectRows) return;
        int rows = Math.min(LOGIT_ROWS, Math.max(4, Integer.highestOneBit(n - 1) << 1));   // n <= LOGIT_ROWS (callers slice)
        st.synchronize();   // the previous workspace may still be read
        if (selectArena != null) selectArena.close();
        selectTable = selectWs = null;
        selectRows = 0;
        long table = (long) GpuOps.SELECT_ROW_BYTES * rows, ws = GpuOps.selectRowsWorkspaceBytes(V, rows);
        selectArena = dev.newArena("batched token choice", table + ws + 512);
        selectTable = selectArena.alloc("batched token choice: row settings [" + rows + "]", table);
        selectWs = selectArena.alloc("batched token choice: workspace [" + rows + " rows]", ws);
        selectRows = rows;
    }

    /** The graph-captured batched step: every input comes from batchStep / batchKv; logits of row i at logits[i, :]. */
    private void enqueueBatchRows(int n, int splits) {
        Pass p = new BatchRows(n, splits, batchStep.slice(0, 32L * n, "batched row scalars"));
        ops.embedGather(x, embed, batchStep.slice(32L * LOGIT_ROWS, 4L * n, "batched token ids"), n, H, V);
        prefetchBegin();
        allLayers(p);
        head(p);
        prefetchJoin();
    }

    /** The eager batched step: the same GEMMs, rope/KV write and attention launched per row against its own cache. */
    private void enqueueBatchEager(CudaKvCache[] cs, int n) {
        Pass p = new BatchEager(cs, n);
        ops.embedGather(x, embed, batchStep.slice(32L * LOGIT_ROWS, 4L * n, "batched token ids"), n, H, V);
        prefetchBegin();
        allLayers(p);
        head(p);
        prefetchJoin();
    }

    // ---------------------------------------------------------------------------------------------------------
    // One layer body for every pass: RMSNorm -> qkv projection -> rope + K/V write -> attention -> o projection (+
    // residual) -> RMSNorm -> gate/up projection -> SiLU-gate -> down projection (+ residual). A pass says only what
    // differs: how many rows, which rope/attention kernels (one cache's decode or prefill kernels, the batched row
    // kernels over device tables, or per-row launches against each row's cache) and which matrix products (decode:
    // GEMV with the optional RMSNorm / SiLU-gate fusions; batched: the skinny GEMM up to SKINNY_MAX_ROWS; prefill:
    // cuBLAS). Inputs sit in x (residual stream, fp32 [rows, hidden]); every pass leaves its result there.

    /** The shape of one pass through the layers. */
    private sealed interface Pass permits Decode, Prefill, BatchRows, BatchEager {
        int rows();

        /** Whether its products go through {@link #linearRows} (batched decode) rather than {@link #linear}. */
        default boolean batched() { return false; }
    }

    /** One token of one cache; scalars (positions, slot, kv length) from {@link #step}, attention in {@code splits}. */
    private record Decode(CudaKvCache cache, GpuOps.AttnShape shape, int splits) implements Pass {
        @Override public int rows() { return 1; }
    }

    /**
     * A prefill chunk of {@code rows} tokens of one cache; positions in {@link #pos}, first slot in {@link #start};
     * {@code splits}: key shares of its attention ({@link GpuOps#prefillSplits}).
     */
    private record Prefill(CudaKvCache cache, GpuOps.AttnShape shape, int rows, int splits) implements Pass {}

    /** The graph-captured batched step: one token per row, row scalars in {@code table}, caches in {@link #batchKv}. */
    private record BatchRows(int rows, int splits, DeviceBuffer table) implements Pass {
        @Override public boolean batched() { return true; }
    }

    /** The eager batched step: one token per row, rope/attention launched per row against {@code caches[i]}. */
    private record BatchEager(CudaKvCache[] caches, int rows) implements Pass {
        @Override public boolean batched() { return true; }
    }

    private void allLayers(Pass p) {
        for (int li = 0; li < layers.length; li++) layer(p, li);
    }

    /** Layer {@code li} of pass {@code p}. */
    private void layer(Pass p, int li) {
        Layer l = layers[li];
        boolean fusedDecode = p instanceof Decode;
        normLinear(p, qkv, l.wqkv, l.attnNorm, l.bqkv, QKV, fusedDecode && fuseNorm);
        mark("q/k/v product");
        if (!(p instanceof Prefill)) prefetchAhead(l.wo);
        attend(p, li, l);
        mark("attention (rope, KV write, attention)");
        linear(p, x, l.wo, att, l.bo, H, Q, true);
        mark("o product");
        if (p instanceof Prefill && bf16GateUp && int4.get(l.wgu) == null) {
            // gate/up written as bf16 into the first half of gu's bytes, read back by the bf16 SiLU-gate
            DeviceBuffer g16 = gu.slice(0, 4L * p.rows() * I, "gate/up bf16 [rows, 2*inter]");
            ops.rmsNorm(xn, x, null, l.mlpNorm, p.rows(), H, eps);
            mark("rms norm");
            blas.matmulNTbf16(g16, xn, l.wgu, p.rows(), 2 * I, H);
            mark("gate/up product");
            ops.siluMulBf16(act, g16, 2 * I, g16.slice(2L * I, g16.bytes() - 2L * I, "up bf16"), 2 * I, p.rows(), I);
            mark("SiLU-gate");
            linear(p, x, l.wd, act, null, H, I, true);
            mark("down product");
            return;
        }
        normLinear(p, gu, l.wgu, l.mlpNorm, null, 2 * I, fusedDecode && fuseNorm);
        mark("gate/up product");
        if (fusedDecode && fuseSilu) {
            ops.gemvSiluMul(x, l.wd, gu, I, null, x, H, I);
        } else {
            ops.siluMul(act, gu, 2 * I, gu.slice(4L * I, gu.bytes() - 4L * I, "up"), 2 * I, p.rows(), I);
            mark("SiLU-gate");
            linear(p, x, l.wd, act, null, H, I, true);
        }
        mark("down product");
    }

    /** y [rows, m] = RMSNorm(x) W^T (+ bias): one fused GEMV ({@code fused}), or RMSNorm into xn then the product. */
    private void normLinear(Pass p, DeviceBuffer y, DeviceBuffer w, DeviceBuffer normW, DeviceBuffer bias, int m, boolean fused) {
        if (fused) {
            ops.gemvRmsNorm(y, w, x, normW, eps, bias, null, m, H);
        } else {
            ops.rmsNorm(xn, x, null, normW, p.rows(), H, eps);
            mark("rms norm");
            linear(p, y, w, xn, bias, m, H, false);
        }
    }

    /** The pass's product: {@link #linearRows} for batched decode, {@link #linear} otherwise. */
    private void linear(Pass p, DeviceBuffer y, DeviceBuffer w, DeviceBuffer in, DeviceBuffer bias, int m, int k, boolean accumulate) {
        if (p.batched()) linearRows(y, w, in, bias, p.rows(), m, k, accumulate);
        else linear(y, w, in, bias, p.rows(), m, k, accumulate);
    }

    /** {@link #pfOrder}: the 16-bit weights in the order a decode step reads them, with their start in that stream of bytes. */
    private void planPrefetch(Tuning tuning) {
        java.util.List<DeviceBuffer> order = new java.util.ArrayList<>();
        for (Layer l : layers)
            for (DeviceBuffer b : new DeviceBuffer[]{l.wqkv, l.wo, l.wgu, l.wd}) if (!int4.containsKey(b)) order.add(b);
        order.add(lmHead);
        pfOrder = order.toArray(DeviceBuffer[]::new);
        pfStart = new long[pfOrder.length];
        for (int j = 1; j < pfOrder.length; j++) pfStart[j] = pfStart[j - 1] + pfOrder[j - 1].bytes();
        for (int j = 0; j < pfOrder.length; j++) pfIndex.put(pfOrder[j], j);
        pfSide = dev.newStream();
        pfOps = new GpuOps(pfSide, tuning);
        pfFork = new GpuEvent();
        pfJoin = new GpuEvent();
    }

    private void prefetchBegin() { pfFrontier = 0; pfForked = false; }

    /** The side stream's L2 prefetches from weight {@code next} on (see {@link #prefetchBytes}); nothing when off. */
    private void prefetchAhead(DeviceBuffer next) {
        Integer i = pfOrder == null ? null : pfIndex.get(next);
        if (i == null) return;
        long from = Math.max(pfStart[i], pfFrontier), to = pfStart[i] + prefetchBytes;
        if (from >= to) return;
        pfFork.record(st);
        pfSide.waitFor(pfFork);
        pfForked = true;
        for (int j = i; j < pfOrder.length && pfStart[j] < to; j++) {
            long b0 = (Math.max(from, pfStart[j]) - pfStart[j]) & ~15L, b1 = Math.min(to, pfStart[j] + pfOrder[j].bytes()) - pfStart[j];
            if (b1 > b0) pfOps.prefetchL2(pfOrder[j], b0, b1 - b0);
        }
        pfFrontier = to;
    }

    /** The decoder's stream waits for the step's prefetches (a captured graph must join every branch it forked). */
    private void prefetchJoin() {
        if (!pfForked) return;
        pfJoin.record(pfSide);
        st.waitFor(pfJoin);
        pfForked = false;
    }

    /** Rope + K/V write of qkv into layer {@code li}'s caches, then attention into att. */
    private void attend(Pass p, int li, Layer l) {
        switch (p) {
            case Decode d -> {
                if (ops.canFuseRope(d.shape())) {   // decodeFusedRope: rope + KV write inside the split pass (slot = stepLen - 1)
                    ops.attentionDecodeRope(att, qkv, kOf(qkv), vOf(qkv), stepPos, 1, sec1, sec2, invFreq, l.qNorm, l.kNorm, eps,
                            d.cache().k[li], d.cache().v[li], stepLen, d.shape(), d.splits(), decodeWs, scale);
                    return;
                }
                rope(qr, d.cache(), li, l, qkv, stepPos, 1, stepStart, 1, d.shape());
                ops.attentionDecode(att, qr, d.cache().k[li], d.cache().v[li], stepLen, d.shape(), d.splits(), decodeWs, scale);
            }
            case Prefill f -> {
                int m = f.rows();
                rope(qr, f.cache(), li, l, qkv, pos, m, start, m, f.shape());
                ops.attentionPrefill(att, qr, f.cache().k[li], f.cache().v[li], start, m, f.shape(), scale, f.splits(), f.splits() > 1 ? gu : null);
            }
            case BatchRows b -> {
                int n = b.rows();
                if (bops.canFuseRope(hd)) {   // decodeFusedRope: the rows' rope + KV write inside the split pass
                    bops.attentionDecodeRowsRope(att, qkv, QKV, Q, Q + KV, batchKv, li, layers.length, b.table(), sec1, sec2, invFreq,
                            l.qNorm, l.kNorm, eps, n, nq, nkv, hd, b.splits(), batchWs, scale);
                    return;
                }
                bops.ropeQkvRows(qr, batchKv, li, layers.length, qkv, QKV, kOf(qkv), QKV, vOf(qkv), QKV, b.table(), sec1, sec2,
                        invFreq, n, nq, nkv, hd, l.qNorm, l.kNorm, eps);
                bops.attentionDecodeRows(att, qr, batchKv, li, layers.length, b.table(), n, nq, nkv, hd, b.splits(), batchWs, scale);
            }
            case BatchEager e -> {
                for (int i = 0; i < e.rows(); i++) {
                    CudaKvCache cache = e.caches()[i];
                    GpuOps.AttnShape sh = shape(cache);
                    DeviceBuffer row = qkv.slice(4L * i * QKV, 4L * QKV, "qkv row " + i);
                    DeviceBuffer scal = batchStep.slice(32L * i, 32, "row " + i + " scalars");
                    DeviceBuffer q = qr.slice(4L * i * Q, 4L * Q, "q row " + i);
                    rope(q, cache, li, l, row, scal.slice(0, 12, "positions"), 1, scal.slice(12, 4, "slot"), 1, sh);
                    ops.attentionDecode(att.slice(2L * i * Q, 2L * Q, "att row " + i), q, cache.k[li], cache.v[li],
                            scal.slice(16, 4, "kv length"), sh, splitsFor(cache), decodeWs, scale);
                }
            }
        }
    }

    /** Rope (+ q/k norm) of {@code n} tokens' qkv rows into qOut, their K/V into {@code cache} layer li from slot start[0]. */
    private void rope(DeviceBuffer qOut, CudaKvCache cache, int li, Layer l, DeviceBuffer qkvRows, DeviceBuffer positions, int posStride,
                      DeviceBuffer slot, int n, GpuOps.AttnShape sh) {
        ops.ropeQkv(qOut, cache.k[li], cache.v[li], qkvRows, QKV, kOf(qkvRows), QKV, vOf(qkvRows), QKV, positions, posStride, sec1, sec2,
                invFreq, slot, n, sh, l.qNorm, l.kNorm, eps);
    }

    /** The k columns of fused qkv rows (from column Q to the end of the buffer). */
    private DeviceBuffer kOf(DeviceBuffer qkvRows) { return qkvRows.slice(4L * Q, qkvRows.bytes() - 4L * Q, "k"); }

    /** The v columns of fused qkv rows (from column Q + KV to the end of the buffer). */
    private DeviceBuffer vOf(DeviceBuffer qkvRows) { return qkvRows.slice(4L * (Q + KV), qkvRows.bytes() - 4L * (Q + KV), "v"); }

    /** Final RMSNorm and the lm head over the pass's rows: logits [rows, vocab]. */
    private void head(Pass p) {
        ops.rmsNorm(xn, x, null, finalNorm, p.rows(), H, eps);
        linear(p, logits, lmHead, xn, null, V, H, false);
    }

    /**
     * Rows up to which a batched step's GEMMs use the skinny kernel. Measured on the H100 at the Qwen2.5-3B shape (graph
     * replay, ctx 384): 2 rows 3.87 ms, 4 rows 4.21 ms a step with it, but 8 rows 5.48 ms — slower than 16 rows through
     * cuBLAS (4.34 ms): past 4 rows its per-column re-reads of the activations from L1 cost more than the weights.
     */
    static final int SKINNY_MAX_ROWS = 4;

    /** As {@link #linear} for a batched decode step: the skinny GEMM (weights read once for all rows) up to {@link #SKINNY_MAX_ROWS}. */
    private void linearRows(DeviceBuffer y, DeviceBuffer w, DeviceBuffer in, DeviceBuffer bias, int rows, int m, int k, boolean accumulate) {
        if (int4.containsKey(w)) linear(y, w, in, bias, rows, m, k, accumulate);
        else if (skinnyGemm && rows >= 2 && rows <= SKINNY_MAX_ROWS && k % 8 == 0) bops.gemvRows(y, w, in, bias, accumulate, rows, m, k);
        else linear(y, w, in, bias, rows, m, k, accumulate);
    }

    /** y [rows, m] (+)= in [rows, k] W^T (+ bias): GEMV for one row (16-byte path), cuBLAS otherwise. */
    private void linear(DeviceBuffer y, DeviceBuffer w, DeviceBuffer in, DeviceBuffer bias, int rows, int m, int k, boolean accumulate) {
        Int4Device q4 = int4.get(w);
        if (q4 != null) {   // W4A16: fused-dequantization GEMV for decode rows, else dequantize to bf16 and cuBLAS
            if (rows <= Int4Ops.MAX_ROWS) {
                i4.gemv(y, m, q4, in, k, bias, accumulate ? y : null, rows);
            } else {
                int4Product(y, in, q4, rows, m, k, accumulate);
                if (bias != null) ops.addBiasRows(y, bias, rows, m);
            }
        } else if (rows == 1 && k % 8 == 0) {
            ops.gemv(y, w, in, bias, accumulate ? y : null, m, k);
        } else if (bias == null || !blas.matmulNTBias(y, in, w, bias, rows, m, k, accumulate)) {   // the bias in cuBLASLt's epilogue with gemmTune
            blas.matmulNT(y, in, w, rows, m, k, accumulate);
            if (bias != null) ops.addBiasRows(y, bias, rows, m);
        }
    }

    /**
     * y [rows, m] (+)= in [rows, k] q4^T through cuBLAS on {@code q4} dequantized to bf16: into {@link #int4Scratch} on
     * the decoder's stream; with {@link #int4Overlap} during a prefill, from the slot the side stream filled ahead (else
     * dequantized here, into a slot the side stream is not filling), the next linear's dequantization handed to the side
     * stream before the GEMM, and the slot marked free after it.
     */
    private void int4Product(DeviceBuffer y, DeviceBuffer in, Int4Device q4, int rows, int m, int k, boolean accumulate) {
        String what = "dequantized " + q4.layout().name();
        int slice = int4SliceBytes > 0 && q4.perm() == null ? (int) Math.max(16, Math.min(m, int4SliceBytes / (2L * k)) / 16 * 16) : m;
        if (slice < m) {   // row slices, each dequantized and multiplied into its columns of y while it may still be in L2
            boolean side = int4Overlap && prefilling;   // slot 0 (int4Scratch) may be the side stream's: wait for it, free it after
            if (side) st.waitFor(int4Done[0]);
            if (int4Overlap) int4Tags[0] = null;
            for (int r0 = 0; r0 < m; r0 += slice) {
                int r1 = Math.min(m, r0 + slice);
                DeviceBuffer wb = int4Scratch.slice(0, 2L * (r1 - r0) * k, what);
                i4.dequantizeRows(wb, q4, r0, r1);
                mark("4-bit dequantize");
                blas.matmulNT(y.slice(4L * r0, y.bytes() - 4L * r0, y.name()), m, in, wb, rows, r1 - r0, k, accumulate);
                mark("4-bit GEMM");
            }
            if (side) int4Free[0].record(st);
            return;
        }
        if (!int4Overlap || !prefilling) {
            if (int4Overlap) int4Tags[0] = null;   // slot 0 is int4Scratch: its content changes here
            DeviceBuffer wb = int4Scratch.slice(0, 2L * m * k, what);
            i4.dequantize(wb, q4);
            mark("4-bit dequantize");
            blas.matmulNT(y, in, wb, rows, m, k, accumulate);
            mark("4-bit GEMM");
            return;
        }
        int s = int4Tags[0] == q4 ? 0 : int4Tags[1] == q4 ? 1 : -1;
        if (s >= 0) st.waitFor(int4Done[s]);   // filled ahead on the side stream
        else {
            s = int4Tags[0] == null ? 0 : int4Tags[1] == null ? 1 : 0;
            st.waitFor(int4Done[s]);           // a dequantization still writing it finishes first
            i4.dequantize(int4Slots[s].slice(0, 2L * m * k, what), q4);
            int4Tags[s] = q4;
            mark("4-bit dequantize");
        }
        Int4Device next = int4Next.get(q4);
        int o = 1 - s;
        if (next != null && int4Tags[o] != next) {
            int4Side.waitFor(int4Free[o]);     // the GEMMs that read slot o are done with it
            int4SideOps.dequantize(int4Slots[o].slice(0, 2L * next.rows() * next.cols(), "dequantized " + next.layout().name()), next);
            int4Done[o].record(int4Side);
            int4Tags[o] = next;
        }
        blas.matmulNT(y, in, int4Slots[s].slice(0, 2L * m * k, what), rows, m, k, accumulate);
        mark("4-bit GEMM");
        int4Free[s].record(st);
    }

    // ---------------------------------------------------------------------------------------------------------
    // prefill: chunks of up to `chunk` tokens through all layers; logits of the last position stay in logits[0, V)

    private float[] prefill(CudaKvCache cache, ForwardInput in, boolean allLogits, boolean download) {
        if (!int4Overlap) return prefillChunks(cache, in, allLogits, download);
        int4Free[0].record(st);   // whatever read the slots before (decode-time dequantizations into slot 0)
        int4Free[1].record(st);
        prefilling = true;
        try {
            return prefillChunks(cache, in, allLogits, download);
        } finally {
            prefilling = false;
            st.waitFor(int4Done[0]);   // no side-stream write outlives the prefill
            st.waitFor(int4Done[1]);
        }
    }

    private float[] prefillChunks(CudaKvCache cache, ForwardInput in, boolean allLogits, boolean download) {
        final int n = in.length(), s0 = cache.length();
        if (s0 + n > cache.capacity())
            throw new IllegalStateException("context length exceeded: " + (s0 + n) + " positions > KV cache capacity " + cache.capacity());
        int[] tokens = in.tokens();
        for (int t = 0; t < n; t++)
            if (tokens[t] < 0 || tokens[t] >= V)
                throw new IllegalArgumentException("token id " + tokens[t] + " at position " + (s0 + t) + " outside vocab [0, " + V + ")");
        int hostDeepK = 0;
        boolean deepstack = false;
        for (EmbeddingSpan sp : in.spans()) {
            if (sp.hidden() != H) throw new IllegalArgumentException("embedding span at " + sp.start() + " has width " + sp.hidden() + ", model hidden size is " + H);
            if (sp.deepstackFeatures() > layers.length)
                throw new IllegalArgumentException("embedding span at " + sp.start() + " carries " + sp.deepstackFeatures()
                        + " DeepStack features but the model has only " + layers.length + " decoder layers");
            hostDeepK = Math.max(hostDeepK, sp.deepstack().size());
            deepstack |= sp.hasDeepstack();
        }
        // host DeepStack rows are staged per chunk; device rows (a GPU tower's output) are added where they are
        DeviceBuffer deep = hostDeepK == 0 ? null : deepstackRows(4L * hostDeepK * Math.min(chunk, n) * H);
        int[][] ps = in.positions();
        float[] out = allLogits ? new float[Math.multiplyExact(n, V)] : null;
        GpuOps.AttnShape sh = shape(cache);
        for (int c0 = 0; c0 < n; c0 += chunk) {
            final int m = Math.min(chunk, n - c0);
            st.upload(ids.slice(0, 4L * m, "ids"), java.util.Arrays.copyOfRange(tokens, c0, c0 + m));
            int[] pp = new int[3 * m];
            for (int a = 0; a < 3; a++)
                for (int t = 0; t < m; t++)
                    pp[a * m + t] = ps == null ? s0 + c0 + t + cache.positionDelta() : ps[Math.min(a, ps.length - 1)][c0 + t];
            st.upload(pos.slice(0, 12L * m, "positions"), pp);
            st.upload(start, new int[] {s0 + c0});
            ops.embedGather(x, embed, ids, m, H, V);
            mark("embedding");
            for (EmbeddingSpan sp : in.spans()) {
                int from = Math.max(sp.start(), c0), to = Math.min(sp.end(), c0 + m);
                if (from >= to) continue;
                if (sp.onDevice()) {   // rows already on the device (a GPU vision encoder's output): no host round trip
                    io.vlmflux.llm.SpanRows.Device dr = sp.deviceRows();
                    long es = dr.bf16() ? 2 : 4;
                    DeviceBuffer rows = dr.buffer().slice((from - sp.start()) * es * H, (to - from) * es * H, "span rows " + dr.buffer().name());
                    ops.spliceRows(x, m, rows, dr.bf16(), from - c0, to - from, H);
                } else {
                    float[] rows = java.util.Arrays.copyOfRange(sp.embeddings(), (from - sp.start()) * H, (to - sp.start()) * H);
                    st.upload(stage.slice(0, 4L * rows.length, "span"), rows);
                    ops.spliceRows(x, m, stage, false, from - c0, to - from, H);
                }
            }
            // few rows after a long cache (a question, a live video group): the attention splits the keys; its partials
            // go to the MLP's gate/up buffer, which is free while a layer attends
            mark("embedding");   // the spans spliced in
            Prefill pass = new Prefill(cache, sh, m, splitKvPrefill ? ops.prefillSplits(sh, m, s0 + c0, gu.bytes()) : 1);
            if (!deepstack) allLayers(pass);
            else prefillLayersDeepstack(pass, in.spans(), deep, c0, m);
            if (allLogits) {
                ops.rmsNorm(xn, x, null, finalNorm, m, H, eps);
                for (int r0 = 0; r0 < m; r0 += LOGIT_ROWS) {
                    int rows = Math.min(LOGIT_ROWS, m - r0);
                    blas.matmulNT(logits, xn.slice(2L * r0 * H, 2L * rows * H, "xn rows"), lmHead, rows, V, H, false);
                    float[] part = st.downloadFloats(logits, rows * V);
                    System.arraycopy(part, 0, out, (c0 + r0) * V, rows * V);
                }
                if (c0 + m == n)   // keep the last position's logits at logits[0, V) for forwardSample
                    st.upload(logits.slice(0, 4L * V, "last logits"), java.util.Arrays.copyOfRange(out, (n - 1) * V, n * V));
            } else if (c0 + m == n) {
                ops.rmsNorm(xn, x.slice(4L * (m - 1) * H, 4L * H, "last row"), null, finalNorm, 1, H, eps);
                linear(logits, lmHead, xn, null, 1, V, H, false);
                mark("final norm + lm head");
            }
        }
        cache.commit(n);
        if (allLogits) return out;
        return download ? st.downloadFloats(logits, V) : null;
    }

    /** A chunk's DeepStack piece: feature {@code k}'s rows for chunk rows [row0, row0 + rows), in {@code rows}. */
    private record DeepPiece(int k, int row0, int count, DeviceBuffer rows) {}

    /**
     * All layers of a prefill chunk [c0, c0 + m) whose spans carry DeepStack rows (Qwen3-VL): each span's feature k is
     * uploaded once for the chunk into {@code deep} (host rows) or read where it is (device rows), then added on the device to the hidden states at the span's
     * positions after layer k (as CpuDecoder and transformers' {@code _deepstack_process}).
     */
    private void prefillLayersDeepstack(Prefill p, List<EmbeddingSpan> spans, DeviceBuffer deep, int c0, int m) {
        java.util.ArrayList<DeepPiece> pieces = new java.util.ArrayList<>();
        long off = 0;
        for (EmbeddingSpan sp : spans) {
            int from = Math.max(sp.start(), c0), to = Math.min(sp.end(), c0 + m);
            if (from >= to) continue;
            if (sp.deviceDeepstack() != null) {
                for (int k = 0; k < sp.deviceDeepstack().features(); k++)
                    pieces.add(new DeepPiece(k, from - c0, to - from, sp.deviceDeepstack().rows(k, from - sp.start(), to - from, H)));
                continue;
            }
            for (int k = 0; k < sp.deepstack().size(); k++) {
                float[] rows = java.util.Arrays.copyOfRange(sp.deepstack().get(k), (from - sp.start()) * H, (to - sp.start()) * H);
                DeviceBuffer b = deep.slice(off, 4L * rows.length, "deepstack " + k + " rows");
                st.upload(b, rows);
                pieces.add(new DeepPiece(k, from - c0, to - from, b));
                off += 4L * rows.length;
            }
        }
        for (int li = 0; li < layers.length; li++) {
            layer(p, li);
            for (DeepPiece d : pieces) if (d.k() == li) ops.addRows(x, m, d.rows(), d.row0(), d.count(), H);
            mark("DeepStack rows");
        }
    }

    /** A device buffer of at least {@code bytes} for DeepStack rows, grown (its own arena) when a chunk needs more. */
    private DeviceBuffer deepstackRows(long bytes) {
        if (deepRows == null || deepRows.bytes() < bytes) {
            if (deepArena != null) { st.synchronize(); deepArena.close(); deepArena = null; deepRows = null; }
            deepArena = dev.newArena("decoder DeepStack rows", bytes);
            deepRows = deepArena.alloc("DeepStack rows fp32 [features, chunk, hidden]", bytes);
        }
        return deepRows;
    }

    @Override public void close() {
        if (closed) return;
        closed = true;
        release();
    }

    private void release() {
        try { st.synchronize(); } catch (RuntimeException ignored) { /* closing anyway */ }
        ahead = null;   // finished above; a cache closed after its decoder must not synchronize the closed stream
        aheadCache = null;
        lastDecoded = null;
        synchronized (idleCaches) {
            for (CudaKvCache k : idleCaches) k.free();
            idleCaches.clear();
        }
        for (CudaGraph g : batchGraphs.values()) g.close();
        batchGraphs.clear();
        if (batchWsArena != null) batchWsArena.close();
        if (selectArena != null) selectArena.close();
        if (blas != null) blas.close();
        ops.close();
        if (bops != null) bops.close();
        if (i4 != null) i4.close();
        if (int4SideOps != null) int4SideOps.close();
        if (int4Side != null) int4Side.close();
        if (int4Done != null) for (GpuEvent e : int4Done) e.close();
        if (int4Free != null) for (GpuEvent e : int4Free) e.close();
        if (pfOps != null) pfOps.close();
        if (pfSide != null) pfSide.close();
        if (pfFork != null) pfFork.close();
        if (pfJoin != null) pfJoin.close();
        if (tokenCopied != null) tokenCopied.close();
        if (aheadDone != null) for (GpuEvent e : aheadDone) e.close();
        pin.close();
        if (batchPin != null) batchPin.close();
        if (selectPin != null) selectPin.close();
        if (maskPin != null) maskPin.close();
        if (batchKvPin != null) batchKvPin.close();
        if (deepArena != null) deepArena.close();
        arena.close();
        if (ownsStream) st.close();
    }

    @Override public String toString() { return "CudaDecoder[" + dev + ", " + c.numLayers() + " layers, hidden " + H + "]"; }

    static int argmaxHost(float[] l) { return CpuOps.argmax(l, 0, l.length); }
}
