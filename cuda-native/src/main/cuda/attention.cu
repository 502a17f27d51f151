// Attention over the linear KV cache (bf16 [kvHeads, maxSeq, hd] per layer, see rope.cu).
// GQA: query head h reads kv head h / (nq / nkv), as Hugging Face's repeat_kv groups them.
// Any even head dim hd <= 256: kernels are instantiated for EPL = ceil(hd / 32) in 1..8 (named vf_attn_*_e<EPL>) and
// take hd at run time; lanes past hd hold zeros (so hd 8, 16, 80, ... work, at the cost of idle lanes).
#include "common.cuh"

#define VF_DEC_WARPS 4
#define VF_DEC_GMAX 8
// Fewest keys per split: short contexts use fewer splits (chosen at run time from kvLen) instead of near-empty ones.
#define VF_DEC_MINCHUNK 16

// ---------------------------------------------------------------------------------------------------------------
// Eviction from the linear cache: every head's positions [from + count, from + count + tail) move down to
// [from, from + tail). nbuf buffers (the K and V caches of every layer) lie bufStride bytes apart from base, each of
// `heads` heads headStride bytes apart; a position is rowBytes (a multiple of 16). grid (nbuf * heads), block 256: a
// block walks its head upward in tiles, every load of a tile before any of its stores (one barrier), so source and
// destination may overlap (count < tail) — one launch instead of a memcpy per layer, head and non-overlapping chunk.
#define VF_KV_SHIFT_PER 4
extern "C" __global__ void __launch_bounds__(256) vf_kv_shift(char* __restrict__ base, long long bufStride, int heads,
        long long headStride, int rowBytes, int from, int count, int tail) {
    char* head = base + (long long)(blockIdx.x / heads) * bufStride + (long long)(blockIdx.x % heads) * headStride;
    const long long total = (long long)tail * (rowBytes / 16);
    uint4* dst = reinterpret_cast<uint4*>(head + (long long)from * rowBytes);
    const uint4* src = reinterpret_cast<const uint4*>(head + (long long)(from + count) * rowBytes);
    for (long long t0 = 0; t0 < total; t0 += 256 * VF_KV_SHIFT_PER) {
        uint4 r[VF_KV_SHIFT_PER];
#pragma unroll
        for (int j = 0; j < VF_KV_SHIFT_PER; j++) {
            const long long i = t0 + j * 256 + threadIdx.x;
            if (i < total) r[j] = src[i];
        }
        __syncthreads();   // the tile's loads before its stores; the next tile reads only above this tile's stores
#pragma unroll
        for (int j = 0; j < VF_KV_SHIFT_PER; j++) {
            const long long i = t0 + j * 256 + threadIdx.x;
            if (i < total) dst[i] = r[j];
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Decode, flash-decoding style. grid (nkv, splits, ceil(G / GMAX)), block 32*VF_DEC_WARPS.
// Block (kv head, split, head group) walks its share of the keys [0, kvLen[0]) once and serves up to GMAX query
// heads of the group. It writes unnormalized partials part[(h * splits + split) * (hd + 2)] = {m, l, acc[hd]};
// vf_attn_decode_combine merges the splits. kvLen lives in device memory (graph-capturable).
// The block's partials of heads h0 .. h0 + gn - 1 from its warps' running {m, l, acc} in sm (after a barrier):
// part[(h * splits + split) * (hd + 2)] = {M, sum_w l_w e^{m_w - M}, sum_w acc_w e^{m_w - M}} over warps that saw a key.
// NW warps, GM heads a block (the persistent decode step's blocks have other counts than the split pass's).
template <int HD, int NW = VF_DEC_WARPS, int GM = VF_DEC_GMAX>
__device__ __forceinline__ void vf_dec_write_partials(const float (*sm)[GM][HD + 2], float* __restrict__ part, int gn, int hd,
                                                      int h0, int splits, int split) {
    for (int idx = threadIdx.x; idx < gn * (hd + 2); idx += blockDim.x) {
        const int g = idx / (hd + 2), d = idx % (hd + 2);
        float M = VF_NEG_INF;
#pragma unroll
        for (int w = 0; w < NW; w++) M = fmaxf(M, sm[w][g][0]);
        float val;
        if (d == 0) val = M;
        else {
            val = 0.f;
#pragma unroll
            for (int w = 0; w < NW; w++) {
                const float mw = sm[w][g][0];
                if (mw != VF_NEG_INF) val += sm[w][g][d] * __expf(mw - M);
            }
        }
        const int h = h0 + g;
        part[((long long)h * splits + split) * (hd + 2) + d] = val;
    }
}

template <int EPL>
__device__ __forceinline__ void attn_decode_split(float* __restrict__ part, const float* __restrict__ q,
        const bf16_t* __restrict__ kc, const bf16_t* __restrict__ vc, const int* __restrict__ kvLen,
        int nq, int nkv, int maxSeq, int hd, float scale) {
    constexpr int HD = 32 * EPL;
    __shared__ float sm[VF_DEC_WARPS][VF_DEC_GMAX][HD + 2];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int hk = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
    const int G = nq / nkv;
    const int g0 = blockIdx.z * VF_DEC_GMAX;
    const int gn = min(VF_DEC_GMAX, G - g0);
    const int len = kvLen[0];
    const int chunk = max((len + splits - 1) / splits, VF_DEC_MINCHUNK);
    const int kBeg = split * chunk, kEnd = min(len, kBeg + chunk);
    if (kBeg >= len) return;   // split past the current length: the combine reads only the active ones

    float qr[VF_DEC_GMAX][EPL], acc[VF_DEC_GMAX][EPL], m[VF_DEC_GMAX], l[VF_DEC_GMAX];
#pragma unroll
    for (int g = 0; g < VF_DEC_GMAX; g++) {
        m[g] = VF_NEG_INF; l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            acc[g][e] = 0.f;
            const int d = lane * EPL + e;
            qr[g][e] = (g < gn && d < hd) ? q[(long long)(hk * G + g0 + g) * hd + d] * scale : 0.f;
        }
    }
    const bf16_t* kh = kc + (long long)hk * maxSeq * hd + lane * EPL;
    const bf16_t* vh = vc + (long long)hk * maxSeq * hd + lane * EPL;
    const int dl = hd - lane * EPL;  // elements of this lane that exist (<= 0: none)
    // Each warp takes KB consecutive keys at a time: their K/V loads are in flight together and the KB warp
    // reductions per head are independent (latency, not bandwidth, bounds this loop at decode sizes).
    constexpr int KB = EPL <= 4 ? 4 : 2;
    for (int t0 = kBeg + warp * KB; t0 < kEnd; t0 += VF_DEC_WARPS * KB) {
        float kf[KB][EPL], vf[KB][EPL];
#pragma unroll
        for (int j = 0; j < KB; j++) {
            const bool okT = t0 + j < kEnd;
#pragma unroll
            for (int e = 0; e < EPL; e++) {
                const bool ok = okT && e < dl;
                kf[j][e] = ok ? bf2f(kh[(long long)(t0 + j) * hd + e]) : 0.f;
                vf[j][e] = ok ? bf2f(vh[(long long)(t0 + j) * hd + e]) : 0.f;
            }
        }
#pragma unroll
        for (int g = 0; g < VF_DEC_GMAX; g++) {
            if (g < gn) {
                float sc[KB];
#pragma unroll
                for (int j = 0; j < KB; j++) {
                    float d = 0.f;
#pragma unroll
                    for (int e = 0; e < EPL; e++) d = fmaf(qr[g][e], kf[j][e], d);
                    sc[j] = d;
                }
#pragma unroll
                for (int o = 16; o > 0; o >>= 1)
#pragma unroll
                    for (int j = 0; j < KB; j++) sc[j] += __shfl_xor_sync(0xffffffffu, sc[j], o);
                float mn = m[g];
#pragma unroll
                for (int j = 0; j < KB; j++) {
                    if (t0 + j >= kEnd) sc[j] = VF_NEG_INF;
                    mn = fmaxf(mn, sc[j]);
                }
                const float corr = __expf(m[g] - mn);
                float p[KB], ps = 0.f;
#pragma unroll
                for (int j = 0; j < KB; j++) { p[j] = __expf(sc[j] - mn); ps += p[j]; }
                l[g] = l[g] * corr + ps;
#pragma unroll
                for (int e = 0; e < EPL; e++) {
                    float a = acc[g][e] * corr;
#pragma unroll
                    for (int j = 0; j < KB; j++) a = fmaf(p[j], vf[j][e], a);
                    acc[g][e] = a;
                }
                m[g] = mn;
            }
        }
    }
    // Merge the warps of this block.
#pragma unroll
    for (int g = 0; g < VF_DEC_GMAX; g++) {
        if (g < gn) {
            if (lane == 0) { sm[warp][g][0] = m[g]; sm[warp][g][1] = l[g]; }
#pragma unroll
            for (int e = 0; e < EPL; e++) sm[warp][g][2 + lane * EPL + e] = acc[g][e];
        }
    }
    __syncthreads();
    vf_dec_write_partials<HD>(sm, part, gn, hd, hk * G + g0, splits, split);
}

// out[h, :] = bf16(sum_s acc_s e^{m_s - M} / sum_s l_s e^{m_s - M}) over the active splits (the split kernel's
// chunk rule applied to kvLen[0]). grid (nq), block 128 (a multiple of 32); splits <= VF_DEC_MAXSPLITS.
#define VF_DEC_MAXSPLITS 1024
// Splits of a kv length that hold a key (the split pass's chunk rule; splits past the length exit).
__device__ __forceinline__ int vf_dec_active(int len, int splits) {
    const int chunk = max((len + splits - 1) / splits, VF_DEC_MINCHUNK);
    return min(splits, (len + chunk - 1) / chunk);
}
// One head's merge by the whole block (any multiple of 32 threads; every thread must call it). wgt >= active floats,
// scratch >= 33 floats. CG: the partials were written by other blocks of this grid (the fused form below): loads go
// through L2 (ld.global.cg) instead of the read-only path; the arithmetic is the same, so the result is bit-equal.
template <bool CG>
__device__ __forceinline__ float vf_dec_ld(const float* p) { return CG ? __ldcg(p) : __ldg(p); }
template <bool CG>
__device__ __forceinline__ void vf_dec_combine_head(bf16_t* __restrict__ out, const float* __restrict__ part, long long h,
                                                    int splits, int active, int hd, float* wgt, float* scratch) {
    const float* ph = part + h * splits * (hd + 2);
    float mloc = VF_NEG_INF;
    for (int s = threadIdx.x; s < active; s += blockDim.x) mloc = fmaxf(mloc, vf_dec_ld<CG>(ph + s * (hd + 2)));
    const float M = block_max(mloc, scratch);
    float lloc = 0.f;
    for (int s = threadIdx.x; s < active; s += blockDim.x) {
        const float ms = vf_dec_ld<CG>(ph + s * (hd + 2));
        const float e = ms == VF_NEG_INF ? 0.f : __expf(ms - M);
        wgt[s] = e;
        lloc += vf_dec_ld<CG>(ph + s * (hd + 2) + 1) * e;
    }
    const float L = block_sum(lloc, scratch);   // its barriers also publish wgt
    const float inv = 1.f / L;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a0 = 0.f;
#pragma unroll 8
        for (int s = 0; s < active; s++) a0 = fmaf(vf_dec_ld<CG>(ph + s * (hd + 2) + 2 + d), wgt[s], a0);   // loads in flight together
        out[h * hd + d] = f2bf(a0 * inv);
    }
}

extern "C" __global__ void vf_attn_decode_combine(bf16_t* __restrict__ out, const float* __restrict__ part,
                                                  const int* __restrict__ kvLen, int splits, int hd) {
    VF_PDL_PROLOGUE();
    __shared__ float wgt[VF_DEC_MAXSPLITS];
    __shared__ float scratch[33];
    vf_dec_combine_head<false>(out, part, blockIdx.x, splits, vf_dec_active(kvLen[0], splits), hd, wgt, scratch);
}

// The combine fused into the split pass (vlmflux.cuda.decodeFusedCombine): one launch instead of two per layer. Every
// active block of a (kv head, head group) takes a ticket after its partials are written and fenced; the block that
// takes the last one merges the group's heads (as vf_attn_decode_combine, reading the partials through L2) and resets
// the ticket for the next step (no memset: graph replays work). tickets: one int per (blockIdx.x, blockIdx.z), zero
// before the first launch.
__device__ __forceinline__ void vf_dec_combine_last(bf16_t* __restrict__ out, const float* __restrict__ part,
                                                    int* __restrict__ tickets, int splits, int active, int hd, long long h0, int gn) {
    __shared__ float wgt[VF_DEC_MAXSPLITS];
    __shared__ float scratch[33];
    __shared__ int last;
    __threadfence();                 // this thread's partials reach L2 before the ticket is taken
    __syncthreads();
    if (threadIdx.x == 0) {
        int* t = tickets + (long long)blockIdx.x * gridDim.z + blockIdx.z;
        last = atomicAdd(t, 1) == active - 1;
        if (last) *t = 0;            // every active block has taken its ticket
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int g = 0; g < gn; g++) vf_dec_combine_head<true>(out, part, h0 + g, splits, active, hd, wgt, scratch);
}

// ---------------------------------------------------------------------------------------------------------------
// Decode split pass with 16-byte loads (vlmflux.cuda.decodeVecAttention), head dim 64 or 128: a key's row is read by
// HD / 8 lanes, 8 bf16 each (one uint4 of K and one of V), so a warp covers 32 / (HD / 8) keys per load and U of
// those loads are in flight per lane; the dot product reduces over the key's lanes only (4 shuffles at hd 128, 3 at
// 64) and every key slot of the warp keeps its own running {m, l, acc}, merged across slots, then warps, at the end.
// Same grid, chunk rule and partials as attn_decode_split (vf_attn_decode_combine merges the splits unchanged). The
// scalar kernel read each lane's elements with 2-byte loads and reduced every key over all 32 lanes.
// out / tickets non-null: the combine fused in (vf_dec_combine_last).
// ROPE (vlmflux.cuda.decodeFusedRope): q and the new token's k and v arrive raw (the q/k/v product) and the block does
// what vf_rope_qkv would have done first: its query heads' RMSNorm + RoPE into shared memory (vf_rope_head, the same
// bits), the new key and value as bf16 in shared memory, and — in the block of split 0, head group 0 only — their
// write into the cache row. No block reads that row from the cache in this launch: where the new key comes up in the
// walk, its registers are loaded from shared memory instead, so every key takes the path it takes unfused and the
// result is the same bits as vf_rope_qkv followed by the unfused kernel.
// One key of the 16-byte-load decode walk (HD / 8 lanes per key, 8 dims a lane) for the GM query heads of the lanes'
// running states {m, l, acc}: the key's dot product with each head's qf (reduced over the key's lanes), then the online
// softmax update; ok false: a padding slot (score -inf). Shared by the split pass and the persistent decode step.
template <int HD, int GM>
__device__ __forceinline__ void vf_dec_vec_key(const uint4 kr, const uint4 vr, bool ok, int gn, const float (&qf)[GM][8],
                                               float (&acc)[GM][8], float (&m)[GM], float (&l)[GM]) {
    constexpr int LPK = HD / 8;
    const unsigned int kw[4] = {kr.x, kr.y, kr.z, kr.w}, vw[4] = {vr.x, vr.y, vr.z, vr.w};
    float kf[8], vf[8];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        kf[2 * e] = __uint_as_float(kw[e] << 16); kf[2 * e + 1] = __uint_as_float(kw[e] & 0xffff0000u);
        vf[2 * e] = __uint_as_float(vw[e] << 16); vf[2 * e + 1] = __uint_as_float(vw[e] & 0xffff0000u);
    }
#pragma unroll
    for (int g = 0; g < GM; g++) {
        if (g < gn) {
            float d = 0.f;
#pragma unroll
            for (int e = 0; e < 8; e++) d = fmaf(qf[g][e], kf[e], d);
#pragma unroll
            for (int o = LPK / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
            if (!ok) d = VF_NEG_INF;
            const float mn = fmaxf(m[g], d);
            const float corr = mn == VF_NEG_INF ? 1.f : __expf(m[g] - mn);
            const float p = mn == VF_NEG_INF ? 0.f : __expf(d - mn);
            l[g] = l[g] * corr + p;
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] = fmaf(p, vf[e], acc[g][e] * corr);
            m[g] = mn;
        }
    }
}

