// Vision-tower kernels (Qwen2-VL / Qwen2.5-VL / Qwen3-VL ViT): row norms with fused residual + bias add, bias + activation
// epilogues of the cuBLAS GEMMs, Qwen3-VL's interpolated position embeddings, 2-D rotary that splits qkv into bf16 q/k/v, row gather / scatter for the
// window permutation, and segment attention (cu_seqlens, no padding) on tensor cores (mma.sync m16n8k16 bf16).
// Conventions: residual stream fp32 [n, d]; GEMM inputs bf16; biases and norm weights fp32.
#include "common.cuh"

struct __align__(16) vf_u4 { unsigned int x, y, z, w; };  // 16-byte copies without CUDA headers (NVRTC)
struct __align__(16) vf_f4 { float x, y, z, w; };

// Activation codes shared with io.vlmflux.cuda.gpu.VisionGpuOps.Act.
#define VF_ACT_SILU 0
#define VF_ACT_QUICK_GELU 1
#define VF_ACT_GELU 2
#define VF_ACT_GELU_TANH 3

__device__ __forceinline__ float vf_act(float x, int act) {
    switch (act) {
        case VF_ACT_QUICK_GELU: return x / (1.f + expf(-1.702f * x));
        case VF_ACT_GELU: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
        case VF_ACT_GELU_TANH: {
            const float c = 0.7978845608028654f;
            return 0.5f * x * (1.f + tanhf(c * (x + 0.044715f * x * x * x)));
        }
        default: return x / (1.f + expf(-x));
    }
}

// The norms' residual add, 4 values at column i of a row (xr = x + base): x += delta (+ dbias) in place where delta is
// given; returns the row's values after it.
__device__ __forceinline__ vf_f4 vf_vis_add4(float* __restrict__ xr, const float* __restrict__ delta, const float* __restrict__ dbias,
                                             long long base, int i) {
    vf_f4 v = *(const vf_f4*)(xr + i);
    if (delta != nullptr) {
        const vf_f4 dd = *(const vf_f4*)(delta + base + i);
        v.x += dd.x; v.y += dd.y; v.z += dd.z; v.w += dd.w;
        if (dbias != nullptr) {
            const vf_f4 db = *(const vf_f4*)(dbias + i);
            v.x += db.x; v.y += db.y; v.z += db.z; v.w += db.w;
        }
        *(vf_f4*)(xr + i) = v;
    }
    return v;
}

// If delta != null: x[row] += delta[row] (+ dbias) in place. Then out bf16 = norm(x) * w (+ b).
// rms != 0: RMSNorm; else LayerNorm (mean and variance over the row, biased variance). grid (rows), block 256.
extern "C" __global__ void vf_vis_norm(bf16_t* __restrict__ out, float* __restrict__ x, const float* __restrict__ delta,
                                       const float* __restrict__ dbias, const float* __restrict__ w,
                                       const float* __restrict__ b, int hidden, float eps, int rms) {
    __shared__ float scratch[33];
    const long long base = (long long)blockIdx.x * hidden;
    float* xr = x + base;
    float s = 0.f, ss = 0.f;
    if ((hidden & 3) == 0) {  // 16-byte loads (arena buffers are 256-byte aligned, rows 16-byte aligned)
        for (int i = threadIdx.x * 4; i < hidden; i += blockDim.x * 4) {
            const vf_f4 v = vf_vis_add4(xr, delta, dbias, base, i);
            s += v.x + v.y + v.z + v.w;
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
            float v = xr[i];
            if (delta != nullptr) {
                v += delta[base + i];
                if (dbias != nullptr) v += dbias[i];
                xr[i] = v;
            }
            s += v;
            ss += v * v;
        }
    }
    float mean = 0.f, r;
    if (rms) {
        ss = block_sum(ss, scratch);
        r = rsqrtf(ss / (float)hidden + eps);
    } else {
        s = block_sum(s, scratch);
        mean = s / (float)hidden;
        float dv = 0.f;
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) { float t = xr[i] - mean; dv += t * t; }
        dv = block_sum(dv, scratch);
        r = rsqrtf(dv / (float)hidden + eps);
    }
    bf16_t* o = out + base;
    if ((hidden & 3) == 0) {
        for (int i = threadIdx.x * 4; i < hidden; i += blockDim.x * 4) {
            const vf_f4 v = *(const vf_f4*)(xr + i), ww = *(const vf_f4*)(w + i);
            float y0 = (v.x - mean) * r * ww.x, y1 = (v.y - mean) * r * ww.y, y2 = (v.z - mean) * r * ww.z, y3 = (v.w - mean) * r * ww.w;
            if (b != nullptr) { const vf_f4 bb = *(const vf_f4*)(b + i); y0 += bb.x; y1 += bb.y; y2 += bb.z; y3 += bb.w; }
            unsigned int* op = (unsigned int*)(o + i);  // 8-byte aligned: i % 4 == 0 and rows start 8-byte aligned
            op[0] = (unsigned int)f2bf(y0) | ((unsigned int)f2bf(y1) << 16);
            op[1] = (unsigned int)f2bf(y2) | ((unsigned int)f2bf(y3) << 16);
        }
        return;
    }
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float v = (xr[i] - mean) * r * w[i];
        if (b != nullptr) v += b[i];
        o[i] = f2bf(v);
    }
}

