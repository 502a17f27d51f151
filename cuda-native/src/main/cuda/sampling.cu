// Token selection on the GPU: argmax, and temperature / top-k / top-p sampling. Only the chosen id (an int in
// device memory) leaves; the decoder copies it to pinned host memory.
//
// Sampling (one block of 1024 threads, vocabulary in L2):
//   w_i = exp((l_i - max) / T); top-k keeps keys >= the k-th largest (radix select on order-preserving float bits,
//   4 passes of 8 bits); top-p keeps the smallest top set whose mass reaches p of the (top-k) mass (the same radix
//   walk with mass histograms) -- the Hugging Face rule "drop a token if the mass strictly above it >= p" up to ties;
//   a uniform draw u * Z over the kept set picks the token. u comes from a counter-based hash of (seed, *counter);
//   the kernel increments *counter, so each graph replay draws afresh. Masses are summed in fixed point (exact, so a
//   fixed seed gives the same kept set and token on every run, eager or replayed).
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

// Masses are fixed point: w = exp((l - max) / T) in (0, 1] counts as round(w * 2^40) units (at least 1 unit for any
// w > 0, 0 for a masked -inf logit). Integer sums are exact and independent of the order in which threads and atomics
// add them, so the kept set (top-p's mass walk) and the draw are the same on every run and in every graph replay,
// whatever the block and candidate layout. A sum over 2^23 tokens stays below 2^63.
#define VF_FX_ONE 1099511627776.0   // 2^40

__device__ __forceinline__ unsigned long long vf_fx(float w) {
    if (!(w > 0.f)) return 0ull;
    const unsigned long long u = __float2ull_rn(w * (float)VF_FX_ONE);
    return u > 0ull ? u : 1ull;
}

// Block-wide exact sum of a per-thread fixed-point value; every thread gets it. acc: a shared word.
__device__ __forceinline__ unsigned long long vf_block_fx_sum(unsigned long long v, unsigned long long* acc) {
    if (threadIdx.x == 0) *acc = 0ull;
    __syncthreads();
    if (v) atomicAdd(acc, v);
    __syncthreads();
    const unsigned long long t = *acc;
    __syncthreads();
    return t;
}

// Radix walk over the order-preserving keys of the candidates (key >= floorKey). COUNT: find the key of the
// target-th largest candidate. MASS: find the largest key whose candidates at or above it weigh >= target (fixed
// point). hist: 256 shared words.
template <bool MASS>
__device__ unsigned int vf_radix_select(const float* __restrict__ vals, int n, unsigned int floorKey,
                                        float mx, float invT, unsigned long long target, unsigned long long* hist) {
    unsigned int prefix = 0u, mask = 0u;
    __shared__ unsigned int sPrefix;
    __shared__ unsigned long long sNeed;
    if (threadIdx.x == 0) sNeed = target;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0ull;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float v = vals[i];
            const unsigned int key = vf_key(v);
            if (key >= floorKey && (key & mask) == prefix) {
                const unsigned long long w = MASS ? vf_fx(__expf((v - mx) * invT)) : 1ull;
                if (w) atomicAdd(&hist[(key >> shift) & 255u], w);
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long need = sNeed, cum = 0ull;
            int digit = -1, lowest = -1;
            for (int b = 255; b >= 0; b--) {
                if (hist[b] > 0ull) lowest = b;
                if (hist[b] > 0ull && cum + hist[b] >= need) { digit = b; need -= cum; break; }
                cum += hist[b];
            }
            if (digit < 0) { digit = lowest < 0 ? 0 : lowest; need = hist[digit]; }  // target above the total: take all
            sNeed = need;
            sPrefix = prefix | ((unsigned int)digit << shift);
        }
        __syncthreads();
        prefix = sPrefix;
        mask |= 255u << shift;
    }
    return prefix;
}

