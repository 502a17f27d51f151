package io.vlmflux.cuda;

import java.nio.file.Path;
import java.util.Map;
import java.util.function.Function;

/**
 * Every performance and backend switch of VLMFlux in one immutable value (the table in docs/gpu.md lists them with
 * their {@code -Dvlmflux.*} system properties). It owns parsing and validation, so each property is read by one piece
 * of code and a bad value fails with the property, the value and what was expected.
 *
 * <p>Two kinds of knob: <b>process-wide</b> ones ({@link #cpuThreads}, {@link #cpuSpinMicros}, {@link #cpuSimd},
 * {@link #cudaDisable}, {@link #cudaNvrtc}, {@link #root}) must be known before any model exists; the CPU thread pool,
 * the CPU kernel choice and the CUDA probe read them once through {@link #process()}. <b>Per-model</b> ones are passed
 * to the constructors that use them (the CUDA decoder, {@code GpuOps}, the GPU vision encoder, the caption model), so
 * two models in one process can run with different settings; each such constructor also has a form without the
 * argument that uses {@link #fromSystemProperties()}.
 *
 * @param cpuThreads           {@code vlmflux.cpu.threads}: CPU kernel pool size (default: available processors), >= 1
 * @param cpuSpinMicros        {@code vlmflux.cpu.spinMicros}: pool workers spin this long for work before parking, >= 0
 * @param cpuSimd              {@code vlmflux.cpu.simd}: CPU kernels through the Vector API where it is present
 * @param cudaDisable          {@code vlmflux.cuda.disable}: report the GPU unavailable (CPU backends everywhere)
 * @param cudaNvrtc            {@code vlmflux.cuda.nvrtc}: compile the kernels with NVRTC even where the fatbin fits
 * @param root                 {@code vlmflux.root}: repository root for bundled models and fixtures, or null
 * @param graphs               {@code vlmflux.cuda.graphs}: single-sequence decode replays a CUDA graph
 * @param batchGraphs          {@code vlmflux.cuda.batchGraphs}: batched decode replays one CUDA graph per batch size
 * @param prefillChunk         {@code vlmflux.cuda.prefillChunk}: prefill tokens per pass through the layers, >= 1
 * @param fusedNorm            {@code vlmflux.cuda.fusedNorm}: decode fuses RMSNorm into the following GEMV
 * @param fusedSilu            {@code vlmflux.cuda.fusedSilu}: decode fuses SiLU-gate into the down GEMV
 * @param skinnyGemm           {@code vlmflux.cuda.skinnyGemm}: batched decode GEMMs of 2-4 rows read the weights once
 * @param gemvSplitK           {@code vlmflux.cuda.gemvSplitK}: split-K decode GEMV where a product's row tiles fit one wave
 * @param gemvSplitBlocksPerSm {@code vlmflux.cuda.gemvSplitBlocksPerSm}: split-K aims at this many blocks per SM, >= 1
 * @param prefillMma           {@code vlmflux.cuda.prefillMma}: tensor-core FlashAttention-2 prefill at head dim 64/128
 * @param prefillSplitKv       {@code vlmflux.cuda.prefillSplitKv}: a prefill of few rows against a long cache splits the keys
 *                             over more blocks (flash-decoding for prefill) where its grid would not fill the GPU
 *                             (on by default since the H100 run of stop 25: live TTFT at a 60 s window 63.6 → 7.8 ms)
 * @param evictKernel          {@code vlmflux.cuda.evictKernel}: KV-cache eviction moves every layer's and head's tail in
 *                             one kernel instead of a memcpy per layer, head and chunk (on; the append's eviction 6.2 → 0.02 ms)
 * @param prefillBf16GateUp    {@code vlmflux.cuda.prefillBf16GateUp}: a prefill's gate/up product writes bf16 (as Hugging
 *                             Face's does) instead of fp32, halving the widest activation's bytes (on since the H100 run of
 *                             2026-12-06: Qwen2.5-3B prefill 9.46 → 8.82 ms at 512 tokens, 31.65 → 29.14 ms at 2,048)
 * @param prefillPipelined     {@code vlmflux.cuda.prefillPipelined}: the tensor-core prefill attention with cp.async
 *                             double-buffered key tiles and ldmatrix.trans V (on; 2.1-2.2x the one-pass kernel after a 7.7k cache)
 * @param decodeVecAttention   {@code vlmflux.cuda.decodeVecAttention}: decode attention (one sequence and batched rows) at
 *                             head dim 64/128 reads K/V with 16-byte loads, HD/8 lanes per key (on since stop 25)
 * @param decodeFusedCombine   {@code vlmflux.cuda.decodeFusedCombine}: with {@code decodeVecAttention}, the decode
 *                             attention's split combine runs in the split pass's last block of each head group (one launch
 *                             per layer instead of two; bit-equal); off: slower on the H100 (0.6B 790.9 -> 712.7 tok/s, stop 28)
 * @param decodeFusedRope      {@code vlmflux.cuda.decodeFusedRope}: with {@code decodeVecAttention}, a decode step's RoPE,
 *                             q/k norm and KV write run inside the attention's split pass (one launch less per layer;
 *                             bit-equal, checked on the H100); off until its speed is measured
 * @param decodePrefetchMiB    {@code vlmflux.cuda.decodePrefetchMiB}: a decode step (one sequence or batched rows) prefetches up to this
 *                             many MiB of the weights after each layer's q/k/v product into L2 on a side stream (the o,
 *                             gate/up and down weights, then the next layer's, in the order they are read), while rope,
 *                             attention and its combine leave DRAM idle; 0 off (changes no result; slower on the H100, stop
 *                             29), clamped to the L2 size
 * @param gemvPrefetch         {@code vlmflux.cuda.gemvPrefetch}: with {@code pdl}, each block of a bf16 decode GEMV
 *                             prefetches its first row tile of weights into L2 before waiting for the previous kernel,
 *                             so the weight reads overlap that kernel's tail (changes no result); off: no gain on the H100 (stop 29)
 * @param decodeMegakernel     {@code vlmflux.cuda.decodeMegakernel}: a single-sequence decode step of a 16-bit model runs
 *                             as one persistent cooperative kernel (decode_mega.cu: every layer and the lm head, stages
 *                             separated by grid barriers) instead of ~8 launches a layer; on since stop 32 (H100: every
 *                             GPU test passes with it; bench llm 863.8 -> 929.5 tok/s at Qwen3-0.6B, 308.7 -> 330.0 at
 *                             Qwen2.5-3B, 512 cached tokens); falls back to the per-kernel step where it cannot run
 * @param pdl                  {@code vlmflux.cuda.pdl}: decode-step kernels start with programmatic dependent launch on
 *                             sm_90+ (scheduled while the previous kernel finishes; on since stop 25, bit-equal to ordinary launches)
 * @param int4Mma              {@code vlmflux.cuda.int4Mma}: the 4-bit decode GEMV multiplies on the tensor cores (one LOP3
 *                             and one bf16x2 FMA per two weights) where groups are multiples of 128 columns and zero points
 *                             integers, instead of dequantizing to fp32 per weight (issue-bound at ~1.1-1.4 TB/s)
 * @param int4Tiled            {@code vlmflux.cuda.int4Tiled}: with {@code int4Mma}, such matrices are stored at load in
 *                             16-row x 128-column tiles of 1 KB (a warp's block of the tensor-core GEMV is one contiguous
 *                             read instead of 16 rows x 64 bytes); off: 2-4% slower at Qwen2.5-7B on the H100 (stop 28)
 * @param int4PrefillOverlap   {@code vlmflux.cuda.int4PrefillOverlap}: a 4-bit prefill dequantizes the next linear's weights
 *                             on a second stream while the current one's GEMM runs (one more dequantized-weight buffer);
 *                             off: no faster at Qwen2.5-7B on the H100 (stop 28)
 * @param liveDevicePreprocess {@code vlmflux.live.devicePreprocess}: on cuda, a live session's video groups are resized,
 *                             normalised and patchified on the GPU like images instead of on the host (on; preprocess 7.4 ms → 0)
 * @param visionGraphs         not {@code vlmflux.vision.noGraphs}: the GPU vision encoder replays CUDA graphs
 * @param visionFp32MaxBytes   {@code vlmflux.vision.fp32MaxBytes}: CPU vision towers up to this size keep fp32 weights, >= 0
 * @param batchDecode          {@code vlmflux.batchDecode}: concurrent captions decode in one batched step
 * @param batchSelect          {@code vlmflux.cuda.batchSelect}: a batched decode step chooses every row's token in one
 *                             launch per stage (GpuOps#selectRows: argmax rows and the four sampling stages with a grid
 *                             row per sequence) instead of an argmax or sampler call per row; same tokens and counter;
 *                             on since stop 32 (H100, Qwen3-0.6B, 16 rows: sampled / greedy 0.74 -> 0.95)
 * @param decodeAhead          {@code vlmflux.cuda.decodeAhead}: a greedy single-sequence decode step on cuda enqueues the
 *                             next step before it returns its token (after a step of one cache that followed the token returned before it; the
 *                             device writes the chosen id and the next
 *                             positions into the step's scalars), so the GPU runs step n + 1 while the host handles token
 *                             n; a next call that does not continue it (another token, cache, sampling, any other use of
 *                             the decoder) discards it. Off: no measurable gain (stop 34, H100: Qwen3-VL-4B 278.6 vs 276.4-278.7 tok/s,
 *                             Qwen3-0.6B 834.6 vs 836.6 at 2,048 cached; its GPU test passes)
 * @param int4Persistent       {@code vlmflux.cuda.int4Persistent}: the tensor-core 4-bit GEMV runs as resident blocks that
 *                             walk the 16-row tiles grid-stride, each warp issuing its next round's weight loads before the
 *                             current round's products (int4.cu int4p_gemv; bit for bit the one-tile-a-block kernel's y);
 *                             off: no faster (stop 34, H100, Qwen2.5-7B gate/up 38.2-43.1 us vs 41.3, down 24.1 vs 24.9)
 * @param int4Ring             {@code vlmflux.cuda.int4Ring}: on sm_90+ with native code, the 4-bit decode GEMV of tiled matrices
 *                             (stored in tiles at load, as with {@code int4Tiled}) streams each warp's 16-row stripes through
 *                             a ring of shared-memory slots filled by bulk copies (int4.cu vf_int4_gemv_ring), so the bytes in
 *                             flight do not depend on registers; other devices keep the tensor-core GEMV
 * @param int4PrefillChunkKiB  {@code vlmflux.cuda.int4PrefillChunkKiB}: a 4-bit prefill product (no act-order permutation)
 *                             dequantizes its matrix in slices of whole rows of about this many KiB of bf16 (16 rows at
 *                             least), each multiplied into its columns of the output right after, so a slice can still be
 *                             in L2 when its GEMM reads it (instead of the whole bf16 matrix going through DRAM twice);
 *                             0: the whole matrix at once (also with {@code int4PrefillOverlap})
 * @param gemmTune             {@code vlmflux.cuda.gemmTune}: the cuBLAS products of 64 rows or more (prefill, the vision
 *                             tower, the mergers) run through cuBLASLt with the algorithm that was fastest when first timed
 *                             in this process (each of the heuristic's candidates timed once per shape and row-count
 *                             bucket, {@link io.vlmflux.cuda.gpu.Blas}), biases added in its epilogue (a prefill's biased
 *                             linears; the tower's proj / down products update the residual stream in place; a tanh-GELU
 *                             tower MLP's fc1 gets its GELU there too); results may
 *                             differ from cuBLAS's default choice in the last bits (another split or tile order); off:
 *                             cuBLAS's own choice
 * @param visionFastElementwise {@code vlmflux.vision.fastElementwise}: the GPU vision tower's norms run one warp a row
 *                             with the row in registers (rows up to 2,048 values) and its rotary split moves 16 bytes a
 *                             load and store (head dims multiple of 16; the same bits as the first kernel)
 */
