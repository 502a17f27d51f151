// Batch-1 matrix-vector product for decode: y = W x (+ bias) (+ residual), W bf16 row-major [M, K], x bf16 [K],
// fp32 accumulation and output. 16-byte loads of W and x: K % 8 == 0 and 16-byte aligned rows (checked in Java).
// Each warp owns ROWS rows so several independent 16-byte loads are in flight per lane.
#include "common.cuh"

#define VF_GEMV_ROWS 2
#define VF_GEMV_WARPS 8

// Streaming 16-byte weight load (read once: no L1 allocation). volatile keeps the loads of a batch issued together.
__device__ __forceinline__ uint4 ldg_stream(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

__device__ __forceinline__ float dot8(uint4 a, uint4 b) {
    float s = bflo(a.x) * bflo(b.x);
    s = fmaf(bfhi(a.x), bfhi(b.x), s);
    s = fmaf(bflo(a.y), bflo(b.y), s);
    s = fmaf(bfhi(a.y), bfhi(b.y), s);
    s = fmaf(bflo(a.z), bflo(b.z), s);
    s = fmaf(bfhi(a.z), bfhi(b.z), s);
    s = fmaf(bflo(a.w), bflo(b.w), s);
    s = fmaf(bfhi(a.w), bfhi(b.w), s);
    return s;
}

// L2 prefetch (sm_90+, before the PDL wait: weights are written by no kernel) of the rows of row tile t of W bf16
// [M, K], columns [c0, c1) (multiples of 8): one bulk prefetch per row, a thread each. Below sm_90: nothing.
__device__ __forceinline__ void vf_gemv_prefetch(const bf16_t* W, int M, int K, int c0, int c1, int t) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const int row = t * (VF_GEMV_WARPS * VF_GEMV_ROWS) + (int)threadIdx.x;
    if (threadIdx.x < VF_GEMV_WARPS * VF_GEMV_ROWS && row < M && c1 > c0)
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(W + (long long)row * K + c0), "r"(2u * (unsigned int)(c1 - c0)) : "memory");
#endif
}

// grid (ceil(M / (WARPS*ROWS))), block 32*WARPS. bias / residual may be null; residual may alias y.
__device__ __forceinline__ void gemv_bf16_body(float* y, const bf16_t* __restrict__ W, const bf16_t* __restrict__ x,
             const float* __restrict__ bias, const float* residual, int M, int K) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = (blockIdx.x * VF_GEMV_WARPS + warp) * VF_GEMV_ROWS;
    if (row0 >= M) return;
    const int k8 = K >> 3;
    const uint4* x4 = reinterpret_cast<const uint4*>(x);
    const uint4* w4[VF_GEMV_ROWS];
    float acc[VF_GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < VF_GEMV_ROWS; r++) {
        const int row = min(row0 + r, M - 1);
        w4[r] = reinterpret_cast<const uint4*>(W + (long long)row * K);
        acc[r] = 0.f;
    }
    int i = lane;
    for (; i + 96 < k8; i += 128) {
        uint4 xv[4], wv[VF_GEMV_ROWS][4];
#pragma unroll
        for (int u = 0; u < 4; u++) xv[u] = __ldg(x4 + i + 32 * u);
#pragma unroll
        for (int r = 0; r < VF_GEMV_ROWS; r++)
#pragma unroll
            for (int u = 0; u < 4; u++) wv[r][u] = __ldg(w4[r] + i + 32 * u);
#pragma unroll
        for (int r = 0; r < VF_GEMV_ROWS; r++)
#pragma unroll
            for (int u = 0; u < 4; u++) acc[r] += dot8(wv[r][u], xv[u]);
    }
    for (; i < k8; i += 32) {
        uint4 xv = __ldg(x4 + i);
#pragma unroll
        for (int r = 0; r < VF_GEMV_ROWS; r++) acc[r] += dot8(__ldg(w4[r] + i), xv);
    }
#pragma unroll
    for (int r = 0; r < VF_GEMV_ROWS; r++) {
        const float s = warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == 0 && row < M) {
            float v = s;
            if (bias != nullptr) v += bias[row];
            if (residual != nullptr) v += residual[row];
            y[row] = v;
        }
    }
}

extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16(float* y, const bf16_t* __restrict__ W, const bf16_t* __restrict__ x,
             const float* __restrict__ bias, const float* residual, int M, int K) {
    VF_PDL_PROLOGUE();
    gemv_bf16_body(y, W, x, bias, residual, M, K);
}

// As vf_gemv_bf16, its block's first row tile of W prefetched into L2 before the PDL wait (vlmflux.cuda.gemvPrefetch).
extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16_pf(float* y, const bf16_t* __restrict__ W, const bf16_t* __restrict__ x,
             const float* __restrict__ bias, const float* residual, int M, int K) {
    VF_PDL_PREFETCH_PROLOGUE(vf_gemv_prefetch(W, M, K, 0, K, blockIdx.x));
    gemv_bf16_body(y, W, x, bias, residual, M, K);
}

// GEMV with the producer of x fused into a prologue, for the batch-1 decode step (saves one dependent launch each):
//   mode 1 (RMSNorm):  x[i] = bf16(xf[i] * rsqrt(mean(xf^2) + eps) * nw[i])      (as vf_rmsnorm computes it)
//   mode 2 (SiLU-gate): x[i] = bf16(silu(xf[i]) * xf[i + upOff])                   (as vf_silu_mul computes it)
// Every block builds the bf16 x [K] in dynamic shared memory (2*K bytes; x is small and served by L2), then walks
// row tiles of VF_GEMV_WARPS * VF_GEMV_ROWS rows grid-stride with the same 16-byte loads as vf_gemv_bf16.
// y must not overlap xf. grid (min(tiles, cap)), block 32*VF_GEMV_WARPS, shared 2*K bytes. K % 8 == 0; xf and xf + upOff
// 16-byte aligned, nw 8-byte aligned (checked in Java).
__device__ __forceinline__ void gemv_bf16_fused_body(float* y, const bf16_t* __restrict__ W, const float* __restrict__ xf, const bf16_t* __restrict__ nw,
                   int mode, int upOff, float eps, const float* __restrict__ bias, const float* residual, int M, int K) {
    extern __shared__ uint4 vf_gemv_xs[];
    __shared__ float scratch[33];
    bf16_t* xs = reinterpret_cast<bf16_t*>(vf_gemv_xs);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // float4 loads, unrolled so several L2 requests are in flight per thread (the prologue is latency-bound).
    const float4* x4 = reinterpret_cast<const float4*>(xf);
    uint2* xs2 = reinterpret_cast<uint2*>(xs);
    const int K4 = K >> 2;
    if (mode == 1) {
        float ss = 0.f;
#pragma unroll 4
        for (int i = threadIdx.x; i < K4; i += blockDim.x) {
            const float4 v = x4[i];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
        ss = block_sum(ss, scratch);
        const float r = rsqrtf(ss / (float)K + eps);
        const uint2* n2 = reinterpret_cast<const uint2*>(nw);
#pragma unroll 4
        for (int i = threadIdx.x; i < K4; i += blockDim.x) {
            const float4 v = x4[i];
            const uint2 n = n2[i];
            uint2 o;
            o.x = (unsigned int)f2bf(v.x * r * bflo(n.x)) | ((unsigned int)f2bf(v.y * r * bfhi(n.x)) << 16);
            o.y = (unsigned int)f2bf(v.z * r * bflo(n.y)) | ((unsigned int)f2bf(v.w * r * bfhi(n.y)) << 16);
            xs2[i] = o;
        }
    } else {
        const float4* u4 = reinterpret_cast<const float4*>(xf + upOff);
#pragma unroll 4
        for (int i = threadIdx.x; i < K4; i += blockDim.x) {
            const float4 g = x4[i], u = u4[i];
            uint2 o;
            o.x = (unsigned int)f2bf(g.x / (1.f + expf(-g.x)) * u.x) | ((unsigned int)f2bf(g.y / (1.f + expf(-g.y)) * u.y) << 16);
            o.y = (unsigned int)f2bf(g.z / (1.f + expf(-g.z)) * u.z) | ((unsigned int)f2bf(g.w / (1.f + expf(-g.w)) * u.w) << 16);
            xs2[i] = o;
        }
    }
    __syncthreads();
    const int k8 = K >> 3;
    const int tiles = (M + VF_GEMV_WARPS * VF_GEMV_ROWS - 1) / (VF_GEMV_WARPS * VF_GEMV_ROWS);
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int row0 = (tile * VF_GEMV_WARPS + warp) * VF_GEMV_ROWS;
        if (row0 >= M) continue;
        const uint4* w4[VF_GEMV_ROWS];
        float acc[VF_GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < VF_GEMV_ROWS; r++) {
            const int row = min(row0 + r, M - 1);
            w4[r] = reinterpret_cast<const uint4*>(W + (long long)row * K);
            acc[r] = 0.f;
        }
        int i = lane;
        // 8 (then 4) 16-byte loads per row and lane in flight: few blocks per SM at the small decode shapes.
        for (; i + 224 < k8; i += 256) {
            uint4 wv[VF_GEMV_ROWS][8];
#pragma unroll
            for (int r = 0; r < VF_GEMV_ROWS; r++)
#pragma unroll
                for (int u = 0; u < 8; u++) wv[r][u] = ldg_stream(w4[r] + i + 32 * u);
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const uint4 xv = vf_gemv_xs[i + 32 * u];
#pragma unroll
                for (int r = 0; r < VF_GEMV_ROWS; r++) acc[r] += dot8(wv[r][u], xv);
            }
        }
        for (; i + 96 < k8; i += 128) {
            uint4 wv[VF_GEMV_ROWS][4];
#pragma unroll
            for (int r = 0; r < VF_GEMV_ROWS; r++)
#pragma unroll
                for (int u = 0; u < 4; u++) wv[r][u] = __ldg(w4[r] + i + 32 * u);
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const uint4 xv = vf_gemv_xs[i + 32 * u];
#pragma unroll
                for (int r = 0; r < VF_GEMV_ROWS; r++) acc[r] += dot8(wv[r][u], xv);
            }
        }
        for (; i < k8; i += 32) {
            const uint4 xv = vf_gemv_xs[i];
#pragma unroll
            for (int r = 0; r < VF_GEMV_ROWS; r++) acc[r] += dot8(__ldg(w4[r] + i), xv);
        }