// Draws one kept value (key >= floorKey) of vals[0..n) with probability exp((v - mx) * invT) / total, in fixed point:
// thread t sums its contiguous share, a block scan orders the shares, and the thread whose share holds
// target = floor(r * total / 2^64) walks it. The cumulative order is the index order of vals whatever the block size
// or n, and the sums are exact, so the pick depends only on the kept values, their order and r. Block-wide: every
// thread calls it. Returns the index into vals (-1 when nothing is kept or all kept weights are 0) to every thread and
// the kept mass in fixed point in *totalOut (when not null).
__device__ int vf_draw_kept(const float* __restrict__ vals, int n, unsigned int floorKey, float mx, float invT,
                            unsigned long long seed, unsigned long long c, unsigned long long* warpSums, int* chosen,
                            unsigned long long* totalOut) {
    const int per = (n + (int)blockDim.x - 1) / (int)blockDim.x;
    const int beg = min(n, (int)threadIdx.x * per), end = min(n, beg + per);
    unsigned long long local = 0ull;
    for (int i = beg; i < end; i++)
        if (vf_key(vals[i]) >= floorKey) local += vf_fx(__expf((vals[i] - mx) * invT));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned long long incl = local;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    if (threadIdx.x == 0) (*chosen) = -1;
    __syncthreads();
    if (lane == 31) warpSums[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        unsigned long long ws = lane < (int)(blockDim.x >> 5) ? warpSums[lane] : 0ull;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long t = __shfl_up_sync(0xffffffffu, ws, o);
            if (lane >= o) ws += t;
        }
        warpSums[lane] = ws;  // inclusive warp totals
    }
    __syncthreads();
    const unsigned long long total = warpSums[(blockDim.x >> 5) - 1];
    const unsigned long long before = (warp > 0 ? warpSums[warp - 1] : 0ull) + incl - local;
    const unsigned long long r = vf_mix64(seed ^ vf_mix64(c));
    const unsigned long long target = __umul64hi(r, total);  // uniform in [0, total)
    if (local > 0ull && target >= before && target < before + local) {
        unsigned long long cum = before;
        for (int i = beg; i < end; i++) {
            if (vf_key(vals[i]) >= floorKey) {
                cum += vf_fx(__expf((vals[i] - mx) * invT));
                if (target < cum) { (*chosen) = i; break; }
            }
        }
    }
    __syncthreads();
    if (totalOut && threadIdx.x == 0) *totalOut = total;
    const int pick = *chosen;
    __syncthreads();
    return pick;
}

// Fixed-point mass of a fraction p of a fixed-point total (rounded down).
__device__ __forceinline__ unsigned long long vf_fx_part(float p, unsigned long long total) {
    return (unsigned long long)((double)p * (double)total);
}

// grid 1, block 1024. temperature <= 0 or topK == 1 selects the argmax. topK <= 0 or >= n: no top-k. topP >= 1: no
// top-p. counter: device uint64, incremented once per call.
extern "C" __global__ void __launch_bounds__(VF_SAMPLE_THREADS)
vf_sample(int* __restrict__ out, const float* __restrict__ logits, int n, float temperature, int topK, float topP,
          unsigned long long seed, unsigned long long* counter) {
    __shared__ float sv[33];
    __shared__ int si[33];
    __shared__ unsigned long long hist[256];
    __shared__ unsigned long long warpSums[32];
    __shared__ unsigned long long sAcc;
    __shared__ int sChosen;
    const int am = vf_block_argmax(logits, n, sv, si);
    const unsigned long long c = counter[0];
    if (temperature <= 0.f || topK == 1) {
        if (threadIdx.x == 0) { out[0] = am; counter[0] = c + 1; }
        return;
    }
    const float mx = logits[am];
    const float invT = 1.f / temperature;
    unsigned int floorKey = 0u;
    if (topK > 0 && topK < n) floorKey = vf_radix_select<false>(logits, n, 0u, mx, invT, (unsigned long long)topK, hist);
    if (topP < 1.f) {
        unsigned long long z = 0ull;
        for (int i = threadIdx.x; i < n; i += blockDim.x)
            if (vf_key(logits[i]) >= floorKey) z += vf_fx(__expf((logits[i] - mx) * invT));
        z = vf_block_fx_sum(z, &sAcc);
        const unsigned int pKey = vf_radix_select<true>(logits, n, floorKey, mx, invT, vf_fx_part(topP, z), hist);
        floorKey = max(floorKey, pKey);
    }
    const int chosen = vf_draw_kept(logits, n, floorKey, mx, invT, seed, c, warpSums, &sChosen, nullptr);
    if (threadIdx.x == 0) { out[0] = chosen < 0 ? am : chosen; counter[0] = c + 1; }
}

