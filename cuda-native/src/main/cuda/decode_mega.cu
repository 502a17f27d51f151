// One decode step of a 16-bit decoder in one persistent launch (vlmflux.cuda.decodeMegakernel): the whole step — for
// every layer RMSNorm + q/k/v product, RoPE + q/k norm + KV write + attention over the cache, the split combine, the o
// product, RMSNorm + gate/up product + SiLU-gate, the down product; then the final norm and the lm head — runs in one
// kernel of one block per SM whose stages are separated by grid-wide barriers instead of kernel boundaries. A step of
// a 0.6B model was ~220 dependent launches, each paying a drain and a ramp (issue 18); here the stages of a layer cost
// a barrier each (one L2 atomic per block), and each stage prefetches into L2 the weights of the next product while
// the latency-bound stages (attention, combine) leave DRAM idle.
//
// Rules that keep it correct:
// - Co-residency: the grid is at most one block per SM with this block size and is launched cooperatively (the
//   driver refuses a grid that cannot be resident at once), so every block reaches every barrier.
// - Data written by other blocks in this launch (x, qkv, attention partials, att, act) is read with ld.global.cg (L2;
//   L1 is not coherent across SMs); weights are read-only for the whole launch (ld.global.nc).
// - Row ownership: a product's rows are split into one contiguous range per block (the same ranges for every product
//   of the same height), each row written by one warp, so x's residual add needs no atomics.
// - Each stage's arithmetic is the per-kernel path's: the GEMV row sums (lane-strided, ascending, then warp_sum), the
//   RMSNorm prologue of vf_gemv_bf16_fused with 256 threads, SiLU-gate as vf_silu_mul, RoPE by vf_rope_head, the
//   combine by vf_dec_combine_head. The attention's split pass walks keys in its own order (8 warps), so logits match
//   the per-kernel path to rounding, not bit for bit.
//
// Barrier: sync[0] counts arrivals (a block that waits for seconds traps: a launch error, not a hang) (the n-th barrier of a launch waits for n * gridDim.x), sync[1] counts blocks
// leaving; the last block out zeroes both, so every launch (and graph replay) starts from zero.
#include "common.cuh"

#define VF_MEGA_THREADS 256
#define VF_MEGA_WARPS (VF_MEGA_THREADS / 32)
#define VF_MEGA_R 4            // rows a warp's GEMV step carries (16-byte loads in flight: 4 rows x 4)
#define VF_MEGA_GMAX 4         // query heads of one attention work item
#define VF_MEGA_SMEM 45056     // the stage-shared buffer: x as bf16 up to 22,528 columns, or the attention scratch
#define VF_MEGA_MAX_K (VF_MEGA_SMEM / 2)

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
    long long kvLayerStride, vOffset, pfCap;   // pfCap: most bytes a block prefetches per product (0: none)
    int L, H, nq, nkv, I, V, maxSeq, splits, sec1, sec2;
    float eps, scale;
};

__device__ __forceinline__ void vf_mega_sync(unsigned int* sync, unsigned int& target) {
    __syncthreads();
    target += gridDim.x;
    if (threadIdx.x == 0) {   // the block's writes (ordered by the barrier above) are released with the arrival
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(sync) : "memory");
        unsigned int v, spins = 0;
        do {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(sync) : "memory");
            if (++spins == (1u << 25)) __trap();   // seconds without the other blocks: fail the launch, never hang
        } while (v < target);
    }
    __syncthreads();
}

// This block's contiguous share [r0, r1) of n rows.
__device__ __forceinline__ void vf_mega_share(int n, int& r0, int& r1) {
    r0 = (int)((long long)n * blockIdx.x / gridDim.x);
    r1 = (int)((long long)n * (blockIdx.x + 1) / gridDim.x);
}

// L2 prefetch of rows [r0, r1) of W bf16 [*, K], at most cap bytes (sm_90+: bulk prefetches of 16 KiB, a thread each).
__device__ __forceinline__ void vf_mega_prefetch(const bf16_t* W, int K, int r0, int r1, long long cap) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (cap <= 0 || r1 <= r0) return;
    const char* p = reinterpret_cast<const char*>(W + (long long)r0 * K);
    const long long bytes = min(cap, 2LL * (r1 - r0) * K) & ~15LL;
    for (long long o = (long long)threadIdx.x * 16384; o < bytes; o += (long long)blockDim.x * 16384)
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + o), "r"((unsigned int)min(16384LL, bytes - o)) : "memory");
#endif
}

