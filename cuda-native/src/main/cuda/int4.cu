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
//   tiled q (Int4Device.tiled; matrices the tensor-core GEMV takes, with at most one permutation): the same words in
//         16-row x 128-column tiles of 1 KB, tile (r/16) * (K/128) + p/16, inside it row r%16, word p%16
//         (int4_tile_index); rows padded with zero words to a multiple of 16. vf_int4_gemv_mma_t and the prefill
//         dequantizations' _t forms read it (and vf_int4_gemv_ring*, vlmflux.cuda.int4Ring: one 16-row stripe = K*8
//         contiguous bytes); the fp32 GEMV does not.
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

// Index of word p (columns 8p..8p+7) of row r in a q stored in 16 x 128 tiles (see the header).
__device__ __forceinline__ long long int4_tile_index(int r, int p, int k8) {
    return (((long long)(r >> 4) * (k8 >> 4) + (p >> 4)) * 16 + (r & 15)) * 16 + (p & 15);
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

// ---- Tensor-core GEMV (the decode path when every group spans whole 128-column blocks and zero points are integers) --
// The kernel above spends ~5 instructions per weight (nibble extraction, FADD, FFMA in fp32) and is issue-bound: at 7B
// it reads ~1.1-1.4 TB/s. Here a nibble pair becomes a bf16 pair in one LOP3 (0x4300 | q = 128 + q, exact), one bf16x2
// FMA subtracts 128 + zero (exact for integer zero points in [-64, 127]), and mma.sync m16n8k16 multiplies 16 rows by
// the 1..8 input rows with fp32 accumulation: ~1.5 instructions per weight, so the loads set the pace.
// Fragment mapping (A = W tile of 16 rows, B = x^T with the batch as n, C = y^T tile): lane (g = lane/4, t = lane%4)
// holds rows g and g+8 and k-slots {2t, 2t+1, 2t+8, 2t+9} of every mma. Per 128-column block a lane loads one uint4
// (columns 32t..32t+31) of each of its rows; mma m (word w = m/2, half h = m%2) takes from word w the nibble pairs
// (2h, 2h+4) as slots (2t, 2t+1) and (2h+1, 2h+5) as slots (2t+8, 2t+9); B takes x at the same columns (PRMT of the
// lane's x words). The reduction runs over k, so any column-to-slot bijection shared by A and B is exact. A 128-column
// block lies in one group (gs % 128 == 0), so its 8 products accumulate unscaled and fold into y with the group's
// scale in fp32. K splits over the block's warps (block b serves rows 16b..16b+15), summed through shared memory.
// Launch: io.vlmflux.cuda.gpu.Int4Ops.mmaWarps(K) warps a block.
#define VF_INT4M_MAX_WARPS 16

__device__ __forceinline__ unsigned int int4m_pair(unsigned int w, unsigned int negz) {   // (q_j, q_j+4) of w - zero
    unsigned int p, d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(p) : "r"(w), "r"(0x000f000fu), "r"(0x43004300u));
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(p), "r"(0x3f803f80u), "r"(negz));
    return d;
}

__device__ __forceinline__ unsigned int int4m_prmt(unsigned int a, unsigned int b, unsigned int sel) {
    unsigned int d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}

__device__ __forceinline__ void int4m_mma(float (&c)[4], unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                          unsigned int b0, unsigned int b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// -(128 + zero) as a bf16 pair (zero an integer in [-64, 127]: exact).
__device__ __forceinline__ unsigned int int4m_negz(float zero) {
    const unsigned int h = f2bf(-(128.f + zero));
    return h | (h << 16);
}

// One 128-column block: 8 mmas of the lane's two weight uint4 (rows g, g+8) against its x uint4s, folded into acc
// with the rows' scales.
__device__ __forceinline__ void int4m_block(float (&acc)[4], uint4 wa, uint4 wb, const uint4 (&xv)[4], unsigned int sza,
                                            unsigned int szb) {
    const float2 a = int4_h2f2(sza), b = int4_h2f2(szb);
    const unsigned int nza = int4m_negz(a.y), nzb = int4m_negz(b.y);
    const unsigned int wra[4] = {wa.x, wa.y, wa.z, wa.w}, wrb[4] = {wb.x, wb.y, wb.z, wb.w};
    float c[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int w = 0; w < 4; w++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int s0 = 8 * h, s1 = 8 * h + 4;   // shifts of nibble pairs (2h, 2h+4) and (2h+1, 2h+5)
            const unsigned int b0 = int4m_prmt(h ? xv[w].y : xv[w].x, h ? xv[w].w : xv[w].z, 0x5410u);
            const unsigned int b1 = int4m_prmt(h ? xv[w].y : xv[w].x, h ? xv[w].w : xv[w].z, 0x7632u);
            int4m_mma(c, int4m_pair(wra[w] >> s0, nza), int4m_pair(wrb[w] >> s0, nzb), int4m_pair(wra[w] >> s1, nza),
                      int4m_pair(wrb[w] >> s1, nzb), b0, b1);
        }
    }
    acc[0] = fmaf(a.x, c[0], acc[0]);
    acc[1] = fmaf(a.x, c[1], acc[1]);
    acc[2] = fmaf(b.x, c[2], acc[2]);
    acc[3] = fmaf(b.x, c[3], acc[3]);
}

