// W4A16 (4-bit weights, bf16 activations) kernels for decode and prefill.
//
// Device layout (built at load by io.vlmflux.cuda.gpu.Int4Device from cpu.Int4Weights' canonical form):
//   q     uint32 [M, K/8] row-major: word p of row r holds canonical input columns 8p..8p+7, column 8p+j in bits 4j..4j+3.
//         One 16-byte load (uint4) of a lane covers 32 consecutive columns of one row, consecutive lanes read
//         consecutive 16 bytes: a warp reads 512 contiguous bytes of a row per step (coalesced). K % 32 == 0.
//   sz    fp16 pairs [M, G] (uint32, low half scale, high half zero): (scale, zero) of group g of row r, w = (q - zero) * scale; G = K / gs, gs % 32 == 0 (per-channel: gs = K), so the
//         32 columns of one uint4 share one group (column c belongs to group c / gs in canonical order).
//   perm  act-order (GPTQ desc_act) only: int32 [P, K], canonical column c of a row of part p reads input column
//         perm[p*K + c]; decode gathers x through each part's row first (vf_int4_gather_rows: [P, n, K]), the prefill
//         dequantization scatters through it, so W^T sees the original order. Parts: linears fused along the output
//         rows (q/k/v, gate/up) each keep their own permutation (GPTQ stores one g_idx per linear); part p spans rows
//         [s_p, s_{p+1}) with s_0 = 0 and the launch passing s_1, s_2, s_3 (M for absent parts): P <= 4. One shared
//         permutation (or none) is P = 1, s_1 = s_2 = s_3 = M.
// Dequantization is fused into the weight loads: a nibble becomes the float 2^23 + q by OR-ing exponent bits (exact),
// one FADD subtracts 2^23 + zero, one FFMA accumulates against x; per 32 columns the group scale multiplies once.
#include "common.cuh"

#define VF_INT4_WARPS 8
#define VF_INT4_ROWS 2

