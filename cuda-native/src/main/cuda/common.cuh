// Shared helpers for every VLMFlux kernel. Self-contained on purpose: no CUDA headers, so NVRTC compiles the same
// text as nvcc without an include path. bf16 is carried as its bit pattern (unsigned short).
#pragma once

typedef unsigned short bf16_t;

#define VF_NEG_INF (__int_as_float(0xff800000))
#define VF_POS_INF (__int_as_float(0x7f800000))
// Programmatic dependent launch (Hopper and later; vlmflux.cuda.pdl): a kernel that the host launches with
// programmatic stream serialization may start while the previous kernel of the stream is still running. The first
// statement of every such kernel (io.vlmflux.cuda.gpu.KernelModule.PDL_READY, checked by KernelSourcesTest) is this:
// wait until the previous grid has completed and its writes are visible (before touching any memory), then let the
// next kernel be scheduled. Launched the ordinary way, both instructions return at once; below sm_90 they are absent
// (the host enables PDL only where the module has native sm_90+ code).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define VF_PDL_PROLOGUE()                                             \
    do {                                                              \
        asm volatile("griddepcontrol.wait;" ::: "memory");            \
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); \
    } while (0)
// The same after PF, statements that may only prefetch memory no kernel writes (weights) into L2: they overlap the
// previous kernel's tail instead of waiting for it (vlmflux.cuda.gemvPrefetch).
#define VF_PDL_PREFETCH_PROLOGUE(PF)                                  \
    do {                                                              \
        PF;                                                           \
        asm volatile("griddepcontrol.wait;" ::: "memory");            \
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); \
    } while (0)
#else
#define VF_PDL_PROLOGUE() do { } while (0)
#define VF_PDL_PREFETCH_PROLOGUE(PF) do { } while (0)
#endif

// Ints per row of a batched decode step's row table (rope.cu vf_rope_qkv_rows, attention.cu vf_attn_decode_rows_*).
#define VF_ROWS_INTS 8

__device__ __forceinline__ float bf2f(bf16_t h) { return __uint_as_float(((unsigned int)h) << 16); }

// Round to nearest even, NaN stays NaN (quiet).
__device__ __forceinline__ bf16_t f2bf(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

// Low / high bf16 of a 32-bit word holding two consecutive bf16 (little endian).
__device__ __forceinline__ float bflo(unsigned int w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bfhi(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch /* >= 33 floats */) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < nw ? scratch[lane] : 0.f;
    t = warp_sum(t);
    return t;
}

__device__ __forceinline__ float block_max(float v, float* scratch /* >= 33 floats */) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < nw ? scratch[lane] : VF_NEG_INF;
    t = warp_max(t);
    return t;
}

// The 32-bit shared-memory address of a generic pointer into shared memory (operand of mbarrier / bulk-copy PTX).
__device__ __forceinline__ unsigned int vf_smem_addr(const void* p) {
    unsigned int a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// Shared-memory barriers fed by 1-D bulk copies (TMA), sm_90+: decode_mega.cu's stream form and VF_MEGA_KVSMEM, int4.cu's
// ring GEMV. One thread initializes n barriers (one arrival a phase) and makes them visible to the async proxy before any
// copy; a phase is armed by one vf_bulk_expect with the bytes its copies bring and completes when they have landed; the
// waiters spin on its parity. Reusing a buffer the generic proxy has read: fence.proxy.async first (vf_bulk_reuse).
__device__ __forceinline__ void vf_mbar_init(unsigned int bars, int n) {
    for (int i = 0; i < n; i++) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bars + 8 * i) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

__device__ __forceinline__ void vf_bulk_reuse() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

__device__ __forceinline__ void vf_bulk_expect(unsigned int bar, unsigned int bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

// bytes (a multiple of 16; src and dst 16-byte aligned) from global src to shared dst, counted on barrier bar.
__device__ __forceinline__ void vf_bulk_copy(unsigned int dst, const void* src, unsigned int bytes, unsigned int bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}

// Until the phase of this parity of barrier bar has completed; 2^26 tries without it fail the launch, never hang it.
__device__ __forceinline__ void vf_mbar_wait(unsigned int bar, unsigned int parity) {
    unsigned int ok = 0, spins = 0;
    while (true) {
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
        if (ok) return;
        if (++spins == (1u << 26)) __trap();
    }
}
#endif