// The block's 16-row tile from its warps' accumulators (each warp's acc: its lane's rows g, g+8 x batch rows 2t, 2t+1,
// over the warp's column blocks): summed over the warps through shared memory in warp order, plus bias / residual.
__device__ __forceinline__ void int4m_reduce(float (*red)[32][4], const float (&acc)[4], int row0, float* y, int ldy,
                                             const float* __restrict__ bias, const float* residual, int M, int n) {
    const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int c = 0; c < 4; c++) red[warp][lane][c] = acc[c];
    __syncthreads();
    for (int o = threadIdx.x; o < 128; o += blockDim.x) {   // output (row, b): lane l = o / 4 holds c = o % 4: row g or g+8, b = 2t or 2t+1
        const int l = o >> 2, c = o & 3;
        const int row = row0 + (l >> 2) + (c >= 2 ? 8 : 0), b = 2 * (l & 3) + (c & 1);
        float s = 0.f;
        for (int w = 0; w < W; w++) s += red[w][l][c];
        if (row < M && b < n) {
            if (bias != nullptr) s += bias[row];
            if (residual != nullptr) s += residual[(long long)b * ldy + row];
            y[(long long)b * ldy + row] = s;
        }
    }
}

// The body, with the load schedule as template parameters (the product kernel is one instance; int4_harness times
// the others on the GPU machine): DEPTH blocks a round; XPIPE: scales loaded with the weights and x double-buffered
// (more registers), else both loaded where used; CONTIG: a warp's round is DEPTH consecutive blocks (its loads of a
// row are contiguous), else blocks W apart (the block's warps interleave along a row); TILED: q in 16 x 128 tiles (a
// block's 16 rows are one 1 KB tile: the lane's row-g words at 4g + t, its row-(g+8) words 512 bytes further), else
// row-major (16 rows x 64 bytes apart). Tiled rows are padded to 16, so no row is clamped there.
template <int DEPTH, bool XPIPE, bool CONTIG, bool TILED>
__device__ __forceinline__ void int4m_gemv(float (*red)[32][4], float* y, int ldy, const unsigned int* __restrict__ q,
                                           const unsigned int* __restrict__ sz, const bf16_t* __restrict__ x, int ldx,
                                           const float* __restrict__ bias, const float* residual, int M, int K, int gs, int n) {
    const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * 16;
    const int ra = min(row0 + g, M - 1), rb = min(row0 + g + 8, M - 1);
    const int nb = K >> 7, bpg = gs >> 7;
    const uint4* wa = TILED ? reinterpret_cast<const uint4*>(q) + (long long)blockIdx.x * nb * 64 + 4 * g + t
                            : reinterpret_cast<const uint4*>(q + (long long)ra * (K >> 3)) + t;
    const uint4* wb = TILED ? wa + 32 : reinterpret_cast<const uint4*>(q + (long long)rb * (K >> 3)) + t;
    const int ws = TILED ? 64 : 4;   // uint4 between a row's consecutive 128-column blocks
    const int G = K / gs;
    const unsigned int* sza = sz + (long long)ra * G;
    const unsigned int* szb = sz + (long long)rb * G;
    const bool hasx = g < n;
    const uint4* xr = reinterpret_cast<const uint4*>(x + (long long)(hasx ? g : 0) * ldx) + 4 * t;
    const int su = CONTIG ? 1 : W;   // blocks between a round's consecutive loads
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int base = CONTIG ? warp * DEPTH : warp; base < nb; base += DEPTH * W) {
        uint4 wva[DEPTH], wvb[DEPTH];
        unsigned int sa[DEPTH], sb[DEPTH];
#pragma unroll
        for (int u = 0; u < DEPTH; u++) {   // every weight load of the round before the first product
            const int j = min(base + u * su, nb - 1);   // clamped: a block past the end is loaded, not used
            wva[u] = int4_ldg_stream(wa + ws * j);
            wvb[u] = int4_ldg_stream(wb + ws * j);
            if (XPIPE) {
                sa[u] = __ldg(sza + j / bpg);
                sb[u] = __ldg(szb + j / bpg);
            }
        }
        uint4 xv[2][4];
        if (XPIPE) {
#pragma unroll
            for (int v = 0; v < 4; v++) xv[0][v] = hasx ? __ldg(xr + 16 * base + v) : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int u = 0; u < DEPTH; u++) {
            const int j = base + u * su;
            if (XPIPE) {
                if (u + 1 < DEPTH) {
                    const int jn = min(j + su, nb - 1);
#pragma unroll
                    for (int v = 0; v < 4; v++) xv[(u + 1) & 1][v] = hasx ? __ldg(xr + 16 * jn + v) : make_uint4(0u, 0u, 0u, 0u);
                }
                if (j < nb) int4m_block(acc, wva[u], wvb[u], xv[u & 1], sa[u], sb[u]);
            } else if (j < nb) {
#pragma unroll
                for (int v = 0; v < 4; v++) xv[0][v] = hasx ? __ldg(xr + 16 * j + v) : make_uint4(0u, 0u, 0u, 0u);
                int4m_block(acc, wva[u], wvb[u], xv[0], __ldg(sza + j / bpg), __ldg(szb + j / bpg));
            }
        }
    }
    int4m_reduce(red, acc, row0, y, ldy, bias, residual, M, n);
}

