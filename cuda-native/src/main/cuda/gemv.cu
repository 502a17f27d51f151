// Batch-1 matrix-vector product for decode: y = W x (+ bias) (+ residual), W bf16 row-major [M, K], x bf16 [K],
// fp32 accumulation and output. 16-byte loads of W and x: K % 8 == 0 and 16-byte aligned rows (checked in Java).
// Each warp owns ROWS rows so several independent 16-byte loads are in flight per lane.
#include "common.cuh"

#define VF_GEMV_ROWS 2
#define VF_GEMV_WARPS 8

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