#pragma unroll
        for (int r = 0; r < VF_GEMV_ROWS; r++) {
            const float s = warp_sum(acc[r]);
            const int row = row0 + r;
            if (lane == 0 && row < M) {
                float v = s;
                if (bias != nullptr) v += bias[row];
                if (residual != nullptr) v += residual[row];
                y[row] = v;
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16_fused(float* y, const bf16_t* __restrict__ W, const float* __restrict__ xf, const bf16_t* __restrict__ nw,
                   int mode, int upOff, float eps, const float* __restrict__ bias, const float* residual, int M, int K) {
    VF_PDL_PROLOGUE();
    gemv_bf16_fused_body(y, W, xf, nw, mode, upOff, eps, bias, residual, M, K);
}

// As vf_gemv_bf16_fused, its block's first row tile of W prefetched into L2 before the PDL wait (vlmflux.cuda.gemvPrefetch).
extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16_fused_pf(float* y, const bf16_t* __restrict__ W, const float* __restrict__ xf, const bf16_t* __restrict__ nw,
                   int mode, int upOff, float eps, const float* __restrict__ bias, const float* residual, int M, int K) {
    VF_PDL_PREFETCH_PROLOGUE(vf_gemv_prefetch(W, M, K, 0, K, blockIdx.x));
    gemv_bf16_fused_body(y, W, xf, nw, mode, upOff, eps, bias, residual, M, K);
}

// Split-K GEMV for the small-m decode products (one wave of row tiles would leave most SMs with one block): grid
// (tiles, splits), block 32*VF_GEMV_WARPS; block (t, s) owns rows [16t, 16t+16) and the K chunk of 16-byte groups
// [s*chunk8, min(k8, (s+1)*chunk8)). The first batch of weight loads is issued before the x prologue (it does not
// depend on x), so the prologue's L2 latency hides behind DRAM. Partial sums go to ws [splits, M]; the block that
// finishes a tile last (a per-tile ticket in counters, reset to 0 by that block, so graph replays need no memset)
// adds them in split order (deterministic), applies bias / residual (residual may alias y) and writes y.
// x: mode 0 bf16 x [K] in global; mode 1 RMSNorm and mode 2 SiLU-gate from fp32 xf as in vf_gemv_bf16_fused (the
// chunk is built in dynamic shared memory, 16*chunk8 bytes; mode 1 sums squares over all of K in every block).
// chunk8 % 32 == 0 (a K of fewer groups uses one split); counters [tiles] zero on entry.
__device__ __forceinline__ void gemv_bf16_splitk_body(float* y, const bf16_t* __restrict__ W, const void* __restrict__ xin, const bf16_t* __restrict__ nw,
                    int mode, int upOff, float eps, const float* __restrict__ bias, const float* residual, int M, int K,
                    int chunk8, float* __restrict__ ws, unsigned int* __restrict__ counters) {
    extern __shared__ uint4 vf_gemv_xs[];
    __shared__ float scratch[33];
    __shared__ unsigned int isLast;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int tile = blockIdx.x, split = blockIdx.y;
    const int k8 = K >> 3;
    const int b8 = split * chunk8, e8 = min(k8, b8 + chunk8);
    const int row0 = (tile * VF_GEMV_WARPS + warp) * VF_GEMV_ROWS;
    const uint4* w4[VF_GEMV_ROWS];
    float acc[VF_GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < VF_GEMV_ROWS; r++) {
        const int row = min(row0 + r, M - 1);
        w4[r] = reinterpret_cast<const uint4*>(W + (long long)row * K);
        acc[r] = 0.f;
    }
    uint4 wv[VF_GEMV_ROWS][4];
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
    for (int r = 0; r < VF_GEMV_ROWS; r++)
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int idx = b8 + lane + 32 * u;
            wv[r][u] = idx < e8 ? ldg_stream(w4[r] + idx) : zero;
        }
    if (mode != 0) {
        const float* xf = reinterpret_cast<const float*>(xin);
        const float4* x4 = reinterpret_cast<const float4*>(xf);
        uint2* xs2 = reinterpret_cast<uint2*>(vf_gemv_xs);
        const int c4b = b8 * 2, c4e = e8 * 2;   // float4 index range of the chunk
        if (mode == 1) {
            float ss = 0.f;
            const int K4 = K >> 2;
#pragma unroll 4
            for (int i = threadIdx.x; i < K4; i += blockDim.x) {
                const float4 v = x4[i];
                ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            }
            ss = block_sum(ss, scratch);
            const float rs = rsqrtf(ss / (float)K + eps);
            const uint2* n2 = reinterpret_cast<const uint2*>(nw);
            for (int i = c4b + threadIdx.x; i < c4e; i += blockDim.x) {
                const float4 v = x4[i];
                const uint2 n = n2[i];
                uint2 o;
                o.x = (unsigned int)f2bf(v.x * rs * bflo(n.x)) | ((unsigned int)f2bf(v.y * rs * bfhi(n.x)) << 16);
                o.y = (unsigned int)f2bf(v.z * rs * bflo(n.y)) | ((unsigned int)f2bf(v.w * rs * bfhi(n.y)) << 16);
                xs2[i - c4b] = o;
            }
        } else {
            const float4* u4 = reinterpret_cast<const float4*>(xf + upOff);
            for (int i = c4b + threadIdx.x; i < c4e; i += blockDim.x) {
                const float4 g = x4[i], u = u4[i];
                uint2 o;
                o.x = (unsigned int)f2bf(g.x / (1.f + expf(-g.x)) * u.x) | ((unsigned int)f2bf(g.y / (1.f + expf(-g.y)) * u.y) << 16);
                o.y = (unsigned int)f2bf(g.z / (1.f + expf(-g.z)) * u.z) | ((unsigned int)f2bf(g.w / (1.f + expf(-g.w)) * u.w) << 16);
                xs2[i - c4b] = o;
            }
        }
        __syncthreads();
    }
    const uint4* xg = reinterpret_cast<const uint4*>(xin);
    for (int base = b8;;) {
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int idx = base + lane + 32 * u;
            if (idx < e8) {
                const uint4 xv = mode == 0 ? __ldg(xg + idx) : vf_gemv_xs[idx - b8];
#pragma unroll
                for (int r = 0; r < VF_GEMV_ROWS; r++) acc[r] += dot8(wv[r][u], xv);
            }
        }
        base += 128;
        if (base >= e8) break;
#pragma unroll
        for (int r = 0; r < VF_GEMV_ROWS; r++)
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int idx = base + lane + 32 * u;
                wv[r][u] = idx < e8 ? ldg_stream(w4[r] + idx) : zero;
            }
    }
