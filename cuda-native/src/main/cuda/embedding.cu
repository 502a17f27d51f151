// Embedding gather and span splice. Launchers are extern "C" __global__ kernels loaded by name.
#include "common.cuh"

// out[t, :] = table[ids[t], :] as fp32. grid (n), block 256. An id outside [0, vocab) writes NaN so the error shows.
extern "C" __global__ void vf_embed_gather(float* __restrict__ out, const bf16_t* __restrict__ table,
                                           const int* __restrict__ ids, int n, int hidden, int vocab) {
    VF_PDL_PROLOGUE();
    const int t = blockIdx.x;
    if (t >= n) return;
    const int id = ids[t];
    float* dst = out + (long long)t * hidden;
    if (id < 0 || id >= vocab) {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = __int_as_float(0x7fc00000);
        return;
    }
    const bf16_t* src = table + (long long)id * hidden;
    if ((hidden & 7) == 0) {
        const uint4* s4 = reinterpret_cast<const uint4*>(src);
        for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
            uint4 w = __ldg(s4 + i);
            float4 a = make_float4(bflo(w.x), bfhi(w.x), bflo(w.y), bfhi(w.y));
            float4 b = make_float4(bflo(w.z), bfhi(w.z), bflo(w.w), bfhi(w.w));
            reinterpret_cast<float4*>(dst)[2 * i] = a;
            reinterpret_cast<float4*>(dst)[2 * i + 1] = b;
        }
    } else {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = bf2f(src[i]);
    }
}

// dst[dstRow0 + r, :] = src[r, :] for r < rows (image embeddings spliced into the prompt's embedding rows).
// grid (rows), block 256.
extern "C" __global__ void vf_splice_rows_f32(float* __restrict__ dst, const float* __restrict__ src,
                                              int dstRow0, int rows, int hidden) {
    const int r = blockIdx.x;
    if (r >= rows) return;
    float* d = dst + (long long)(dstRow0 + r) * hidden;
    const float* s = src + (long long)r * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) d[i] = s[i];
}

extern "C" __global__ void vf_splice_rows_bf16(float* __restrict__ dst, const bf16_t* __restrict__ src,
                                               int dstRow0, int rows, int hidden) {
    const int r = blockIdx.x;
    if (r >= rows) return;
    float* d = dst + (long long)(dstRow0 + r) * hidden;
    const bf16_t* s = src + (long long)r * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) d[i] = bf2f(s[i]);
}

// dst[dstRow0 + r, :] += src[r, :] for r < rows (DeepStack, Qwen3-VL: a vision feature added to the hidden states
// at the image positions after an early decoder layer). grid (rows), block 256.
extern "C" __global__ void vf_add_rows_f32(float* __restrict__ dst, const float* __restrict__ src,
                                           int dstRow0, int rows, int hidden) {
    const int r = blockIdx.x;
    if (r >= rows) return;
    float* d = dst + (long long)(dstRow0 + r) * hidden;
    const float* s = src + (long long)r * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) d[i] += s[i];
}

// The next single-sequence decode step's scalars from this step's, on the device (vlmflux.cuda.decodeAhead): step is the
// decoder's int32 [8] (positions [3], the new key's cache slot, the attention length, the token id); positions, slot
// and length move one on, the token becomes the id the device just chose. So a step can be enqueued before its input
// token reaches the host. grid 1, block 32.
extern "C" __global__ void vf_decode_advance(int* __restrict__ step, const int* __restrict__ chosen) {
    const int t = threadIdx.x;
    if (t < 5) step[t] += 1;
    else if (t == 5) step[5] = chosen[0];
}
