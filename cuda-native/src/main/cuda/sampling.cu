// Token selection on the GPU: argmax, and temperature / top-k / top-p sampling. Only the chosen id (an int in
// device memory) leaves; the decoder copies it to pinned host memory.
//
// Sampling (one block of 1024 threads, vocabulary in L2):
//   w_i = exp((l_i - max) / T); top-k keeps keys >= the k-th largest (radix select on order-preserving float bits,
//   4 passes of 8 bits); top-p keeps the smallest top set whose mass reaches p of the (top-k) mass (the same radix
//   walk with mass histograms) -- the Hugging Face rule "drop a token if the mass strictly above it >= p" up to ties;
//   a uniform draw u * Z over the kept set picks the token. u comes from a counter-based hash of (seed, *counter);
//   the kernel increments *counter, so each graph replay draws afresh.
#include "common.cuh"

#define VF_SAMPLE_THREADS 1024

__device__ __forceinline__ unsigned int vf_key(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0u;  // NaN sorts lowest
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ unsigned long long vf_mix64(unsigned long long z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Block argmax (lowest index wins ties); every thread returns the winner.
__device__ __forceinline__ int vf_block_argmax(const float* __restrict__ x, int n, float* sv, int* si) {
    float best = VF_NEG_INF;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i];
        if (v > best) { best = v; bi = i; }   // strided scan: first hit per thread is its lowest index
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) { sv[warp] = best; si[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x >> 5;
        best = lane < nw ? sv[lane] : VF_NEG_INF;
        bi = lane < nw ? si[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, best, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
        }
        if (lane == 0) si[32] = bi == 0x7fffffff ? 0 : bi;
    }
    __syncthreads();
    return si[32];
}

// out[0] = argmax(logits[0..n)). grid 1, block 1024.
extern "C" __global__ void __launch_bounds__(VF_SAMPLE_THREADS)
vf_argmax(int* __restrict__ out, const float* __restrict__ logits, int n) {
    __shared__ float sv[33];
    __shared__ int si[33];
    const int r = vf_block_argmax(logits, n, sv, si);
    if (threadIdx.x == 0) out[0] = r;
}

// Radix walk over the order-preserving keys of the candidates (key >= floorKey). COUNT: find the key of the
// target-th largest candidate. MASS: find the largest key whose candidates at or above it weigh >= target.
template <bool MASS>
__device__ unsigned int vf_radix_select(const float* __restrict__ logits, int n, unsigned int floorKey,
                                        float mx, float invT, float target, float* hist) {
    unsigned int prefix = 0u, mask = 0u;
    __shared__ unsigned int sPrefix;
    __shared__ float sNeed;
    if (threadIdx.x == 0) sNeed = target;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0.f;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const unsigned int key = vf_key(logits[i]);
            if (key >= floorKey && (key & mask) == prefix) {
                const float w = MASS ? __expf((logits[i] - mx) * invT) : 1.f;
                atomicAdd(&hist[(key >> shift) & 255u], w);
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float need = sNeed, cum = 0.f;
            int digit = -1, lowest = -1;
            for (int b = 255; b >= 0; b--) {
                if (hist[b] > 0.f) lowest = b;
                if (hist[b] > 0.f && cum + hist[b] >= need) { digit = b; need -= cum; break; }
                cum += hist[b];
            }
            if (digit < 0) { digit = lowest < 0 ? 0 : lowest; need = hist[digit]; }  // rounding: take what is left
            sNeed = need;
            sPrefix = prefix | ((unsigned int)digit << shift);
        }
        __syncthreads();
        prefix = sPrefix;
        mask |= 255u << shift;
    }
    return prefix;
}