// vf_vis_norm with one warp a row and the row in registers between the residual add, the statistics and the output
// (vf_vis_norm reads it twice and reduces through shared memory with 256 threads for 1,024-1,280 values): rows of at
// most 128 * V fp32 (V 16-byte vectors a lane: vf_vis_norm_warpV for V = 8, 10, 12, 16), hidden % 4 == 0, x / delta /
// dbias / w / b 16-byte aligned. Each output element is computed as in vf_vis_norm; the statistics add in another
// order. grid (ceil(rows / 8)), block 256 (8 rows).
template <int VF_NORM_WARP_V>
__device__ __forceinline__ void vf_vis_norm_warp(bf16_t* __restrict__ out, float* __restrict__ x,
                                                 const float* __restrict__ delta, const float* __restrict__ dbias,
                                                 const float* __restrict__ w, const float* __restrict__ b,
                                                 int rows, int hidden, float eps, int rms) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
    if (row >= rows) return;
    const long long base = row * hidden;
    float* xr = x + base;
    vf_f4 v[VF_NORM_WARP_V];
    float s = 0.f, ss = 0.f;
#pragma unroll
    for (int j = 0; j < VF_NORM_WARP_V; j++) {
        const int i = (j * 32 + lane) * 4;
        if (i < hidden) {
            const vf_f4 t = vf_vis_add4(xr, delta, dbias, base, i);
            v[j] = t;
            s += t.x + t.y + t.z + t.w;
            ss += t.x * t.x + t.y * t.y + t.z * t.z + t.w * t.w;
        }
    }
    float mean = 0.f, r;
    if (rms) {
        r = rsqrtf(warp_sum(ss) / (float)hidden + eps);
    } else {
        mean = warp_sum(s) / (float)hidden;
        float dv = 0.f;
#pragma unroll
        for (int j = 0; j < VF_NORM_WARP_V; j++) {
            if ((j * 32 + lane) * 4 < hidden) {
                const float a0 = v[j].x - mean, a1 = v[j].y - mean, a2 = v[j].z - mean, a3 = v[j].w - mean;
                dv += a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3;
            }
        }
        r = rsqrtf(warp_sum(dv) / (float)hidden + eps);
    }
    bf16_t* o = out + base;
