// Elementwise ops: SiLU-gate, residual add, dtype casts.
#include "common.cuh"

// out[r, i] = bf16(silu(gate[r*gs + i]) * up[r*us + i]) for i < inter. Strides let gate/up be halves of one fused
// [rows, 2*inter] projection. grid (ceil(inter/256), rows), block 256.
extern "C" __global__ void vf_silu_mul(bf16_t* __restrict__ out, const float* __restrict__ gate,
                                       const float* __restrict__ up, int inter, int gateStride, int upStride) {
    VF_PDL_PROLOGUE();
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y;
    if (i >= inter) return;
    const float g = gate[(long long)r * gateStride + i];
    const float u = up[(long long)r * upStride + i];
    const float s = g / (1.f + expf(-g));
    out[(long long)r * inter + i] = f2bf(s * u);
}

// vf_silu_mul with bf16 gate/up (a prefill whose gate/up product writes bf16, as Hugging Face's does): half the bytes of
// the widest activation read and written per layer. Same math in fp32, one rounding of the product.
extern "C" __global__ void vf_silu_mul_bf16(bf16_t* __restrict__ out, const bf16_t* __restrict__ gate,
                                            const bf16_t* __restrict__ up, int inter, int gateStride, int upStride) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y;
    if (i >= inter) return;
    const float g = bf2f(gate[(long long)r * gateStride + i]);
    const float u = bf2f(up[(long long)r * upStride + i]);
    const float s = g / (1.f + expf(-g));
    out[(long long)r * inter + i] = f2bf(s * u);
}

// x[i] += y[i]. grid-stride.
extern "C" __global__ void vf_add_f32(float* __restrict__ x, const float* __restrict__ y, long long n) {
    VF_PDL_PROLOGUE();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] += y[i];
}

extern "C" __global__ void vf_f32_to_bf16(bf16_t* __restrict__ out, const float* __restrict__ in, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = f2bf(in[i]);
}

extern "C" __global__ void vf_bf16_to_f32(float* __restrict__ out, const bf16_t* __restrict__ in, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = bf2f(in[i]);
}

// y[r, i] += b[i] for r < rows, i < m (bias after a cuBLAS GEMM). grid-stride over rows*m.
extern "C" __global__ void vf_add_bias_rows(float* __restrict__ y, const float* __restrict__ b, int rows, int m) {
    const long long total = (long long)rows * m;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
        y[i] += b[i % m];
}
