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

// grid (ceil(M / (WARPS*ROWS))), block 32*WARPS. bias / residual may be null; residual may alias y.
extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16(float* y, const bf16_t* __restrict__ W, const bf16_t* __restrict__ x,
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

// GEMV with the producer of x fused into a prologue, for the batch-1 decode step (saves one dependent launch each):
//   mode 1 (RMSNorm):  x[i] = bf16(xf[i] * rsqrt(mean(xf^2) + eps) * nw[i])      (as vf_rmsnorm computes it)
//   mode 2 (SiLU-gate): x[i] = bf16(silu(xf[i]) * xf[i + upOff])                   (as vf_silu_mul computes it)
// Every block builds the bf16 x [K] in dynamic shared memory (2*K bytes; x is small and served by L2), then walks
// row tiles of VF_GEMV_WARPS * VF_GEMV_ROWS rows grid-stride with the same 16-byte loads as vf_gemv_bf16.
// y must not overlap xf. grid (min(tiles, cap)), block 32*VF_GEMV_WARPS, shared 2*K bytes. K % 8 == 0; xf and xf + upOff
// 16-byte aligned, nw 8-byte aligned (checked in Java).
extern "C" __global__ void __launch_bounds__(32 * VF_GEMV_WARPS)
vf_gemv_bf16_fused(float* y, const bf16_t* __restrict__ W, const float* __restrict__ xf, const bf16_t* __restrict__ nw,
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
