// Image preprocessing for the vision towers in two kernels: (1) colour conversion of the uploaded frame fused with
// the horizontal pass of torch's antialiased uint8 bicubic (fixed-point int16 weights computed on the host), into a
// uint8 RGB buffer [inH, outW, 3]; (2) the vertical pass fused with normalisation (a 3x256 lookup table), temporal
// duplication and patchify, writing the encoder's input [patches, 3*T*P*P] (bf16 or fp32) directly.
// Bit-exact with the CPU reference (io.vlmflux.vision.BicubicResize / Images): integer arithmetic, and the YUV
// matrix in double with explicit round-to-nearest operations (no fused multiply-add), rounded half up as Java.
#include "common.cuh"

// Pixel formats (order of io.vlmflux.sources.PixelFormat).
#define VF_PF_RGB 0
#define VF_PF_BGR 1
#define VF_PF_RGBA 2
#define VF_PF_BGRA 3
#define VF_PF_GRAY8 4
#define VF_PF_NV12 5
#define VF_PF_I420 6

struct vf_frame_desc {
    long long off0, off1, off2;  // plane offsets in bytes
    int s0, s1, s2;              // strides in bytes
    int format;
    double ys, y0, rv, gu, gv, bu;  // YUV matrix: R = ys*(Y-y0) + rv*(V-128) ...
};

__device__ __forceinline__ unsigned char vf_sat_round(double v) {
    double f = floor(v);
    if (__dadd_rn(v, -f) >= 0.5) f += 1.0;  // Java Math.round: half up
    return (unsigned char)(f < 0.0 ? 0.0 : (f > 255.0 ? 255.0 : f));
}

__device__ __forceinline__ void vf_fetch_rgb(const unsigned char* __restrict__ src, const vf_frame_desc& d, int x, int y,
                                             int* rgb) {
    switch (d.format) {
        case VF_PF_RGB: case VF_PF_BGR: case VF_PF_RGBA: case VF_PF_BGRA: {
            const int bpp = d.format >= VF_PF_RGBA ? 4 : 3;
            const unsigned char* p = src + d.off0 + (long long)y * d.s0 + (long long)x * bpp;
            const bool bgr = d.format == VF_PF_BGR || d.format == VF_PF_BGRA;
            rgb[0] = p[bgr ? 2 : 0]; rgb[1] = p[1]; rgb[2] = p[bgr ? 0 : 2];
            return;
        }
        case VF_PF_GRAY8: {
            const int gv = src[d.off0 + (long long)y * d.s0 + x];
            rgb[0] = rgb[1] = rgb[2] = gv;
            return;
        }
        default: {
            const int cx = x / 2, cy = y / 2;
            const int Y = src[d.off0 + (long long)y * d.s0 + x];
            int U, V;
            if (d.format == VF_PF_NV12) {
                const unsigned char* uv = src + d.off1 + (long long)cy * d.s1 + 2 * cx;
                U = uv[0]; V = uv[1];
            } else {
                U = src[d.off1 + (long long)cy * d.s1 + cx];
                V = src[d.off2 + (long long)cy * d.s2 + cx];
            }
            const double yy = __dmul_rn(d.ys, (double)Y - d.y0);
            const double u = (double)(U - 128), v = (double)(V - 128);
            rgb[0] = vf_sat_round(__dadd_rn(yy, __dmul_rn(d.rv, v)));
            rgb[1] = vf_sat_round(__dadd_rn(__dadd_rn(yy, __dmul_rn(d.gu, u)), __dmul_rn(d.gv, v)));
            rgb[2] = vf_sat_round(__dadd_rn(yy, __dmul_rn(d.bu, u)));
        }
    }
}