// Two-stage argmax for large vocabularies (the single-block vf_argmax reads ~19 GB/s): stage 1, grid (parts),
// block 256: block b reduces its contiguous chunk to (value, lowest index) in pv[b], pi[b]; stage 2, grid 1, block 32,
// reduces the parts (lowest index on ties, as torch.argmax on CUDA and CpuOps.argmax).
__device__ __forceinline__ void vf_argmax_partial_body(float* __restrict__ pv, int* __restrict__ pi, const float* __restrict__ logits, int n) {
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

__device__ __forceinline__ void vf_argmax_final_body(int* __restrict__ out, const float* __restrict__ pv, const int* __restrict__ pi,
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

extern "C" __global__ void __launch_bounds__(256)
vf_argmax_partial(float* __restrict__ pv, int* __restrict__ pi, const float* __restrict__ logits, int n) {
    VF_PDL_PROLOGUE();
    vf_argmax_partial_body(pv, pi, logits, n);
}

extern "C" __global__ void vf_argmax_final(int* __restrict__ out, const float* __restrict__ pv, const int* __restrict__ pi,
                                           int parts) {
    VF_PDL_PROLOGUE();
    vf_argmax_final_body(out, pv, pi, parts);
}

// Constrained decoding: logits[i] = -inf for every id whose bit is clear in bits (uint64 words, id i = bit i & 63 of
// word i >> 6), before argmax or sampling; the host uploads the allowed set of the constraint's state each step.
extern "C" __global__ void __launch_bounds__(256)
vf_mask_logits(float* __restrict__ logits, const unsigned long long* __restrict__ bits, int n) {
    VF_PDL_PROLOGUE();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && !((bits[i >> 6] >> (i & 63)) & 1ULL)) logits[i] = VF_NEG_INF;
}

// ---- Multi-block sampling (temperature, top-k, top-p, min-p) for large vocabularies ----
// The single-block vf_sample reads the vocabulary ~11 times from one SM. Here four launches, no host sync (graph
// capturable; the RNG counter stays a device scalar):
//   (misc[1..3] = the kept set's floor key, its mass and the candidate count, for tests and diagnostics.)
//   1. vf_sample_max     (P blocks): block b's max over its contiguous chunk -> pmax[b]; zeroes the histograms.
//   2. vf_sample_hist    (P blocks): M = max(pmax); w_i = exp((l_i - M) / T); histograms over the top 12 bits of the
//      order-preserving key (count and mass, shared then global atomics); pmass[b] = block's sum of w (a fixed-order
//      reduction, so the total is deterministic); minBin = lowest bin holding a token with w >= minP (min-p keeps
//      exactly the tokens with p_i >= minP * p_max, i.e. w_i >= minP, whatever top-k/top-p kept before it).
//   3. vf_sample_compact (P blocks): every block derives the same coarse floor bin from the histograms (the bin of the
//      k-th largest key for top-k; else one bin below where the mass from the top reaches topP * Z for top-p; raised to
//      minBin where that cannot cut the top-k set top-p needs) and writes the indices of its tokens in bins >= floor,
//      in index order, to its own segment seg[b * chunk ..), count cnt[b].
//   4. vf_sample_final   (1 block): gathers the candidates in index order, then the exact rules of the single-block
//      kernel over the candidates only (radix select for the k-th key, radix mass walk for top-p with Z over the top-k
//      set -- or the whole vocabulary's deterministic Z when top-k is off --, min-p key floor), and the draw with the
//      counter-based RNG. Kept set = keys >= max(topK key, topP key, minP key), as the CPU Sampler's masks in order.
// With no top-k/top-p/min-p the floor is bin 0: every token is a candidate (no sort in any case).
#define VF_SBINS 4096
#define VF_SBIN_SHIFT 20

// pmax [P], hcnt [4096], hmass [4096], misc[0] = minBin. grid P, block 256.
__device__ __forceinline__ void vf_sample_max_body(float* __restrict__ pmax, unsigned int* __restrict__ hcnt, float* __restrict__ hmass,
                                                   unsigned int* __restrict__ misc, const float* __restrict__ logits, int n) {
    __shared__ float sv[33];
    const int parts = gridDim.x, chunk = (n + parts - 1) / parts;
    const int beg = min(n, blockIdx.x * chunk), end = min(n, beg + chunk);
    float m = VF_NEG_INF;
    for (int i = beg + threadIdx.x; i < end; i += blockDim.x) m = fmaxf(m, logits[i]);
    m = block_max(m, sv);
    if (threadIdx.x == 0) pmax[blockIdx.x] = m;
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < VF_SBINS; b += parts * blockDim.x) { hcnt[b] = 0u; hmass[b] = 0.f; }
    if (blockIdx.x == 0 && threadIdx.x == 0) misc[0] = VF_SBINS;
}