// Every tensor-core GEMV entry is vf_int4_gemv_mma##SUFFIX, one instance of int4m_gemv (KernelModule.PDL_READY names
// them "vf_int4_gemv_mma*": each opens with the PDL prologue). Contract of all of them:
// y [n, ldy] (1 <= n <= 8 rows b): y[b*ldy + r] = sum_c W[r, c] x[b*ldx + c] (+ bias[r]) (+ residual[b*ldy + r]);
// residual may alias y. K % 128 == 0, gs % 128 == 0, zero points integers in [-64, 127] (Int4Device.mmaShape).
// grid ceil(M / 16), block 32 * W, 1 <= W <= VF_INT4M_MAX_WARPS warps splitting the K / 128 column blocks (Int4Ops
// gives 4..16, about one round of 4 blocks a warp: a long K gets more warps, not more rounds).
// Graph-capturable: no host sync, no atomics, no workspace.
// The body (after SUFFIX) is a device function of (red, y, ldy, q, sz, x, ldx, bias, residual, M, K, gs, n): an
// int4m_gemv or int4p_gemv (the persistent form, below) instance.
#define VF_INT4M_INSTANCE(SUFFIX, ...)                                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * VF_INT4M_MAX_WARPS) vf_int4_gemv_mma##SUFFIX(                      \
        float* y, int ldy, const unsigned int* q, const unsigned int* sz, const bf16_t* x, int ldx, const float* bias,      \
        const float* residual, int M, int K, int gs, int n) {                                                            \
        VF_PDL_PROLOGUE();                                                                                               \
        __shared__ float red[VF_INT4M_MAX_WARPS][32][4];                                                                 \
        __VA_ARGS__(red, y, ldy, q, sz, x, ldx, bias, residual, M, K, gs, n);                                            \
    }

// The product kernel (Int4Ops): vf_int4_gemv_mma, row-major q, 4 blocks a round, scales and x pipelined, warps
// interleaved along the rows.
VF_INT4M_INSTANCE(, int4m_gemv<4, true, false, false>)
// The tiled product kernel (Int4Ops, for Int4Device.tiled matrices): vf_int4_gemv_mma_t, q in 16 x 128 tiles, a warp's
// round 4 consecutive blocks (4 KB contiguous), scales and x loaded where used.
VF_INT4M_INSTANCE(_t, int4m_gemv<4, false, true, true>)
// Load-schedule variants timed by int4_harness (not launched by the runtime).
VF_INT4M_INSTANCE(_v_s4, int4m_gemv<4, false, false, false>)
VF_INT4M_INSTANCE(_v_c4, int4m_gemv<4, false, true, false>)
VF_INT4M_INSTANCE(_v_c8, int4m_gemv<8, false, true, false>)
VF_INT4M_INSTANCE(_v_cx4, int4m_gemv<4, true, true, false>)
VF_INT4M_INSTANCE(_t_v_cx4, int4m_gemv<4, true, true, true>)
VF_INT4M_INSTANCE(_t_v_c8, int4m_gemv<8, false, true, true>)
VF_INT4M_INSTANCE(_t_v_s4, int4m_gemv<4, false, false, true>)

// ---- Persistent, software-pipelined form (vlmflux.cuda.int4Persistent, off: no faster at stop 34, H100) ----
// The product kernel's block serves one 16-row tile in one round a warp (K = 3,584: 7 warps x 4 blocks) and exits: a
// warp's loads, its wait and its products never overlap inside the warp, only across the blocks an SM holds. Here a
// grid of resident blocks walks the tiles grid-stride and every warp issues the loads of its next round (of this tile
// or the next) before the products of the current one: the next loads stay in flight while it multiplies, reduces and
// waits at the block's barrier. A warp's column blocks, the products and the reduction are those of the one-tile-a-block
// form with the same CONTIG (int4m_block; CONTIG: DEPTH consecutive blocks a round, else blocks warp + W*i), so y is bit
// for bit that form's: vf_int4_gemv_mma's (interleaved) and vf_int4_gemv_mma_t's (tiled, contiguous). x is re-read from L1
// (the same x for every tile a block serves). grid <= ceil(M / 16) resident blocks, block 32 * W, W as that form's.
template <int DEPTH>
struct Int4pRound {
    uint4 wa[DEPTH], wb[DEPTH];
    unsigned int sa[DEPTH], sb[DEPTH];
};