// xs (bf16 [K] in shared memory) = bf16(x * rsqrt(mean(x^2) + eps) * nw), x fp32 from L2: vf_gemv_bf16_fused's mode 1
// prologue with the same block size, so the same bits. Ends with a block barrier.
__device__ __forceinline__ void vf_mega_norm(const float* x, const bf16_t* __restrict__ nw, int K, float eps, uint4* xs, float* scratch) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    uint2* xs2 = reinterpret_cast<uint2*>(xs);
    const int K4 = K >> 2;
    float ss = 0.f;
#pragma unroll 4
    for (int i = threadIdx.x; i < K4; i += blockDim.x) {
        const float4 v = __ldcg(x4 + i);
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    ss = block_sum(ss, scratch);
    const float r = rsqrtf(ss / (float)K + eps);
    const uint2* n2 = reinterpret_cast<const uint2*>(nw);
#pragma unroll 4
    for (int i = threadIdx.x; i < K4; i += blockDim.x) {
        const float4 v = __ldcg(x4 + i);
        const uint2 n = n2[i];
        uint2 o;
        o.x = (unsigned int)f2bf(v.x * r * bflo(n.x)) | ((unsigned int)f2bf(v.y * r * bfhi(n.x)) << 16);
        o.y = (unsigned int)f2bf(v.z * r * bflo(n.y)) | ((unsigned int)f2bf(v.w * r * bfhi(n.y)) << 16);
        xs2[i] = o;
    }
    __syncthreads();
}

// xs = a bf16 vector of K (K % 8 == 0) written by other blocks of this launch. Ends with a block barrier.
__device__ __forceinline__ void vf_mega_stage_bf16(const bf16_t* src, int K, uint4* xs) {
    const uint4* s4 = reinterpret_cast<const uint4*>(src);
    for (int i = threadIdx.x; i < (K >> 3); i += blockDim.x) xs[i] = __ldcg(s4 + i);
    __syncthreads();
}

// The warp's row sums of R rows of W bf16 [*, K] (rows[r] valid indices) against xs: each lane accumulates its 16-byte
// groups i = lane, lane + 32, ... in ascending order, then warp_sum — vf_gemv_bf16's order, so the same bits. Every
// lane gets the sums.
template <int R>
__device__ __forceinline__ void vf_mega_dot(const bf16_t* __restrict__ W, int K, const int (&rows)[R], const uint4* xs, float (&sum)[R]) {
    const int lane = threadIdx.x & 31;
    const int k8 = K >> 3;
    const uint4* w4[R];
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        w4[r] = reinterpret_cast<const uint4*>(W + (long long)rows[r] * K);
        acc[r] = 0.f;
    }
    int i = lane;
    for (; i + 96 < k8; i += 128) {
        uint4 wv[R][4];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int u = 0; u < 4; u++) wv[r][u] = ldg_stream(w4[r] + i + 32 * u);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const uint4 xv = xs[i + 32 * u];
#pragma unroll
            for (int r = 0; r < R; r++) acc[r] += dot8(wv[r][u], xv);
        }
    }
    for (; i < k8; i += 32) {
        const uint4 xv = xs[i];
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] += dot8(ldg_stream(w4[r] + i), xv);
    }
#pragma unroll
    for (int r = 0; r < R; r++) sum[r] = warp_sum(acc[r]);
}

// y[row] = W[row] . xs (+ bias[row]) (+ y[row] when accumulate) for this block's share of M rows.
__device__ __forceinline__ void vf_mega_gemv(float* y, const bf16_t* __restrict__ W, const float* __restrict__ bias, bool accumulate,
                                             int M, int K, const uint4* xs) {
    int r0, r1;
    vf_mega_share(M, r0, r1);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int row = r0 + warp * VF_MEGA_R; row < r1; row += VF_MEGA_WARPS * VF_MEGA_R) {
        int rows[VF_MEGA_R];
        float s[VF_MEGA_R];
#pragma unroll
        for (int r = 0; r < VF_MEGA_R; r++) rows[r] = min(row + r, r1 - 1);
        vf_mega_dot<VF_MEGA_R>(W, K, rows, xs, s);
        if (lane < VF_MEGA_R && row + lane < r1) {
            float v = s[0];
#pragma unroll
            for (int r = 1; r < VF_MEGA_R; r++) if (lane == r) v = s[r];
            const int o = row + lane;
            if (bias != nullptr) v += bias[o];
            if (accumulate) v += __ldcg(y + o);
            y[o] = v;
        }
    }
}