#pragma unroll
    for (int j = 0; j < VF_NORM_WARP_V; j++) {
        const int i = (j * 32 + lane) * 4;
        if (i < hidden) {
            const vf_f4 ww = *(const vf_f4*)(w + i);
            float y0 = (v[j].x - mean) * r * ww.x, y1 = (v[j].y - mean) * r * ww.y, y2 = (v[j].z - mean) * r * ww.z, y3 = (v[j].w - mean) * r * ww.w;
            if (b != nullptr) { const vf_f4 bb = *(const vf_f4*)(b + i); y0 += bb.x; y1 += bb.y; y2 += bb.z; y3 += bb.w; }
            unsigned int* op = (unsigned int*)(o + i);
            op[0] = (unsigned int)f2bf(y0) | ((unsigned int)f2bf(y1) << 16);
            op[1] = (unsigned int)f2bf(y2) | ((unsigned int)f2bf(y3) << 16);
        }
    }
}

#define VF_VIS_NORM_WARP(V)                                                                                            \
    extern "C" __global__ void __launch_bounds__(256) vf_vis_norm_warp##V(                                             \
        bf16_t* __restrict__ out, float* __restrict__ x, const float* __restrict__ delta, const float* __restrict__ dbias, \
        const float* __restrict__ w, const float* __restrict__ b, int rows, int hidden, float eps, int rms) {          \
        vf_vis_norm_warp<V>(out, x, delta, dbias, w, b, rows, hidden, eps, rms);                                       \
    }
VF_VIS_NORM_WARP(8)
VF_VIS_NORM_WARP(10)
VF_VIS_NORM_WARP(12)
VF_VIS_NORM_WARP(16)

// gated: out[r, i] = bf16(act(in[r, i] + bias[i]) * (in[r, cols + i] + bias[cols + i]))  (in = [gate | up] rows)
// else:  out[r, i] = bf16(act(in[r, i] + bias[i])).  in row stride = inStride elements. grid (ceil(cols/256), rows).
// inBf16 != 0: `in` holds bf16 values (a GEMM with bf16 output) instead of fp32.
extern "C" __global__ void vf_vis_bias_act(bf16_t* __restrict__ out, const void* __restrict__ in, const float* __restrict__ bias,
                                           int cols, int inStride, int act, int gated, int inBf16) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= cols) return;
    const long long r = blockIdx.y;
    const long long o0 = r * inStride + i, o1 = o0 + cols;
    float g = inBf16 ? bf2f(((const bf16_t*)in)[o0]) : ((const float*)in)[o0];
    g += bias != nullptr ? bias[i] : 0.f;
    float v = vf_act(g, act);
    if (gated) {
        float u = inBf16 ? bf2f(((const bf16_t*)in)[o1]) : ((const float*)in)[o1];
        v *= u + (bias != nullptr ? bias[cols + i] : 0.f);
    }
    out[r * cols + i] = f2bf(v);
}

// vf_vis_bias_act for bf16 input, 8 columns per thread with 16-byte loads/stores: cols % 8 == 0, inStride % 8 == 0.
// grid (ceil(cols/8/256), rows).
extern "C" __global__ void vf_vis_bias_act_x8(bf16_t* __restrict__ out, const bf16_t* __restrict__ in, const float* __restrict__ bias,
                                              int cols, int inStride, int act, int gated) {
    const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= cols) return;
    const long long r = blockIdx.y;
    const vf_u4 gw = *(const vf_u4*)(in + r * inStride + i);
    vf_u4 uw;
    if (gated) uw = *(const vf_u4*)(in + r * inStride + cols + i);
    const unsigned int ga[4] = {gw.x, gw.y, gw.z, gw.w};
    const unsigned int ua[4] = {gated ? uw.x : 0u, gated ? uw.y : 0u, gated ? uw.z : 0u, gated ? uw.w : 0u};
    unsigned int o[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int c = i + 2 * j;
        float g0 = bflo(ga[j]), g1 = bfhi(ga[j]);
        if (bias != nullptr) { g0 += bias[c]; g1 += bias[c + 1]; }
        float v0 = vf_act(g0, act), v1 = vf_act(g1, act);
        if (gated) {
            float u0 = bflo(ua[j]), u1 = bfhi(ua[j]);
            if (bias != nullptr) { u0 += bias[cols + c]; u1 += bias[cols + c + 1]; }
            v0 *= u0; v1 *= u1;
        }
        o[j] = (unsigned int)f2bf(v0) | ((unsigned int)f2bf(v1) << 16);
    }
    vf_u4 ow;
    ow.x = o[0]; ow.y = o[1]; ow.z = o[2]; ow.w = o[3];
    *(vf_u4*)(out + r * cols + i) = ow;
}