// Column block u of round rnd of this warp (as int4m_gemv walks them: CONTIG rounds of DEPTH consecutive blocks, else
// blocks W apart).
template <int DEPTH, bool CONTIG>
__device__ __forceinline__ int int4p_block(int rnd, int u, int W, int warp) {
    return rnd * DEPTH * W + (CONTIG ? warp * DEPTH + u : warp + u * W);
}

template <int DEPTH, bool CONTIG, bool TILED>
__device__ __forceinline__ void int4p_issue(Int4pRound<DEPTH>& r, const unsigned int* __restrict__ q, const unsigned int* __restrict__ sz,
                                            int tile, int rnd, int M, int K, int gs) {
    const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int nb = K >> 7, bpg = gs >> 7, G = K / gs;
    const int ra = min(tile * 16 + g, M - 1), rb = min(tile * 16 + g + 8, M - 1);
    const uint4* wa = TILED ? reinterpret_cast<const uint4*>(q) + (long long)tile * nb * 64 + 4 * g + t
                            : reinterpret_cast<const uint4*>(q + (long long)ra * (K >> 3)) + t;
    const uint4* wb = TILED ? wa + 32 : reinterpret_cast<const uint4*>(q + (long long)rb * (K >> 3)) + t;
    const int ws = TILED ? 64 : 4;
#pragma unroll
    for (int u = 0; u < DEPTH; u++) {
        const int j = min(int4p_block<DEPTH, CONTIG>(rnd, u, W, warp), nb - 1);   // clamped: a block past the end is loaded, not used
        r.wa[u] = int4_ldg_stream(wa + ws * j);
        r.wb[u] = int4_ldg_stream(wb + ws * j);
        r.sa[u] = __ldg(sz + (long long)ra * G + j / bpg);
        r.sb[u] = __ldg(sz + (long long)rb * G + j / bpg);
    }
}

// The products of round rnd of the warp (its loads in r) into acc; on the tile's last round, the block's reduction
// (as int4m_gemv's) and acc cleared.
template <int DEPTH, bool CONTIG>
__device__ __forceinline__ void int4p_consume(float (*red)[32][4], float (&acc)[4], const Int4pRound<DEPTH>& r, int tile, int rnd, int rounds,
                                              float* y, int ldy, const bf16_t* __restrict__ x, int ldx, const float* __restrict__ bias,
                                              const float* residual, int M, int K, int n) {
    const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int nb = K >> 7;
    const bool hasx = g < n;
    const uint4* xr = reinterpret_cast<const uint4*>(x + (long long)(hasx ? g : 0) * ldx) + 4 * t;
#pragma unroll
    for (int u = 0; u < DEPTH; u++) {
        const int j = int4p_block<DEPTH, CONTIG>(rnd, u, W, warp);
        if (j < nb) {
            uint4 xv[4];
#pragma unroll
            for (int v = 0; v < 4; v++) xv[v] = hasx ? __ldg(xr + 16 * j + v) : make_uint4(0u, 0u, 0u, 0u);
            int4m_block(acc, r.wa[u], r.wb[u], xv, r.sa[u], r.sb[u]);
        }
    }
    if (rnd + 1 < rounds) return;
    int4m_reduce(red, acc, tile * 16, y, ldy, bias, residual, M, n);
    __syncthreads();   // red is rewritten by the next tile
#pragma unroll
    for (int c = 0; c < 4; c++) acc[c] = 0.f;
}

template <int DEPTH, bool CONTIG, bool TILED>
__device__ __forceinline__ void int4p_gemv(float (*red)[32][4], float* y, int ldy, const unsigned int* __restrict__ q,
                                           const unsigned int* __restrict__ sz, const bf16_t* __restrict__ x, int ldx,
                                           const float* __restrict__ bias, const float* residual, int M, int K, int gs, int n) {
    const int W = blockDim.x >> 5, tiles = (M + 15) >> 4, rounds = max(1, ((K >> 7) + DEPTH * W - 1) / (DEPTH * W));
    Int4pRound<DEPTH> A, B;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    int tile = blockIdx.x, rnd = 0;
    if (tile < tiles) int4p_issue<DEPTH, CONTIG, TILED>(A, q, sz, tile, 0, M, K, gs);
    while (tile < tiles) {   // two rounds an iteration, so that the buffers trade places without register copies
        int t2 = tile, r2 = rnd + 1;
        if (r2 == rounds) { t2 += gridDim.x; r2 = 0; }
        if (t2 < tiles) int4p_issue<DEPTH, CONTIG, TILED>(B, q, sz, t2, r2, M, K, gs);
        int4p_consume<DEPTH, CONTIG>(red, acc, A, tile, rnd, rounds, y, ldy, x, ldx, bias, residual, M, K, n);
        tile = t2; rnd = r2;
        if (tile >= tiles) break;
        t2 = tile; r2 = rnd + 1;
        if (r2 == rounds) { t2 += gridDim.x; r2 = 0; }
        if (t2 < tiles) int4p_issue<DEPTH, CONTIG, TILED>(A, q, sz, t2, r2, M, K, gs);
        int4p_consume<DEPTH, CONTIG>(red, acc, B, tile, rnd, rounds, y, ldy, x, ldx, bias, residual, M, K, n);
        tile = t2; rnd = r2;
    }
}

