// Rotary position embedding (rotate-half layout, as Hugging Face applies it) fused with the optional per-head
// q/k RMSNorm (Qwen3) and the KV-cache write.
//
// Default RoPE, llama3-scaled RoPE and M-RoPE differ only in the inverse-frequency table (computed on the host,
// llama3 scaling included) and in which position component a frequency index uses:
//   frequency j in [0, sec1) uses pos[0*posStride + t], [sec1, sec2) uses pos[1*posStride + t], [sec2, hd/2) pos[2*..].
// Plain RoPE passes posStride = 0 (all three components are the same row).
// Interleaved M-RoPE (Qwen3-VL, transformers' apply_interleaved_mrope) is encoded by negative sections:
//   sec1 = -1 - 3*section[1], sec2 = -1 - 3*section[2]; frequency j uses h (1) when j % 3 == 1 && j < 3*section[1],
//   w (2) when j % 3 == 2 && j < 3*section[2], t (0) otherwise (see vf_rope_axis).
//
// Cache layout per layer: K and V each bf16 [kvHeads, maxSeq, hd]; token t is written at slot cacheStart[0] + t.
// cacheStart lives in device memory so a captured decode graph serves every step.
#include "common.cuh"

#define VF_ROPE_MAXP 4   // pairs per lane: hd <= 2 * 32 * 4 = 256

// Which position component (t 0, h 1, w 2) frequency j uses: contiguous sections when sec1 >= 0, interleaved
// (encoded as above) when sec1 < 0.
__device__ __forceinline__ int vf_rope_axis(int j, int sec1, int sec2) {
    if (sec1 >= 0) return j < sec1 ? 0 : (j < sec2 ? 1 : 2);
    const int m = j % 3;
    if (m == 1 && j < -1 - sec1) return 1;
    if (m == 2 && j < -1 - sec2) return 2;
    return 0;
}

// One head of one token, by one warp: the optional RMSNorm over the head (nw bf16 [hd], may be null), then rotate-half
// RoPE at position components {p0, p1, p2} = {t, h, w} (frequency j uses component vf_rope_axis(j)). Writes the result as fp32 to
// of and/or as bf16 to ob (either may be null). The decode attention with RoPE fused in (attention.cu) computes its
// heads through this function; it is vf_rope_qkv's per-warp body operation for operation (the same bits). The two rope
// kernels keep their own copy of it until the fused path has run on a GPU (then they call this).
// The body, with where the head's values come from (load(j): element j of the head) and where each frequency's
// cos / sin come from (cossin(j, s, co)) as parameters: decode_mega.cu's VF_MEGA_ROPEPRE reads the head from L2 and
// the angles from a table computed once a launch, with these same operations (the same bits).
template <class Load, class CosSin>
__device__ __forceinline__ void vf_rope_head_with(Load load, const bf16_t* __restrict__ nw, float eps, int hd, CosSin cossin,
                                                  float* of, bf16_t* ob) {
    const int lane = threadIdx.x & 31;
    const int half = hd >> 1;
    float x1[VF_ROPE_MAXP], x2[VF_ROPE_MAXP];
    float ss = 0.f;
#pragma unroll
    for (int q = 0; q < VF_ROPE_MAXP; q++) {
        const int j = lane + 32 * q;
        x1[q] = 0.f; x2[q] = 0.f;
        if (j < half) {
            x1[q] = load(j);
            x2[q] = load(j + half);
            ss += x1[q] * x1[q] + x2[q] * x2[q];
        }
    }
    float scale = 1.f;
    if (nw != nullptr) scale = rsqrtf(warp_sum(ss) / (float)hd + eps);
#pragma unroll
    for (int q = 0; q < VF_ROPE_MAXP; q++) {
        const int j = lane + 32 * q;
        if (j < half) {
            float a = x1[q], b = x2[q];
            if (nw != nullptr) {
                a = a * scale * bf2f(nw[j]);
                b = b * scale * bf2f(nw[j + half]);
            }
            float s, co;
            cossin(j, s, co);
            const float r1 = a * co - b * s;
            const float r2 = b * co + a * s;
            if (of != nullptr) { of[j] = r1; of[j + half] = r2; }
            if (ob != nullptr) { ob[j] = f2bf(r1); ob[j + half] = f2bf(r2); }
        }
    }
}