extern "C" __global__ void __launch_bounds__(256)
vf_sample_max(float* __restrict__ pmax, unsigned int* __restrict__ hcnt, float* __restrict__ hmass,
              unsigned int* __restrict__ misc, const float* __restrict__ logits, int n) {
    VF_PDL_PROLOGUE();
    vf_sample_max_body(pmax, hcnt, hmass, misc, logits, n);
}

__device__ __forceinline__ float vf_parts_max(const float* __restrict__ pmax, int parts, float* sv) {
    float m = VF_NEG_INF;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) m = fmaxf(m, pmax[i]);
    return block_max(m, sv);
}

// grid P, block 256.
__device__ __forceinline__ void vf_sample_hist_body(unsigned int* __restrict__ hcnt, float* __restrict__ hmass, unsigned int* __restrict__ misc,
        float* __restrict__ pmass, const float* __restrict__ pmax, const float* __restrict__ logits, int n, float invT, float minP) {
    __shared__ float sv[33];
    __shared__ unsigned int scnt[VF_SBINS];
    __shared__ float smass[VF_SBINS];
    __shared__ unsigned int sMinBin;
    const int parts = gridDim.x, chunk = (n + parts - 1) / parts;
    const int beg = min(n, blockIdx.x * chunk), end = min(n, beg + chunk);
    const float mx = vf_parts_max(pmax, parts, sv);
    for (int b = threadIdx.x; b < VF_SBINS; b += blockDim.x) { scnt[b] = 0u; smass[b] = 0.f; }
    if (threadIdx.x == 0) sMinBin = VF_SBINS;
    __syncthreads();
    float local = 0.f;
    unsigned int myMin = VF_SBINS;
    for (int i = beg + threadIdx.x; i < end; i += blockDim.x) {
        const float l = logits[i];
        const unsigned int bin = vf_key(l) >> VF_SBIN_SHIFT;
        const float w = __expf((l - mx) * invT);
        local += w;
        atomicAdd(&scnt[bin], 1u);
        if (w > 0.f) atomicAdd(&smass[bin], w);
        if (minP > 0.f && w >= minP) myMin = min(myMin, bin);
    }
    if (myMin < VF_SBINS) atomicMin(&sMinBin, myMin);
    local = block_sum(local, sv);
    __syncthreads();
    for (int b = threadIdx.x; b < VF_SBINS; b += blockDim.x) {
        if (scnt[b]) atomicAdd(&hcnt[b], scnt[b]);
        if (smass[b] > 0.f) atomicAdd(&hmass[b], smass[b]);
    }
    if (threadIdx.x == 0) {
        pmass[blockIdx.x] = local;
        if (sMinBin < VF_SBINS) atomicMin(&misc[0], sMinBin);
    }
}

extern "C" __global__ void __launch_bounds__(256)
vf_sample_hist(unsigned int* __restrict__ hcnt, float* __restrict__ hmass, unsigned int* __restrict__ misc,
               float* __restrict__ pmass, const float* __restrict__ pmax, const float* __restrict__ logits, int n,
               float invT, float minP) {
    VF_PDL_PROLOGUE();
    vf_sample_hist_body(hcnt, hmass, misc, pmass, pmax, logits, n, invT, minP);
}