// out[dst(k)] = in[k] (+ bias) for rows of `cols` fp32, dst(k) = index[k] (scatter) or k when index == null;
// optional bf16 copy of the output. grid (ceil(cols/256), rows).
extern "C" __global__ void vf_vis_bias_scatter(float* __restrict__ out, bf16_t* __restrict__ outBf16,
                                               const float* __restrict__ in, const float* __restrict__ bias,
                                               const int* __restrict__ index, int cols) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= cols) return;
    const long long k = blockIdx.y;
    const long long d = index != nullptr ? (long long)index[k] : k;
    float v = in[k * cols + i] + (bias != nullptr ? bias[i] : 0.f);
    out[d * cols + i] = v;
    if (outBf16 != nullptr) outBf16[d * cols + i] = f2bf(v);
}

// out[k] = in[index[k]] for units of `unit` fp32 values (the window permutation). grid (ceil(unit/256), units).
extern "C" __global__ void vf_vis_gather_units(float* __restrict__ out, const float* __restrict__ in,
                                               const int* __restrict__ index, int unit) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= unit) return;
    const long long k = blockIdx.y;
    out[k * unit + i] = in[(long long)index[k] * unit + i];
}

// Qwen3-VL patch embedding epilogue: h[r] += bias (may be null), then += the bilinear blend of four rows of the
// learned position table: table fp32 [positions, hidden], index int32 [rows, 4] and weight fp32 [rows, 4] (corners
// top-left, top-right, bottom-left, bottom-right, summed in that order as transformers' fast_pos_embed_interpolate).
// grid (rows, ceil(hidden/256)), block 256.
extern "C" __global__ void vf_vis_pos_embed_add(float* __restrict__ h, const float* __restrict__ bias, const float* __restrict__ table,
                                                const int* __restrict__ index, const float* __restrict__ weight, int hidden) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= hidden) return;
    const long long r = blockIdx.x;
    const int* ix = index + 4 * r;
    const float* w = weight + 4 * r;
    float v = h[r * hidden + c];
    if (bias != nullptr) v += bias[c];
    const float p = table[(long long)ix[0] * hidden + c] * w[0] + table[(long long)ix[1] * hidden + c] * w[1]
                  + table[(long long)ix[2] * hidden + c] * w[2] + table[(long long)ix[3] * hidden + c] * w[3];
    h[r * hidden + c] = v + p;
}

// One rotate-half pair: (a, b) turned by the angle with cosine cs and sine sn, rounded to bf16 (both rotary kernels).
__device__ __forceinline__ void vf_vis_rot(float a, float b, float cs, float sn, bf16_t* o0, bf16_t* o1) {
    *o0 = f2bf(a * cs - b * sn);
    *o1 = f2bf(b * cs + a * sn);
}

// The cos / sin of one row's rotary angles into csn[0] / csn[1] (frequency f < hd/4: the row position, else the column
// position), shared by all heads; ends with a block barrier.
__device__ __forceinline__ void vf_vis_rot_table(float (*csn)[128], const int* __restrict__ pos, const float* __restrict__ invFreq,
                                                 long long t, int half, int quarter) {
    const float ph = (float)pos[2 * t], pw = (float)pos[2 * t + 1];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float ang = i < quarter ? ph * invFreq[i] : pw * invFreq[i - quarter];
        sincosf(ang, &csn[1][i], &csn[0][i]);
    }
    __syncthreads();
}

