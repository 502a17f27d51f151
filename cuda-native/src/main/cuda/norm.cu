// RMSNorm over rows of the fp32 residual stream, optionally fused with the residual add.
#include "common.cuh"

// If delta != nullptr: x[row] += delta[row] (written back), then out[row] = bf16(x * rsqrt(mean(x^2) + eps) * w).
// grid (rows), block 256..1024 (multiple of 32).
extern "C" __global__ void vf_rmsnorm(bf16_t* __restrict__ out, float* __restrict__ x, const float* __restrict__ delta,
                                      const bf16_t* __restrict__ w, int hidden, float eps) {
    VF_PDL_PROLOGUE();
    __shared__ float scratch[33];
    const long long base = (long long)blockIdx.x * hidden;
    float* xr = x + base;
    float ss = 0.f;
    if (delta != nullptr) {
        const float* dr = delta + base;
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
            float v = xr[i] + dr[i];
            xr[i] = v;
            ss += v * v;
        }
    } else {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) { float v = xr[i]; ss += v * v; }
    }
    ss = block_sum(ss, scratch);
    const float r = rsqrtf(ss / (float)hidden + eps);
    bf16_t* o = out + base;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = f2bf(xr[i] * r * bf2f(w[i]));
}

// Same, fp32 output (used where the normalized value stays in fp32, e.g. a final norm checked against the CPU).
extern "C" __global__ void vf_rmsnorm_f32(float* __restrict__ out, const float* __restrict__ x,
                                          const bf16_t* __restrict__ w, int hidden, float eps) {
    __shared__ float scratch[33];
    const long long base = (long long)blockIdx.x * hidden;
    const float* xr = x + base;
    float ss = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) { float v = xr[i]; ss += v * v; }
    ss = block_sum(ss, scratch);
    const float r = rsqrtf(ss / (float)hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[base + i] = xr[i] * r * bf2f(w[i]);
}
