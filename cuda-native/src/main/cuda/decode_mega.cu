// One decode step of a 16-bit decoder in one persistent launch (vlmflux.cuda.decodeMegakernel): the whole step — for
// every layer RMSNorm + q/k/v product, RoPE + q/k norm + KV write + attention over the cache, the split combine, the o
// product, RMSNorm + gate/up product + SiLU-gate, the down product; then the final norm and the lm head — runs in one
// kernel of one block per SM whose stages are separated by grid-wide barriers instead of kernel boundaries. A step of
// a 0.6B model was ~220 dependent launches, each paying a drain and a ramp (issue 18); here the stages of a layer cost
// a barrier each (one L2 atomic per block), and every stage issues its first weight (or cached K/V) loads before it
// waits at the barrier, so their DRAM latency overlaps the barrier and the stage's prologue (the norm, RoPE): the
// library's form (VF_MEGA_FORM_LIB below). (Prefetching the next product's weights into L2 from each stage was measured
// slower on the H100 at stop 29 and removed.) Forms only mega_harness builds, to time them against it: split-K
// (VF_MEGA_SPLITK: a block with fewer rows of a product than warps splits the product's K over its warps) and the
// stream form (VF_MEGA_STREAM, sm_90+, the launch's dynamic shared memory a ring of 16 KB slots: every weight byte of
// the step flows through the ring by bulk copies issued as slots free up — see "The weight stream" below); both were
// slower at stop 32. The wide form (VF_MEGA_WIDE: up to 6 rows a warp's group, sized so that every warp walks as many
// groups as the others; the same additions a row, so the same bits as the library's form) is written for the shares
// that leave half the warps a second group (Qwen3-VL-4B's q/k/v): 13-20% slower at every shape (stop 34, H100; 220
// bytes of spills and longer dependent chains); harness only since stop 36 (it was the switch vlmflux.cuda.decodeMegaWide).
// Measured slower at stop 35 and removed (docs/performance.md "Stop 35"; the code at commit bb90890): 8 K/V loads in
// flight a lane in the split pass (U8, 4-14% slower) and the combine's loads in one round (COMBPRE, up to 7% slower);
// at stop 36 one out-of-line row product for q/k/v, o, down and the lm head (SHARED, 5-9% slower at every shape, though
// its stalls on instruction fetch halved; the code at commit bffbc1b).
//
// Rules that keep it correct:
// - Co-residency: the grid is at most one block per SM with this block size and is launched cooperatively (the
//   driver refuses a grid that cannot be resident at once), so every block reaches every barrier.
// - Data written by other blocks in this launch (x, qkv, attention partials, att, act) is read with ld.global.cg (L2;
//   L1 is not coherent across SMs); weights are read-only for the whole launch (ld.global.nc).
// - Row ownership: a product's rows are split into one contiguous range per block (the same ranges for every product
//   of the same height), each row written by one thread, so x's residual add needs no atomics.
// - Each stage's arithmetic is the per-kernel path's: the GEMV row sums (lane-strided, ascending, then warp_sum, where a
//   block has at least as many row groups as warps; in the split-K form otherwise K is split over warps and the sums
//   differ in rounding), the
//   RMSNorm prologue of vf_gemv_bf16_fused with 256 threads, SiLU-gate as vf_silu_mul, RoPE by vf_rope_head, the
//   combine by vf_dec_combine_head. The attention's split pass walks keys in its own order (8 warps), so logits match
//   the per-kernel path to rounding, not bit for bit.
//
// Barrier: sync[0] counts arrivals (the n-th barrier of a launch waits for n * gridDim.x; a block that waits for seconds
// traps: a launch error, not a hang), sync[1] counts blocks leaving; the last block out zeroes both, so every launch (and graph replay) starts from zero.
#include "common.cuh"

#define VF_MEGA_THREADS 256
#define VF_MEGA_WARPS (VF_MEGA_THREADS / 32)
#define VF_MEGA_R 4            // rows a warp's GEMV step carries (16-byte loads in flight: 4 rows x 4)
#define VF_MEGA_RW 6           // ... in the wide form: up to 6 rows (ptxas: 220 bytes of spills at hd 128), as many as balance the block's share over its warps
#define VF_MEGA_GMAX 4         // query heads of one attention work item
#define VF_MEGA_SMEM 45056     // the stage-shared buffer: x as bf16 up to 22,528 columns, or the attention scratch
#define VF_MEGA_MAX_K (VF_MEGA_SMEM / 2)
#define VF_MEGA_EARLY 1        // flags: each stage's first weight / cached K/V loads between the barrier's arrival and its wait
#define VF_MEGA_SPLITK 2       // flags: a block with fewer row groups than warps splits the product's K over its warps
#define VF_MEGA_STREAM 4       // flags: the weights stream through a ring of shared-memory slots filled by bulk copies (sm_90+)
#define VF_MEGA_ROPEPRE 128    // flags: RoPE's cos / sin computed once a launch and the q/k norm weights staged across the
                               // attention's opening barrier; each head's warp reads its q/k/v from L2 into registers
#define VF_MEGA_L2PF 1024      // flags: between a barrier's arrival and its wait, one thread of the block prefetches the
                               // block's share of the next product's weights (its first VF_MEGA_L2PF_MAX bytes) and the
                               // first attention item's cached K/V rows into L2 (cp.async.bulk.prefetch.L2, sm_90+)
#define VF_MEGA_L2PF_MAX (160 * 1024)   // bytes a block prefetches for one stage at most (132 blocks: ~21 MB of L2)
#define VF_MEGA_KVSMEM 2048    // flags (sm_90+, not with VF_MEGA_STREAM): the attention's cached K / V reach shared memory
                               // by bulk copies, a round of keys (16 KB of K and of V at every head dim) into one of two
                               // buffers of the launch's dynamic shared memory, two rounds ahead of the arithmetic; the
                               // first item's first two rounds are issued across the barrier; keys read from there
                               // instead of one register round at a time (the same values, so the same bits)
#define VF_MEGA_KV_ROUND 16384 // bytes of K (and of V) in one round of keys: VF_MEGA_WARPS x keys a warp's load x 4 x 2 HD
#define VF_MEGA_KVSMEM_BYTES (4 * VF_MEGA_KV_ROUND)   // dynamic shared memory of the form: two buffers of K and V
#define VF_MEGA_WIDE 32        // flags: a warp's row group holds up to VF_MEGA_RW rows, sized so every warp walks as many
                               // groups as the others (not with VF_MEGA_SPLITK)
#define VF_MEGA_SLOT 16384     // bytes of a ring slot (the ring is the launch's dynamic shared memory)
#define VF_MEGA_RING_MAX 14    // slots at most
#define VF_MEGA_RR 8           // rows of a streamed tile at most (gate/up: 4 pairs)
// The form (the flags above) is a template parameter, compiled in: each form's kernel holds only its own code. As runtime
// branches of one body the forms made the kernel 2.3 times the first form's code (343 KB at hd 128), every layer walked
// all of it, and form 0 ran 1.23x slower than the same arithmetic compiled alone (docs/performance.md, stops 31 and 32).
// The library builds VF_MEGA_FORM_LIB as vf_decode_mega_h{hd}: the early loads (stop 32: the fastest form compiled
// apart at every published shape on the H100, 1.05-1.15x the per-kernel step in mega_harness; split-K over warps gained
// nothing once the form was compiled alone) and, since stop 35, RoPE's cos / sin once a launch with the norm weights
// staged across the attention's barrier (VF_MEGA_ROPEPRE, harness form 129: the same bits as form 1, 1.8-4.0% faster at
// every shape on the H100; an attention item's q + RoPE phase 1.9 -> 0.5 us). mega_harness instantiates every form
// (VF_MEGA_INSTANCE_FORM).
#define VF_MEGA_FORM_LIB (VF_MEGA_EARLY | VF_MEGA_ROPEPRE)