// mid uint8 [inH, outW, 3] = horizontal AA bicubic of the converted frame (copy when hTaps == 0: width unchanged).
// first/count int32 [outW], weights int32 [outW, hTaps]. grid (ceil(outW/128), inH), block 128.
extern "C" __global__ void vf_vis_pre_hpass(unsigned char* __restrict__ mid, const unsigned char* __restrict__ src,
                                            long long off0, long long off1, long long off2, int s0, int s1, int s2,
                                            int format, double ys, double y0, double rv, double gu, double gv,
                                            double bu, int outW, const int* __restrict__ first,
                                            const int* __restrict__ count, const int* __restrict__ weights, int hTaps,
                                            int precision) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y;
    if (x >= outW) return;
    vf_frame_desc d;
    d.off0 = off0; d.off1 = off1; d.off2 = off2; d.s0 = s0; d.s1 = s1; d.s2 = s2; d.format = format;
    d.ys = ys; d.y0 = y0; d.rv = rv; d.gu = gu; d.gv = gv; d.bu = bu;
    unsigned char* o = mid + ((long long)y * outW + x) * 3;
    int rgb[3];
    if (hTaps == 0) {
        vf_fetch_rgb(src, d, x, y, rgb);
        o[0] = (unsigned char)rgb[0]; o[1] = (unsigned char)rgb[1]; o[2] = (unsigned char)rgb[2];
        return;
    }
    const int f = first[x], n = count[x];
    const int* w = weights + (long long)x * hTaps;
    int a0 = 1 << (precision - 1), a1 = a0, a2 = a0;
    for (int j = 0; j < n; j++) {
        vf_fetch_rgb(src, d, f + j, y, rgb);
        const int wj = w[j];
        a0 += rgb[0] * wj; a1 += rgb[1] * wj; a2 += rgb[2] * wj;
    }
    a0 >>= precision; a1 >>= precision; a2 >>= precision;
    o[0] = (unsigned char)min(max(a0, 0), 255);
    o[1] = (unsigned char)min(max(a1, 0), 255);
    o[2] = (unsigned char)min(max(a2, 0), 255);
}

// Vertical pass of mid [inH, outW, 3] to outH rows (copy when vTaps == 0), normalised through lut fp32 [3, 256],
// written as patches: out[(t*rowsPerT + row), ((c*T + s)*P + py)*P + px] for temporal slots s in
// [slot0, slot0 + slots) of temporal patch t, rows in merge-window order (grid_h/m, grid_w/m, m, m).
// outBf16 != 0: bf16 output, else fp32. grid (ceil(rowsPerT*3*P*P / 256)), block 256.
extern "C" __global__ void vf_vis_pre_vpass_patchify(void* __restrict__ out, const unsigned char* __restrict__ mid,
                                                     int outW, int outH, const int* __restrict__ first,
                                                     const int* __restrict__ count, const int* __restrict__ weights,
                                                     int vTaps, int precision, const float* __restrict__ lut,
                                                     int patch, int merge, int temporal, int t, int slot0, int slots,
                                                     int outBf16) {
    const int gw = outW / patch, gh = outH / patch;
    const int pp = patch * patch;
    const long long total = (long long)gh * gw * 3 * pp;
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    const int row = (int)(e / (3 * pp)), rem = (int)(e % (3 * pp));
    const int c = rem / pp, py = (rem % pp) / patch, px = rem % patch;
    const int mw = row % merge, mh = (row / merge) % merge, unit = row / (merge * merge);
    const int bw = unit % (gw / merge), bh = unit / (gw / merge);
    const int y = (bh * merge + mh) * patch + py, x = (bw * merge + mw) * patch + px;
    int val;
    if (vTaps == 0) {
        val = mid[((long long)y * outW + x) * 3 + c];
    } else {
        const int f = first[y], n = count[y];
        const int* w = weights + (long long)y * vTaps;
        int acc = 1 << (precision - 1);
        for (int j = 0; j < n; j++) acc += (int)mid[((long long)(f + j) * outW + x) * 3 + c] * w[j];
        acc >>= precision;
        val = min(max(acc, 0), 255);
    }
    const float nv = lut[c * 256 + val];
    const int patchDim = 3 * temporal * pp;
    const long long rowOff = ((long long)t * gh * gw + row) * patchDim;
    for (int s = slot0; s < slot0 + slots; s++) {
        const long long o = rowOff + ((long long)(c * temporal + s) * patch + py) * patch + px;
        if (outBf16) ((bf16_t*)out)[o] = f2bf(nv);
        else ((float*)out)[o] = nv;
    }
}