// Merges the running states of a warp's key slots (lanes sl of every slot hold the same dims): afterwards every slot
// holds the warp's state.
template <int HD, int GM>
__device__ __forceinline__ void vf_dec_vec_merge_slots(int gn, float (&acc)[GM][8], float (&m)[GM], float (&l)[GM]) {
#pragma unroll
    for (int o = HD / 8; o < 32; o <<= 1)
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g < gn) {
                const float m2 = __shfl_xor_sync(0xffffffffu, m[g], o), l2 = __shfl_xor_sync(0xffffffffu, l[g], o);
                const float M = fmaxf(m[g], m2);
                const float c1 = m[g] == VF_NEG_INF ? 0.f : __expf(m[g] - M), c2 = m2 == VF_NEG_INF ? 0.f : __expf(m2 - M);
                l[g] = l[g] * c1 + l2 * c2;
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float a2 = __shfl_xor_sync(0xffffffffu, acc[g][e], o);
                    acc[g][e] = acc[g][e] * c1 + a2 * c2;
                }
                m[g] = M;
            }
        }
}

struct VfRopeIn {
    const float* q;        // raw q of this block's first query head (hk * G + g0); heads HD apart
    const float* k;        // raw k of this block's kv head
    const float* v;        // raw v of this block's kv head
    bf16_t* kw;            // cache row of the new key for this kv head, or null (not the writing block)
    bf16_t* vw;
    int p0, p1, p2;        // the token's position components {t, h, w}
    int sec1, sec2;
    const float* invFreq;
    const bf16_t* qNorm;   // may be null
    const bf16_t* kNorm;   // may be null
    float eps;
    int newKey;            // index of the new key (its cache slot: kvLen - 1)
};
template <int HD, bool ROPE = false>
__device__ __forceinline__ void attn_decode_split_vec(float* __restrict__ part, const float* __restrict__ q,
        const bf16_t* __restrict__ kc, const bf16_t* __restrict__ vc, const int* __restrict__ kvLen,
        int nq, int nkv, int maxSeq, float scale, bf16_t* __restrict__ out = nullptr, int* __restrict__ tickets = nullptr,
        const VfRopeIn ri = VfRopeIn{}) {
    constexpr int LPK = HD / 8;       // lanes per key
    constexpr int KPW = 32 / LPK;     // key slots of a warp
    constexpr int U = 2;              // loads in flight per lane
    __shared__ float sm[VF_DEC_WARPS][VF_DEC_GMAX][HD + 2];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int slot = lane / LPK, sl = lane % LPK;
    const int hk = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
    const int G = nq / nkv;
    const int g0 = blockIdx.z * VF_DEC_GMAX;
    const int gn = min(VF_DEC_GMAX, G - g0);
    const int len = kvLen[0];
    const int chunk = max((len + splits - 1) / splits, VF_DEC_MINCHUNK);
    const int kBeg = split * chunk, kEnd = min(len, kBeg + chunk);
    if (kBeg >= len) return;   // split past the current length: the combine reads only the active ones

    __shared__ float rq[ROPE ? VF_DEC_GMAX : 1][ROPE ? HD : 1];            // rotated q of the block's heads
    __shared__ __align__(16) bf16_t rkv[ROPE ? 2 : 1][ROPE ? HD : 8];     // the new key and value
    if constexpr (ROPE) {
        for (int g = warp; g < gn; g += VF_DEC_WARPS)
            vf_rope_head(ri.q + (long long)g * HD, ri.qNorm, ri.eps, HD, ri.p0, ri.p1, ri.p2, ri.sec1, ri.sec2, ri.invFreq, rq[g], nullptr);
        if (warp == VF_DEC_WARPS - 1)
            vf_rope_head(ri.k, ri.kNorm, ri.eps, HD, ri.p0, ri.p1, ri.p2, ri.sec1, ri.sec2, ri.invFreq, nullptr, rkv[0]);
        for (int j = threadIdx.x; j < HD; j += blockDim.x) rkv[1][j] = f2bf(ri.v[j]);
        __syncthreads();
        if (ri.kw != nullptr)
            for (int j = threadIdx.x; j < HD; j += blockDim.x) { ri.kw[j] = rkv[0][j]; ri.vw[j] = rkv[1][j]; }
    }
    const int newKey = ROPE ? ri.newKey : -1;

    float qf[VF_DEC_GMAX][8], acc[VF_DEC_GMAX][8], m[VF_DEC_GMAX], l[VF_DEC_GMAX];
#pragma unroll
    for (int g = 0; g < VF_DEC_GMAX; g++) {
        m[g] = VF_NEG_INF; l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            acc[g][e] = 0.f;
            if constexpr (ROPE) qf[g][e] = g < gn ? rq[g][sl * 8 + e] * scale : 0.f;
            else qf[g][e] = g < gn ? q[(long long)(hk * G + g0 + g) * HD + sl * 8 + e] * scale : 0.f;
        }
    }
    const bf16_t* kh = kc + (long long)hk * maxSeq * HD + sl * 8;
    const bf16_t* vh = vc + (long long)hk * maxSeq * HD + sl * 8;
    for (int t0 = kBeg + warp * KPW * U; t0 < kEnd; t0 += VF_DEC_WARPS * KPW * U) {
        uint4 kr[U], vr[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int t = t0 + u * KPW + slot;
            kr[u] = make_uint4(0u, 0u, 0u, 0u); vr[u] = kr[u];
            if (ROPE && t == newKey) {   // written by this launch: from shared memory
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
    // Merge the warp's key slots (lanes sl of every slot hold the same dims), then the block's warps.
    vf_dec_vec_merge_slots<HD>(gn, acc, m, l);
#pragma unroll
    for (int g = 0; g < VF_DEC_GMAX; g++) {
        if (g < gn && slot == 0) {
            if (sl == 0) { sm[warp][g][0] = m[g]; sm[warp][g][1] = l[g]; }
#pragma unroll
            for (int e = 0; e < 8; e++) sm[warp][g][2 + sl * 8 + e] = acc[g][e];
        }
    }
    __syncthreads();
    vf_dec_write_partials<HD>(sm, part, gn, HD, hk * G + g0, splits, split);
    if (tickets != nullptr)
        vf_dec_combine_last(out, part, tickets, splits, vf_dec_active(len, splits), HD, (long long)hk * G + g0, gn);
}

extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_v_h64(float* part, const float* q, const bf16_t* kc,
        const bf16_t* vc, const int* kvLen, int nq, int nkv, int maxSeq, float scale) {
    VF_PDL_PROLOGUE();
    attn_decode_split_vec<64>(part, q, kc, vc, kvLen, nq, nkv, maxSeq, scale);
}

extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_v_h128(float* part, const float* q, const bf16_t* kc,
        const bf16_t* vc, const int* kvLen, int nq, int nkv, int maxSeq, float scale) {
    VF_PDL_PROLOGUE();
    attn_decode_split_vec<128>(part, q, kc, vc, kvLen, nq, nkv, maxSeq, scale);
}

// Split pass + combine in one launch (vf_dec_combine_last): out bf16 [nq, hd], tickets int [nkv * gridDim.z].
#define VF_ATTN_FUSED_INSTANCE(HDIM)                                                                                \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_vf_h##HDIM(bf16_t* out, float* part, \
            const float* q, const bf16_t* kc, const bf16_t* vc, const int* kvLen, int* tickets, int nq, int nkv,      \
            int maxSeq, float scale) {                                                                             \
        VF_PDL_PROLOGUE();                                                                                         \
        attn_decode_split_vec<HDIM>(part, q, kc, vc, kvLen, nq, nkv, maxSeq, scale, out, tickets);                 \
    }
VF_ATTN_FUSED_INSTANCE(64)
VF_ATTN_FUSED_INSTANCE(128)

// RoPE (+ q/k norm) and the KV write fused in (VfRopeIn above): q/k/v are the raw q/k/v product (one row, fp32), pos
// int32 [3 * posStride + ...] as vf_rope_qkv reads it (token 0), cacheStart[0] the new key's slot (= kvLen[0] - 1).
// out bf16 [nq, hd]; tickets null: partials for vf_attn_decode_combine, else the combine fused in as above.
#define VF_ATTN_ROPE_INSTANCE(HDIM)                                                                                 \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_vr_h##HDIM(bf16_t* out, float* part, \
            const float* q, const float* k, const float* v, bf16_t* kc, bf16_t* vc, const int* kvLen,                \
            const int* pos, int posStride, int sec1, int sec2, const float* invFreq, const bf16_t* qNorm,           \
            const bf16_t* kNorm, float eps, int* tickets, int nq, int nkv, int maxSeq, float scale) {               \
        VF_PDL_PROLOGUE();                                                                                         \
        const int hk = blockIdx.x, G = nq / nkv, g0 = blockIdx.z * VF_DEC_GMAX, slot = kvLen[0] - 1;               \
        const bool writer = blockIdx.y == 0 && blockIdx.z == 0;                                                    \
        const VfRopeIn ri{q + (long long)(hk * G + g0) * HDIM, k + (long long)hk * HDIM, v + (long long)hk * HDIM,  \
                writer ? kc + ((long long)hk * maxSeq + slot) * HDIM : nullptr,                                    \
                writer ? vc + ((long long)hk * maxSeq + slot) * HDIM : nullptr,                                    \
                pos[0], pos[posStride], pos[2 * posStride], sec1, sec2, invFreq, qNorm, kNorm, eps, slot};       \
        attn_decode_split_vec<HDIM, true>(part, nullptr, kc, vc, kvLen, nq, nkv, maxSeq, scale, out, tickets, ri);  \
    }