// Harness-only (int4_harness "persistent") unless vlmflux.cuda.int4Persistent: row-major q interleaved (vf_int4_gemv_mma's
// walk), 4 and 2 blocks a round; tiled q contiguous (vf_int4_gemv_mma_t's walk).
VF_INT4M_INSTANCE(_p4, int4p_gemv<4, false, false>)
VF_INT4M_INSTANCE(_p2, int4p_gemv<2, false, false>)
VF_INT4M_INSTANCE(_t_p4, int4p_gemv<4, true, true>)

// ---- Ring form: weights streamed through shared memory by bulk copies (sm_90+; vlmflux.cuda.int4Ring, off: not yet measured) ----
// vf_int4_gemv_mma_t reads 1.7-2.0 TB/s at 7B gate/up (M 37,888, K 3,584) where the bf16 GEMV reads 3.05 TB/s: its
// weight loads sit in registers (120 a thread: few warps resident), and a block's loads, its dependent mma chains, its
// reduction and its exit never overlap, so the bytes in flight an SM holds average far below the ~40 KB that DRAM
// latency x bandwidth asks for (int4p_gemv, the register-pipelined persistent form, did not help). Here the bytes in
// flight are decoupled from registers: every warp keeps a ring of R shared-memory slots of CT tiles (1 KB each) that
// one lane fills with cp.async.bulk (TMA, 1-D) completing on one mbarrier a slot, R chunks ahead of its arithmetic.
// Same contract as vf_int4_gemv_mma_t (y [n, ldy], 1 <= n <= 8, bias, residual may alias y, K % 128 == 0,
// gs % 128 == 0, integer zero points in [-64, 127]), q TILED (16-B aligned; stripe s = the 16 rows 16s..16s+15 =
// K*8 contiguous bytes from byte s*K*8, rows padded to 16 with zero words), sz row-major [M, G].
// Persistent, each warp independent (no block barrier): warp w of block b is warp gw = w * gridDim.x + b (warp-major,
// so that stripes spread over the blocks, hence the SMs, when there are fewer than warps) and serves stripes gw,
// gw + GW, ... (GW = gridDim.x * W) whole: per 128-column block j, int4m_block on its lane's row-g and row-(g+8) uint4
// (4g+t and 32+4g+t of the tile, read from its slot) with x and the scales from global memory (one block ahead in
// registers), and at the stripe's end writes its 16 rows x n outputs itself (int4m_reduce's (lane, c) -> (row, batch)
// mapping without the sum over warps). A whole chunk's blocks run IL at a time in one basic block (IL = 4 for CT = 4,
// else 2; 128 registers at most), so that their independent 8-mma chains interleave: where the stripes are few (M of
// a few thousand: one or two busy warps an SM) a warp's arithmetic, not the ring, sets the pace. The warp's chunks: stripe after stripe, ceil(nb / CT) chunks a stripe (the last
// one partial; nb = K / 128); chunk i goes to slot i % R, phase (i / R) & 1 of its barrier; the lane that refills a
// slot (with chunk i + R, maybe of the next stripe) does so once the whole warp has read chunk i (__syncwarp, then
// fence.proxy.async: the generic-proxy reads before the async-proxy write).
// Launch: grid <= SMs x resident blocks (more is correct, just idle warps), block 32 * W (1 <= W <= VF_INT4R_MAX_WARPS),
// dynamic shared memory int4r_smem_bytes(W, R, CT) = W * (R * CT * 1024 + R * 8) (cudaFuncAttributeMaxDynamicSharedMemorySize
// above 48 KB; at most 227 KB on H100: W * R * CT <= 226). Graph-capturable: no host sync, no atomics, no workspace.
// Below sm_90 (no bulk copies) the body traps: the host may select these kernels only where the module has native
// sm_90+ code (as for PDL), never on the compute_87 PTX.
#define VF_INT4R_MAX_WARPS 16