// qkv fp32 (or bf16 when qkvBf16) [n, 3*heads*hd] (+ bias [3*heads*hd]) -> q, k, v bf16 [n, heads*hd], rotate-half 2-D rotary on q and k:
// frequency f < hd/4 turns with the row position pos[2t], the others with the column position pos[2t+1]
// (invFreq fp32 [hd/4]). grid (n), block 128.
extern "C" __global__ void vf_vis_rope_split(bf16_t* __restrict__ q, bf16_t* __restrict__ k, bf16_t* __restrict__ v,
                                             const void* __restrict__ qkvIn, const float* __restrict__ bias,
                                             const int* __restrict__ pos, const float* __restrict__ invFreq,
                                             int heads, int hd, int qkvBf16) {
    const long long t = blockIdx.x;
    const int d = heads * hd, half = hd / 2, quarter = hd / 4;
    const float* row = (const float*)qkvIn + t * 3 * d;
    const bf16_t* rowb = (const bf16_t*)qkvIn + t * 3 * d;
#define VF_QKV(c) (qkvBf16 ? bf2f(rowb[(c)]) : row[(c)])
    __shared__ float csn[2][128];  // cos / sin per frequency of this row, shared by all heads (hd <= 256)
    vf_vis_rot_table(csn, pos, invFreq, t, half, quarter);
    for (int e = threadIdx.x; e < heads * half; e += blockDim.x) {
        const int h = e / half, i = e % half;
        const float cs = csn[0][i], sn = csn[1][i];
        const int c0 = h * hd + i, c1 = c0 + half;
        float q0 = VF_QKV(c0), q1 = VF_QKV(c1), k0 = VF_QKV(d + c0), k1 = VF_QKV(d + c1);
        if (bias != nullptr) { q0 += bias[c0]; q1 += bias[c1]; k0 += bias[d + c0]; k1 += bias[d + c1]; }
        vf_vis_rot(q0, q1, cs, sn, q + t * d + c0, q + t * d + c1);
        vf_vis_rot(k0, k1, cs, sn, k + t * d + c0, k + t * d + c1);
    }
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float vv = VF_QKV(2 * d + c);
        if (bias != nullptr) vv += bias[2 * d + c];
        v[t * d + c] = f2bf(vv);
    }
#undef VF_QKV
}