__device__ __forceinline__ uint4 int4_ldg_stream(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// (low half, high half) of a pair of fp16 bit patterns as floats (no cuda_fp16.h: NVRTC builds without include paths).
__device__ __forceinline__ float2 int4_h2f2(unsigned int v) {
    float a, b;
    asm("{.reg .b16 lo, hi;\n\tmov.b32 {lo, hi}, %2;\n\tcvt.f32.f16 %0, lo;\n\tcvt.f32.f16 %1, hi;}" : "=f"(a), "=f"(b) : "r"(v));
    return make_float2(a, b);
}

// sum_j (q_j - zero) * x_j over the 8 nibbles of word w and the 8 bf16 of xv; zb = 2^23 + zero.
__device__ __forceinline__ float int4_dot8(unsigned int w, uint4 xv, float zb, float acc) {
    const unsigned int xs[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float q0 = __uint_as_float(((w >> (8 * i)) & 0xfu) | 0x4b000000u) - zb;
        const float q1 = __uint_as_float(((w >> (8 * i + 4)) & 0xfu) | 0x4b000000u) - zb;
        acc = fmaf(q0, __uint_as_float(xs[i] << 16), acc);
        acc = fmaf(q1, __uint_as_float(xs[i] & 0xffff0000u), acc);
    }
    return acc;
}

// Part (0..3) of row `row` given the first rows s1 <= s2 <= s3 of parts 1..3 (see perm above).
__device__ __forceinline__ int int4_part(int row, int s1, int s2, int s3) {
    return (row >= s1) + (row >= s2) + (row >= s3);
}

// y [B, ldy] rows b: y[b*ldy + r] = sum_c W[r, c] x[b*ldx + c] (+ bias[r]) (+ residual[b*ldy + r]); residual may alias y.
// x bf16 in canonical column order (gathered through perm when act-order), 16-byte aligned rows (ldx % 8 == 0).
// One warp serves NR rows from row0 (< M), all with the same x (one part).
template <int B, int NR>
__device__ __forceinline__ void int4_gemv(float* y, int ldy, const unsigned int* __restrict__ q, const unsigned int* __restrict__ sz,
                                          const bf16_t* __restrict__ x, int ldx, int row0,
                                          const float* __restrict__ bias, const float* residual, int M, int K, int gs) {
    const int lane = threadIdx.x & 31;
    const int k32 = K >> 5, G = K / gs, g32 = gs >> 5;   // 32-column chunks per group
    const uint4* w4[NR];
    const unsigned int* szr[NR];
    float acc[NR][B];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const int row = min(row0 + r, M - 1);
        w4[r] = reinterpret_cast<const uint4*>(q + (long long)row * (K >> 3));
        szr[r] = sz + (long long)row * G;
#pragma unroll
        for (int b = 0; b < B; b++) acc[r][b] = 0.f;
    }
    for (int i = lane; i < k32; i += 64) {
        uint4 wv[NR][2];
        float2 scz[NR][2];
        const bool two = i + 32 < k32;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            wv[r][0] = int4_ldg_stream(w4[r] + i);
            wv[r][1] = two ? int4_ldg_stream(w4[r] + i + 32) : make_uint4(0u, 0u, 0u, 0u);
            scz[r][0] = int4_h2f2(szr[r][i / g32]);
            scz[r][1] = two ? int4_h2f2(szr[r][(i + 32) / g32]) : make_float2(0.f, 0.f);
        }
#pragma unroll
        for (int u = 0; u < 2; u++) {
            if (u == 1 && !two) break;
            const int c = i + 32 * u;   // uint4 index: columns 32c .. 32c+31
#pragma unroll
            for (int b = 0; b < B; b++) {
                const uint4* xr = reinterpret_cast<const uint4*>(x + (long long)b * ldx) + 4 * c;
                const uint4 x0 = __ldg(xr), x1 = __ldg(xr + 1), x2 = __ldg(xr + 2), x3 = __ldg(xr + 3);
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    const float zb = 8388608.f + scz[r][u].y;
                    float d = int4_dot8(wv[r][u].x, x0, zb, 0.f);
                    d = int4_dot8(wv[r][u].y, x1, zb, d);
                    d = int4_dot8(wv[r][u].z, x2, zb, d);
                    d = int4_dot8(wv[r][u].w, x3, zb, d);
                    acc[r][b] = fmaf(scz[r][u].x, d, acc[r][b]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const int row = row0 + r;
#pragma unroll
        for (int b = 0; b < B; b++) {
            const float s = warp_sum(acc[r][b]);
            if (lane == 0 && row < M) {
                float v = s;
                if (bias != nullptr) v += bias[row];
                if (residual != nullptr) v += residual[(long long)b * ldy + row];
                y[(long long)b * ldy + row] = v;
            }
        }
    }
}

// grid ceil(M / (WARPS*ROWS)), block 32*WARPS: warp w of block k serves rows row0 = (k*WARPS + w)*ROWS ..+ROWS-1.
// Graph-capturable: no host sync, no atomics, no workspace.
#define VF_INT4_GEMV_INSTANCE(B)                                                                                         \
    extern "C" __global__ void __launch_bounds__(32 * VF_INT4_WARPS) vf_int4_gemv_b##B(                                   \
        float* y, int ldy, const unsigned int* q, const unsigned int* sz, const bf16_t* x, int ldx, const float* bias,        \
        const float* residual, int M, int K, int gs) {                                                                   \
        const int row0 = (blockIdx.x * VF_INT4_WARPS + (threadIdx.x >> 5)) * VF_INT4_ROWS;                                \
        if (row0 >= M) return;                                                                                           \
        int4_gemv<B, VF_INT4_ROWS>(y, ldy, q, sz, x, ldx, row0, bias, residual, M, K, gs);                                \
    }

// Act-order matrices fused from linears with different permutations: as vf_int4_gemv_b##B, the rows of part p reading
// x + p*xps (the gathered copy of their part, see perm above; s1..s3 the first rows of parts 1..3). A warp whose two
// rows straddle a part boundary (one that is not a multiple of VF_INT4_ROWS; warp-uniform) serves them one at a time.
// Kept apart from vf_int4_gemv_b##B so that the common kernels (no act-order, or one permutation) stay as they were.
#define VF_INT4_GEMV_PARTS_INSTANCE(B)                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * VF_INT4_WARPS) vf_int4_gemv_parts_b##B(                             \
        float* y, int ldy, const unsigned int* q, const unsigned int* sz, const bf16_t* x, int ldx, long long xps,        \
        int s1, int s2, int s3, const float* bias, const float* residual, int M, int K, int gs) {                        \
        const int row0 = (blockIdx.x * VF_INT4_WARPS + (threadIdx.x >> 5)) * VF_INT4_ROWS;                                \
        if (row0 >= M) return;                                                                                           \
        const int p0 = int4_part(row0, s1, s2, s3);                                                                      \
        if (p0 == int4_part(min(row0 + VF_INT4_ROWS - 1, M - 1), s1, s2, s3)) {                                          \
            int4_gemv<B, VF_INT4_ROWS>(y, ldy, q, sz, x + p0 * xps, ldx, row0, bias, residual, M, K, gs);                 \
        } else {                                                                                                         \
            for (int r = row0; r < min(row0 + VF_INT4_ROWS, M); r++)                                                     \
                int4_gemv<B, 1>(y, ldy, q, sz, x + int4_part(r, s1, s2, s3) * xps, ldx, r, bias, residual, M, K, gs);     \
        }                                                                                                                \
    }