VF_ATTN_ROPE_INSTANCE(64)
VF_ATTN_ROPE_INSTANCE(128)

// ---------------------------------------------------------------------------------------------------------------
// Decode for batched rows (tables described in rope.cu above vf_rope_qkv_rows).
// Split pass: grid (n * nkv, splits, ceil(G / GMAX)), block 32 * VF_DEC_WARPS. Block x = r * nkv + hk serves kv head hk
// of row r. attn_decode_split (above) indexes q, the caches and the partials by blockIdx.x as the kv head; the
// row's q [nq, hd] and partials [nq, splits, hd + 2] follow row r-1's contiguously, so only the cache bases need the
// row offset taken back out (r * nkv heads of this row's capacity) — the addresses the split pass reads are exactly the
// row's own cache.
// The row's cache bases (kcr, vcr, backed off by r * nkv heads of head dim HDV), its capacity maxSeq and row table.
#define VF_ROWS_CACHES(HDV)                                                                                        \
        const int r = blockIdx.x / nkv;                                                                            \
        const int* row = rows + r * VF_ROWS_INTS;                                                                  \
        const int maxSeq = row[6];                                                                                 \
        const unsigned long long* ptrs = kv + ((long long)r * layers + layer) * 2;                                 \
        const long long back = (long long)r * nkv * maxSeq * (HDV);                                                \
        const bf16_t* kcr = (const bf16_t*)ptrs[0] - back;                                                         \
        const bf16_t* vcr = (const bf16_t*)ptrs[1] - back;