// Per layer, written by the host (io.vlmflux.cuda.gpu.GpuOps#megaLayerTable): 10 device addresses, null where absent.
struct VfMegaLayer {
    const bf16_t* attnNorm;
    const bf16_t* mlpNorm;
    const bf16_t* wqkv;   // [q + 2 kv, H]
    const float* bqkv;    // [q + 2 kv] or null
    const bf16_t* wo;     // [H, q]
    const float* bo;      // [H] or null
    const bf16_t* qNorm;  // [hd] or null
    const bf16_t* kNorm;
    const bf16_t* wgu;    // [2 I, H]: gate rows then up rows
    const bf16_t* wd;     // [H, I]
};

struct VfMega {
    const VfMegaLayer* layers;
    const bf16_t* finalNorm;
    const bf16_t* lmHead;      // [V, H]
    float* x;                  // residual fp32 [H], holds the token's embedding on entry
    float* qkv;                // fp32 [q + 2 kv]
    float* part;               // fp32 [nq, splits, hd + 2]
    bf16_t* att;               // bf16 [q]
    bf16_t* act;               // bf16 [I]
    float* logits;             // fp32 [V]
    const int* step;           // {p0, p1, p2, slot, kvLen}: positions, the new key's cache slot, keys after the write
    const float* invFreq;
    unsigned int* sync;        // {arrivals, exits}
    char* kBase;               // layer 0's K cache; layer l's at kBase + l * kvLayerStride, its V vOffset after it
    long long kvLayerStride, vOffset;
    int L, H, nq, nkv, I, V, maxSeq, splits, sec1, sec2;
    float eps, scale;
};

__device__ __forceinline__ int vf_mega_p0(const VfMega& a) { return __ldcg(a.step); }
__device__ __forceinline__ int vf_mega_p1(const VfMega& a) { return __ldcg(a.step + 1); }
__device__ __forceinline__ int vf_mega_p2(const VfMega& a) { return __ldcg(a.step + 2); }

#ifdef VF_MEGA_STAMPS
// mega_harness only (the library is built without it): when each block arrives at and leaves each grid barrier of a
// launch, as SM clock cycles and %globaltimer ns: vf_mega_stamps[(block * VF_MEGA_STAMP_MAX + barrier) * 4 + {arrival
// clock, release clock, arrival ns, release ns}]; barrier n is the launch's n-th (the last, n = its count, the block's
// end); null: off.
#define VF_MEGA_STAMP_MAX 1024
__device__ unsigned long long* vf_mega_stamps;
__shared__ unsigned long long* vf_mega_stamps_s;   // read once a launch (VF_MEGA_STAMP_INIT), so a barrier pays no global load
__device__ __forceinline__ void vf_mega_stamp(unsigned int target, int release) {
    unsigned long long* s = vf_mega_stamps_s;
    const unsigned int n = target / gridDim.x - 1;
    if (s != nullptr && n < VF_MEGA_STAMP_MAX) {
        unsigned long long ns;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
        s[((size_t)blockIdx.x * VF_MEGA_STAMP_MAX + n) * 4 + release] = clock64();
        s[((size_t)blockIdx.x * VF_MEGA_STAMP_MAX + n) * 4 + 2 + release] = ns;
    }
}
// ... and inside the attention stage, the phases of a block's first work item (thread 0's clock64 after the release, after
// RoPE, after the key loop, after the partials; 4: once its first cached K/V loads have landed, waited for right after
// RoPE — harness only, it moves that wait earlier): vf_mega_astamps[(block * VF_MEGA_STAMP_MAX + barrier) *
// VF_MEGA_APHASES + phase], barrier the stage's opening one; null: off.
#define VF_MEGA_APHASES 8
__device__ unsigned long long* vf_mega_astamps;
__shared__ unsigned long long* vf_mega_astamps_s;
__device__ __forceinline__ void vf_mega_astamp(unsigned int target, int phase) {
    unsigned long long* s = vf_mega_astamps_s;
    const unsigned int n = target / gridDim.x - 1;
    if (threadIdx.x == 0 && s != nullptr && n < VF_MEGA_STAMP_MAX) s[((size_t)blockIdx.x * VF_MEGA_STAMP_MAX + n) * VF_MEGA_APHASES + phase] = clock64();
}
#define VF_MEGA_STAMP(target, release) vf_mega_stamp(target, release)
#define VF_MEGA_ASTAMP(target, phase) vf_mega_astamp(target, phase)
#define VF_MEGA_STAMP_INIT() do { if (threadIdx.x == 0) { vf_mega_stamps_s = vf_mega_stamps; vf_mega_astamps_s = vf_mega_astamps; } __syncthreads(); } while (0)
#else
#define VF_MEGA_STAMP(target, release)
#define VF_MEGA_ASTAMP(target, phase)
#define VF_MEGA_STAMP_INIT() do { } while (0)
#endif

// VF_MEGA_ROPEPRE: RoPE's cos / sin of every frequency at this step's positions (the same for every layer and head),
// computed once a launch, and the layer's q / k norm weights, staged while the attention's barrier is open.
template <int HD>
struct VfMegaRope {
    float cs[HD / 2], sn[HD / 2];
    bf16_t qn[HD], kn[HD];
};

// vf_rope_head (rope.cu) through its body vf_rope_head_with, so the same bits, with the head read from L2 into registers
// (src: written by other blocks of this launch), the angles' cos / sin from r, the norm weights nw from shared memory
// (null: no norm). One warp.
template <int HD>
__device__ __forceinline__ void vf_mega_rope_pre(const float* src, const bf16_t* nw, float eps, const VfMegaRope<HD>& r, float* of,
                                                 bf16_t* ob) {
    vf_rope_head_with([&](int j) { return __ldcg(src + j); }, nw, eps, HD,
                      [&](int j, float& s, float& co) { s = r.sn[j]; co = r.cs[j]; }, of, ob);
}

// The grid barrier in two halves, so that loads which do not depend on it (weights, cached K/V) are issued between
// them: issued before the arrival, they would hold it back (a release waits for the block's outstanding accesses).
__device__ __forceinline__ void vf_mega_arrive(unsigned int* sync, unsigned int& target) {
    __syncthreads();
    target += gridDim.x;
    if (threadIdx.x == 0) {   // the block's writes (ordered by the barrier above) are released with the arrival
        VF_MEGA_STAMP(target, 0);
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(sync) : "memory");
    }
}

__device__ __forceinline__ void vf_mega_wait(unsigned int* sync, unsigned int target) {
    if (threadIdx.x == 0) {
        unsigned int v, spins = 0;
        do {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(sync) : "memory");
            if (++spins == (1u << 25)) __trap();   // seconds without the other blocks: fail the launch, never hang
        } while (v < target);
        VF_MEGA_STAMP(target, 1);
    }
    __syncthreads();
}