VF_INT4_GEMV_INSTANCE(1)
VF_INT4_GEMV_INSTANCE(2)
VF_INT4_GEMV_INSTANCE(3)
VF_INT4_GEMV_INSTANCE(4)
VF_INT4_GEMV_INSTANCE(5)
VF_INT4_GEMV_INSTANCE(6)
VF_INT4_GEMV_INSTANCE(7)
VF_INT4_GEMV_INSTANCE(8)
VF_INT4_GEMV_PARTS_INSTANCE(1)
VF_INT4_GEMV_PARTS_INSTANCE(2)
VF_INT4_GEMV_PARTS_INSTANCE(3)
VF_INT4_GEMV_PARTS_INSTANCE(4)
VF_INT4_GEMV_PARTS_INSTANCE(5)
VF_INT4_GEMV_PARTS_INSTANCE(6)
VF_INT4_GEMV_PARTS_INSTANCE(7)
VF_INT4_GEMV_PARTS_INSTANCE(8)

// xp [P, n, K]: xp[(p*n + b)*K + c] = x[b*ldx + perm[p*K + c]] (canonical column c of part p <- input column), bf16.
// grid (ceil(K / 256), n, P), block 256.
extern "C" __global__ void vf_int4_gather_rows(bf16_t* __restrict__ xp, const bf16_t* __restrict__ x, int ldx,
                                               const int* __restrict__ perm, int K) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= K) return;
    const long long b = blockIdx.y, p = blockIdx.z;
    xp[(p * gridDim.y + b) * K + c] = x[b * ldx + perm[p * K + c]];
}

// Prefill: W bf16 [M, K] (row r at W + r*K, input columns in checkpoint order) = dequantized q. One thread per packed
// word (8 columns); without perm one 16-byte store per thread, with perm 8 scattered 2-byte stores (row r through its
// part's permutation, s1..s3 as for the GEMV).
// grid ceil(M*K/8 / 256), block 256.
extern "C" __global__ void vf_int4_dequant_bf16(bf16_t* __restrict__ W, const unsigned int* __restrict__ q,
                                                const unsigned int* __restrict__ sz, const int* __restrict__ perm,
                                                int s1, int s2, int s3, int M, int K, int gs) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int k8 = K >> 3;
    if (t >= (long long)M * k8) return;
    const int r = (int)(t / k8), p = (int)(t - (long long)r * k8);
    const unsigned int w = q[t];
    const float2 s = int4_h2f2(sz[(long long)r * (K / gs) + (8 * p) / gs]);
    unsigned short h[8];
#pragma unroll
    for (int j = 0; j < 8; j++) h[j] = f2bf(((float)((w >> (4 * j)) & 0xfu) - s.y) * s.x);
    if (perm == nullptr) {
        uint4 o;
        o.x = (unsigned int)h[0] | ((unsigned int)h[1] << 16);
        o.y = (unsigned int)h[2] | ((unsigned int)h[3] << 16);
        o.z = (unsigned int)h[4] | ((unsigned int)h[5] << 16);
        o.w = (unsigned int)h[6] | ((unsigned int)h[7] << 16);
        reinterpret_cast<uint4*>(W)[t] = o;
    } else {
        bf16_t* row = W + (long long)r * K;
        const int* pr = perm + (long long)int4_part(r, s1, s2, s3) * K;
#pragma unroll
        for (int j = 0; j < 8; j++) reinterpret_cast<unsigned short*>(row)[pr[8 * p + j]] = h[j];
    }
}