#define VF_ATTN_ROWS_INSTANCE(E)                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_rows_e##E(                      \
        float* part, const float* q, const unsigned long long* kv, int layer, int layers, const int* rows,         \
        int nq, int nkv, int hd, float scale) {                                                                    \
        VF_ROWS_CACHES(hd)                                                                                         \
        attn_decode_split<E>(part, q, kcr, vcr, row + 4, nq, nkv, maxSeq, hd, scale);                              \
    }

VF_ATTN_ROWS_INSTANCE(1)
VF_ATTN_ROWS_INSTANCE(2)
VF_ATTN_ROWS_INSTANCE(3)
VF_ATTN_ROWS_INSTANCE(4)
VF_ATTN_ROWS_INSTANCE(5)
VF_ATTN_ROWS_INSTANCE(6)
VF_ATTN_ROWS_INSTANCE(7)
VF_ATTN_ROWS_INSTANCE(8)

// The same rows with the 16-byte-load split pass (vlmflux.cuda.decodeVecAttention), head dim 64 or 128.
#define VF_ATTN_ROWS_VEC_INSTANCE(HDIM)                                                                             \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_rows_v_h##HDIM(                  \
        float* part, const float* q, const unsigned long long* kv, int layer, int layers, const int* rows,         \
        int nq, int nkv, int hd, float scale) {                                                                    \
        VF_ROWS_CACHES(HDIM)                                                                                       \
        attn_decode_split_vec<HDIM>(part, q, kcr, vcr, row + 4, nq, nkv, maxSeq, scale);                           \
    }

VF_ATTN_ROWS_VEC_INSTANCE(64)
VF_ATTN_ROWS_VEC_INSTANCE(128)

// Rows with the combine fused in: out bf16 [n, nq, hd], tickets int [n * nkv * gridDim.z].
#define VF_ATTN_ROWS_FUSED_INSTANCE(HDIM)                                                                           \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_rows_vf_h##HDIM(                 \
        bf16_t* out, float* part, const float* q, const unsigned long long* kv, int layer, int layers, const int* rows, \
        int* tickets, int nq, int nkv, int hd, float scale) {                                                      \
        VF_ROWS_CACHES(HDIM)                                                                                       \
        attn_decode_split_vec<HDIM>(part, q, kcr, vcr, row + 4, nq, nkv, maxSeq, scale, out, tickets);             \
    }
VF_ATTN_ROWS_FUSED_INSTANCE(64)
VF_ATTN_ROWS_FUSED_INSTANCE(128)