__device__ __forceinline__ void vf_mega_sync(unsigned int* sync, unsigned int& target) {
    vf_mega_arrive(sync, target);
    vf_mega_wait(sync, target);
}

// This block's contiguous share [r0, r1) of n rows.
__device__ __forceinline__ void vf_mega_share(int n, int& r0, int& r1) {
    r0 = (int)((long long)n * blockIdx.x / gridDim.x);
    r1 = (int)((long long)n * (blockIdx.x + 1) / gridDim.x);
}

// VF_MEGA_L2PF: bytes [p, p + n) into L2 without waiting (p and n multiples of 16), at most `*budget` of them.
__device__ __forceinline__ void vf_mega_l2pf(const void* p, long long n, long long& budget) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    n = min(n, budget);
    if (n <= 0) return;
    budget -= n;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"((unsigned int)n) : "memory");
#endif
}

// xs (bf16 [K] in shared memory) = bf16(x * rsqrt(mean(x^2) + eps) * nw), x fp32 from L2: vf_gemv_bf16_fused's mode 1
// prologue with the same block size and the same order of additions, so the same bits; x is read once (up to
// 4 x 256 float4, hidden sizes to 4,096, stay in registers between the sum of squares and the scaling). Ends with a block barrier.
__device__ __forceinline__ void vf_mega_norm(const float* x, const bf16_t* __restrict__ nw, int K, float eps, uint4* xs, float* scratch) {
    constexpr int NV = 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    uint2* xs2 = reinterpret_cast<uint2*>(xs);
    const uint2* n2 = reinterpret_cast<const uint2*>(nw);
    const int K4 = K >> 2;
    float4 v[NV];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < K4) {
            v[j] = __ldcg(x4 + i);
            ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
        }
    }
    for (int i = threadIdx.x + NV * blockDim.x; i < K4; i += blockDim.x) {
        const float4 t = __ldcg(x4 + i);
        ss += t.x * t.x + t.y * t.y + t.z * t.z + t.w * t.w;
    }
    ss = block_sum(ss, scratch);
    const float r = rsqrtf(ss / (float)K + eps);
    auto put = [&](int i, float4 t) {
        const uint2 n = n2[i];
        uint2 o;
        o.x = (unsigned int)f2bf(t.x * r * bflo(n.x)) | ((unsigned int)f2bf(t.y * r * bfhi(n.x)) << 16);
        o.y = (unsigned int)f2bf(t.z * r * bflo(n.y)) | ((unsigned int)f2bf(t.w * r * bfhi(n.y)) << 16);
        xs2[i] = o;
    };
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < K4) put(i, v[j]);
    }
    for (int i = threadIdx.x + NV * blockDim.x; i < K4; i += blockDim.x) put(i, __ldcg(x4 + i));
    __syncthreads();
}

// xs = a bf16 vector of K (K % 8 == 0) written by other blocks of this launch. Ends with a block barrier.
__device__ __forceinline__ void vf_mega_stage_bf16(const bf16_t* src, int K, uint4* xs) {
    const uint4* s4 = reinterpret_cast<const uint4*>(src);
    for (int i = threadIdx.x; i < (K >> 3); i += blockDim.x) xs[i] = __ldcg(s4 + i);
    __syncthreads();
}

// A product stage's rows for unit group g of the block's units [u0, u1), per units a group: KIND 0 rows, KIND 1
// (gate/up) pairs {j, I + j}; past u1 the last unit repeats (its sums are dropped); units past per are not loaded.
template <int KIND, int R>
__device__ __forceinline__ void vf_mega_rows(int g, int u0, int u1, int I, int per, int (&rows)[R]) {
    constexpr int PMAX = KIND == 0 ? R : R / 2;
#pragma unroll
    for (int t = 0; t < PMAX; t++) {
        const int u = min(u0 + g * per + t, u1 - 1);
        if (KIND == 0) rows[t] = u;
        else { rows[2 * t] = u; rows[2 * t + 1] = I + u; }
    }
}

// The lane's 16-byte groups base + lane + 32 u (u < 4) of the group's first nr rows, zero at and past e8 (rows past nr:
// not loaded, their sums dropped).
template <int R>
__device__ __forceinline__ void vf_mega_load(const bf16_t* __restrict__ W, int K, const int (&rows)[R], int nr, int base, int e8,
                                             uint4 (&wv)[R][4]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int idx = base + lane + 32 * u;
            wv[r][u] = idx < e8 && r < nr ? ldg_stream(reinterpret_cast<const uint4*>(W + (long long)rows[r] * K) + idx) : make_uint4(0u, 0u, 0u, 0u);
        }
}

// A product's unit u from its sums: KIND 0 y[u] = a0 (+ bias[u]) (+ y[u] when acc); KIND 1 act[u] = bf16(silu(a0) * a1)
// (vf_silu_mul's arithmetic).
template <int KIND>
__device__ __forceinline__ void vf_mega_put(int u, float a0, float a1, float* y, const float* __restrict__ bias, bool acc, bf16_t* act) {
    if (KIND == 0) {
        float v = a0;
        if (bias != nullptr) v += bias[u];
        if (acc) v += __ldcg(y + u);
        y[u] = v;
    } else {
        act[u] = f2bf((a0 / (1.f + expf(-a0))) * a1);
    }
}

