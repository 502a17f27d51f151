// Batched decode, graph-capturable: one token for each of n sequences whose KV caches live anywhere on the device.
// Everything that changes between steps (which cache a row uses, its position, its length) is read from two
// device tables the host rewrites before each replay, so one captured graph per batch size serves every step even as
// sequences come and go:
//   rows  int32 [n, 8]: {pos t, pos h, pos w, cache slot (= kv length - 1), kv length, token id, cache capacity, 0}
//   kv    uint64 [n, layers, 2]: device addresses of row r's layer-l K and V cache, each bf16 [kvHeads, capacity, hd]
// The math is the single-sequence kernels' (rope.cu, attention.cu), operation for operation, so a batched step gives the
// same numbers as the eager per-row launches.
#include "common.cuh"

#define VF_ROWS_INTS 8

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
            const int c = j < sec1 ? 0 : (j < sec2 ? 1 : 2);
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

// Split pass: grid (n * nkv, splits, ceil(G / GMAX)), block 32 * VF_DEC_WARPS. Block x = r * nkv + hk serves kv head hk
// of row r. attn_decode_split (attention.cu) indexes q, the caches and the partials by blockIdx.x as the kv head; the
// row's q [nq, hd] and partials [nq, splits, hd + 2] follow row r-1's contiguously, so only the cache bases need the
// row offset taken back out (r * nkv heads of this row's capacity) — the addresses the split pass reads are exactly the
// row's own cache.
#define VF_ATTN_ROWS_INSTANCE(E)                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * VF_DEC_WARPS) vf_attn_decode_rows_e##E(                      \
        float* part, const float* q, const unsigned long long* kv, int layer, int layers, const int* rows,         \
        int nq, int nkv, int hd, float scale) {                                                                    \
        const int r = blockIdx.x / nkv;                                                                            \
        const int* row = rows + r * VF_ROWS_INTS;                                                                  \
        const int maxSeq = row[6];                                                                                 \
        const unsigned long long* ptrs = kv + ((long long)r * layers + layer) * 2;                                 \
        const long long back = (long long)r * nkv * maxSeq * hd;                                                   \
        attn_decode_split<E>(part, q, (const bf16_t*)ptrs[0] - back, (const bf16_t*)ptrs[1] - back, row + 4,      \
                             nq, nkv, maxSeq, hd, scale);                                                          \
    }

VF_ATTN_ROWS_INSTANCE(1)
VF_ATTN_ROWS_INSTANCE(2)
VF_ATTN_ROWS_INSTANCE(3)
VF_ATTN_ROWS_INSTANCE(4)
VF_ATTN_ROWS_INSTANCE(5)
VF_ATTN_ROWS_INSTANCE(6)
VF_ATTN_ROWS_INSTANCE(7)
VF_ATTN_ROWS_INSTANCE(8)

// Combine pass: grid (n * nq), block 128. As vf_attn_decode_combine, with the kv length of block x's row.
// part fp32 [n, nq, splits, hd + 2] -> out bf16 [n, nq, hd].
extern "C" __global__ void vf_attn_decode_rows_combine(bf16_t* __restrict__ out, const float* __restrict__ part,
                                                       const int* __restrict__ rows, int nq, int splits, int hd) {
    __shared__ float wgt[VF_DEC_MAXSPLITS];
    __shared__ float scratch[33];
    const int h = blockIdx.x;
    const int len = rows[(h / nq) * VF_ROWS_INTS + 4];
    const int chunk = max((len + splits - 1) / splits, VF_DEC_MINCHUNK);
    const int active = min(splits, (len + chunk - 1) / chunk);
    const float* ph = part + (long long)h * splits * (hd + 2);
    float mloc = VF_NEG_INF;
    for (int s = threadIdx.x; s < active; s += blockDim.x) mloc = fmaxf(mloc, ph[s * (hd + 2)]);
    const float M = block_max(mloc, scratch);
    float lloc = 0.f;
    for (int s = threadIdx.x; s < active; s += blockDim.x) {
        const float ms = ph[s * (hd + 2)];
        const float e = ms == VF_NEG_INF ? 0.f : __expf(ms - M);
        wgt[s] = e;
        lloc += ph[s * (hd + 2) + 1] * e;
    }
    const float L = block_sum(lloc, scratch);
    const float inv = 1.f / L;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a0 = 0.f;
#pragma unroll 8
        for (int s = 0; s < active; s++) a0 = fmaf(__ldg(ph + s * (hd + 2) + 2 + d), wgt[s], a0);
        out[(long long)h * hd + d] = f2bf(a0 * inv);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Skinny GEMM for a batched decode step: y [B, m] = x [B, k] W^T (+ y when accumulate) (+ bias), B = 2..8 rows.
// W bf16 [m, k] row-major is read once for all B rows (16-byte loads); x bf16 rows stay in L1/L2. One warp per output
// column m: lanes stride over k in chunks of 8, fp32 accumulation, warp-shuffle reduction. k % 8 == 0, 16-byte aligned
// rows. grid ceil(m / 8), block 256.
__device__ __forceinline__ void vf_bf16x8(const uint4 v, float* f) {
    const unsigned int u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(u[i] << 16);
        f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}

template <int B>
__device__ __forceinline__ void gemv_rows(float* __restrict__ y, const bf16_t* __restrict__ w, const bf16_t* __restrict__ x,
                                          const float* __restrict__ bias, int accumulate, int m, int k) {
    const int col = blockIdx.x * 8 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (col >= m) return;
    const int kc = k >> 3;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (long long)col * k);
    const uint4* xr = reinterpret_cast<const uint4*>(x);
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
#pragma unroll 4
    for (int c = lane; c < kc; c += 32) {
        float wf[8];
        vf_bf16x8(__ldg(wr + c), wf);
#pragma unroll
        for (int b = 0; b < B; b++) {
            float xf[8];
            vf_bf16x8(__ldg(xr + (long long)b * kc + c), xf);
            float s = acc[b];
#pragma unroll
            for (int i = 0; i < 8; i++) s = fmaf(wf[i], xf[i], s);
            acc[b] = s;
        }
    }
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = warp_sum(acc[b]);
    if (lane == 0) {
        const float bv = bias != nullptr ? bias[col] : 0.f;
#pragma unroll
        for (int b = 0; b < B; b++) {
            float* o = y + (long long)b * m + col;
            *o = (accumulate ? *o + acc[b] : acc[b]) + bv;
        }
    }
}

#define VF_GEMV_ROWS_INSTANCE(B)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256) vf_gemv_rows_b##B(float* y, const bf16_t* w, const bf16_t* x, \
        const float* bias, int accumulate, int m, int k) {                                                         \
        gemv_rows<B>(y, w, x, bias, accumulate, m, k);                                                             \
    }

VF_GEMV_ROWS_INSTANCE(2)
VF_GEMV_ROWS_INSTANCE(3)
VF_GEMV_ROWS_INSTANCE(4)
VF_GEMV_ROWS_INSTANCE(5)
VF_GEMV_ROWS_INSTANCE(6)
VF_GEMV_ROWS_INSTANCE(7)
VF_GEMV_ROWS_INSTANCE(8)