// Rows with RoPE (+ q/k norm) and the KV write fused in: q/k/v raw rows qkvStride floats apart (q at 0, k at kOff, v at
// vOff within a row), positions and slot from the row table. tickets null: partials for vf_attn_decode_rows_combine.
#define VF_ATTN_ROWS_ROPE_INSTANCE(HDIM)                                                                            \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_rows_vr_h##HDIM(                 \
        bf16_t* out, float* part, const float* qkv, int qkvStride, int kOff, int vOff, const unsigned long long* kv, \
        int layer, int layers, const int* rows, int sec1, int sec2, const float* invFreq, const bf16_t* qNorm,      \
        const bf16_t* kNorm, float eps, int* tickets, int nq, int nkv, float scale) {                               \
        VF_ROWS_CACHES(HDIM)                                                                                       \
        const int hk = blockIdx.x - r * nkv, G = nq / nkv, g0 = blockIdx.z * VF_DEC_GMAX, slot = row[3];           \
        const bool writer = blockIdx.y == 0 && blockIdx.z == 0;                                                    \
        bf16_t* kw = (bf16_t*)ptrs[0] + ((long long)hk * maxSeq + slot) * HDIM;                                    \
        bf16_t* vw = (bf16_t*)ptrs[1] + ((long long)hk * maxSeq + slot) * HDIM;                                    \
        const float* src = qkv + (long long)r * qkvStride;                                                         \
        const VfRopeIn ri{src + (long long)(hk * G + g0) * HDIM, src + kOff + (long long)hk * HDIM,                 \
                src + vOff + (long long)hk * HDIM, writer ? kw : nullptr, writer ? vw : nullptr,                   \
                row[0], row[1], row[2], sec1, sec2, invFreq, qNorm, kNorm, eps, slot};                          \
        attn_decode_split_vec<HDIM, true>(part, nullptr, (bf16_t*)kcr, (bf16_t*)vcr, row + 4, nq, nkv, maxSeq,     \
                scale, out, tickets, ri);                                                                          \
    }
VF_ATTN_ROWS_ROPE_INSTANCE(64)
VF_ATTN_ROWS_ROPE_INSTANCE(128)

// Combine pass: grid (n * nq), block 128. As vf_attn_decode_combine, with the kv length of block x's row.
// part fp32 [n, nq, splits, hd + 2] -> out bf16 [n, nq, hd].
extern "C" __global__ void vf_attn_decode_rows_combine(bf16_t* __restrict__ out, const float* __restrict__ part,
                                                       const int* __restrict__ rows, int nq, int splits, int hd) {
    __shared__ float wgt[VF_DEC_MAXSPLITS];
    __shared__ float scratch[33];
    const int h = blockIdx.x;
    vf_dec_combine_head<false>(out, part, h, splits, vf_dec_active(rows[(h / nq) * VF_ROWS_INTS + 4], splits), hd, wgt, scratch);
}

// ---------------------------------------------------------------------------------------------------------------
// Prefill: causal, tiled. Queries are tokens [0, n) at cache slots start[0] + i; query i sees keys [0, start + i].
// grid (ceil(n / (4*QW)), nq), block 128: 4 warps x QW queries, key tiles of 32 staged in shared memory (bf16, K rows
// padded by one word so that lane-per-key reads hit distinct banks). q fp32 [n, nq, hd], out bf16 [n, nq, hd].
// Queries per warp: 4, or 3 at hd 256 so the static shared memory stays under 48 KB; a block serves 4 * QW queries
// (the Java launcher mirrors this).
#define VF_PF_WARPS 4

template <int EPL>
__device__ __forceinline__ void attn_prefill(bf16_t* __restrict__ out, const float* __restrict__ q,
        const bf16_t* __restrict__ kc, const bf16_t* __restrict__ vc, const int* __restrict__ startPtr,
        int n, int nq, int nkv, int maxSeq, int hd, float scale) {
    constexpr int HD = 32 * EPL;
    constexpr int KW = HD / 2 + 1;  // 32-bit words per padded K row (odd: conflict-free)
    constexpr int VF_PF_QW = EPL >= 8 ? 3 : 4;
    constexpr int VF_PF_QB = VF_PF_QW * VF_PF_WARPS;
    __shared__ float qs[VF_PF_QB][HD];
    __shared__ unsigned int ks[32 * KW];
    __shared__ bf16_t vs[32][HD];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int h = blockIdx.y, hk = h / (nq / nkv);
    const int i0 = blockIdx.x * VF_PF_QB;
    const int start = startPtr[0];
    for (int idx = threadIdx.x; idx < VF_PF_QB * HD; idx += blockDim.x) {
        const int qi = idx / HD, d = idx % HD;
        const int i = i0 + qi;
        qs[qi][d] = (i < n && d < hd) ? q[((long long)i * nq + h) * hd + d] * scale : 0.f;
    }
    float acc[VF_PF_QW][EPL], m[VF_PF_QW], l[VF_PF_QW];
#pragma unroll
    for (int a = 0; a < VF_PF_QW; a++) {
        m[a] = VF_NEG_INF; l[a] = 0.f;
#pragma unroll
        for (int e = 0; e < EPL; e++) acc[a][e] = 0.f;
    }
    const int myQ0 = i0 + warp * VF_PF_QW;                 // first query of this warp
    const int lastKey = start + min(n, i0 + VF_PF_QB) - 1;  // last key any query of the block sees
    const bf16_t* kh = kc + (long long)hk * maxSeq * hd;
    const bf16_t* vh = vc + (long long)hk * maxSeq * hd;
    for (int k0 = 0; k0 <= lastKey; k0 += 32) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < 32 * (HD / 2); idx += blockDim.x) {
            const int r = idx / (HD / 2), w = idx % (HD / 2);
            const int key = k0 + r;
            unsigned int kv = 0u, vv = 0u;
            if (key <= lastKey && w < (hd >> 1)) {
                kv = reinterpret_cast<const unsigned int*>(kh + (long long)key * hd)[w];
                vv = reinterpret_cast<const unsigned int*>(vh + (long long)key * hd)[w];
            }
            ks[r * KW + w] = kv;
            reinterpret_cast<unsigned int*>(&vs[r][0])[w] = vv;
        }
        __syncthreads();
        if (myQ0 >= n || k0 > start + myQ0 + VF_PF_QW - 1) continue;  // warp has nothing to do in this tile
        float s[VF_PF_QW];
#pragma unroll
        for (int a = 0; a < VF_PF_QW; a++) s[a] = 0.f;
        const unsigned int* kr = ks + lane * KW;
#pragma unroll 8
        for (int w = 0; w < HD / 2; w++) {
            const unsigned int kw = kr[w];
            const float k0f = bflo(kw), k1f = bfhi(kw);
#pragma unroll
            for (int a = 0; a < VF_PF_QW; a++) {
                const float2 qv = *reinterpret_cast<const float2*>(&qs[warp * VF_PF_QW + a][2 * w]);
                s[a] = fmaf(qv.x, k0f, fmaf(qv.y, k1f, s[a]));
            }
        }
        const int key = k0 + lane;
        float p[VF_PF_QW];
#pragma unroll
        for (int a = 0; a < VF_PF_QW; a++) {
            const int i = myQ0 + a;
            const bool ok = i < n && key <= start + i;
            const float sa = ok ? s[a] : VF_NEG_INF;
            const float mx = warp_max(sa);
            const float mn = fmaxf(m[a], mx);
            // mn is finite for every valid query: key 0 is in the first tile and always visible.
            const float corr = mn == VF_NEG_INF ? 1.f : __expf(m[a] - mn);
            p[a] = ok ? __expf(sa - mn) : 0.f;
            l[a] = l[a] * corr + warp_sum(p[a]);
#pragma unroll
            for (int e = 0; e < EPL; e++) acc[a][e] *= corr;
            m[a] = mn;
        }