// One product stage: KIND 0: y[u] = W[u] . xs (+ bias[u]) (+ y[u] when acc) for the block's share of n rows; KIND 1:
// act[j] = bf16(silu(W[j] . xs) * (W[I + j] . xs)) for its share of n = I pairs. Each warp's first loads are issued
// between the grid barrier's arrival and its wait (weights do not depend on it: their DRAM latency hides behind the
// barrier and prep, which fills xs). A block with fewer row groups than warps splits K over S warps per group, their
// partial sums added in
// slice order through shared memory; otherwise every warp walks groups, each lane its 16-byte groups in ascending
// order then warp_sum — vf_gemv_bf16's order, the same bits. R: rows a group can hold (VF_MEGA_RW in the wide form,
// where a group holds per <= R / (KIND + 1) units, as many as make the block's groups a multiple of its warps: at the
// Qwen3-VL-4B shape a block's 46-47 q/k/v rows are 8 groups of 6 in one round instead of 12 of 4 in two, its 73-74
// gate/up pairs 25 groups of 3 in four rounds instead of 37 of 2 in five, its 1,151 lm head rows 24 rounds instead of 36).
template <int KIND, int R, class Prep>
__device__ __forceinline__ void vf_mega_product(const bf16_t* __restrict__ W, int n, int K, int I, float* y, const float* __restrict__ bias,
        bool acc, bf16_t* act, const uint4* xs, bool sync, unsigned int* syncp, unsigned int& target, int flags, Prep prep) {
    constexpr int PMAX = KIND == 0 ? R : R / 2;
    __shared__ float red[VF_MEGA_WARPS][R];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int u0, u1;
    vf_mega_share(n, u0, u1);
    int per = PMAX;
    if (flags & VF_MEGA_WIDE) {   // rounds of VF_MEGA_WARPS groups the block needs at PMAX units a group, then the fewest units that fill them
        const int rounds = max(1, (u1 - u0 + VF_MEGA_WARPS * PMAX - 1) / (VF_MEGA_WARPS * PMAX));
        per = max(1, (u1 - u0 + VF_MEGA_WARPS * rounds - 1) / (VF_MEGA_WARPS * rounds));
    }
    const int nr = KIND == 0 ? per : 2 * per;   // rows a group loads
    const int groups = (u1 - u0 + per - 1) / per;
    const int S = !(flags & VF_MEGA_SPLITK) || groups >= VF_MEGA_WARPS || groups == 0 ? 1 : VF_MEGA_WARPS / groups;
    const int k8 = K >> 3;
    const int chunk = S == 1 ? k8 : ((k8 + S - 1) / S + 31) / 32 * 32;
    const int g0 = warp / S, b8 = min(k8, (warp % S) * chunk), e8 = min(k8, b8 + chunk);
    int rows[R];
    uint4 wv[R][4];
    const bool early = flags & VF_MEGA_EARLY;
    if (sync) vf_mega_arrive(syncp, target);
    if ((flags & VF_MEGA_L2PF) && sync && threadIdx.x == 0 && u1 > u0) {   // the share's rows (gate/up: both halves, in step)
        long long budget = VF_MEGA_L2PF_MAX;
        const long long rb = 2LL * K, half = KIND == 0 ? (u1 - u0) * rb : min((u1 - u0) * rb, (long long)VF_MEGA_L2PF_MAX / 2);
        vf_mega_l2pf(W + (long long)u0 * K, half, budget);
        if (KIND == 1) vf_mega_l2pf(W + (long long)(I + u0) * K, half, budget);
    }
    if (early && g0 < groups) {
        vf_mega_rows<KIND, R>(g0, u0, u1, I, per, rows);
        vf_mega_load<R>(W, K, rows, nr, b8, e8, wv);
    }
    if (sync) vf_mega_wait(syncp, target);
    if (!early && g0 < groups) {
        vf_mega_rows<KIND, R>(g0, u0, u1, I, per, rows);
        vf_mega_load<R>(W, K, rows, nr, b8, e8, wv);
    }
    prep();
    for (int g = g0; g < groups; g += S == 1 ? VF_MEGA_WARPS : groups) {
        if (g != g0) {
            vf_mega_rows<KIND, R>(g, u0, u1, I, per, rows);
            vf_mega_load<R>(W, K, rows, nr, b8, e8, wv);
        }
        float accv[R];
#pragma unroll
        for (int r = 0; r < R; r++) accv[r] = 0.f;
        for (int base = b8;;) {
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int idx = base + lane + 32 * u;
                if (idx < e8) {
                    const uint4 xv = xs[idx];
#pragma unroll
                    for (int r = 0; r < R; r++)
                        if (r < nr) accv[r] += dot8(wv[r][u], xv);
                }
            }
            base += 128;
            if (base >= e8) break;
            vf_mega_load<R>(W, K, rows, nr, base, e8, wv);
        }
        float sum[R];
#pragma unroll
        for (int r = 0; r < R; r++) sum[r] = r < nr ? warp_sum(accv[r]) : 0.f;
        if (S > 1) {
            if (lane == 0)
#pragma unroll
                for (int r = 0; r < R; r++) red[warp][r] = sum[r];
        } else if (lane < per && u0 + g * per + lane < u1) {
            float a0 = sum[0], a1 = sum[1];
#pragma unroll
            for (int t = 1; t < PMAX; t++)
                if (lane == t) { a0 = sum[KIND == 0 ? t : 2 * t]; a1 = sum[KIND == 0 ? t : 2 * t + 1]; }
            vf_mega_put<KIND>(u0 + g * per + lane, a0, a1, y, bias, acc, act);
        }
    }
    if (S > 1) {   // block-uniform (not in the wide form: per == PMAX here)
        __syncthreads();
        const int t = threadIdx.x, g = t / per, tt = t % per;
        if (g < groups && u0 + t < u1) {
            float a0 = 0.f, a1 = 0.f;
            for (int sl = 0; sl < S; sl++) {
                a0 += red[g * S + sl][KIND == 0 ? tt : 2 * tt];
                if (KIND == 1) a1 += red[g * S + sl][2 * tt + 1];
            }
            vf_mega_put<KIND>(u0 + t, a0, a1, y, bias, acc, act);
        }
    }
}

// ---- The weight stream (VF_MEGA_STREAM; sm_90+) ----
// Every weight byte a block reads in a step is known before the step starts: its share of each product's rows. So
// the block streams them, in the order it will use them, through a ring of NS shared-memory slots filled by bulk
// copies (cp.async.bulk, completing on one mbarrier a slot), NS tiles ahead of its arithmetic — across stage and
// grid-barrier boundaries, which the per-stage loads of the other forms cannot cross. A tile is R whole rows (up to
// VF_MEGA_RR; gate/up: R rows of gate and the same R rows of up) or, where a row does not fit a slot, one chunk of
// one row's K. Tiles are numbered per block over the whole step (layer by layer: q/k/v, o, gate/up, down; then the
// lm head); tile t sits in slot t % NS, and the warp that finishes reading tile t refills its slot with tile t + NS
// (so each warp reads its tiles in ascending order and no wait can close a cycle). Successive tiles of a slot are read
// by different warps, so a reader first waits until its tile was issued (the slot's tile index in shared memory): only
// then is the slot's barrier in the phase of that tile, and its parity wait meaningful. A warp owns a tile group (R units,
// all their K chunks) and writes its units' outputs itself: no block barrier inside a stage.
struct VfMegaPlan {
    int u0, u1;    // the block's units (rows; gate/up: pairs)
    int R, C;      // units a tile group, K chunks a unit
    int kc8;       // 16-byte groups of a chunk (K / 8 where C == 1)
    int tiles;     // groups * C
    int K, P, partRows;   // row length, parts (gate/up 2), the second part's first row (I)
};
struct VfMegaSched {
    VfMegaPlan st[5];   // q/k/v, o, gate/up, down, lm head
    int perLayer, total, NS;
    int tile[VF_MEGA_RING_MAX];   // the tile last issued into each slot
};