#pragma unroll
    for (int r = 0; r < VF_GEMV_ROWS; r++) {
        const float s = warp_sum(acc[r]);
        const int row = row0 + r;
        if (lane == 0 && row < M) ws[(long long)split * M + row] = s;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) isLast = atomicAdd(counters + tile, 1u) == gridDim.y - 1;
    __syncthreads();
    if (!isLast) return;
    __threadfence();
    const int rows = VF_GEMV_WARPS * VF_GEMV_ROWS;
    if (threadIdx.x < rows) {
        const int row = tile * rows + threadIdx.x;
        if (row < M) {
            float v = 0.f;
#pragma unroll 4
            for (int s = 0; s < (int)gridDim.y; s++) v += __ldcg(ws + (long long)s * M + row);
            if (bias != nullptr) v += bias[row];
            if (residual != nullptr) v += residual[row];
            y[row] = v;
        }
    }
    if (threadIdx.x == 0) counters[tile] = 0u;
}

extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16_splitk(float* y, const bf16_t* __restrict__ W, const void* __restrict__ xin, const bf16_t* __restrict__ nw,
                    int mode, int upOff, float eps, const float* __restrict__ bias, const float* residual, int M, int K,
                    int chunk8, float* __restrict__ ws, unsigned int* __restrict__ counters) {
    VF_PDL_PROLOGUE();
    gemv_bf16_splitk_body(y, W, xin, nw, mode, upOff, eps, bias, residual, M, K, chunk8, ws, counters);
}