// Coarse floor bin (see above); every thread returns it. Block of 256: thread t owns bins [16 t, 16 t + 16), a
// shared suffix scan of the per-thread count and mass totals finds the one thread whose range holds the crossing.
__device__ int vf_sample_floor_bin(const unsigned int* __restrict__ hcnt, const float* __restrict__ hmass,
                                   const unsigned int* __restrict__ misc, const float* __restrict__ pmass, int parts,
                                   int n, int topK, float topP, float minP) {
    __shared__ int sFloor;
    __shared__ unsigned int sc[256];
    __shared__ float sm[256];
    __shared__ float sv[33];
    const int t = threadIdx.x;   // blockDim.x == 256
    const bool kOn = topK > 0 && topK < n;
    const bool pOn = !kOn && topP < 1.f;
    float z = 0.f;
    if (pOn) {
        for (int i = t; i < parts; i += blockDim.x) z += pmass[i];
        z = block_sum(z, sv);
    }
    unsigned int c[16];
    float m[16];
    unsigned int tc = 0u;
    float tm = 0.f;
#pragma unroll
    for (int j = 0; j < 16; j++) {
        c[j] = kOn ? hcnt[16 * t + j] : 0u;
        m[j] = pOn ? hmass[16 * t + j] : 0.f;
        tc += c[j];
        tm += m[j];
    }
    if (t == 0) sFloor = 0;
    sc[t] = tc;
    sm[t] = tm;
    __syncthreads();
    for (int o = 1; o < 256; o <<= 1) {   // inclusive suffix scan: sc[t] = sum over t' >= t
        unsigned int ac = t + o < 256 ? sc[t + o] : 0u;
        float am = t + o < 256 ? sm[t + o] : 0.f;
        __syncthreads();
        sc[t] += ac;
        sm[t] += am;
        __syncthreads();
    }
    unsigned int aboveC = sc[t] - tc;
    float aboveM = t + 1 < 256 ? sm[t + 1] : 0.f;
    if (kOn && aboveC < (unsigned int)topK && aboveC + tc >= (unsigned int)topK) {
        for (int j = 15; j >= 0; j--) { aboveC += c[j]; if (aboveC >= (unsigned int)topK) { sFloor = 16 * t + j; break; } }
    }
    const float target = topP * z;
    if (pOn && aboveM < target && aboveM + tm >= target) {
        int fb = 16 * t;
        for (int j = 15; j >= 0; j--) { aboveM += m[j]; if (aboveM >= target) { fb = 16 * t + j; break; } }
        sFloor = max(0, fb - 1);   // one bin of margin for rounding: the final block finds the exact cut
    }
    __syncthreads();
    // min-p may raise the floor unless top-p needs the whole top-k set for its Z.
    int fb = sFloor;
    if (minP > 0.f && !(kOn && topP < 1.f) && misc[0] < VF_SBINS) fb = max(fb, (int)misc[0]);
    return fb;
}

// grid P, block 256 (8 warps). seg [n], cnt [P].
__device__ __forceinline__ void vf_sample_compact_body(int* __restrict__ seg, int* __restrict__ cnt, const unsigned int* __restrict__ hcnt,
        const float* __restrict__ hmass, const unsigned int* __restrict__ misc, const float* __restrict__ pmass,
        const float* __restrict__ logits, int n, int topK, float topP, float minP) {
    __shared__ int wtot[8];
    const int parts = gridDim.x, chunk = (n + parts - 1) / parts;
    const int beg = min(n, blockIdx.x * chunk), end = min(n, beg + chunk);
    const unsigned int fb = (unsigned int)vf_sample_floor_bin(hcnt, hmass, misc, pmass, parts, n, topK, topP, minP);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int base = 0;
    for (int t = beg; t < end; t += blockDim.x) {
        const int i = t + threadIdx.x;
        const bool keep = i < end && (vf_key(logits[i]) >> VF_SBIN_SHIFT) >= fb;
        const unsigned int bal = __ballot_sync(0xffffffffu, keep);
        if (lane == 0) wtot[warp] = __popc(bal);
        __syncthreads();
        int off = base + __popc(bal & ((1u << lane) - 1u)), tot = 0;
        for (int w = 0; w < 8; w++) { if (w < warp) off += wtot[w]; tot += wtot[w]; }
        if (keep) seg[beg + off] = i;
        base += tot;
        __syncthreads();
    }
    if (threadIdx.x == 0) cnt[blockIdx.x] = base;
}