__device__ __forceinline__ VfMegaPlan vf_mega_plan(int n, int K, int P, int partRows) {
    VfMegaPlan p;
    vf_mega_share(n, p.u0, p.u1);
    p.K = K; p.P = P; p.partRows = partRows;
    const int cap = VF_MEGA_SLOT / P, rowBytes = 2 * K, K8 = K >> 3;
    if (rowBytes <= cap) { p.R = min(VF_MEGA_RR / P, cap / rowBytes); p.C = 1; p.kc8 = K8; }
    else { p.R = 1; p.C = (rowBytes + cap - 1) / cap; p.kc8 = (K8 + p.C - 1) / p.C; }
    p.tiles = (p.u1 - p.u0 + p.R - 1) / p.R * p.C;
    return p;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// VF_MEGA_KVSMEM: the two buffers' barriers and the count of rounds the block has consumed this launch (round i: buffer
// i & 1, phase (i >> 1) & 1); thread 0 writes the count, every thread reads it after a block barrier.
__shared__ __align__(8) unsigned long long vf_mega_kvbars[2];
__shared__ unsigned int vf_mega_kvseq;

// Thread 0: keys [t, t + n) of kv head hk (K and V rows) into buffer i & 1, completing its barrier.
template <int HD>
__device__ __forceinline__ void vf_mega_kv_issue(const bf16_t* kc, const bf16_t* vc, long long hkRow, int t, int n, unsigned int i) {
    extern __shared__ __align__(128) unsigned char vf_mega_ring[];
    const unsigned int buf = vf_smem_addr(vf_mega_ring) + (i & 1u) * 2u * VF_MEGA_KV_ROUND, bar = vf_smem_addr(&vf_mega_kvbars[i & 1u]);
    const unsigned int bytes = (unsigned int)n * HD * 2u;
    vf_bulk_reuse();   // the warps have read the buffer (a block barrier before this)
    vf_bulk_expect(bar, 2u * bytes);
    vf_bulk_copy(buf, kc + (hkRow + t) * HD, bytes, bar);
    vf_bulk_copy(buf + VF_MEGA_KV_ROUND, vc + (hkRow + t) * HD, bytes, bar);
}

// Every thread: until round i's keys have landed.
__device__ __forceinline__ void vf_mega_kv_wait(unsigned int i) {
    vf_mbar_wait(vf_smem_addr(&vf_mega_kvbars[i & 1u]), (i >> 1) & 1u);
}
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// Issues tile t of this block's stream into its slot (one thread); nothing past the last tile.
__device__ void vf_mega_issue(const VfMega& a, VfMegaSched& s, int t, unsigned int ring, unsigned int bars) {
    if (t >= s.total) return;
    const int LT = a.L * s.perLayer;
    int st = 4, i = t - LT;
    const bf16_t* W = a.lmHead;
    if (t < LT) {
        const int li = t / s.perLayer;
        i = t - li * s.perLayer;
        for (st = 0; i >= s.st[st].tiles; st++) i -= s.st[st].tiles;   // st <= 3: i < perLayer
        const VfMegaLayer* ly = a.layers + li;
        W = st == 0 ? ly->wqkv : st == 1 ? ly->wo : st == 2 ? ly->wgu : ly->wd;
    }
    const VfMegaPlan& p = s.st[st];
    const int j = i / p.C, c = i - j * p.C, ua = p.u0 + j * p.R, K8 = p.K >> 3, c8 = c * p.kc8;
    const unsigned int bytes = 16u * (p.C == 1 ? min(p.R, p.u1 - ua) * K8 : min(p.kc8, K8 - c8));
    const int slot = t % s.NS;
    const unsigned int dst = ring + slot * VF_MEGA_SLOT, bar = bars + 8 * slot;
    vf_bulk_expect(bar, bytes * p.P);
    for (int q = 0; q < p.P; q++)
        vf_bulk_copy(dst + q * 16u * p.R * p.kc8, W + (long long)(q * p.partRows + ua) * p.K + 8LL * c8, bytes, bar);
    __threadfence_block();
    *reinterpret_cast<volatile int*>(&s.tile[slot]) = t;
}

__device__ __forceinline__ void vf_mega_tile_wait(const VfMegaSched& s, int t, int slot, unsigned int bar) {
    unsigned int spins = 0;   // seconds without the tile: fail the launch, never hang
    while (*reinterpret_cast<const volatile int*>(&s.tile[slot]) != t)   // issued (its slot's previous tile was read)
        if (++spins == (1u << 26)) __trap();
    __threadfence_block();
    vf_mbar_wait(bar, (unsigned int)(t / s.NS) & 1u);
}

// Thread 0 at the start of a streaming launch: the schedule, the slots' barriers, the first NS tiles.
__device__ void vf_mega_stream_init(const VfMega& a, VfMegaSched& s, int Q, int NS, unsigned int ring, unsigned int bars) {
    const int QKV = Q + 2 * a.nkv * (Q / a.nq);
    s.st[0] = vf_mega_plan(QKV, a.H, 1, 0);
    s.st[1] = vf_mega_plan(a.H, Q, 1, 0);
    s.st[2] = vf_mega_plan(a.I, a.H, 2, a.I);
    s.st[3] = vf_mega_plan(a.H, a.I, 1, 0);
    s.st[4] = vf_mega_plan(a.V, a.H, 1, 0);
    s.perLayer = s.st[0].tiles + s.st[1].tiles + s.st[2].tiles + s.st[3].tiles;
    s.total = a.L * s.perLayer + s.st[4].tiles;
    s.NS = NS;
    vf_mbar_init(bars, NS);
    for (int t = 0; t < NS; t++) vf_mega_issue(a, s, t, ring, bars);
}

// Stage st of the stream: the warp's tile groups (tiles base + j * C + c), each unit's sums to its output as
// vf_mega_put. xs holds the stage's input vector.
template <int KIND>
__device__ void vf_mega_consume(const VfMega& a, VfMegaSched& s, int st, int base, float* y, const float* __restrict__ bias,
                                bool acc, bf16_t* act, const uint4* xs, const unsigned char* ringp, unsigned int ring, unsigned int bars) {
    constexpr int P = KIND == 0 ? 1 : 2, RM = VF_MEGA_RR / P;
    const VfMegaPlan p = s.st[st];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, K8 = p.K >> 3, NS = s.NS;
    const int groups = p.C == 0 ? 0 : p.tiles / p.C, ps = p.R * p.kc8;
    for (int j = warp; j < groups; j += VF_MEGA_WARPS) {
        const int ua = p.u0 + j * p.R, rn = min(p.R, p.u1 - ua);
        float sum[P][RM];
#pragma unroll
        for (int q = 0; q < P; q++)
#pragma unroll
            for (int r = 0; r < RM; r++) sum[q][r] = 0.f;
        for (int c = 0; c < p.C; c++) {
            const int t = base + j * p.C + c, slot = t % NS;
            vf_mega_tile_wait(s, t, slot, bars + 8 * slot);
            const uint4* tile = reinterpret_cast<const uint4*>(ringp + slot * VF_MEGA_SLOT);
            const int c8 = c * p.kc8, n8 = p.C == 1 ? K8 : min(p.kc8, K8 - c8);
            for (int g = lane; g < n8; g += 32) {
                const uint4 xv = xs[c8 + g];
#pragma unroll
                for (int r = 0; r < RM; r++)
                    if (r < rn)
#pragma unroll
                        for (int q = 0; q < P; q++) sum[q][r] += dot8(tile[q * ps + r * n8 + g], xv);
            }
            __syncwarp();
            if (lane == 0) {   // the warp is done reading the slot: refill it
                vf_bulk_reuse();
                vf_mega_issue(a, s, t + NS, ring, bars);
            }
        }
#pragma unroll
        for (int q = 0; q < P; q++)
#pragma unroll
            for (int r = 0; r < RM; r++) sum[q][r] = warp_sum(sum[q][r]);
        float a0 = sum[0][0], a1 = sum[P - 1][0];
#pragma unroll
        for (int r = 1; r < RM; r++)
            if (lane == r) { a0 = sum[0][r]; a1 = sum[P - 1][r]; }
        if (lane < rn) vf_mega_put<KIND>(ua + lane, a0, a1, y, bias, acc, act);
    }
}
#endif

// A product stage in the launch's form: streamed from the ring where rg is set, else vf_mega_product.
struct VfMegaRing { VfMegaSched* s; const unsigned char* p; unsigned int ring, bars; int base; };

template <int KIND, int FORM, class Prep>
__device__ __forceinline__ void vf_mega_stage(const VfMega& a, VfMegaRing* rg, int st, const bf16_t* __restrict__ W, int n, int K,
        float* y, const float* __restrict__ bias, bool acc, bf16_t* act, const uint4* xs, bool sync, unsigned int& target, Prep prep) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (rg != nullptr) {
        if (sync) vf_mega_sync(a.sync, target);
        prep();
        vf_mega_consume<KIND>(a, *rg->s, st, rg->base, y, bias, acc, act, xs, rg->p, rg->ring, rg->bars);
        rg->base += rg->s->st[st].tiles;
        return;
    }
#endif
    vf_mega_product<KIND, FORM & VF_MEGA_WIDE ? VF_MEGA_RW : VF_MEGA_R>(W, n, K, a.I, y, bias, acc, act, xs, sync, a.sync, target, FORM, prep);
}