#pragma unroll 4
        for (int j = 0; j < 32; j++) {
            float vv[EPL];
#pragma unroll
            for (int e = 0; e < EPL; e++) vv[e] = bf2f(vs[j][lane * EPL + e]);
#pragma unroll
            for (int a = 0; a < VF_PF_QW; a++) {
                const float pj = __shfl_sync(0xffffffffu, p[a], j);
#pragma unroll
                for (int e = 0; e < EPL; e++) acc[a][e] = fmaf(pj, vv[e], acc[a][e]);
            }
        }
    }
#pragma unroll
    for (int a = 0; a < VF_PF_QW; a++) {
        const int i = myQ0 + a;
        if (i < n) {
            const float inv = 1.f / l[a];
#pragma unroll
            for (int e = 0; e < EPL; e++) {
                const int d = lane * EPL + e;
                if (d < hd) out[((long long)i * nq + h) * hd + d] = f2bf(acc[a][e] * inv);
            }
        }
    }
}

#define VF_ATTN_INSTANCE(E)                                                                                        \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_e##E(                           \
        float* part, const float* q, const bf16_t* kc, const bf16_t* vc, const int* kvLen,                         \
        int nq, int nkv, int maxSeq, int hd, float scale) {                                                        \
        VF_PDL_PROLOGUE();                                                                                         \
        attn_decode_split<E>(part, q, kc, vc, kvLen, nq, nkv, maxSeq, hd, scale);                                      \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(32 * VF_PF_WARPS) vf_attn_prefill_e##E(                           \
        bf16_t* out, const float* q, const bf16_t* kc, const bf16_t* vc, const int* start,                         \
        int n, int nq, int nkv, int maxSeq, int hd, float scale) {                                                 \
        attn_prefill<E>(out, q, kc, vc, start, n, nq, nkv, maxSeq, hd, scale);                                         \
    }

VF_ATTN_INSTANCE(1)
VF_ATTN_INSTANCE(2)
VF_ATTN_INSTANCE(3)
VF_ATTN_INSTANCE(4)
VF_ATTN_INSTANCE(5)
VF_ATTN_INSTANCE(6)
VF_ATTN_INSTANCE(7)
VF_ATTN_INSTANCE(8)

// ---------------------------------------------------------------------------------------------------------------
// Prefill on the tensor cores (mma.sync m16n8k16 bf16 -> fp32), FlashAttention-2 style, for hd 64 and 128.
// grid (ceil(n / 64), nq), block 128: each warp owns 16 queries; key tiles of 64 (K row-major, V transposed) in
// shared memory; Q is split into two bf16 parts (hi + lo), P rounded to bf16 before the P V product (as FA2 does); softmax state and
// accumulators fp32. Same contract as vf_attn_prefill_e*.
// Split over the keys (flash-decoding for prefill): with few queries against a long cache (a question or a video group
// appended after thousands of cached positions) the grid (ceil(n / 64), nq) has a block per 64 queries and head — 16
// blocks for a 20-token question at 16 heads, each walking every key tile alone. grid.z = splits > 1 gives block
// (tile, head, z) the z-th share of its key tiles; it writes unnormalized partials part[((i * nq + h) * splits + z) *
// (HD + 2)] = {m, l, acc[HD]} (a share with no key visible to row i: m = -inf, l = 0) and vf_attn_prefill_combine
// merges them. splits == 1 writes out directly, as before.
#define VF_FA_BQ 64
#define VF_FA_BK 64

__device__ __forceinline__ unsigned int vf_fa_pack(float lo, float hi) {
    return (unsigned int)f2bf(lo) | ((unsigned int)f2bf(hi) << 16);
}

__device__ __forceinline__ void vf_mma16816(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Q fragments of this warp's 16 queries (rows qw..qw+15 of head h), scaled: Q = hi + lo, both bf16 (two products per
// tile), so Q K^T carries ~16 mantissa bits of q and large attention logits (Qwen2.5 q/k biases) keep fp32-like
// accuracy; K is bf16 in the cache anyway. Rows past n are zeros.
template <int HD>
__device__ __forceinline__ void vf_fa_load_q(unsigned int (*qa)[4], unsigned int (*ql)[4], const float* __restrict__ q,
                                             int qw, int g, int tq, int n, int nq, int h, float scale) {
#pragma unroll
    for (int kb = 0; kb < HD / 16; kb++)
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const int row = qw + g + ((r & 1) ? 8 : 0);
            const int col = kb * 16 + tq * 2 + ((r & 2) ? 8 : 0);
            float x0 = 0.f, x1 = 0.f;
            if (row < n) {
                const float2 v = *reinterpret_cast<const float2*>(q + ((long long)row * nq + h) * HD + col);
                x0 = v.x * scale; x1 = v.y * scale;
            }
            qa[kb][r] = vf_fa_pack(x0, x1);
            const float h0 = __uint_as_float((qa[kb][r] & 0xffffu) << 16), h1 = __uint_as_float(qa[kb][r] & 0xffff0000u);
            ql[kb][r] = vf_fa_pack(x0 - h0, x1 - h1);
        }
}

// Online softmax over one key tile of NT*8 keys starting at k0: masks keys past each query's causal limit (and rows
// past n), rescales the running max m, sum l and accumulators o, and turns the scores s into probabilities.
template <int HD, int NT>
__device__ __forceinline__ void vf_fa_softmax(float (*s)[4], float* m, float* l, float (*o)[4], int qw, int g, int tq,
                                              int k0, int n, int start) {
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int i = qw + g + rr * 8;
        float mx = VF_NEG_INF;
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const int key = k0 + nt * 8 + tq * 2 + j;
                float v = s[nt][rr * 2 + j];
                if (i >= n || key > start + i) v = VF_NEG_INF;
                s[nt][rr * 2 + j] = v;
                mx = fmaxf(mx, v);
            }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m[rr], mx);
        const float corr = mn == VF_NEG_INF ? 1.f : __expf(m[rr] - mn);
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const float p = mn == VF_NEG_INF ? 0.f : __expf(s[nt][rr * 2 + j] - mn);
                s[nt][rr * 2 + j] = p;
                sum += p;
            }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        l[rr] = l[rr] * corr + sum;
        m[rr] = mn;
#pragma unroll
        for (int d = 0; d < HD / 8; d++) { o[d][rr * 2] *= corr; o[d][rr * 2 + 1] *= corr; }
    }
}

// The warp's result: with one key share, out = o / l (bf16); with several, the share's unnormalized partials
// part[((i * nq + h) * splits + z) * (HD + 2)] = {m, l, o[HD]} for vf_attn_prefill_combine.
template <int HD>
__device__ __forceinline__ void vf_fa_finish(bf16_t* __restrict__ out, float* __restrict__ part, float (*o)[4], const float* m,
                                             const float* l, int qw, int g, int tq, int n, int nq, int h) {
    const int splits = gridDim.z;
    if (splits > 1) {
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const int i = qw + g + rr * 8;
            if (i >= n) continue;
            float* pr = part + (((long long)i * nq + h) * splits + blockIdx.z) * (HD + 2);
            if (tq == 0) { pr[0] = m[rr]; pr[1] = l[rr]; }
#pragma unroll
            for (int d = 0; d < HD / 8; d++) {
                pr[2 + d * 8 + tq * 2] = o[d][rr * 2];
                pr[2 + d * 8 + tq * 2 + 1] = o[d][rr * 2 + 1];
            }
        }
        return;
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int i = qw + g + rr * 8;
        if (i < n && l[rr] > 0.f) {
            const float inv = 1.f / l[rr];
            unsigned int* orow = reinterpret_cast<unsigned int*>(out + ((long long)i * nq + h) * HD);
#pragma unroll
            for (int d = 0; d < HD / 8; d++) orow[(d * 8 + tq * 2) >> 1] = vf_fa_pack(o[d][rr * 2] * inv, o[d][rr * 2 + 1] * inv);
        }
    }
}