extern "C" __global__ void __launch_bounds__(256)
vf_sample_compact(int* __restrict__ seg, int* __restrict__ cnt, const unsigned int* __restrict__ hcnt,
                  const float* __restrict__ hmass, const unsigned int* __restrict__ misc,
                  const float* __restrict__ pmass, const float* __restrict__ logits, int n, int topK, float topP,
                  float minP) {
    VF_PDL_PROLOGUE();
    vf_sample_compact_body(seg, cnt, hcnt, hmass, misc, pmass, logits, n, topK, topP, minP);
}

// grid 1, block 1024. cidx [n], cval [n]: the gathered candidates. temperature > 0 and topK != 1 (the launcher sends
// greedy to the argmax). counter: device uint64, incremented once per call.
// c: the draw's counter value (the single-row kernel reads it from its counter and stores c + 1 after).
__device__ __forceinline__ void vf_sample_final_body(int* __restrict__ out, const unsigned long long c, int* __restrict__ cidx,
        float* __restrict__ cval, const int* __restrict__ seg, const int* __restrict__ cnt, const float* __restrict__ pmax,
        const float* __restrict__ pmass, int parts, const float* __restrict__ logits, int n, float invT,
        int topK, float topP, float minP, unsigned long long seed, unsigned int* __restrict__ misc) {
    __shared__ float sv[33];
    __shared__ unsigned long long hist[256];
    __shared__ unsigned long long warpSums[32];
    __shared__ unsigned long long sAcc;
    __shared__ int soff[1025];
    __shared__ int sChosen;
    __shared__ float sZ;
    __shared__ unsigned int sMinKey, sCandKey;
    const int chunk = (n + parts - 1) / parts;
    const float mx = vf_parts_max(pmax, parts, sv);
    {   // candidate offsets: exclusive scan of cnt over the parts (parts <= 1024), and Z (fixed-order block sum)
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        const int own = threadIdx.x < parts ? cnt[threadIdx.x] : 0;
        int incl = own;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int t = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += t;
        }
        if (lane == 31) soff[warp] = incl;   // warp totals (reuses soff before the offsets are written)
        __syncthreads();
        int wbase = 0;
        for (int w = 0; w < warp; w++) wbase += soff[w];
        int total = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) total += soff[w];
        __syncthreads();
        if (threadIdx.x < parts) soff[threadIdx.x] = wbase + incl - own;
        if (threadIdx.x == 0) { soff[parts] = total; sMinKey = 0xffffffffu; sCandKey = 0xffffffffu; }
        float z = threadIdx.x < parts ? pmass[threadIdx.x] : 0.f;
        z = block_sum(z, sv);
        if (threadIdx.x == 0) sZ = z;
        __syncthreads();
    }
    const int C = soff[parts];
    {   // gather: warp w copies segments w, w + 32, ...
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
        for (int b = warp; b < parts; b += nw) {
            const int o = soff[b], m = soff[b + 1] - o;
            for (int j = lane; j < m; j += 32) {
                const int i = seg[b * chunk + j];
                cidx[o + j] = i;
                cval[o + j] = logits[i];
            }
        }
    }
    __syncthreads();
    {   // the candidates' lowest key: the kept set is never wider than the candidates (when top-k keeps all of them)
        unsigned int ck = 0xffffffffu;
        for (int i = threadIdx.x; i < C; i += blockDim.x) ck = min(ck, vf_key(cval[i]));
        if (ck != 0xffffffffu) atomicMin(&sCandKey, ck);
    }
    __syncthreads();
    const bool kOn = topK > 0 && topK < n;
    unsigned int floorKey = C > 0 ? sCandKey : 0u;
    if (kOn && topK < C) floorKey = vf_radix_select<false>(cval, C, floorKey, mx, invT, (unsigned long long)topK, hist);
    if (topP < 1.f) {
        unsigned long long target;
        bool walk = true;
        if (kOn) {
            unsigned long long z = 0ull;
            for (int i = threadIdx.x; i < C; i += blockDim.x)
                if (vf_key(cval[i]) >= floorKey) z += vf_fx(__expf((cval[i] - mx) * invT));
            target = vf_fx_part(topP, vf_block_fx_sum(z, &sAcc));
        } else {    // Z over the whole vocabulary (fixed-order float sums of the blocks), in fixed point
            target = (unsigned long long)((double)topP * (double)sZ * VF_FX_ONE);
            // min-p may have raised the candidate floor past the top-p cut: then top-p keeps every candidate
            unsigned long long cm = 0ull;
            for (int i = threadIdx.x; i < C; i += blockDim.x) cm += vf_fx(__expf((cval[i] - mx) * invT));
            walk = vf_block_fx_sum(cm, &sAcc) >= target;
        }
        if (walk) {
            const unsigned int pKey = vf_radix_select<true>(cval, C, floorKey, mx, invT, target, hist);
            floorKey = max(floorKey, pKey);
        }
    }
    if (minP > 0.f) {
        unsigned int mk = 0xffffffffu;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            if (__expf((cval[i] - mx) * invT) >= minP) mk = min(mk, vf_key(cval[i]));
        if (mk != 0xffffffffu) atomicMin(&sMinKey, mk);
        __syncthreads();
        if (sMinKey != 0xffffffffu) floorKey = max(floorKey, sMinKey);
    }
    __shared__ unsigned long long sTotal;
    const int chosen = vf_draw_kept(cval, C, floorKey, mx, invT, seed, c, warpSums, &sChosen, &sTotal);
    if (threadIdx.x == 0) {
        out[0] = chosen < 0 || C == 0 ? 0 : cidx[chosen];
        misc[1] = floorKey;               // kept set: keys >= floorKey (read by the tests)
        misc[2] = __float_as_uint((float)((double)sTotal / VF_FX_ONE)); // its mass, sum of exp((l - max) / T)
        misc[3] = (unsigned int)C;        // candidates the final block looked at
    }
}