// act[j] = bf16(silu(gate_j) * up_j), gate_j = W[j] . xs, up_j = W[I + j] . xs, for this block's share of I.
__device__ __forceinline__ void vf_mega_gate_up(bf16_t* act, const bf16_t* __restrict__ W, int I, int K, const uint4* xs) {
    int j0, j1;
    vf_mega_share(I, j0, j1);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    constexpr int P = VF_MEGA_R / 2;   // (gate, up) pairs per step
    for (int j = j0 + warp * P; j < j1; j += VF_MEGA_WARPS * P) {
        int rows[VF_MEGA_R];
        float s[VF_MEGA_R];
#pragma unroll
        for (int p = 0; p < P; p++) {
            const int jj = min(j + p, j1 - 1);
            rows[2 * p] = jj;
            rows[2 * p + 1] = I + jj;
        }
        vf_mega_dot<VF_MEGA_R>(W, K, rows, xs, s);
        if (lane < P && j + lane < j1) {
            float g = s[0], u = s[1];
#pragma unroll
            for (int p = 1; p < P; p++) if (lane == p) { g = s[2 * p]; u = s[2 * p + 1]; }
            const float sg = g / (1.f + expf(-g));
            act[j + lane] = f2bf(sg * u);
        }
    }
}

// Attention work items: (kv head, group of up to VF_MEGA_GMAX query heads, split of the keys). Each block walks items
// grid-stride. The item ropes its query heads (and, where its key range holds the new key, that key and value) from the
// raw q/k/v product; the new key is read from shared memory, written to the cache by the item of head group 0.
template <int HD>
__device__ void vf_mega_attention(const VfMega& a, const VfMegaLayer& ly, bf16_t* kc, bf16_t* vc, unsigned char* smem) {
    constexpr int LPK = HD / 8, KPW = 32 / LPK, U = 4;   // U loads of K and V in flight per lane
    float (*sm)[VF_MEGA_GMAX][HD + 2] = reinterpret_cast<float (*)[VF_MEGA_GMAX][HD + 2]>(smem);       // [warps]
    float (*rq)[HD] = reinterpret_cast<float (*)[HD]>(smem + sizeof(float) * VF_MEGA_WARPS * VF_MEGA_GMAX * (HD + 2));
    float (*raw)[HD] = rq + VF_MEGA_GMAX;                                                            // q heads, k, v
    bf16_t (*rkv)[HD] = reinterpret_cast<bf16_t (*)[HD]>(raw + VF_MEGA_GMAX + 2);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int slot = lane / LPK, sl = lane % LPK;
    const int G = a.nq / a.nkv, groups = (G + VF_MEGA_GMAX - 1) / VF_MEGA_GMAX, S = a.splits;
    const int len = __ldcg(a.step + 4), newKey = __ldcg(a.step + 3);
    const int p0 = __ldcg(a.step), p1 = __ldcg(a.step + 1), p2 = __ldcg(a.step + 2);
    const int chunk = max((len + S - 1) / S, VF_DEC_MINCHUNK);
    const int Q = a.nq * HD, KV = a.nkv * HD;
    const int items = a.nkv * groups * S;
    for (int item = blockIdx.x; item < items; item += gridDim.x) {
        const int split = item % S, grp = (item / S) % groups, hk = item / (S * groups);
        const int kBeg = split * chunk, kEnd = min(len, kBeg + chunk);
        if (kBeg >= len) continue;   // block-uniform
        const int g0 = grp * VF_MEGA_GMAX, gn = min(VF_MEGA_GMAX, G - g0);
        const bool hasNew = newKey >= kBeg && newKey < kEnd;
        // raw q heads (and k, v of this kv head) from L2 into shared memory, then RoPE (+ q/k norm) by a warp each
        for (int i = threadIdx.x; i < (gn + 2) * HD; i += blockDim.x) {
            const int r = i / HD, d = i % HD;
            const int src = r < gn ? (hk * G + g0 + r) * HD + d : (r == gn ? Q + hk * HD + d : Q + KV + hk * HD + d);
            raw[r < gn ? r : VF_MEGA_GMAX + (r - gn)][d] = __ldcg(a.qkv + src);
        }
        __syncthreads();
        for (int g = warp; g < gn; g += VF_MEGA_WARPS)
            vf_rope_head(raw[g], ly.qNorm, a.eps, HD, p0, p1, p2, a.sec1, a.sec2, a.invFreq, rq[g], nullptr);
        if (hasNew) {
            if (warp == VF_MEGA_WARPS - 1)
                vf_rope_head(raw[VF_MEGA_GMAX], ly.kNorm, a.eps, HD, p0, p1, p2, a.sec1, a.sec2, a.invFreq, nullptr, rkv[0]);
            for (int j = threadIdx.x; j < HD; j += blockDim.x) rkv[1][j] = f2bf(raw[VF_MEGA_GMAX + 1][j]);
        }
        __syncthreads();
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
        const bf16_t* kh = kc + (long long)hk * a.maxSeq * HD + sl * 8;
        const bf16_t* vh = vc + (long long)hk * a.maxSeq * HD + sl * 8;
        for (int t0 = kBeg + warp * KPW * U; t0 < kEnd; t0 += VF_MEGA_WARPS * KPW * U) {
            uint4 kr[U], vr[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int t = t0 + u * KPW + slot;
                kr[u] = make_uint4(0u, 0u, 0u, 0u); vr[u] = kr[u];
                if (t < kEnd && t == newKey) {   // written by this launch: from shared memory (set where hasNew)
                    kr[u] = *reinterpret_cast<const uint4*>(&rkv[0][sl * 8]);
                    vr[u] = *reinterpret_cast<const uint4*>(&rkv[1][sl * 8]);
                } else if (t < kEnd) {
                    kr[u] = *reinterpret_cast<const uint4*>(kh + (long long)t * HD);
                    vr[u] = *reinterpret_cast<const uint4*>(vh + (long long)t * HD);
                }
            }
#pragma unroll
            for (int u = 0; u < U; u++) vf_dec_vec_key<HD>(kr[u], vr[u], t0 + u * KPW + slot < kEnd, gn, qf, acc, m, l);
        }
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
        for (int i = threadIdx.x; i < gn * (HD + 2); i += blockDim.x) {
            const int g = i / (HD + 2), c = i % (HD + 2);
            float M = VF_NEG_INF;
#pragma unroll
            for (int w = 0; w < VF_MEGA_WARPS; w++) M = fmaxf(M, sm[w][g][0]);
            float v = 0.f;
#pragma unroll
            for (int w = 0; w < VF_MEGA_WARPS; w++) {
                const float mw = sm[w][g][0];
                const float cw = mw == VF_NEG_INF ? 0.f : __expf(mw - M);
                v += (c == 0 ? 0.f : sm[w][g][c]) * cw;
            }
            a.part[((long long)(hk * G + g0 + g) * S + split) * (HD + 2) + c] = c == 0 ? M : v;
        }
        __syncthreads();   // shared memory is reused by the next item
    }
}