// Dynamic shared memory of a launch: W warps' slots (R * CT KB each, warp after warp), then their R barriers each.
__host__ __device__ constexpr unsigned int int4r_smem_bytes(int W, int R, int CT) {
    return (unsigned int)W * ((unsigned int)R * (unsigned int)CT * 1024u + (unsigned int)R * 8u);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// x (lanes g < n: row g; others zeros) and the scales of rows s*16 + g, s*16 + g + 8 (clamped to M - 1) for block j.
__device__ __forceinline__ void int4r_operands(uint4 (&xv)[4], unsigned int& sa, unsigned int& sb, const uint4* __restrict__ xr,
                                               bool hasx, const unsigned int* __restrict__ sz, int s, int j, int g, int M,
                                               int G, int bpg) {
#pragma unroll
    for (int v = 0; v < 4; v++) xv[v] = hasx ? __ldg(xr + 16 * j + v) : make_uint4(0u, 0u, 0u, 0u);
    const int gi = j / bpg;
    sa = __ldg(sz + (long long)min(s * 16 + g, M - 1) * G + gi);
    sb = __ldg(sz + (long long)min(s * 16 + g + 8, M - 1) * G + gi);
}
#endif

// SPLIT: the block's warps split each stripe's K instead (stripes blockIdx.x, + gridDim.x, ...; warp w the tiles
// [nb w / W, nb (w + 1) / W) of each, the warps' sums added through shared memory in warp order as int4m_reduce does):
// for matrices with too few stripes to give every warp its own (q/k/v, o and down at 7B: 224-288 stripes for 1,056
// warps), where one warp walking a whole stripe is bound by its own dependent products.
template <int R, int CT, bool SPLIT>
__device__ __forceinline__ void int4r_gemv(float* y, int ldy, const unsigned int* __restrict__ q, const unsigned int* __restrict__ sz,
                                           const bf16_t* __restrict__ x, int ldx, const float* __restrict__ bias,
                                           const float* residual, int M, int K, int gs, int n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) unsigned char int4r_ring[];
    constexpr unsigned int SLOT = CT * 1024u;   // bytes of a slot
    const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int S = (M + 15) >> 4, nb = K >> 7, bpg = gs >> 7, G = K / gs;
    // the warp's units: stripes s0, s0 + ss, ..., tiles [lo, hi) of each
    const int s0 = SPLIT ? (int)blockIdx.x : warp * gridDim.x + blockIdx.x, ss = SPLIT ? gridDim.x : gridDim.x * W;
    const int lo = SPLIT ? (int)((long long)nb * warp / W) : 0, hi = SPLIT ? (int)((long long)nb * (warp + 1) / W) : nb;
    const int nt = hi - lo, cps = (nt + CT - 1) / CT;
    const unsigned char* slots = int4r_ring + (unsigned int)warp * R * SLOT;
    const unsigned int ring = vf_smem_addr(slots);
    const unsigned int bars = vf_smem_addr(int4r_ring) + (unsigned int)W * R * SLOT + (unsigned int)warp * R * 8u;
    const unsigned char* qb = reinterpret_cast<const unsigned char*>(q);
    // The issue cursor (every lane keeps it, lane 0 issues): stripe is, chunk ic of the next chunk to issue.
    int is = cps > 0 ? s0 : S, ic = 0;
    auto issue = [&](int sl) {   // chunk (is, ic) into slot sl, then the cursor on
        if (lane == 0) {
            const unsigned int bytes = min(CT, nt - ic * CT) * 1024u, bar = bars + 8 * sl;
            vf_bulk_expect(bar, bytes);
            vf_bulk_copy(ring + sl * SLOT, qb + ((long long)is * nb + lo + ic * CT) * 1024, bytes, bar);
        }
        if (++ic == cps) { ic = 0; is += ss; }
    };
    if (lane == 0) vf_mbar_init(bars, R);
#pragma unroll
    for (int r = 0; r < R; r++)   // the prologue: chunks 0 .. R-1 (those that exist) into slots 0 .. R-1
        if (is < S) issue(r);
    __syncwarp();   // the barriers' initialization before any lane waits on them
    // PDL: only the weights (never written by a kernel) were touched so far: their first R chunks are in flight while the
    // previous kernel of the stream finishes; x, y, bias and the residual only after it (KernelSourcesTest checks the order)
    VF_PDL_PROLOGUE();
    const bool hasx = g < n;
    const uint4* xr = reinterpret_cast<const uint4*>(x + (long long)(hasx ? g : 0) * ldx) + 4 * t;
    uint4 xn[4];   // the next block's operands
    unsigned int san = 0, sbn = 0;
    if (cps > 0) int4r_operands(xn, san, sbn, xr, hasx, sz, s0, lo, g, M, G, bpg);
    int slot = 0;
    unsigned int phase = 0;   // of chunk i: (i / R) & 1, slot i % R
    for (int s = s0; s < S; s += ss) {   // SPLIT: block-uniform
        float acc[4] = {0.f, 0.f, 0.f, 0.f};
        for (int c = 0; c < cps; c++) {
            vf_mbar_wait(bars + 8 * slot, phase);
            const uint4* tile = reinterpret_cast<const uint4*>(slots + slot * SLOT) + lane;
            auto block = [&](int u) {   // block j = lo + c * CT + u from tile u of the slot
                const int j = lo + c * CT + u;
                uint4 xv[4];
#pragma unroll
                for (int v = 0; v < 4; v++) xv[v] = xn[v];
                const unsigned int sa = san, sb = sbn;
                const bool last = j + 1 == hi;   // next: block j + 1, or block lo of the next stripe (maybe none: loads in bounds, unused)
                int4r_operands(xn, san, sbn, xr, hasx, sz, last ? s + ss : s, last ? lo : j + 1, g, M, G, bpg);
                int4m_block(acc, tile[64 * u], tile[64 * u + 32], xv, sa, sb);
            };
            if ((c + 1) * CT <= nt) {   // a whole chunk: IL tiles a basic block, so that their independent mma chains interleave
                constexpr int IL = CT == 4 ? 4 : 2;   // (CT 8: 4 a block spills at 128 registers, all 8 more so)
#pragma unroll 1
                for (int u0 = 0; u0 < CT; u0 += IL) {
#pragma unroll
                    for (int u = 0; u < IL; u++) block(u0 + u);
                }
            } else {   // the unit's partial last chunk (warp-uniform)
#pragma unroll 1
                for (int u = 0; c * CT + u < nt; u++) block(u);
            }
            __syncwarp();   // every lane has read the slot
            if (is < S) {   // refill it with the chunk R ahead
                if (lane == 0) vf_bulk_reuse();
                issue(slot);
            }
            if (++slot == R) { slot = 0; phase ^= 1u; }
        }
        if constexpr (SPLIT) {
            __shared__ float red[VF_INT4R_MAX_WARPS][32][4];
            int4m_reduce(red, acc, s * 16, y, ldy, bias, residual, M, n);
            __syncthreads();   // red is rewritten for the next stripe
        } else {
#pragma unroll
            for (int c = 0; c < 4; c++) {   // lane (g, t) holds rows g (c 0, 1), g + 8 (c 2, 3) x batch rows 2t, 2t + 1
                const int row = s * 16 + g + (c >= 2 ? 8 : 0), b = 2 * t + (c & 1);
                if (row < M && b < n) {
                    float v = acc[c];
                    if (bias != nullptr) v += bias[row];
                    if (residual != nullptr) v += residual[(long long)b * ldy + row];
                    y[(long long)b * ldy + row] = v;
                }
            }
        }
    }
#else
    __trap();   // no bulk copies below sm_90 (see above)
#endif
}