// Attention work items: (kv head, group of up to VF_MEGA_GMAX query heads, split of the keys). Each block walks items
// grid-stride. The first batch of cached keys and values of the block's first item is loaded between the grid
// barrier's arrival and its wait (the cache rows before the new one do not depend on this step). The item ropes its query heads (and, where its key
// range holds the new key, that key and value) from the raw q/k/v product; the new key is read from shared memory,
// written to the cache by the item of head group 0.
template <int HD, int FORM>
__device__ void vf_mega_attention(const VfMega& a, const VfMegaLayer& ly, bf16_t* kc, bf16_t* vc, unsigned char* smem,
                                  unsigned int& target, VfMegaRope<HD>& rope) {
    constexpr int LPK = HD / 8, KPW = 32 / LPK, U = 4;   // U loads of K and V in flight per lane
    float (*sm)[VF_MEGA_GMAX][HD + 2] = reinterpret_cast<float (*)[VF_MEGA_GMAX][HD + 2]>(smem);       // [warps]
    float (*rq)[HD] = reinterpret_cast<float (*)[HD]>(smem + sizeof(float) * VF_MEGA_WARPS * VF_MEGA_GMAX * (HD + 2));
    float (*raw)[HD] = rq + VF_MEGA_GMAX;                                                            // q heads, k, v
    bf16_t (*rkv)[HD] = reinterpret_cast<bf16_t (*)[HD]>(raw + VF_MEGA_GMAX + 2);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int slot = lane / LPK, sl = lane % LPK;
    const int G = a.nq / a.nkv, groups = (G + VF_MEGA_GMAX - 1) / VF_MEGA_GMAX, S = a.splits;
    const int len = __ldcg(a.step + 4), newKey = __ldcg(a.step + 3);
    const int chunk = max((len + S - 1) / S, VF_DEC_MINCHUNK);
    const int Q = a.nq * HD, KV = a.nkv * HD;
    const int items = a.nkv * groups * S;
    // cached rows t < kEnd other than the new key (zero elsewhere) of the batch at t0
    uint4 kr[U], vr[U];
    auto load = [&](int hk, int t0, int kEnd) {
        const bf16_t* kh = kc + (long long)hk * a.maxSeq * HD + sl * 8;
        const bf16_t* vh = vc + (long long)hk * a.maxSeq * HD + sl * 8;
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int t = t0 + u * KPW + slot;
            kr[u] = make_uint4(0u, 0u, 0u, 0u); vr[u] = kr[u];
            if (t < kEnd && t != newKey) {
                kr[u] = *reinterpret_cast<const uint4*>(kh + (long long)t * HD);
                vr[u] = *reinterpret_cast<const uint4*>(vh + (long long)t * HD);
            }
        }
    };
    constexpr bool early = FORM & VF_MEGA_EARLY, pre = FORM & VF_MEGA_ROPEPRE;
    vf_mega_arrive(a.sync, target);
    if (pre)   // the norm weights (read-only) while the barrier is open; read after its closing block barrier
        for (int j = threadIdx.x; j < HD; j += blockDim.x) {
            if (ly.qNorm != nullptr) rope.qn[j] = ly.qNorm[j];
            if (ly.kNorm != nullptr) rope.kn[j] = ly.kNorm[j];
        }
    constexpr bool kvs = (FORM & VF_MEGA_KVSMEM) && !(FORM & VF_MEGA_STREAM);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    constexpr int RK = VF_MEGA_WARPS * KPW * U;   // keys a round (VF_MEGA_KV_ROUND bytes of K)
    static_assert(RK * HD * 2 == VF_MEGA_KV_ROUND, "a round of keys fills a buffer");