// vf_vis_rope_split for bf16 qkv with 16-byte loads and stores: 8 neighbouring frequencies of one head a thread (their
// pairs half a head apart), v 8 values a thread; hd % 16 == 0, qkv / q / k / v 16-byte aligned, bias fp32 16-byte
// aligned. Each value is computed exactly as in vf_vis_rope_split (same bits). grid (n), block 128.
extern "C" __global__ void vf_vis_rope_split_x8(bf16_t* __restrict__ q, bf16_t* __restrict__ k, bf16_t* __restrict__ v,
                                                const bf16_t* __restrict__ qkv, const float* __restrict__ bias,
                                                const int* __restrict__ pos, const float* __restrict__ invFreq, int heads, int hd) {
    const long long t = blockIdx.x;
    const int d = heads * hd, half = hd / 2, quarter = hd / 4, groups = half / 8;
    const bf16_t* row = qkv + t * 3 * d;
    __shared__ float csn[2][128];
    vf_vis_rot_table(csn, pos, invFreq, t, half, quarter);
    for (int e = threadIdx.x; e < heads * groups; e += blockDim.x) {
        const int h = e / groups, i0 = (e % groups) * 8;
        const int c0 = h * hd + i0, c1 = c0 + half;
        const vf_u4 qa = *(const vf_u4*)(row + c0), qb = *(const vf_u4*)(row + c1);
        const vf_u4 ka = *(const vf_u4*)(row + d + c0), kb = *(const vf_u4*)(row + d + c1);
        const unsigned int qaw[4] = {qa.x, qa.y, qa.z, qa.w}, qbw[4] = {qb.x, qb.y, qb.z, qb.w};
        const unsigned int kaw[4] = {ka.x, ka.y, ka.z, ka.w}, kbw[4] = {kb.x, kb.y, kb.z, kb.w};
        vf_u4 oq0, oq1, ok0, ok1;
        unsigned int* wq0 = &oq0.x; unsigned int* wq1 = &oq1.x; unsigned int* wk0 = &ok0.x; unsigned int* wk1 = &ok1.x;
#pragma unroll
        for (int wj = 0; wj < 4; wj++) {
            bf16_t r[2][4];   // [lo / hi half of the word][q first, q second, k first, k second]
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int j = 2 * wj + u;
                float q0 = u ? bfhi(qaw[wj]) : bflo(qaw[wj]), q1 = u ? bfhi(qbw[wj]) : bflo(qbw[wj]);
                float k0 = u ? bfhi(kaw[wj]) : bflo(kaw[wj]), k1 = u ? bfhi(kbw[wj]) : bflo(kbw[wj]);
                if (bias != nullptr) { q0 += bias[c0 + j]; q1 += bias[c1 + j]; k0 += bias[d + c0 + j]; k1 += bias[d + c1 + j]; }
                const float cs = csn[0][i0 + j], sn = csn[1][i0 + j];
                vf_vis_rot(q0, q1, cs, sn, &r[u][0], &r[u][1]);
                vf_vis_rot(k0, k1, cs, sn, &r[u][2], &r[u][3]);
            }
            wq0[wj] = (unsigned int)r[0][0] | ((unsigned int)r[1][0] << 16);
            wq1[wj] = (unsigned int)r[0][1] | ((unsigned int)r[1][1] << 16);
            wk0[wj] = (unsigned int)r[0][2] | ((unsigned int)r[1][2] << 16);
            wk1[wj] = (unsigned int)r[0][3] | ((unsigned int)r[1][3] << 16);
        }
        *(vf_u4*)(q + t * d + c0) = oq0;
        *(vf_u4*)(q + t * d + c1) = oq1;
        *(vf_u4*)(k + t * d + c0) = ok0;
        *(vf_u4*)(k + t * d + c1) = ok1;
    }
    for (int c = threadIdx.x * 8; c < d; c += blockDim.x * 8) {
        const vf_u4 va = *(const vf_u4*)(row + 2 * d + c);
        const unsigned int vw[4] = {va.x, va.y, va.z, va.w};
        unsigned int o[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float v0 = bflo(vw[j]), v1 = bfhi(vw[j]);
            if (bias != nullptr) { v0 += bias[2 * d + c + 2 * j]; v1 += bias[2 * d + c + 2 * j + 1]; }
            o[j] = (unsigned int)f2bf(v0) | ((unsigned int)f2bf(v1) << 16);
        }
        vf_u4 ov;
        ov.x = o[0]; ov.y = o[1]; ov.z = o[2]; ov.w = o[3];
        *(vf_u4*)(v + t * d + c) = ov;
    }
}

// ---- segment attention on tensor cores ----

__device__ __forceinline__ unsigned int vf_pack_bf16(float lo, float hi) {
    return (unsigned int)f2bf(lo) | ((unsigned int)f2bf(hi) << 16);
}