// The angle of frequency j at position components {p0, p1, p2}, and its sine and cosine.
__device__ __forceinline__ void vf_rope_sincos(int j, int p0, int p1, int p2, int sec1, int sec2, const float* __restrict__ invFreq,
                                               float& s, float& co) {
    const int c = vf_rope_axis(j, sec1, sec2);
    const float ang = (float)(c == 0 ? p0 : (c == 1 ? p1 : p2)) * invFreq[j];
    sincosf(ang, &s, &co);
}

__device__ __forceinline__ void vf_rope_head(const float* __restrict__ src, const bf16_t* __restrict__ nw, float eps, int hd,
                                             int p0, int p1, int p2, int sec1, int sec2, const float* __restrict__ invFreq,
                                             float* of, bf16_t* ob) {
    vf_rope_head_with([&](int j) { return src[j]; }, nw, eps, hd,
                      [&](int j, float& s, float& co) { vf_rope_sincos(j, p0, p1, p2, sec1, sec2, invFreq, s, co); }, of, ob);
}

// grid (n, ceil((nq + nkv) / 4)), block 128: one warp per head of one token.
// q/k/v rows of token t start at q + t*qStride etc. (strides in elements; lets q,k,v be one fused projection).
// qOut fp32 [n, nq, hd]. qNorm/kNorm (bf16 [hd]) may be null.
extern "C" __global__ void __launch_bounds__(128)
vf_rope_qkv(float* __restrict__ qOut, bf16_t* __restrict__ kCache, bf16_t* __restrict__ vCache,
            const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
            int qStride, int kStride, int vStride,
            const int* __restrict__ pos, int posStride, int sec1, int sec2,
            const float* __restrict__ invFreq, const int* __restrict__ cacheStart,
            int n, int nq, int nkv, int hd, int maxSeq,
            const bf16_t* __restrict__ qNorm, const bf16_t* __restrict__ kNorm, float eps) {
    VF_PDL_PROLOGUE();
    const int t = blockIdx.x;
    const int lane = threadIdx.x & 31;
    const int h = blockIdx.y * 4 + (threadIdx.x >> 5);
    if (t >= n || h >= nq + nkv) return;
    const int half = hd >> 1;
    const bool isQ = h < nq;
    const int hk = h - nq;
    const float* src = isQ ? q + (long long)t * qStride + (long long)h * hd
                           : k + (long long)t * kStride + (long long)hk * hd;
    const bf16_t* nw = isQ ? qNorm : kNorm;

    float x1[VF_ROPE_MAXP], x2[VF_ROPE_MAXP];
    float ss = 0.f;
#pragma unroll
    for (int p = 0; p < VF_ROPE_MAXP; p++) {
        const int j = lane + 32 * p;
        x1[p] = 0.f; x2[p] = 0.f;
        if (j < half) {
            x1[p] = src[j];
            x2[p] = src[j + half];
            ss += x1[p] * x1[p] + x2[p] * x2[p];
        }
    }
    float scale = 1.f;
    if (nw != nullptr) scale = rsqrtf(warp_sum(ss) / (float)hd + eps);

    const int slot = cacheStart[0] + t;
    float* qo = qOut + ((long long)t * nq + h) * hd;
    bf16_t* ko = kCache + ((long long)hk * maxSeq + slot) * hd;
#pragma unroll
    for (int p = 0; p < VF_ROPE_MAXP; p++) {
        const int j = lane + 32 * p;
        if (j < half) {
            float a = x1[p], b = x2[p];
            if (nw != nullptr) {
                a = a * scale * bf2f(nw[j]);
                b = b * scale * bf2f(nw[j + half]);
            }
            const int c = vf_rope_axis(j, sec1, sec2);
            const float ang = (float)pos[c * posStride + t] * invFreq[j];
            float s, co;
            sincosf(ang, &s, &co);
            const float r1 = a * co - b * s;
            const float r2 = b * co + a * s;
            if (isQ) { qo[j] = r1; qo[j + half] = r2; }
            else { ko[j] = f2bf(r1); ko[j + half] = f2bf(r2); }
        }
    }
    if (!isQ) {
        const float* vs = v + (long long)t * vStride + (long long)hk * hd;
        bf16_t* vo = vCache + ((long long)hk * maxSeq + slot) * hd;
        for (int j = lane; j < hd; j += 32) vo[j] = f2bf(vs[j]);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Batched decode rows (graph-capturable): one token for each of n sequences whose KV caches live anywhere on the
// device. What changes between steps (which cache a row uses, its position, its length) is read from two device
// tables the host rewrites before each replay, so one captured graph per batch size serves every step:
//   rows  int32 [n, VF_ROWS_INTS]: {pos t, pos h, pos w, cache slot (= kv length - 1), kv length, token id, capacity, 0}
//   kv    uint64 [n, layers, 2]: device addresses of row r's layer-l K and V cache, each bf16 [kvHeads, capacity, hd]
// The row kernels do the single-sequence kernels' math operation for operation, so a batched step gives the same
// numbers as eager per-row launches.
//
// grid (n, ceil((nq + nkv) / 4)), block 128: one warp per head of one row (as vf_rope_qkv with n = 1 per row).
// q/k/v rows start at q + r*qStride etc.; qOut fp32 [n, nq, hd].
extern "C" __global__ void __launch_bounds__(128)
vf_rope_qkv_rows(float* __restrict__ qOut, const unsigned long long* __restrict__ kv, int layer, int layers,
                 const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                 int qStride, int kStride, int vStride, const int* __restrict__ rows, int sec1, int sec2,
                 const float* __restrict__ invFreq, int n, int nq, int nkv, int hd,
                 const bf16_t* __restrict__ qNorm, const bf16_t* __restrict__ kNorm, float eps) {
    const int r = blockIdx.x;
    const int lane = threadIdx.x & 31;
    const int h = blockIdx.y * 4 + (threadIdx.x >> 5);
    if (r >= n || h >= nq + nkv) return;
    const int* row = rows + r * VF_ROWS_INTS;
    const int slot = row[3], maxSeq = row[6];
    const int half = hd >> 1;
    const bool isQ = h < nq;
    const int hk = h - nq;
    const float* src = isQ ? q + (long long)r * qStride + (long long)h * hd
                           : k + (long long)r * kStride + (long long)hk * hd;
    const bf16_t* nw = isQ ? qNorm : kNorm;

    float x1[VF_ROPE_MAXP], x2[VF_ROPE_MAXP];
    float ss = 0.f;
#pragma unroll
    for (int p = 0; p < VF_ROPE_MAXP; p++) {
        const int j = lane + 32 * p;
        x1[p] = 0.f; x2[p] = 0.f;
        if (j < half) {
            x1[p] = src[j];
            x2[p] = src[j + half];
            ss += x1[p] * x1[p] + x2[p] * x2[p];
        }
    }
    float scale = 1.f;
    if (nw != nullptr) scale = rsqrtf(warp_sum(ss) / (float)hd + eps);

    const unsigned long long* ptrs = kv + ((long long)r * layers + layer) * 2;
    bf16_t* kCache = (bf16_t*)ptrs[0];
    bf16_t* vCache = (bf16_t*)ptrs[1];
    float* qo = qOut + ((long long)r * nq + h) * hd;
    bf16_t* ko = kCache + ((long long)hk * maxSeq + slot) * hd;
#pragma unroll
    for (int p = 0; p < VF_ROPE_MAXP; p++) {
        const int j = lane + 32 * p;
        if (j < half) {
            float a = x1[p], b = x2[p];
            if (nw != nullptr) {
                a = a * scale * bf2f(nw[j]);
                b = b * scale * bf2f(nw[j + half]);
            }
            const int c = vf_rope_axis(j, sec1, sec2);
            const float ang = (float)row[c] * invFreq[j];
            float s, co;
            sincosf(ang, &s, &co);
            const float r1 = a * co - b * s;
            const float r2 = b * co + a * s;
            if (isQ) { qo[j] = r1; qo[j + half] = r2; }
            else { ko[j] = f2bf(r1); ko[j + half] = f2bf(r2); }
        }
    }
    if (!isQ) {
        const float* vs = v + (long long)r * vStride + (long long)hk * hd;
        bf16_t* vo = vCache + ((long long)hk * maxSeq + slot) * hd;
        for (int j = lane; j < hd; j += 32) vo[j] = f2bf(vs[j]);
    }
}