#endif
    auto issue2 = [&](int hk, int kBeg, int kEnd) {   // thread 0: the item's first two rounds (kvs)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        const unsigned int i0 = vf_mega_kvseq;
        for (int r = 0; r < 2 && kBeg + r * RK < kEnd; r++)
            vf_mega_kv_issue<HD>(kc, vc, (long long)hk * a.maxSeq, kBeg + r * RK, min(RK, kEnd - kBeg - r * RK), i0 + r);
#endif
    };
    if (early && blockIdx.x < items) {
        const int item = blockIdx.x, split = item % S, hk = item / (S * groups);
        const int kBeg = split * chunk;
        if (kvs) { if (kBeg < len && threadIdx.x == 0) issue2(hk, kBeg, min(len, kBeg + chunk)); }
        else if (kBeg < len) load(hk, kBeg + warp * KPW * U, min(len, kBeg + chunk));
        if ((FORM & VF_MEGA_L2PF) && threadIdx.x == 0 && kBeg + VF_MEGA_WARPS * KPW * U < len) {   // the item's keys past the first batch
            long long budget = VF_MEGA_L2PF_MAX;
            const int t1 = kBeg + VF_MEGA_WARPS * KPW * U, n = min(len, kBeg + chunk) - t1;
            vf_mega_l2pf(kc + ((long long)hk * a.maxSeq + t1) * HD, 2LL * n * HD, budget);
            vf_mega_l2pf(vc + ((long long)hk * a.maxSeq + t1) * HD, 2LL * n * HD, budget);
        }
    }
    vf_mega_wait(a.sync, target);
    for (int item = blockIdx.x; item < items; item += gridDim.x) {
        const int split = item % S, grp = (item / S) % groups, hk = item / (S * groups);
        const int kBeg = split * chunk, kEnd = min(len, kBeg + chunk);
        if (kBeg >= len) continue;   // block-uniform
        const int g0 = grp * VF_MEGA_GMAX, gn = min(VF_MEGA_GMAX, G - g0);
        const bool hasNew = newKey >= kBeg && newKey < kEnd;
        if (item == (int)blockIdx.x) VF_MEGA_ASTAMP(target, 0);
        if (pre) {   // each head's warp: its q (k) from L2 into registers, RoPE (+ q/k norm) from the staged cos / sin
            if (warp < gn)   // gn <= VF_MEGA_GMAX < VF_MEGA_WARPS - 1: the last warp is free for the key
                vf_mega_rope_pre<HD>(a.qkv + (hk * G + g0 + warp) * HD, ly.qNorm != nullptr ? rope.qn : nullptr, a.eps, rope, rq[warp], nullptr);
            if (hasNew) {
                if (warp == VF_MEGA_WARPS - 1)
                    vf_mega_rope_pre<HD>(a.qkv + Q + hk * HD, ly.kNorm != nullptr ? rope.kn : nullptr, a.eps, rope, nullptr, rkv[0]);
                for (int j = threadIdx.x; j < HD; j += blockDim.x) rkv[1][j] = f2bf(__ldcg(a.qkv + Q + KV + hk * HD + j));
            }
        } else {
            // raw q heads (and k, v of this kv head) from L2 into shared memory, then RoPE (+ q/k norm) by a warp each
            for (int i = threadIdx.x; i < (gn + 2) * HD; i += blockDim.x) {
                const int r = i / HD, d = i % HD;
                const int src = r < gn ? (hk * G + g0 + r) * HD + d : (r == gn ? Q + hk * HD + d : Q + KV + hk * HD + d);
                raw[r < gn ? r : VF_MEGA_GMAX + (r - gn)][d] = __ldcg(a.qkv + src);
            }
            __syncthreads();
            for (int g = warp; g < gn; g += VF_MEGA_WARPS)
                vf_rope_head(raw[g], ly.qNorm, a.eps, HD, vf_mega_p0(a), vf_mega_p1(a), vf_mega_p2(a), a.sec1, a.sec2, a.invFreq, rq[g], nullptr);
            if (hasNew) {
                if (warp == VF_MEGA_WARPS - 1)
                    vf_rope_head(raw[VF_MEGA_GMAX], ly.kNorm, a.eps, HD, vf_mega_p0(a), vf_mega_p1(a), vf_mega_p2(a), a.sec1, a.sec2, a.invFreq, nullptr, rkv[0]);
                for (int j = threadIdx.x; j < HD; j += blockDim.x) rkv[1][j] = f2bf(raw[VF_MEGA_GMAX + 1][j]);
            }
        }
        __syncthreads();
        if (item == (int)blockIdx.x) VF_MEGA_ASTAMP(target, 1);
        if (hasNew && grp == 0)
            for (int j = threadIdx.x; j < HD; j += blockDim.x) {
                kc[((long long)hk * a.maxSeq + newKey) * HD + j] = rkv[0][j];
                vc[((long long)hk * a.maxSeq + newKey) * HD + j] = rkv[1][j];
            }

        float qf[VF_MEGA_GMAX][8], acc[VF_MEGA_GMAX][8], m[VF_MEGA_GMAX], l[VF_MEGA_GMAX];
#pragma unroll
        for (int g = 0; g < VF_MEGA_GMAX; g++) {
            m[g] = VF_NEG_INF; l[g] = 0.f;
#pragma unroll
            for (int e = 0; e < 8; e++) { acc[g][e] = 0.f; qf[g][e] = g < gn ? rq[g][sl * 8 + e] * a.scale : 0.f; }
        }
        const int first = kBeg + warp * KPW * U;
        if (kvs) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
            // rounds of RK keys from shared memory, block-uniform: a warp whose keys of a round all lie past kEnd takes
            // them as padding (score -inf: its state unchanged, bit for bit), as the register walk would skip them
            if (threadIdx.x == 0 && (!early || item != (int)blockIdx.x)) issue2(hk, kBeg, kEnd);
            const unsigned int i0 = vf_mega_kvseq;
            const int nr = (kEnd - kBeg + RK - 1) / RK;
            extern __shared__ __align__(128) unsigned char vf_mega_ring[];
            for (int r = 0; r < nr; r++) {
                const unsigned int i = i0 + r;
                vf_mega_kv_wait(i);
                const bf16_t* kb = reinterpret_cast<const bf16_t*>(vf_mega_ring + (i & 1u) * 2u * VF_MEGA_KV_ROUND);
                const bf16_t* vb = kb + VF_MEGA_KV_ROUND / 2;
                const int rb = kBeg + r * RK, t0 = rb + warp * KPW * U;
#pragma unroll
                for (int u = 0; u < U; u++) {
                    const int t = t0 + u * KPW + slot;
                    kr[u] = make_uint4(0u, 0u, 0u, 0u); vr[u] = kr[u];
                    if (t < kEnd && t == newKey) {
                        kr[u] = *reinterpret_cast<const uint4*>(&rkv[0][sl * 8]);
                        vr[u] = *reinterpret_cast<const uint4*>(&rkv[1][sl * 8]);
                    } else if (t < kEnd) {
                        kr[u] = *reinterpret_cast<const uint4*>(kb + (t - rb) * HD + sl * 8);
                        vr[u] = *reinterpret_cast<const uint4*>(vb + (t - rb) * HD + sl * 8);
                    }
                }
#pragma unroll
                for (int u = 0; u < U; u++) vf_dec_vec_key<HD>(kr[u], vr[u], t0 + u * KPW + slot < kEnd, gn, qf, acc, m, l);
                __syncthreads();   // every warp is done with the buffer
                if (threadIdx.x == 0 && r + 2 < nr)
                    vf_mega_kv_issue<HD>(kc, vc, (long long)hk * a.maxSeq, rb + 2 * RK, min(RK, kEnd - rb - 2 * RK), i + 2);
            }
            if (threadIdx.x == 0) vf_mega_kvseq = i0 + nr;   // read after the item's closing block barriers
#else
            __trap();   // no bulk copies below sm_90: the form is never launched there
#endif
        } else {
        if (!early || item != (int)blockIdx.x) load(hk, first, kEnd);   // (early: the block's first item was loaded across the barrier)
#ifdef VF_MEGA_STAMPS
        if (item == (int)blockIdx.x && vf_mega_astamps_s != nullptr) {   // wait for the first loads here, then stamp
#pragma unroll
            for (int u = 0; u < U; u++) asm volatile("" ::"r"(kr[u].x), "r"(vr[u].x));
            VF_MEGA_ASTAMP(target, 4);
        }
#endif
        for (int t0 = first; t0 < kEnd; t0 += VF_MEGA_WARPS * KPW * U) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int t = t0 + u * KPW + slot;
                if (t < kEnd && t == newKey) {   // written by this launch: from shared memory (set where hasNew)
                    kr[u] = *reinterpret_cast<const uint4*>(&rkv[0][sl * 8]);
                    vr[u] = *reinterpret_cast<const uint4*>(&rkv[1][sl * 8]);
                }
            }
#pragma unroll
            for (int u = 0; u < U; u++) vf_dec_vec_key<HD>(kr[u], vr[u], t0 + u * KPW + slot < kEnd, gn, qf, acc, m, l);
            if (t0 + VF_MEGA_WARPS * KPW * U < kEnd) load(hk, t0 + VF_MEGA_WARPS * KPW * U, kEnd);
        }
        }
        if (item == (int)blockIdx.x) VF_MEGA_ASTAMP(target, 2);
        // merge the warp's key slots, then the warps (through shared memory), into this split's partials
        vf_dec_vec_merge_slots<HD>(gn, acc, m, l);
#pragma unroll
        for (int g = 0; g < VF_MEGA_GMAX; g++)
            if (g < gn && slot == 0) {
                if (sl == 0) { sm[warp][g][0] = m[g]; sm[warp][g][1] = l[g]; }
#pragma unroll
                for (int e = 0; e < 8; e++) sm[warp][g][2 + sl * 8 + e] = acc[g][e];
            }
        __syncthreads();
        vf_dec_write_partials<HD, VF_MEGA_WARPS, VF_MEGA_GMAX>(sm, a.part, gn, HD, hk * G + g0, S, split);
        __syncthreads();   // shared memory is reused by the next item
        if (item == (int)blockIdx.x) VF_MEGA_ASTAMP(target, 3);
    }
}