// Ring GEMV entries vf_int4_gemv_ring##SUFFIX (KernelModule.PDL_READY names them "vf_int4_gemv_ring*": each is
// int4r_gemv, which issues its ring's first weight copies and then runs the PDL prologue before it reads anything a
// kernel writes), with the vf_int4_gemv_mma instances' signature; launched with dynamic shared memory, see above.
// Residency is bound by shared memory (at most 14 warps an SM at 16 KB a warp) more than by registers (128 a thread:
// 16 warps): minimum 1 block lets ptxas use up to 128 (sm_110 would otherwise cap at 64 and spill).
#define VF_INT4R_INSTANCE(SUFFIX, R, CT, SPLIT)                                                                          \
    extern "C" __global__ void __launch_bounds__(32 * VF_INT4R_MAX_WARPS, 1) vf_int4_gemv_ring##SUFFIX(                  \
        float* y, int ldy, const unsigned int* q, const unsigned int* sz, const bf16_t* x, int ldx, const float* bias,      \
        const float* residual, int M, int K, int gs, int n) {                                                            \
        int4r_gemv<R, CT, SPLIT>(y, ldy, q, sz, x, ldx, bias, residual, M, K, gs, n);   /* its PDL prologue inside */     \
    }

// vf_int4_gemv_ring: 4 slots of 4 tiles (16 KB a warp). Ring-shape variants timed by int4_harness (R slots x CT tiles):
// _v_r3c8 (24 KB a warp), _v_r6c2 (12 KB), _v_r2c8 (16 KB, double-buffered big chunks), _v_r8c2 (16 KB, small chunks).
VF_INT4R_INSTANCE(, 4, 4, false)
VF_INT4R_INSTANCE(_v_r3c8, 3, 8, false)
VF_INT4R_INSTANCE(_v_r6c2, 6, 2, false)
VF_INT4R_INSTANCE(_v_r2c8, 2, 8, false)
VF_INT4R_INSTANCE(_v_r8c2, 8, 2, false)
// vf_int4_gemv_ring_s: the block's warps split each stripe's K (SPLIT above), 4 slots of 4 tiles; _s_v_r6c2: of 2 tiles.
VF_INT4R_INSTANCE(_s, 4, 4, true)
VF_INT4R_INSTANCE(_s_v_r6c2, 6, 2, true)

// xp [P, n, K]: xp[(p*n + b)*K + c] = x[b*ldx + perm[p*K + c]] (canonical column c of part p <- input column), bf16.
// grid (ceil(K / 256), n, P), block 256.
extern "C" __global__ void vf_int4_gather_rows(bf16_t* __restrict__ xp, const bf16_t* __restrict__ x, int ldx,
                                               const int* __restrict__ perm, int K) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= K) return;
    const long long b = blockIdx.y, p = blockIdx.z;
    xp[(p * gridDim.y + b) * K + c] = x[b * ldx + perm[p * K + c]];
}