template <int HD>
__device__ void vf_decode_mega(const VfMega& a) {
    __shared__ __align__(16) unsigned char smem[VF_MEGA_SMEM];
    __shared__ float scratch[33];
    uint4* xs = reinterpret_cast<uint4*>(smem);
    unsigned int target = 0;
    const int Q = a.nq * HD, QKV = Q + 2 * a.nkv * HD, H = a.H, I = a.I;
    int h0, h1, q0, q1, i0, i1;
    vf_mega_share(H, h0, h1);
    vf_mega_share(QKV, q0, q1);
    vf_mega_share(I, i0, i1);
    for (int li = 0; li < a.L; li++) {
        const VfMegaLayer ly = a.layers[li];
        bf16_t* kc = reinterpret_cast<bf16_t*>(a.kBase + li * a.kvLayerStride);
        bf16_t* vc = reinterpret_cast<bf16_t*>(a.kBase + li * a.kvLayerStride + a.vOffset);
        // q/k/v = W_qkv . rmsnorm(x) (+ bias); the o weights into L2 meanwhile
        vf_mega_prefetch(ly.wo, Q, h0, h1, a.pfCap);
        vf_mega_norm(a.x, ly.attnNorm, H, a.eps, xs, scratch);
        vf_mega_gemv(a.qkv, ly.wqkv, ly.bqkv, false, QKV, H, xs);
        vf_mega_sync(a.sync, target);
        // RoPE + KV write + the attention's split pass; the gate and up weights into L2 meanwhile
        vf_mega_prefetch(ly.wgu, H, i0, i1, a.pfCap / 2);
        vf_mega_prefetch(ly.wgu, H, I + i0, I + i1, a.pfCap / 2);
        vf_mega_attention<HD>(a, ly, kc, vc, smem);
        vf_mega_sync(a.sync, target);
        // combine the splits of each query head into att (bf16)
        {
            float* wgt = reinterpret_cast<float*>(smem);
            const int active = vf_dec_active(__ldcg(a.step + 4), a.splits);
            for (int h = blockIdx.x; h < a.nq; h += gridDim.x)
                vf_dec_combine_head<true>(a.att, a.part, h, a.splits, active, HD, wgt, scratch);
        }
        vf_mega_sync(a.sync, target);
        // x += W_o . att (+ bias); the down weights into L2 meanwhile
        vf_mega_prefetch(ly.wd, I, h0, h1, a.pfCap);
        vf_mega_stage_bf16(a.att, Q, xs);
        vf_mega_gemv(a.x, ly.wo, ly.bo, true, H, Q, xs);
        vf_mega_sync(a.sync, target);
        // act = silu(W_gate . rmsnorm(x)) * (W_up . rmsnorm(x)); the next q/k/v weights (or the lm head) into L2 meanwhile
        if (li + 1 < a.L) vf_mega_prefetch(a.layers[li + 1].wqkv, H, q0, q1, a.pfCap);
        else {
            int v0, v1;
            vf_mega_share(a.V, v0, v1);
            vf_mega_prefetch(a.lmHead, H, v0, v1, a.pfCap);
        }
        vf_mega_norm(a.x, ly.mlpNorm, H, a.eps, xs, scratch);
        vf_mega_gate_up(a.act, ly.wgu, I, H, xs);
        vf_mega_sync(a.sync, target);
        // x += W_down . act
        vf_mega_stage_bf16(a.act, I, xs);
        vf_mega_gemv(a.x, ly.wd, nullptr, true, H, I, xs);
        vf_mega_sync(a.sync, target);
    }
    // logits = lm_head . rmsnorm(x)
    vf_mega_norm(a.x, a.finalNorm, H, a.eps, xs, scratch);
    vf_mega_gemv(a.logits, a.lmHead, nullptr, false, a.V, H, xs);
    // the last block out resets the barrier for the next launch
    __syncthreads();
    if (threadIdx.x == 0) {
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
#define VF_MEGA_INSTANCE(HDIM)                                                                                        \
    extern "C" __global__ void __launch_bounds__(VF_MEGA_THREADS, 1) vf_decode_mega_h##HDIM(                          \
            const VfMegaLayer* layers, const bf16_t* finalNorm, const bf16_t* lmHead, float* x, float* qkv,           \
            float* part, bf16_t* att, bf16_t* act, float* logits, const int* step, const float* invFreq,               \
            unsigned int* sync, char* kBase, long long kvLayerStride, long long vOffset, long long pfCap, int L,       \
            int H, int nq, int nkv, int I, int V, int maxSeq, int splits, int sec1, int sec2, float eps, float scale) { \
        const VfMega a{layers, finalNorm, lmHead, x, qkv, part, att, act, logits, step, invFreq, sync, kBase,        \
                       kvLayerStride, vOffset, pfCap, L, H, nq, nkv, I, V, maxSeq, splits, sec1, sec2, eps, scale};    \
        vf_decode_mega<HDIM>(a);                                                                                      \
    }
VF_MEGA_INSTANCE(8)
VF_MEGA_INSTANCE(16)
VF_MEGA_INSTANCE(32)
VF_MEGA_INSTANCE(64)
VF_MEGA_INSTANCE(128)
VF_MEGA_INSTANCE(256)