template <int HD, int FORM>
__device__ void vf_decode_mega(const VfMega& a) {
    __shared__ __align__(16) unsigned char smem[VF_MEGA_SMEM];
    __shared__ float scratch[33];
    uint4* xs = reinterpret_cast<uint4*>(smem);
    unsigned int target = 0;
    VF_MEGA_STAMP_INIT();
    __shared__ VfMegaRope<HD> rope;
    if (FORM & VF_MEGA_ROPEPRE) {   // cos / sin at this step's positions, as vf_rope_head computes them (read after a block barrier)
        const int p0 = vf_mega_p0(a), p1 = vf_mega_p1(a), p2 = vf_mega_p2(a);
        for (int j = threadIdx.x; j < HD / 2; j += blockDim.x) {
            float sn, co;
            vf_rope_sincos(j, p0, p1, p2, a.sec1, a.sec2, a.invFreq, sn, co);
            rope.cs[j] = co;
            rope.sn[j] = sn;
        }
    }
    const int Q = a.nq * HD, QKV = Q + 2 * a.nkv * HD, H = a.H, I = a.I;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if ((FORM & VF_MEGA_KVSMEM) && !(FORM & VF_MEGA_STREAM)) {   // the K / V buffers' barriers (read after the first grid barrier's block barriers)
        if (threadIdx.x == 0) {
            vf_mbar_init(vf_smem_addr(vf_mega_kvbars), 2);
            vf_mega_kvseq = 0;
        }
        __syncthreads();
    }
#endif
    VfMegaRing* rg = nullptr;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) unsigned char vf_mega_ring[];
    __shared__ VfMegaSched sched;
    __shared__ __align__(8) unsigned long long ringBars[VF_MEGA_RING_MAX];
    VfMegaRing ringState;
    unsigned int dyn;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
    const int NS = FORM & VF_MEGA_STREAM ? min(VF_MEGA_RING_MAX, (int)(dyn / VF_MEGA_SLOT)) : 0;   // no ring: not streamed
    if (NS > 0) {
        ringState = VfMegaRing{&sched, vf_mega_ring, vf_smem_addr(vf_mega_ring), vf_smem_addr(ringBars), 0};
        if (threadIdx.x == 0) vf_mega_stream_init(a, sched, Q, NS, ringState.ring, ringState.bars);
        __syncthreads();
        rg = &ringState;
    }
#endif
    for (int li = 0; li < a.L; li++) {
        const VfMegaLayer ly = a.layers[li];
        bf16_t* kc = reinterpret_cast<bf16_t*>(a.kBase + li * a.kvLayerStride);
        bf16_t* vc = reinterpret_cast<bf16_t*>(a.kBase + li * a.kvLayerStride + a.vOffset);
        // q/k/v = W_qkv . rmsnorm(x) (+ bias)
        vf_mega_stage<0, FORM>(a, rg, 0, ly.wqkv, QKV, H, a.qkv, ly.bqkv, false, nullptr, xs, li > 0, target,
                               [&] { vf_mega_norm(a.x, ly.attnNorm, H, a.eps, xs, scratch); });
        // RoPE + KV write + the attention's split pass
        vf_mega_attention<HD, FORM>(a, ly, kc, vc, smem, target, rope);
        // combine the splits of each query head into att (bf16)
        vf_mega_arrive(a.sync, target);
        if ((FORM & VF_MEGA_L2PF) && threadIdx.x == 0) {   // the o product's share, a stage early (the combine reads no weights)
            int r0, r1;
            long long budget = VF_MEGA_L2PF_MAX;
            vf_mega_share(H, r0, r1);
            vf_mega_l2pf(ly.wo + (long long)r0 * Q, 2LL * (r1 - r0) * Q, budget);
        }
        vf_mega_wait(a.sync, target);
        {
            float* wgt = reinterpret_cast<float*>(smem);
            const int active = vf_dec_active(__ldcg(a.step + 4), a.splits);
            for (int h = blockIdx.x; h < a.nq; h += gridDim.x)
                vf_dec_combine_head<true>(a.att, a.part, h, a.splits, active, HD, wgt, scratch);
        }
        // x += W_o . att (+ bias)
        vf_mega_stage<0, FORM>(a, rg, 1, ly.wo, H, Q, a.x, ly.bo, true, nullptr, xs, true, target,
                               [&] { vf_mega_stage_bf16(a.att, Q, xs); });
        // act = silu(W_gate . rmsnorm(x)) * (W_up . rmsnorm(x))
        vf_mega_stage<1, FORM>(a, rg, 2, ly.wgu, I, H, nullptr, nullptr, false, a.act, xs, true, target,
                         [&] { vf_mega_norm(a.x, ly.mlpNorm, H, a.eps, xs, scratch); });
        // x += W_down . act
        vf_mega_stage<0, FORM>(a, rg, 3, ly.wd, H, I, a.x, nullptr, true, nullptr, xs, true, target,
                               [&] { vf_mega_stage_bf16(a.act, I, xs); });
    }
    // logits = lm_head . rmsnorm(x)
    vf_mega_stage<0, FORM>(a, rg, 4, a.lmHead, a.V, H, a.logits, nullptr, false, nullptr, xs, true, target,
                           [&] { vf_mega_norm(a.x, a.finalNorm, H, a.eps, xs, scratch); });
    // the last block out resets the barrier for the next launch
    __syncthreads();
    if (threadIdx.x == 0) {
        VF_MEGA_STAMP(target + gridDim.x, 0);   // the block's end
        __threadfence();
        if (atomicAdd(a.sync + 1, 1u) == gridDim.x - 1) {
            a.sync[0] = 0u;
            a.sync[1] = 0u;
            __threadfence();
        }
    }
}

// grid: at most one block per SM (cooperative launch), block VF_MEGA_THREADS. Constraints (checked by the host): hd a
// power of two from 8 to 256 (hd / 8 lanes read a key), H, q, I multiples of 8 and at most VF_MEGA_MAX_K, splits <= VF_DEC_MAXSPLITS, the K/V caches of every layer
// equally spaced.
#define VF_MEGA_INSTANCE_FORM(NAME, HDIM, FORM)                                                                       \
    extern "C" __global__ void __launch_bounds__(VF_MEGA_THREADS, 1) NAME(                                            \
            const VfMegaLayer* layers, const bf16_t* finalNorm, const bf16_t* lmHead, float* x, float* qkv,           \
            float* part, bf16_t* att, bf16_t* act, float* logits, const int* step, const float* invFreq,               \
            unsigned int* sync, char* kBase, long long kvLayerStride, long long vOffset, int L,                        \
            int H, int nq, int nkv, int I, int V, int maxSeq, int splits, int sec1, int sec2, float eps, float scale) { \
        const VfMega a{layers, finalNorm, lmHead, x, qkv, part, att, act, logits, step, invFreq, sync, kBase,        \
                       kvLayerStride, vOffset, L, H, nq, nkv, I, V, maxSeq, splits, sec1, sec2, eps, scale};   \
        vf_decode_mega<HDIM, FORM>(a);                                                                                \
    }
#define VF_MEGA_INSTANCE(HDIM) VF_MEGA_INSTANCE_FORM(vf_decode_mega_h##HDIM, HDIM, VF_MEGA_FORM_LIB)
VF_MEGA_INSTANCE(8)
VF_MEGA_INSTANCE(16)
VF_MEGA_INSTANCE(32)
VF_MEGA_INSTANCE(64)
VF_MEGA_INSTANCE(128)
VF_MEGA_INSTANCE(256)