// The 8 bf16 of packed word w (column 8p+j in bits 4j..4j+3, column order from the low half of .x): (q - zero) * scale
// in fp32 (q and q - zero exact: zero points are integers), rounded to nearest even; s = (scale, zero).
__device__ __forceinline__ uint4 int4_dequant_word(unsigned int w, float2 s) {
    unsigned int o[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float lo = ((__uint_as_float(((w >> (8 * j)) & 0xfu) | 0x4b000000u) - 8388608.f) - s.y) * s.x;
        const float hi = ((__uint_as_float(((w >> (8 * j + 4)) & 0xfu) | 0x4b000000u) - 8388608.f) - s.y) * s.x;
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(o[j]) : "f"(hi), "f"(lo));
    }
    return make_uint4(o[0], o[1], o[2], o[3]);
}

// Prefill, act-order: W bf16 [M, K] (row r at W + r*K, input columns in checkpoint order) = dequantized q, each row
// through its part's permutation (s1..s3 as for the GEMV). One thread per packed word (8 columns), 8 scattered 2-byte
// stores; _t: q in tiles (one part then). grid ceil(M*K/8 / 256), block 256. (Without a
// permutation: vf_int4_dequant_bf16_x4.)
template <bool TILED>
__device__ __forceinline__ void int4_dequant_act(bf16_t* __restrict__ W, const unsigned int* __restrict__ q,
                                                 const unsigned int* __restrict__ sz, const int* __restrict__ perm,
                                                 int s1, int s2, int s3, int M, int K, int gs) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int k8 = K >> 3;
    if (t >= (long long)M * k8) return;
    const int r = (int)(t / k8), p = (int)(t - (long long)r * k8);
    const uint4 v = int4_dequant_word(q[TILED ? int4_tile_index(r, p, k8) : t], int4_h2f2(sz[(long long)r * (K / gs) + (8 * p) / gs]));
    const unsigned int h[4] = {v.x, v.y, v.z, v.w};
    unsigned short* row = reinterpret_cast<unsigned short*>(W + (long long)r * K);
    const int* pr = perm + (long long)int4_part(r, s1, s2, s3) * K + 8 * p;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        row[pr[2 * j]] = (unsigned short)(h[j] & 0xffffu);
        row[pr[2 * j + 1]] = (unsigned short)(h[j] >> 16);
    }
}
extern "C" __global__ void vf_int4_dequant_bf16(bf16_t* __restrict__ W, const unsigned int* __restrict__ q,
                                                const unsigned int* __restrict__ sz, const int* __restrict__ perm,
                                                int s1, int s2, int s3, int M, int K, int gs) {
    int4_dequant_act<false>(W, q, sz, perm, s1, s2, s3, M, K, gs);
}
extern "C" __global__ void vf_int4_dequant_bf16_t(bf16_t* __restrict__ W, const unsigned int* __restrict__ q,
                                                  const unsigned int* __restrict__ sz, const int* __restrict__ perm,
                                                  int s1, int s2, int s3, int M, int K, int gs) {
    int4_dequant_act<true>(W, q, sz, perm, s1, s2, s3, M, K, gs);
}

// Prefill without a permutation: as vf_int4_dequant_bf16, four packed words a thread, 32 words apart: each load
// instruction of a warp reads 128 contiguous bytes and each store writes 512, and a thread has four loads in flight
// (one word a thread waits on one 4-byte load). grid ceil(M*K/8 / 1024), block 256: block b, warp w covers words
// (4b + w) * 128 + [0, 128) of W's row-major order; _t: q in tiles (32 consecutive words of a row are two 64-byte runs of its tiles).
template <bool TILED>
__device__ __forceinline__ void int4_dequant_x4(bf16_t* __restrict__ W, const unsigned int* __restrict__ q,
                                                const unsigned int* __restrict__ sz, int M, int K, int gs) {
    const long long words = (long long)M * (K >> 3);
    const long long w0 = ((long long)blockIdx.x * 8 + (threadIdx.x >> 5)) * 128 + (threadIdx.x & 31);
    const int k8 = K >> 3, G = K / gs;
    unsigned int wv[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const long long t = w0 + 32 * i;
        long long at = t;   // row-major: the word's own index; tiled: where its tile keeps it
        if (TILED) { const int r = (int)(t / k8); at = int4_tile_index(r, (int)(t - (long long)r * k8), k8); }
        wv[i] = t < words ? __ldg(q + at) : 0u;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const long long t = w0 + 32 * i;
        if (t >= words) break;
        const int r = (int)(t / k8), p = (int)(t - (long long)r * k8);
        reinterpret_cast<uint4*>(W)[t] = int4_dequant_word(wv[i], int4_h2f2(__ldg(sz + (long long)r * G + (8 * p) / gs)));
    }
}
extern "C" __global__ void vf_int4_dequant_bf16_x4(bf16_t* __restrict__ W, const unsigned int* __restrict__ q,
                                                   const unsigned int* __restrict__ sz, int M, int K, int gs) {
    int4_dequant_x4<false>(W, q, sz, M, K, gs);
}
extern "C" __global__ void vf_int4_dequant_bf16_x4_t(bf16_t* __restrict__ W, const unsigned int* __restrict__ q,
                                                     const unsigned int* __restrict__ sz, int M, int K, int gs) {
    int4_dequant_x4<true>(W, q, sz, M, K, gs);
}