extern "C" __global__ void __launch_bounds__(VF_SAMPLE_THREADS)
vf_sample_final(int* __restrict__ out, unsigned long long* counter, int* __restrict__ cidx, float* __restrict__ cval,
                const int* __restrict__ seg, const int* __restrict__ cnt, const float* __restrict__ pmax,
                const float* __restrict__ pmass, int parts, const float* __restrict__ logits, int n, float invT,
                int topK, float topP, float minP, unsigned long long seed, unsigned int* __restrict__ misc) {
    VF_PDL_PROLOGUE();
    const unsigned long long c = counter[0];
    vf_sample_final_body(out, c, cidx, cval, seg, cnt, pmax, pmass, parts, logits, n, invT, topK, topP, minP, seed, misc);
    if (threadIdx.x == 0) counter[0] = c + 1;
}

// ---- Batched rows (a batched decode step's token choice, io.vlmflux.cuda.gpu.GpuOps#selectRows) ----
// The kernels above with blockIdx.y = the row: row r's logits at logits + r * n, its workspace (the single-row layout
// below, GpuOps.sampleWorkspaceBytes(n) bytes) at ws + r * wsStride, its settings in rows[r]. A greedy row (mode 0)
// runs the two-stage argmax (partials in its workspace's first 1 KB), a sampled row (mode 1) the four sampling
// stages; each kernel returns at once in rows of the other mode, so one launch of each serves a mixed batch. Sampled
// row r draws with counter value counter[0] + rows[r].draw (the host numbers the sampled rows 0, 1, ...: the values a
// loop of single-row calls would use), and vf_sample_count adds the number of sampled rows after the step.
#define VF_SW_PMAX 0
#define VF_SW_PMASS 512
#define VF_SW_CNT 1024
#define VF_SW_MISC 1536
#define VF_SW_HCNT 2048
#define VF_SW_HMASS (VF_SW_HCNT + 4 * VF_SBINS)
#define VF_SW_SEG (VF_SW_HMASS + 4 * VF_SBINS)

struct VfSampleRow {   // 32 bytes, written by GpuOps.putSelectRow
    float invT; int topK; float topP; float minP;
    unsigned long long seed; int draw; int mode;   // mode 0 greedy, 1 sampled
};

#define VF_ROW_WS(T, OFF) reinterpret_cast<T*>(ws + (long long)blockIdx.y * wsStride + (OFF))

extern "C" __global__ void __launch_bounds__(256)
vf_argmax_partial_rows(char* ws, long long wsStride, const VfSampleRow* __restrict__ rows, const float* __restrict__ logits, int n) {
    VF_PDL_PROLOGUE();
    if (rows[blockIdx.y].mode != 0) return;
    vf_argmax_partial_body(VF_ROW_WS(float, 0), VF_ROW_WS(int, 512), logits + (long long)blockIdx.y * n, n);
}