__device__ __forceinline__ void vf_mma_bf16(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ldmatrix: four 8x8 b16 matrices from shared memory (lanes 8j..8j+7 give the row addresses of matrix j).
__device__ __forceinline__ void vf_ldsm_x4(unsigned int* r, const void* p) {
    const unsigned int a = (unsigned int)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void vf_ldsm_x4_trans(unsigned int* r, const void* p) {
    const unsigned int a = (unsigned int)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// Bidirectional attention inside segments. q, k, v, out bf16 [n, heads*hd] (row stride ld = heads*hd elements).
// tiles int4 [numTiles]: (first query row, segment start, segment end, 0); 64 query rows per tile, a tile never
// crosses its segment. grid (numTiles, heads), block 128 (4 warps x 16 query rows). HDP = hd rounded up to 16
// (padding lanes are zero), KC keys per shared-memory chunk. Online softmax in fp32, exp2 with the scale folded.
template <int HDP, int KC>
__device__ __forceinline__ void vf_vis_attn(bf16_t* __restrict__ out, const bf16_t* __restrict__ q,
                                            const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                                            const int* __restrict__ tiles, int hd, int ld, float scaleLog2) {
    __shared__ __align__(16) bf16_t Ks[KC][HDP + 8];
    __shared__ __align__(16) bf16_t Vs[KC][HDP + 8];
    const int q0 = tiles[4 * blockIdx.x], s0 = tiles[4 * blockIdx.x + 1], s1 = tiles[4 * blockIdx.x + 2];
    const int hoff = blockIdx.y * hd;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    const bool ok0 = r0 < s1, ok1 = r1 < s1;

    unsigned int qa[HDP / 16][4];
#pragma unroll
    for (int ks = 0; ks < HDP / 16; ks++) {
        const int c0 = ks * 16 + 2 * t4, c1 = c0 + 8;
        qa[ks][0] = ok0 && c0 < hd ? *(const unsigned int*)(q + (long long)r0 * ld + hoff + c0) : 0u;
        qa[ks][1] = ok1 && c0 < hd ? *(const unsigned int*)(q + (long long)r1 * ld + hoff + c0) : 0u;
        qa[ks][2] = ok0 && c1 < hd ? *(const unsigned int*)(q + (long long)r0 * ld + hoff + c1) : 0u;
        qa[ks][3] = ok1 && c1 < hd ? *(const unsigned int*)(q + (long long)r1 * ld + hoff + c1) : 0u;
    }
    float o[HDP / 8][4];
#pragma unroll
    for (int nt = 0; nt < HDP / 8; nt++) { o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f; }
    float m[2] = {VF_NEG_INF, VF_NEG_INF}, l[2] = {0.f, 0.f};

    for (int kb = s0; kb < s1; kb += KC) {
        __syncthreads();
        if ((hd & 7) == 0) {  // 16-byte loads (rows and head offsets are then 16-byte aligned)
            for (int idx = threadIdx.x; idx < KC * (HDP / 8); idx += blockDim.x) {
                const int r = idx / (HDP / 8), c = (idx % (HDP / 8)) * 8, key = kb + r;
                const bool valid = key < s1 && c < hd;
                const long long off = (long long)key * ld + hoff + c;
                vf_u4 z;
                z.x = z.y = z.z = z.w = 0u;
                *(vf_u4*)&Ks[r][c] = valid ? *(const vf_u4*)(k + off) : z;
                *(vf_u4*)&Vs[r][c] = valid ? *(const vf_u4*)(v + off) : z;
            }
        } else {
            for (int idx = threadIdx.x; idx < KC * (HDP / 2); idx += blockDim.x) {
                const int r = idx / (HDP / 2), c = (idx % (HDP / 2)) * 2, key = kb + r;
                const bool valid = key < s1 && c < hd;
                const long long off = (long long)key * ld + hoff + c;
                *(unsigned int*)&Ks[r][c] = valid ? *(const unsigned int*)(k + off) : 0u;
                *(unsigned int*)&Vs[r][c] = valid ? *(const unsigned int*)(v + off) : 0u;
            }
        }
        __syncthreads();
        float s[KC / 8][4];
        const int lj = lane >> 3, lr = lane & 7;
#pragma unroll
        for (int nt = 0; nt < KC / 8; nt += 2) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
            s[nt + 1][0] = s[nt + 1][1] = s[nt + 1][2] = s[nt + 1][3] = 0.f;
#pragma unroll
            for (int ks = 0; ks < HDP / 16; ks++) {
                unsigned int b[4];  // (keys nt, d lo), (nt, d hi), (nt+1, lo), (nt+1, hi)
                vf_ldsm_x4(b, &Ks[(nt + (lj >> 1)) * 8 + lr][ks * 16 + (lj & 1) * 8]);
                vf_mma_bf16(s[nt], qa[ks], b[0], b[1]);
                vf_mma_bf16(s[nt + 1], qa[ks], b[2], b[3]);
            }
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int key = kb + (nt + u) * 8 + 2 * t4;
                if (key >= s1) { s[nt + u][0] = VF_NEG_INF; s[nt + u][2] = VF_NEG_INF; }
                if (key + 1 >= s1) { s[nt + u][1] = VF_NEG_INF; s[nt + u][3] = VF_NEG_INF; }
            }
        }
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            float mx = VF_NEG_INF;
#pragma unroll
            for (int nt = 0; nt < KC / 8; nt++) mx = fmaxf(mx, fmaxf(s[nt][2 * rr], s[nt][2 * rr + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mnew = fmaxf(m[rr], mx);  // finite: every chunk holds at least one key of the segment
            const float corr = exp2f((m[rr] - mnew) * scaleLog2);
            m[rr] = mnew;
            float sum = 0.f;
#pragma unroll
            for (int nt = 0; nt < KC / 8; nt++) {
                const float p0 = exp2f((s[nt][2 * rr] - mnew) * scaleLog2);
                const float p1 = exp2f((s[nt][2 * rr + 1] - mnew) * scaleLog2);
                s[nt][2 * rr] = p0; s[nt][2 * rr + 1] = p1;
                sum += p0 + p1;
            }
            l[rr] = l[rr] * corr + sum;
#pragma unroll
            for (int nt = 0; nt < HDP / 8; nt++) { o[nt][2 * rr] *= corr; o[nt][2 * rr + 1] *= corr; }
        }
#pragma unroll
        for (int kk = 0; kk < KC / 16; kk++) {
            unsigned int pa[4];
            pa[0] = vf_pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = vf_pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = vf_pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = vf_pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int nt = 0; nt < HDP / 8; nt += 2) {
                unsigned int b[4];  // transposed: (keys lo, d nt), (keys hi, d nt), (lo, nt+1), (hi, nt+1)
                vf_ldsm_x4_trans(b, &Vs[kk * 16 + (lj & 1) * 8 + lr][(nt + (lj >> 1)) * 8]);
                vf_mma_bf16(o[nt], pa, b[0], b[1]);
                vf_mma_bf16(o[nt + 1], pa, b[2], b[3]);
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 1);
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 2);
    }
    const float inv0 = 1.f / l[0], inv1 = 1.f / l[1];
#pragma unroll
    for (int nt = 0; nt < HDP / 8; nt++) {
        const int c = nt * 8 + 2 * t4;
        if (c < hd) {
            if (ok0) *(unsigned int*)(out + (long long)r0 * ld + hoff + c) = vf_pack_bf16(o[nt][0] * inv0, o[nt][1] * inv0);
            if (ok1) *(unsigned int*)(out + (long long)r1 * ld + hoff + c) = vf_pack_bf16(o[nt][2] * inv1, o[nt][3] * inv1);
        }
    }
}

#define VF_VIS_ATTN(HDP, KC)                                                                                           \
    extern "C" __global__ void __launch_bounds__(128) vf_vis_attn_hd##HDP(                                             \
        bf16_t* __restrict__ out, const bf16_t* __restrict__ q, const bf16_t* __restrict__ k,                          \
        const bf16_t* __restrict__ v, const int* __restrict__ tiles, int hd, int ld, float scaleLog2) {                \
        vf_vis_attn<HDP, KC>(out, q, k, v, tiles, hd, ld, scaleLog2);                                                  \
    }
VF_VIS_ATTN(16, 64)
VF_VIS_ATTN(32, 64)
VF_VIS_ATTN(48, 64)
VF_VIS_ATTN(64, 64)
VF_VIS_ATTN(80, 64)
VF_VIS_ATTN(96, 64)
VF_VIS_ATTN(112, 64)
VF_VIS_ATTN(128, 64)
VF_VIS_ATTN(160, 32)
VF_VIS_ATTN(192, 32)
VF_VIS_ATTN(256, 32)