// S = Q K^T for this warp's 16 queries against NT * 8 keys of a tile in shared memory (K row-major, row stride KS):
// Q in two bf16 parts (hi, lo), each multiplied, so the scores keep ~16 mantissa bits of q.
template <int HD, int NT, int KS>
__device__ __forceinline__ void vf_fa_scores(float (*s)[4], const unsigned int (*qa)[4], const unsigned int (*ql)[4],
                                             const bf16_t* kt, int g, int tq) {
#pragma unroll
    for (int nt = 0; nt < NT; nt++) { s[nt][0] = 0.f; s[nt][1] = 0.f; s[nt][2] = 0.f; s[nt][3] = 0.f; }
#pragma unroll
    for (int kb = 0; kb < HD / 16; kb++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const bf16_t* kr = kt + (nt * 8 + g) * KS + kb * 16 + tq * 2;
            const unsigned int b0 = *reinterpret_cast<const unsigned int*>(kr), b1 = *reinterpret_cast<const unsigned int*>(kr + 8);
            vf_mma16816(s[nt], qa[kb], b0, b1);
            vf_mma16816(s[nt], ql[kb], b0, b1);
        }
}

// The A fragment (bf16) of probabilities P for keys kk*16 .. kk*16+15 of the tile.
__device__ __forceinline__ void vf_fa_pack_p(unsigned int* pa, const float (*s)[4], int kk) {
    pa[0] = vf_fa_pack(s[2 * kk][0], s[2 * kk][1]);
    pa[1] = vf_fa_pack(s[2 * kk][2], s[2 * kk][3]);
    pa[2] = vf_fa_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    pa[3] = vf_fa_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

template <int HD>
__device__ __forceinline__ void attn_prefill_mma(bf16_t* __restrict__ out, const float* __restrict__ q,
        const bf16_t* __restrict__ kc, const bf16_t* __restrict__ vc, const int* __restrict__ startPtr,
        int n, int nq, int nkv, int maxSeq, float scale, float* __restrict__ part) {
    constexpr int KS = HD + 8;        // K row stride in shared memory (bf16): conflict-free fragment reads
    constexpr int VS = VF_FA_BK + 8;  // V^T row stride
    __shared__ __align__(16) bf16_t ks[VF_FA_BK * KS];
    __shared__ __align__(16) bf16_t vts[HD * VS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, tq = lane & 3;
    const int h = blockIdx.y, hk = h / (nq / nkv);
    const int i0 = blockIdx.x * VF_FA_BQ;
    const int start = startPtr[0];
    const int qw = i0 + warp * 16;

    unsigned int qa[HD / 16][4], ql[HD / 16][4];
    vf_fa_load_q<HD>(qa, ql, q, qw, g, tq, n, nq, h, scale);
    float o[HD / 8][4];
#pragma unroll
    for (int d = 0; d < HD / 8; d++) { o[d][0] = 0.f; o[d][1] = 0.f; o[d][2] = 0.f; o[d][3] = 0.f; }
    float m[2] = {VF_NEG_INF, VF_NEG_INF}, l[2] = {0.f, 0.f};

    const int lastKey = start + min(n, i0 + VF_FA_BQ) - 1;
    const bf16_t* kh = kc + (long long)hk * maxSeq * HD;
    const bf16_t* vh = vc + (long long)hk * maxSeq * HD;
    const int splits = gridDim.z, tiles = lastKey / VF_FA_BK + 1, per = (tiles + splits - 1) / splits;
    const int kFirst = blockIdx.z * per * VF_FA_BK, kStop = min(lastKey + 1, kFirst + per * VF_FA_BK);
    for (int k0 = kFirst; k0 < kStop; k0 += VF_FA_BK) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < VF_FA_BK * (HD / 8); idx += blockDim.x) {
            const int r = idx / (HD / 8), c8 = idx % (HD / 8);
            const int key = k0 + r;
            uint4 kv = make_uint4(0u, 0u, 0u, 0u), vv = kv;
            if (key <= lastKey) {
                kv = *reinterpret_cast<const uint4*>(kh + (long long)key * HD + c8 * 8);
                vv = *reinterpret_cast<const uint4*>(vh + (long long)key * HD + c8 * 8);
            }
            *reinterpret_cast<uint4*>(ks + r * KS + c8 * 8) = kv;
            const unsigned int w[4] = {vv.x, vv.y, vv.z, vv.w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                vts[(c8 * 8 + 2 * e) * VS + r] = (bf16_t)(w[e] & 0xffffu);
                vts[(c8 * 8 + 2 * e + 1) * VS + r] = (bf16_t)(w[e] >> 16);
            }
        }
        __syncthreads();
        if (qw >= n || k0 > start + qw + 15) continue;   // this warp's queries see no key of the tile

        float s[VF_FA_BK / 8][4];
        vf_fa_scores<HD, VF_FA_BK / 8, KS>(s, qa, ql, ks, g, tq);
        vf_fa_softmax<HD, VF_FA_BK / 8>(s, m, l, o, qw, g, tq, k0, n, start);
#pragma unroll
        for (int kk = 0; kk < VF_FA_BK / 16; kk++) {
            unsigned int pa[4];
            vf_fa_pack_p(pa, s, kk);
#pragma unroll
            for (int d = 0; d < HD / 8; d++) {
                const bf16_t* vr = vts + (d * 8 + g) * VS + kk * 16 + tq * 2;
                vf_mma16816(o[d], pa, *reinterpret_cast<const unsigned int*>(vr), *reinterpret_cast<const unsigned int*>(vr + 8));
            }
        }
    }
    vf_fa_finish<HD>(out, part, o, m, l, qw, g, tq, n, nq, h);
}

// ---------------------------------------------------------------------------------------------------------------
// The same FlashAttention-2 prefill, pipelined (vlmflux.cuda.prefillPipelined): key tiles of 32 in two shared-memory
// stages filled by cp.async (the next tile's K and V load while this one is computed), V kept row-major like K and
// fed to the P V product by ldmatrix.trans (no transposing stores: the old kernel's scalar V^T stores hit one bank
// 16 ways). Same contract, same split-key partials, same math per key (the tile size only changes the order in which
// the online softmax visits keys).
#define VF_FA2_BK 32

__device__ __forceinline__ void vf_cp_async16(void* smem, const void* gmem, bool valid) {
    const unsigned int sa = (unsigned int)__cvta_generic_to_shared(smem);
    const int bytes = valid ? 16 : 0;   // 0: zero-fill, nothing read
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sa), "l"(gmem), "r"(bytes));
}