// As vf_gemv_bf16_splitk, its block's first row tile of W prefetched into L2 before the PDL wait (vlmflux.cuda.gemvPrefetch).
extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16_splitk_pf(float* y, const bf16_t* __restrict__ W, const void* __restrict__ xin, const bf16_t* __restrict__ nw,
                    int mode, int upOff, float eps, const float* __restrict__ bias, const float* residual, int M, int K,
                    int chunk8, float* __restrict__ ws, unsigned int* __restrict__ counters) {
    VF_PDL_PREFETCH_PROLOGUE(vf_gemv_prefetch(W, M, K, 8 * blockIdx.y * chunk8, min(K, 8 * (blockIdx.y + 1) * chunk8), blockIdx.x));
    gemv_bf16_splitk_body(y, W, xin, nw, mode, upOff, eps, bias, residual, M, K, chunk8, ws, counters);
}

// ---------------------------------------------------------------------------------------------------------------
// Skinny GEMM for a batched decode step (the row tables of rope.cu do not concern it): y [B, m] = x [B, k] W^T (+ y when accumulate) (+ bias), B = 2..8 rows.
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

// Pulls [p, p + bytes) into L2 and changes no memory (vlmflux.cuda.decodePrefetchMiB): a decode step's side stream runs
// it while the latency-bound kernels of a layer (rope, attention, its combine, SiLU) leave DRAM idle, so the products
// after them find their weights in L2. sm_90+: one bulk (TMA) prefetch per 16 KiB chunk, p 16-byte aligned; older GPUs:
// one prefetch instruction per 128-byte line. Grid-stride over the chunks.
extern "C" __global__ void __launch_bounds__(128) vf_l2_prefetch(const char* __restrict__ p, long long bytes) {
    const long long chunk = 16384;
    const long long n = (bytes + chunk - 1) / chunk;
    for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < n; c += (long long)gridDim.x * blockDim.x) {
        const char* a = p + c * chunk;
        const long long len = min(chunk, bytes - c * chunk);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        const unsigned int n16 = (unsigned int)(len & ~15LL);
        if (n16 > 0) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a), "r"(n16) : "memory");
#else
        for (long long o = 0; o < len; o += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(a + o));
#endif
    }
}