// grid 1, block 1024. temperature <= 0 or topK == 1 selects the argmax. topK <= 0 or >= n: no top-k. topP >= 1: no
// top-p. counter: device uint64, incremented once per call.
extern "C" __global__ void __launch_bounds__(VF_SAMPLE_THREADS)
vf_sample(int* __restrict__ out, const float* __restrict__ logits, int n, float temperature, int topK, float topP,
          unsigned long long seed, unsigned long long* counter) {
    __shared__ float sv[33];
    __shared__ int si[33];
    __shared__ float hist[256];
    __shared__ float warpSums[32];
    __shared__ int chosen;
    const int am = vf_block_argmax(logits, n, sv, si);
    const unsigned long long c = counter[0];
    if (temperature <= 0.f || topK == 1) {
        if (threadIdx.x == 0) { out[0] = am; counter[0] = c + 1; }
        return;
    }
    const float mx = logits[am];
    const float invT = 1.f / temperature;
    unsigned int floorKey = 0u;
    if (topK > 0 && topK < n) floorKey = vf_radix_select<false>(logits, n, 0u, mx, invT, (float)topK, hist);
    if (topP < 1.f) {
        float z = 0.f;
        for (int i = threadIdx.x; i < n; i += blockDim.x)
            if (vf_key(logits[i]) >= floorKey) z += __expf((logits[i] - mx) * invT);
        z = block_sum(z, sv);
        const unsigned int pKey = vf_radix_select<true>(logits, n, floorKey, mx, invT, topP * z, hist);
        floorKey = max(floorKey, pKey);
    }
    // Per-thread mass over its strided candidates, block exclusive scan, then the owning thread walks its share.
    float local = 0.f;
    int lastIdx = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (vf_key(logits[i]) >= floorKey) { local += __expf((logits[i] - mx) * invT); lastIdx = i; }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float incl = local;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    if (threadIdx.x == 0) chosen = -1;
    __syncthreads();
    if (lane == 31) warpSums[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        float ws = lane < (int)(blockDim.x >> 5) ? warpSums[lane] : 0.f;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float t = __shfl_up_sync(0xffffffffu, ws, o);
            if (lane >= o) ws += t;
        }
        warpSums[lane] = ws;  // inclusive warp totals
    }
    __syncthreads();
    const float total = warpSums[(blockDim.x >> 5) - 1];
    const float before = (warp > 0 ? warpSums[warp - 1] : 0.f) + incl - local;
    const unsigned long long r = vf_mix64(seed ^ vf_mix64(c));
    const float u = (float)(r >> 40) * (1.f / 16777216.f);  // [0, 1)
    const float target = u * total;
    if (local > 0.f && target >= before && target < before + local) {
        float cum = before;
        int pick = lastIdx;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            if (vf_key(logits[i]) >= floorKey) {
                cum += __expf((logits[i] - mx) * invT);
                if (target < cum) { pick = i; break; }
            }
        }
        chosen = pick;
    }
    __syncthreads();
    if (chosen < 0) {  // rounding put the target past the last candidate: take the highest-index candidate
        float li = (float)lastIdx;
        li = block_max(li, sv);
        if (threadIdx.x == 0) chosen = (int)li;
    }
    __syncthreads();
    if (threadIdx.x == 0) { out[0] = chosen < 0 ? am : chosen; counter[0] = c + 1; }
}

// Two-stage argmax for large vocabularies (the single-block vf_argmax reads ~19 GB/s): stage 1, grid (parts),
// block 256: block b reduces its contiguous chunk to (value, lowest index) in pv[b], pi[b]; stage 2, grid 1, block 32,
// reduces the parts (lowest index on ties, as torch.argmax on CUDA and CpuOps.argmax).
extern "C" __global__ void __launch_bounds__(256)
vf_argmax_partial(float* __restrict__ pv, int* __restrict__ pi, const float* __restrict__ logits, int n) {
    __shared__ float sv[33];
    __shared__ int si[33];
    const int parts = gridDim.x;
    const int chunk = (n + parts - 1) / parts;
    const int beg = min(n, blockIdx.x * chunk), end = min(n, beg + chunk);
    const int len = end - beg;
    const int r = vf_block_argmax(logits + beg, len, sv, si);
    if (threadIdx.x == 0) {
        pv[blockIdx.x] = len > 0 ? logits[beg + r] : VF_NEG_INF;
        pi[blockIdx.x] = len > 0 ? beg + r : 0x7fffffff;
    }
}

extern "C" __global__ void vf_argmax_final(int* __restrict__ out, const float* __restrict__ pv, const int* __restrict__ pi,
                                           int parts) {
    float best = VF_NEG_INF;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < parts; i += 32) {
        const float v = pv[i];
        const int j = pi[i];
        if (v > best || (v == best && j < bi)) { best = v; bi = j; }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    if (threadIdx.x == 0) out[0] = bi == 0x7fffffff ? 0 : bi;
}

// Constrained decoding: logits[i] = -inf for every id whose bit is clear in bits (uint64 words, id i = bit i & 63 of
// word i >> 6), before argmax or sampling; the host uploads the allowed set of the constraint's state each step.
extern "C" __global__ void __launch_bounds__(256)
vf_mask_logits(float* __restrict__ logits, const unsigned long long* __restrict__ bits, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && !((bits[i >> 6] >> (i & 63)) & 1ULL)) logits[i] = VF_NEG_INF;
}