template <int HD>
__device__ __forceinline__ void attn_prefill_fa2(bf16_t* __restrict__ out, const float* __restrict__ q,
        const bf16_t* __restrict__ kc, const bf16_t* __restrict__ vc, const int* __restrict__ startPtr,
        int n, int nq, int nkv, int maxSeq, float scale, float* __restrict__ part) {
    constexpr int KS = HD + 8;   // row stride (bf16) of K and V tiles: conflict-free fragment reads and ldmatrix rows
    __shared__ __align__(16) bf16_t ks[2][VF_FA2_BK * KS];
    __shared__ __align__(16) bf16_t vs[2][VF_FA2_BK * KS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, tq = lane & 3;
    const int h = blockIdx.y, hk = h / (nq / nkv);
    const int i0 = blockIdx.x * VF_FA_BQ;
    const int start = startPtr[0];
    const int qw = i0 + warp * 16;

    unsigned int qa[HD / 16][4], ql[HD / 16][4];
    vf_fa_load_q<HD>(qa, ql, q, qw, g, tq, n, nq, h, scale);
    float o[HD / 8][4];
#pragma unroll
    for (int d = 0; d < HD / 8; d++) { o[d][0] = 0.f; o[d][1] = 0.f; o[d][2] = 0.f; o[d][3] = 0.f; }
    float m[2] = {VF_NEG_INF, VF_NEG_INF}, l[2] = {0.f, 0.f};

    const int lastKey = start + min(n, i0 + VF_FA_BQ) - 1;
    const bf16_t* kh = kc + (long long)hk * maxSeq * HD;
    const bf16_t* vh = vc + (long long)hk * maxSeq * HD;
    const int splits = gridDim.z, tiles = lastKey / VF_FA2_BK + 1, per = (tiles + splits - 1) / splits;
    const int kFirst = blockIdx.z * per * VF_FA2_BK, kStop = min(lastKey + 1, kFirst + per * VF_FA2_BK);
    const int count = kStop > kFirst ? (kStop - kFirst + VF_FA2_BK - 1) / VF_FA2_BK : 0;

    auto load = [&](int t, int stage) {   // tile t of this share into stage: keys past lastKey zero-filled
        const int k0 = kFirst + t * VF_FA2_BK;
        for (int idx = threadIdx.x; idx < VF_FA2_BK * (HD / 8); idx += blockDim.x) {
            const int r = idx / (HD / 8), c8 = idx % (HD / 8), key = k0 + r;
            const bool ok = key <= lastKey;
            const long long off = (long long)(ok ? key : 0) * HD + c8 * 8;
            vf_cp_async16(&ks[stage][r * KS + c8 * 8], kh + off, ok);
            vf_cp_async16(&vs[stage][r * KS + c8 * 8], vh + off, ok);
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };
    if (count > 0) load(0, 0);
    for (int t = 0; t < count; t++) {
        const int stage = t & 1, k0 = kFirst + t * VF_FA2_BK;
        if (t + 1 < count) {
            load(t + 1, stage ^ 1);
            asm volatile("cp.async.wait_group 1;\n" ::);   // tile t has landed; t + 1 may be in flight
        } else {
            asm volatile("cp.async.wait_group 0;\n" ::);
        }
        __syncthreads();
        if (qw < n && k0 <= start + qw + 15) {   // else this warp's queries see no key of the tile
            const bf16_t* kt = ks[stage];
            const bf16_t* vt = vs[stage];
            float s[VF_FA2_BK / 8][4];
            vf_fa_scores<HD, VF_FA2_BK / 8, KS>(s, qa, ql, kt, g, tq);
            vf_fa_softmax<HD, VF_FA2_BK / 8>(s, m, l, o, qw, g, tq, k0, n, start);
#pragma unroll
            for (int kk = 0; kk < VF_FA2_BK / 16; kk++) {
                unsigned int pa[4];
                vf_fa_pack_p(pa, s, kk);
                // ldmatrix.x4.trans: lanes 0-7 / 8-15 address keys 0-7 / 8-15 of this 16-key step at dims d*8.., lanes
                // 16-31 the same keys at dims (d+1)*8..; registers b0, b1 of dim block d, then of block d + 1
                const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
                for (int d = 0; d < HD / 8; d += 2) {
                    const unsigned int a = (unsigned int)__cvta_generic_to_shared(vt + key * KS + (d + (lane >> 4)) * 8);
                    unsigned int b0, b1, b2, b3;
                    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                                 : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(a));
                    vf_mma16816(o[d], pa, b0, b1);
                    vf_mma16816(o[d + 1], pa, b2, b3);
                }
            }
        }
        __syncthreads();   // every warp is done with this stage before the next iteration's load overwrites it
    }
    vf_fa_finish<HD>(out, part, o, m, l, qw, g, tq, n, nq, h);
}

extern "C" __global__ void __launch_bounds__(128) vf_attn_prefill_mma_h64(bf16_t* out, const float* q, const bf16_t* kc,
        const bf16_t* vc, const int* start, int n, int nq, int nkv, int maxSeq, float scale, float* part) {
    attn_prefill_mma<64>(out, q, kc, vc, start, n, nq, nkv, maxSeq, scale, part);
}

extern "C" __global__ void __launch_bounds__(128) vf_attn_prefill_mma_h128(bf16_t* out, const float* q, const bf16_t* kc,
        const bf16_t* vc, const int* start, int n, int nq, int nkv, int maxSeq, float scale, float* part) {
    attn_prefill_mma<128>(out, q, kc, vc, start, n, nq, nkv, maxSeq, scale, part);
}

extern "C" __global__ void __launch_bounds__(128) vf_attn_prefill_fa2_h64(bf16_t* out, const float* q, const bf16_t* kc,
        const bf16_t* vc, const int* start, int n, int nq, int nkv, int maxSeq, float scale, float* part) {
    attn_prefill_fa2<64>(out, q, kc, vc, start, n, nq, nkv, maxSeq, scale, part);
}

extern "C" __global__ void __launch_bounds__(128) vf_attn_prefill_fa2_h128(bf16_t* out, const float* q, const bf16_t* kc,
        const bf16_t* vc, const int* start, int n, int nq, int nkv, int maxSeq, float scale, float* part) {
    attn_prefill_fa2<128>(out, q, kc, vc, start, n, nq, nkv, maxSeq, scale, part);
}

// Merges the key shares of the split prefill: out[x, :] = bf16(sum_z acc_z e^{m_z - M} / sum_z l_z e^{m_z - M}) for
// row x = i * nq + h, over the shares that saw a key (m > -inf). grid (n * nq), block 128; splits <= VF_FA_MAXSPLITS.
#define VF_FA_MAXSPLITS 64
extern "C" __global__ void __launch_bounds__(128) vf_attn_prefill_combine(bf16_t* __restrict__ out, const float* __restrict__ part,
                                                                          int splits, int hd) {
    __shared__ float wgt[VF_FA_MAXSPLITS];
    __shared__ float inv;
    const long long x = blockIdx.x;
    const float* px = part + x * splits * (hd + 2);
    if (threadIdx.x < 32) {
        float M = VF_NEG_INF;
        for (int z = threadIdx.x; z < splits; z += 32) M = fmaxf(M, px[z * (hd + 2)]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
        float L = 0.f;
        for (int z = threadIdx.x; z < splits; z += 32) {
            const float mz = px[z * (hd + 2)];
            const float e = mz == VF_NEG_INF ? 0.f : __expf(mz - M);
            wgt[z] = e;
            L += px[z * (hd + 2) + 1] * e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) L += __shfl_xor_sync(0xffffffffu, L, o);
        if (threadIdx.x == 0) inv = L > 0.f ? 1.f / L : 0.f;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.f;
        for (int z = 0; z < splits; z++) a = fmaf(px[z * (hd + 2) + 2 + d], wgt[z], a);
        out[x * hd + d] = f2bf(a * inv);
    }
}