public record Tuning(int cpuThreads, long cpuSpinMicros, boolean cpuSimd, boolean cudaDisable, boolean cudaNvrtc, Path root,
                     boolean graphs, boolean batchGraphs, int prefillChunk, boolean fusedNorm, boolean fusedSilu,
                     boolean skinnyGemm, boolean gemvSplitK, int gemvSplitBlocksPerSm, boolean prefillMma,
                     boolean prefillSplitKv, boolean evictKernel, boolean prefillBf16GateUp,
                     boolean prefillPipelined, boolean decodeVecAttention, boolean decodeFusedCombine, boolean decodeFusedRope, int decodePrefetchMiB, boolean gemvPrefetch, boolean decodeMegakernel, boolean pdl, boolean int4Mma,
                     boolean int4Tiled, boolean int4PrefillOverlap, boolean liveDevicePreprocess, boolean visionGraphs, long visionFp32MaxBytes, boolean batchDecode, boolean batchSelect,
                     boolean decodeAhead, boolean int4Persistent, boolean int4Ring, int int4PrefillChunkKiB, boolean gemmTune,
                     boolean visionFastElementwise) {

    public static final String CPU_THREADS = "vlmflux.cpu.threads";
    public static final String CPU_SPIN_MICROS = "vlmflux.cpu.spinMicros";
    public static final String CPU_SIMD = "vlmflux.cpu.simd";
    public static final String CUDA_DISABLE = "vlmflux.cuda.disable";
    public static final String CUDA_NVRTC = "vlmflux.cuda.nvrtc";
    public static final String ROOT = "vlmflux.root";
    public static final String GRAPHS = "vlmflux.cuda.graphs";
    public static final String BATCH_GRAPHS = "vlmflux.cuda.batchGraphs";
    public static final String PREFILL_CHUNK = "vlmflux.cuda.prefillChunk";
    public static final String FUSED_NORM = "vlmflux.cuda.fusedNorm";
    public static final String FUSED_SILU = "vlmflux.cuda.fusedSilu";
    public static final String SKINNY_GEMM = "vlmflux.cuda.skinnyGemm";
    public static final String GEMV_SPLIT_K = "vlmflux.cuda.gemvSplitK";
    public static final String GEMV_SPLIT_BLOCKS_PER_SM = "vlmflux.cuda.gemvSplitBlocksPerSm";
    public static final String PREFILL_MMA = "vlmflux.cuda.prefillMma";
    public static final String PREFILL_SPLIT_KV = "vlmflux.cuda.prefillSplitKv";
    public static final String EVICT_KERNEL = "vlmflux.cuda.evictKernel";
    public static final String PREFILL_BF16_GATE_UP = "vlmflux.cuda.prefillBf16GateUp";
    public static final String PREFILL_PIPELINED = "vlmflux.cuda.prefillPipelined";
    public static final String DECODE_VEC_ATTENTION = "vlmflux.cuda.decodeVecAttention";
    public static final String DECODE_FUSED_COMBINE = "vlmflux.cuda.decodeFusedCombine";
    public static final String DECODE_FUSED_ROPE = "vlmflux.cuda.decodeFusedRope";
    public static final String DECODE_PREFETCH_MIB = "vlmflux.cuda.decodePrefetchMiB";
    public static final String GEMV_PREFETCH = "vlmflux.cuda.gemvPrefetch";
    public static final String DECODE_MEGAKERNEL = "vlmflux.cuda.decodeMegakernel";
    public static final String PDL = "vlmflux.cuda.pdl";
    public static final String INT4_MMA = "vlmflux.cuda.int4Mma";
    public static final String INT4_TILED = "vlmflux.cuda.int4Tiled";
    public static final String INT4_PREFILL_OVERLAP = "vlmflux.cuda.int4PrefillOverlap";
    public static final String LIVE_DEVICE_PREPROCESS = "vlmflux.live.devicePreprocess";
    public static final String VISION_NO_GRAPHS = "vlmflux.vision.noGraphs";
    public static final String VISION_FP32_MAX_BYTES = "vlmflux.vision.fp32MaxBytes";
    public static final String BATCH_DECODE = "vlmflux.batchDecode";
    public static final String BATCH_SELECT = "vlmflux.cuda.batchSelect";
    public static final String DECODE_AHEAD = "vlmflux.cuda.decodeAhead";
    public static final String INT4_PERSISTENT = "vlmflux.cuda.int4Persistent";
    public static final String INT4_RING = "vlmflux.cuda.int4Ring";
    public static final String INT4_PREFILL_CHUNK_KIB = "vlmflux.cuda.int4PrefillChunkKiB";
    public static final String GEMM_TUNE = "vlmflux.cuda.gemmTune";
    public static final String VISION_FAST_ELEMENTWISE = "vlmflux.vision.fastElementwise";

    public Tuning {
        atLeast(CPU_THREADS, cpuThreads, 1);
        atLeast(CPU_SPIN_MICROS, cpuSpinMicros, 0);
        atLeast(PREFILL_CHUNK, prefillChunk, 1);
        atLeast(GEMV_SPLIT_BLOCKS_PER_SM, gemvSplitBlocksPerSm, 1);
        atLeast(VISION_FP32_MAX_BYTES, visionFp32MaxBytes, 0);
        atLeast(DECODE_PREFETCH_MIB, decodePrefetchMiB, 0);
        atLeast(INT4_PREFILL_CHUNK_KIB, int4PrefillChunkKiB, 0);
    }

    /** Every knob at its default (process-wide ones too: not what this process was started with; see {@link #process()}). */
    public static Tuning defaults() {
        return new Tuning(Runtime.getRuntime().availableProcessors(), 100, true, false, false, null,
                true, true, 2048, true, false, true, true, 4, true, true, true, true, true, true, false, false, 0, false, true, true, true, false, false, true, true, 1L << 30, true, true, false, false, false, 0, false, false);
    }

    /** Every knob from the system properties now (absent ones at their defaults). */
    public static Tuning fromSystemProperties() { return from(System::getProperty); }

    /** Every knob from {@code props} (property name to value, absent ones at their defaults). */
    public static Tuning from(Map<String, String> props) { return from(props::get); }

    /**
     * Every knob from {@code lookup} (property name to value or null). Flags take {@code true} or {@code false} (any
     * case), numbers decimal integers; anything else fails naming the property, its value and what was expected.
     */
    public static Tuning from(Function<String, String> lookup) {
        Tuning d = defaults();
        String r = lookup.apply(ROOT);
        return new Tuning(
                integer(lookup, CPU_THREADS, d.cpuThreads), longer(lookup, CPU_SPIN_MICROS, d.cpuSpinMicros),
                flag(lookup, CPU_SIMD, d.cpuSimd), flag(lookup, CUDA_DISABLE, d.cudaDisable), flag(lookup, CUDA_NVRTC, d.cudaNvrtc),
                r == null || r.isBlank() ? null : Path.of(r),
                flag(lookup, GRAPHS, d.graphs), flag(lookup, BATCH_GRAPHS, d.batchGraphs), integer(lookup, PREFILL_CHUNK, d.prefillChunk),
                flag(lookup, FUSED_NORM, d.fusedNorm), flag(lookup, FUSED_SILU, d.fusedSilu), flag(lookup, SKINNY_GEMM, d.skinnyGemm),
                flag(lookup, GEMV_SPLIT_K, d.gemvSplitK), integer(lookup, GEMV_SPLIT_BLOCKS_PER_SM, d.gemvSplitBlocksPerSm),
                flag(lookup, PREFILL_MMA, d.prefillMma), flag(lookup, PREFILL_SPLIT_KV, d.prefillSplitKv),
                flag(lookup, EVICT_KERNEL, d.evictKernel),
                flag(lookup, PREFILL_BF16_GATE_UP, d.prefillBf16GateUp),
                flag(lookup, PREFILL_PIPELINED, d.prefillPipelined),
                flag(lookup, DECODE_VEC_ATTENTION, d.decodeVecAttention), flag(lookup, DECODE_FUSED_COMBINE, d.decodeFusedCombine),
                flag(lookup, DECODE_FUSED_ROPE, d.decodeFusedRope), integer(lookup, DECODE_PREFETCH_MIB, d.decodePrefetchMiB),
                flag(lookup, GEMV_PREFETCH, d.gemvPrefetch), flag(lookup, DECODE_MEGAKERNEL, d.decodeMegakernel),
                flag(lookup, PDL, d.pdl), flag(lookup, INT4_MMA, d.int4Mma), flag(lookup, INT4_TILED, d.int4Tiled),
                flag(lookup, INT4_PREFILL_OVERLAP, d.int4PrefillOverlap),
                flag(lookup, LIVE_DEVICE_PREPROCESS, d.liveDevicePreprocess), !flag(lookup, VISION_NO_GRAPHS, !d.visionGraphs),
                longer(lookup, VISION_FP32_MAX_BYTES, d.visionFp32MaxBytes), flag(lookup, BATCH_DECODE, d.batchDecode),
                flag(lookup, BATCH_SELECT, d.batchSelect), flag(lookup, DECODE_AHEAD, d.decodeAhead),
                flag(lookup, INT4_PERSISTENT, d.int4Persistent), flag(lookup, INT4_RING, d.int4Ring),
                integer(lookup, INT4_PREFILL_CHUNK_KIB, d.int4PrefillChunkKiB), flag(lookup, GEMM_TUNE, d.gemmTune),
                flag(lookup, VISION_FAST_ELEMENTWISE, d.visionFastElementwise));
    }

    /**
     * The process-wide knobs as this process was started: read from the system properties once, at the first call
     * (the CPU pool, the CPU kernel choice, the CUDA probe and the kernel loader call it during their initialisation).
     * Only the process-wide properties are parsed, so a bad per-model value cannot break class initialisation; the
     * per-model knobs of the result are the defaults.
     */
    public static Tuning process() { return Process.VALUE; }

    private static final class Process {
        static final Tuning VALUE = processWide(System::getProperty);
    }

    static Tuning processWide(Function<String, String> lookup) {
        Tuning d = defaults();
        String r = lookup.apply(ROOT);
        return d.withProcessWide(integer(lookup, CPU_THREADS, d.cpuThreads), longer(lookup, CPU_SPIN_MICROS, d.cpuSpinMicros),
                flag(lookup, CPU_SIMD, d.cpuSimd), flag(lookup, CUDA_DISABLE, d.cudaDisable), flag(lookup, CUDA_NVRTC, d.cudaNvrtc),
                r == null || r.isBlank() ? null : Path.of(r));
    }

    private Tuning withProcessWide(int threads, long spin, boolean simd, boolean disable, boolean nvrtc, Path root) {
        return new Tuning(threads, spin, simd, disable, nvrtc, root, graphs, batchGraphs, prefillChunk, fusedNorm, fusedSilu,
                skinnyGemm, gemvSplitK, gemvSplitBlocksPerSm, prefillMma, prefillSplitKv, evictKernel, prefillBf16GateUp, prefillPipelined, decodeVecAttention, decodeFusedCombine, decodeFusedRope, decodePrefetchMiB, gemvPrefetch, decodeMegakernel, pdl, int4Mma, int4Tiled, int4PrefillOverlap, liveDevicePreprocess, visionGraphs, visionFp32MaxBytes, batchDecode, batchSelect, decodeAhead, int4Persistent, int4Ring, int4PrefillChunkKiB, gemmTune, visionFastElementwise);
    }

    /**
     * Every knob as its system property and value ({@code vlmflux.root} only when set): {@code from(properties())}
     * equals this tuning. The one list of what a tuning is, for logs and for {@link #with}.
     */
    public Map<String, String> properties() {
        Map<String, String> m = new java.util.LinkedHashMap<>();
        m.put(CPU_THREADS, Integer.toString(cpuThreads));
        m.put(CPU_SPIN_MICROS, Long.toString(cpuSpinMicros));
        m.put(CPU_SIMD, Boolean.toString(cpuSimd));
        m.put(CUDA_DISABLE, Boolean.toString(cudaDisable));
        m.put(CUDA_NVRTC, Boolean.toString(cudaNvrtc));
        if (root != null) m.put(ROOT, root.toString());
        m.put(GRAPHS, Boolean.toString(graphs));
        m.put(BATCH_GRAPHS, Boolean.toString(batchGraphs));
        m.put(PREFILL_CHUNK, Integer.toString(prefillChunk));
        m.put(FUSED_NORM, Boolean.toString(fusedNorm));
        m.put(FUSED_SILU, Boolean.toString(fusedSilu));
        m.put(SKINNY_GEMM, Boolean.toString(skinnyGemm));
        m.put(GEMV_SPLIT_K, Boolean.toString(gemvSplitK));
        m.put(GEMV_SPLIT_BLOCKS_PER_SM, Integer.toString(gemvSplitBlocksPerSm));
        m.put(PREFILL_MMA, Boolean.toString(prefillMma));
        m.put(PREFILL_SPLIT_KV, Boolean.toString(prefillSplitKv));
        m.put(EVICT_KERNEL, Boolean.toString(evictKernel));
        m.put(PREFILL_BF16_GATE_UP, Boolean.toString(prefillBf16GateUp));
        m.put(PREFILL_PIPELINED, Boolean.toString(prefillPipelined));
        m.put(DECODE_VEC_ATTENTION, Boolean.toString(decodeVecAttention));
        m.put(DECODE_FUSED_COMBINE, Boolean.toString(decodeFusedCombine));
        m.put(DECODE_FUSED_ROPE, Boolean.toString(decodeFusedRope));
        m.put(DECODE_PREFETCH_MIB, Integer.toString(decodePrefetchMiB));
        m.put(GEMV_PREFETCH, Boolean.toString(gemvPrefetch));
        m.put(DECODE_MEGAKERNEL, Boolean.toString(decodeMegakernel));
        m.put(PDL, Boolean.toString(pdl));
        m.put(INT4_MMA, Boolean.toString(int4Mma));
        m.put(INT4_TILED, Boolean.toString(int4Tiled));
        m.put(INT4_PREFILL_OVERLAP, Boolean.toString(int4PrefillOverlap));
        m.put(LIVE_DEVICE_PREPROCESS, Boolean.toString(liveDevicePreprocess));
        m.put(VISION_NO_GRAPHS, Boolean.toString(!visionGraphs));
        m.put(VISION_FP32_MAX_BYTES, Long.toString(visionFp32MaxBytes));
        m.put(BATCH_DECODE, Boolean.toString(batchDecode));
        m.put(BATCH_SELECT, Boolean.toString(batchSelect));
        m.put(DECODE_AHEAD, Boolean.toString(decodeAhead));
        m.put(INT4_PERSISTENT, Boolean.toString(int4Persistent));
        m.put(INT4_RING, Boolean.toString(int4Ring));
        m.put(INT4_PREFILL_CHUNK_KIB, Integer.toString(int4PrefillChunkKiB));
        m.put(GEMM_TUNE, Boolean.toString(gemmTune));
        m.put(VISION_FAST_ELEMENTWISE, Boolean.toString(visionFastElementwise));
        return m;
    }

    /** The knobs that differ from {@link #defaults()}, as property and value (for logs and benchmark records). */
    public Map<String, String> changes() {
        Map<String, String> d = defaults().properties(), m = properties();
        m.entrySet().removeIf(e -> e.getValue().equals(d.get(e.getKey())));
        return m;
    }

    /**
     * This tuning with {@code property} (one of {@link #properties()}' names, or {@code vlmflux.root}) set to
     * {@code value}, parsed and checked as the system property would be.
     */
    public Tuning with(String property, String value) {
        Map<String, String> m = properties();
        if (!m.containsKey(property) && !ROOT.equals(property)) throw new IllegalArgumentException("no tuning property " + property);
        m.put(property, value);
        return from(m);
    }

    /** This tuning with single-sequence decode graphs on or off (batched-decode graphs follow: they need graphs too). */
    public Tuning withGraphs(boolean on) { return with(GRAPHS, Boolean.toString(on)); }

    /** This tuning with batched-decode graphs on or off. */
    public Tuning withBatchGraphs(boolean on) { return with(BATCH_GRAPHS, Boolean.toString(on)); }

    /** This tuning with the skinny batched GEMM on or off (off: cuBLAS for every batched product). */
    public Tuning withSkinnyGemm(boolean on) { return with(SKINNY_GEMM, Boolean.toString(on)); }

    /** This tuning with prefill passes of at most {@code tokens} tokens. */
    public Tuning withPrefillChunk(int tokens) { return with(PREFILL_CHUNK, Integer.toString(tokens)); }

    /** This tuning with the pipelined tensor-core prefill attention on or off. */
    public Tuning withPrefillPipelined(boolean on) { return with(PREFILL_PIPELINED, Boolean.toString(on)); }

    /** This tuning with the 16-byte-load decode attention on or off. */
    public Tuning withDecodeVecAttention(boolean on) { return with(DECODE_VEC_ATTENTION, Boolean.toString(on)); }

    /** This tuning with programmatic dependent launch of the decode-step kernels on or off. */
    public Tuning withPdl(boolean on) { return with(PDL, Boolean.toString(on)); }

    /** This tuning with {@link #int4Tiled} set. */
    public Tuning withInt4Tiled(boolean on) { return with(INT4_TILED, Boolean.toString(on)); }

    /** This tuning with {@link #int4PrefillOverlap} set. */
    public Tuning withInt4PrefillOverlap(boolean on) { return with(INT4_PREFILL_OVERLAP, Boolean.toString(on)); }

    /** This tuning with live video groups preprocessed on the GPU on or off. */
    public Tuning withLiveDevicePreprocess(boolean on) { return with(LIVE_DEVICE_PREPROCESS, Boolean.toString(on)); }

    /** This tuning with batched decode of concurrent captions on or off. */
    public Tuning withBatchDecode(boolean on) { return with(BATCH_DECODE, Boolean.toString(on)); }

    // ---- parsing: one place for every property

    private static boolean flag(Function<String, String> lookup, String prop, boolean def) {
        String v = lookup.apply(prop);
        if (v == null) return def;
        String t = v.strip();
        if (t.equalsIgnoreCase("true")) return true;
        if (t.equalsIgnoreCase("false")) return false;
        throw new IllegalArgumentException("-D" + prop + "=" + v + ": expected true or false");
    }

    private static int integer(Function<String, String> lookup, String prop, int def) {
        String v = lookup.apply(prop);
        if (v == null) return def;
        try {
            return Integer.parseInt(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("-D" + prop + "=" + v + ": expected an integer", e);
        }
    }

    private static long longer(Function<String, String> lookup, String prop, long def) {
        String v = lookup.apply(prop);
        if (v == null) return def;
        try {
            return Long.parseLong(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("-D" + prop + "=" + v + ": expected an integer", e);
        }
    }

    private static void atLeast(String prop, long v, long min) {
        if (v < min) throw new IllegalArgumentException(prop + " = " + v + ": must be at least " + min);
    }
}