// grid (1, rows), block 32.
extern "C" __global__ void vf_argmax_final_rows(int* __restrict__ out, char* ws, long long wsStride, const VfSampleRow* __restrict__ rows, int parts) {
    VF_PDL_PROLOGUE();
    if (rows[blockIdx.y].mode != 0) return;
    vf_argmax_final_body(out + blockIdx.y, VF_ROW_WS(float, 0), VF_ROW_WS(int, 512), parts);
}

extern "C" __global__ void __launch_bounds__(256)
vf_sample_max_rows(char* ws, long long wsStride, const VfSampleRow* __restrict__ rows, const float* __restrict__ logits, int n) {
    VF_PDL_PROLOGUE();
    if (rows[blockIdx.y].mode != 1) return;
    vf_sample_max_body(VF_ROW_WS(float, VF_SW_PMAX), VF_ROW_WS(unsigned int, VF_SW_HCNT), VF_ROW_WS(float, VF_SW_HMASS),
                       VF_ROW_WS(unsigned int, VF_SW_MISC), logits + (long long)blockIdx.y * n, n);
}

extern "C" __global__ void __launch_bounds__(256)
vf_sample_hist_rows(char* ws, long long wsStride, const VfSampleRow* __restrict__ rows, const float* __restrict__ logits, int n) {
    VF_PDL_PROLOGUE();
    const VfSampleRow r = rows[blockIdx.y];
    if (r.mode != 1) return;
    vf_sample_hist_body(VF_ROW_WS(unsigned int, VF_SW_HCNT), VF_ROW_WS(float, VF_SW_HMASS), VF_ROW_WS(unsigned int, VF_SW_MISC),
                        VF_ROW_WS(float, VF_SW_PMASS), VF_ROW_WS(float, VF_SW_PMAX), logits + (long long)blockIdx.y * n, n, r.invT, r.minP);
}

extern "C" __global__ void __launch_bounds__(256)
vf_sample_compact_rows(char* ws, long long wsStride, const VfSampleRow* __restrict__ rows, const float* __restrict__ logits, int n) {
    VF_PDL_PROLOGUE();
    const VfSampleRow r = rows[blockIdx.y];
    if (r.mode != 1) return;
    vf_sample_compact_body(VF_ROW_WS(int, VF_SW_SEG), VF_ROW_WS(int, VF_SW_CNT), VF_ROW_WS(unsigned int, VF_SW_HCNT),
                           VF_ROW_WS(float, VF_SW_HMASS), VF_ROW_WS(unsigned int, VF_SW_MISC), VF_ROW_WS(float, VF_SW_PMASS),
                           logits + (long long)blockIdx.y * n, n, r.topK, r.topP, r.minP);
}

// grid (1, rows), block 1024; parts: the grid width of the stages before.
extern "C" __global__ void __launch_bounds__(VF_SAMPLE_THREADS)
vf_sample_final_rows(int* __restrict__ out, const unsigned long long* __restrict__ counter, char* ws, long long wsStride,
                     const VfSampleRow* __restrict__ rows, int parts, const float* __restrict__ logits, int n) {
    VF_PDL_PROLOGUE();
    const VfSampleRow r = rows[blockIdx.y];
    if (r.mode != 1) return;
    const long long seg = VF_SW_SEG;
    vf_sample_final_body(out + blockIdx.y, counter[0] + (unsigned long long)r.draw, VF_ROW_WS(int, seg + 4LL * n),
                         VF_ROW_WS(float, seg + 8LL * n), VF_ROW_WS(int, seg), VF_ROW_WS(int, VF_SW_CNT),
                         VF_ROW_WS(float, VF_SW_PMAX), VF_ROW_WS(float, VF_SW_PMASS), parts, logits + (long long)blockIdx.y * n, n,
                         r.invT, r.topK, r.topP, r.minP, r.seed, VF_ROW_WS(unsigned int, VF_SW_MISC));
}

// counter[0] += k after a batched step's sampled rows drew (one thread).
extern "C" __global__ void vf_sample_count(unsigned long long* counter, int k) {
    VF_PDL_PROLOGUE();
    if (threadIdx.x == 0 && blockIdx.x == 0) counter[0] += (unsigned long long)k;
}
