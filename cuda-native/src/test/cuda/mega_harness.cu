// Standalone check + timing of decode_mega.cu (no JVM): one decode step of a random bf16 decoder through the persistent
// kernel against the per-kernel path the decoder runs today (vf_gemv_bf16_fused / split-K as GpuOps picks, vf_rope_qkv, vf_attn_decode_v_h*,
// vf_attn_decode_combine, vf_gemv_bf16, vf_silu_mul, vf_rmsnorm), several steps in a row (the barrier resets itself,
// the caches grow), eager and graph-captured; then the time of a step both ways at published shapes.
// nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/megah cuda-native/src/test/cuda/mega_harness.cu && /tmp/megah [check|time|all|time1|wide|stages|rope|l2pf|kvsmem|both|one [0.6b|vl4] [form]]
#define VF_MEGA_STAMPS 1   // decode_mega.cu records when each block arrives at and leaves each grid barrier ("stages")
#include "../../main/cuda/vlmflux.cu"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <cmath>
#include <string>
#include <algorithm>
// every form the harness times, each its own kernel (the library's vf_decode_mega_h* is VF_MEGA_FORM_LIB of these);
// -DMEGA_HARNESS_FEW: forms 1, 129, 1153, 2177 and 3201 only (a build of three minutes instead of seven, for the "rope",
// "l2pf", "kvsmem", "both" and "one" modes)
#ifdef MEGA_HARNESS_FEW
#define MEGA_HARNESS_FORMS(HD) VF_MEGA_INSTANCE_FORM(mega_f1_h##HD, HD, 1) VF_MEGA_INSTANCE_FORM(mega_f129_h##HD, HD, 129) \
    VF_MEGA_INSTANCE_FORM(mega_f1153_h##HD, HD, 1153) VF_MEGA_INSTANCE_FORM(mega_f2177_h##HD, HD, 2177) \
    VF_MEGA_INSTANCE_FORM(mega_f3201_h##HD, HD, 3201)
#define MEGA_FORM_LIST(X) X(1) X(129) X(1153) X(2177) X(3201)
#else
#define MEGA_HARNESS_FORMS(HD) VF_MEGA_INSTANCE_FORM(mega_f0_h##HD, HD, 0) VF_MEGA_INSTANCE_FORM(mega_f1_h##HD, HD, 1) \
    VF_MEGA_INSTANCE_FORM(mega_f3_h##HD, HD, 3) VF_MEGA_INSTANCE_FORM(mega_f4_h##HD, HD, 4) VF_MEGA_INSTANCE_FORM(mega_f5_h##HD, HD, 5) \
    VF_MEGA_INSTANCE_FORM(mega_f33_h##HD, HD, 33) VF_MEGA_INSTANCE_FORM(mega_f129_h##HD, HD, 129) \
    VF_MEGA_INSTANCE_FORM(mega_f1153_h##HD, HD, 1153) VF_MEGA_INSTANCE_FORM(mega_f2177_h##HD, HD, 2177) \
    VF_MEGA_INSTANCE_FORM(mega_f3201_h##HD, HD, 3201)
#define MEGA_FORM_LIST(X) X(0) X(1) X(3) X(4) X(5) X(33) X(129) X(1153) X(2177) X(3201)
#endif
MEGA_HARNESS_FORMS(8) MEGA_HARNESS_FORMS(16) MEGA_HARNESS_FORMS(32) MEGA_HARNESS_FORMS(64) MEGA_HARNESS_FORMS(128) MEGA_HARNESS_FORMS(256)
#define MEGA_FORM_NUM(F) F,
static const int megaForms[] = {MEGA_FORM_LIST(MEGA_FORM_NUM)};
static const int megaFormCount = sizeof(megaForms) / sizeof(megaForms[0]);
static bool haveForm(int f) { for (int j = 0; j < megaFormCount; j++) if (megaForms[j] == f) return true; return false; }
// the kernel of head dim hd in form f (one of megaForms)
static void* megaFn(int hd, int f) {
    const int i = hd == 8 ? 0 : hd == 16 ? 1 : hd == 32 ? 2 : hd == 64 ? 3 : hd == 128 ? 4 : 5;
#define MEGA_FN_ROW(F) {(void*)mega_f##F##_h8, (void*)mega_f##F##_h16, (void*)mega_f##F##_h32, (void*)mega_f##F##_h64, \
                       (void*)mega_f##F##_h128, (void*)mega_f##F##_h256},
    static void* const t[][6] = {MEGA_FORM_LIST(MEGA_FN_ROW)};   // megaForms' order
#undef MEGA_FN_ROW
    for (int j = 0; j < megaFormCount; j++) if (megaForms[j] == f) return t[j][i];
    printf("no kernel of form %d in this build\n", f); exit(2);
}
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("CUDA %s at line %d\n", cudaGetErrorString(e_), __LINE__); exit(1);} } while(0)

__global__ void fill_bf16(bf16_t* p, long long n, unsigned long long seed, float scale, float mean) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        unsigned long long z = seed + 0x9E3779B97F4A7C15ull * (unsigned long long)(i + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull; z ^= z >> 31;
        const float u = (float)(z >> 40) * (1.f / 16777216.f);          // [0, 1)
        p[i] = f2bf(mean + scale * 1.7320508f * (2.f * u - 1.f));      // unit variance times scale
    }
}
__global__ void fill_f32(float* p, long long n, unsigned long long seed, float scale) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        unsigned long long z = seed + 0x9E3779B97F4A7C15ull * (unsigned long long)(i + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull; z ^= z >> 31;
        p[i] = scale * ((float)(z >> 40) * (1.f / 16777216.f) * 2.f - 1.f);
    }
}

struct Shape { const char* name; int H, nq, nkv, hd, I, V, L; bool qkNorm, bias; int rope; };   // rope 0 plain, 1 M-RoPE, 2 interleaved
static int sms;
static int splitTarget() { return 4 * sms; }   // blocks the split-K reference GEMVs aim at (GpuOps: 4 a SM)
static float* splitWs; static unsigned int* splitCtr;   // their workspace: 16 rows x 32 floats, and a counter, a block
// the published shapes the checks and timings use (hidden, heads, kv heads, head dim, intermediate, vocab, layers, ...)
static const Shape q06 = {"qwen3-0.6b", 1024, 16, 8, 128, 3072, 151936, 28, true, false, 0};
static const Shape q3 = {"qwen2.5-3b", 2048, 16, 2, 128, 11008, 151936, 36, false, true, 0};
static const Shape q7 = {"qwen2.5-7b", 3584, 28, 4, 128, 18944, 152064, 28, false, true, 0};   // down rows of 3 chunks
static const Shape vl2 = {"qwen3-vl-2b", 2048, 16, 8, 128, 6144, 151936, 28, true, false, 2};   // text side, interleaved M-RoPE
static const Shape vl4 = {"qwen3-vl-4b", 2560, 32, 8, 128, 9728, 151936, 36, true, false, 2};
static std::vector<int> timeForms = {0, 1, 3, 4, 5, -4, -8, 33};   // the forms timeIt times; -N: the stream form with a ring of N slots
static int ringSlots = -1;   // slots of the stream form's ring (VF_MEGA_STREAM): the most that fit, unless set
static double copyTBs;   // device-to-device copy bandwidth (read + write), the roofline's denominator
static unsigned long long seedc = 1;
template <class T> static T* dalloc(size_t n) { T* p; CK(cudaMalloc(&p, n * sizeof(T) + 256)); CK(cudaMemset(p, 0, n * sizeof(T) + 256)); return p; }
static bf16_t* rbf(size_t n, float scale, float mean = 0.f) { bf16_t* p = dalloc<bf16_t>(n); fill_bf16<<<1024, 256>>>(p, (long long)n, seedc++ * 7919, scale, mean); return p; }

struct Model {
    Shape s; int Q, KV, QKV, maxSeq;
    std::vector<VfMegaLayer> ly; VfMegaLayer* dly;
    bf16_t *embed, *finalNorm; float* invFreq; int sec1, sec2;
    // two caches (reference, megakernel), each one allocation: K_l at base + 2 l per, V_l at + per
    char* cache[2]; long long per;
    // activations
    float *x, *qkv, *qr, *part, *gu, *logits, *x2, *qkv2, *part2, *logits2; bf16_t *att, *act, *xn, *att2, *act2;
    int *step, *tok; unsigned int* sync;
    int splitsRef, splitsMega, grid;
    int flags;   // the form: VF_MEGA_EARLY | VF_MEGA_SPLITK | VF_MEGA_STREAM (megaForms)
};

static Model build(const Shape& s, int maxSeq) {
    Model m; m.s = s; m.maxSeq = maxSeq;
    // the split-K reference GEMVs' workspace (gemvRef), here: a cudaMalloc inside a graph capture is refused
    if (!splitWs) { splitWs = dalloc<float>((size_t)32 * 16 * splitTarget()); splitCtr = dalloc<unsigned int>(splitTarget()); }
    m.Q = s.nq * s.hd; m.KV = s.nkv * s.hd; m.QKV = m.Q + 2 * m.KV;
    for (int l = 0; l < s.L; l++) {
        VfMegaLayer y{};
        y.attnNorm = rbf(s.H, 0.1f, 1.f); y.mlpNorm = rbf(s.H, 0.1f, 1.f);
        y.wqkv = rbf((size_t)m.QKV * s.H, 1.f / sqrtf((float)s.H));
        if (s.bias) { float* b = dalloc<float>(m.QKV); fill_f32<<<64, 256>>>(b, m.QKV, seedc++ * 31, 0.5f); y.bqkv = b; }
        y.wo = rbf((size_t)s.H * m.Q, 1.f / sqrtf((float)m.Q));
        if (s.bias && (l & 1)) { float* b = dalloc<float>(s.H); fill_f32<<<64, 256>>>(b, s.H, seedc++ * 31, 0.1f); y.bo = b; }
        if (s.qkNorm) { y.qNorm = rbf(s.hd, 0.1f, 1.f); y.kNorm = rbf(s.hd, 0.1f, 1.f); }
        y.wgu = rbf((size_t)2 * s.I * s.H, 1.f / sqrtf((float)s.H));
        y.wd = rbf((size_t)s.H * s.I, 1.f / sqrtf((float)s.I));
        m.ly.push_back(y);
    }
    m.dly = dalloc<VfMegaLayer>(s.L);
    CK(cudaMemcpy(m.dly, m.ly.data(), sizeof(VfMegaLayer) * s.L, cudaMemcpyHostToDevice));
    m.embed = rbf((size_t)s.V * s.H, 1.f); m.finalNorm = rbf(s.H, 0.1f, 1.f);
    std::vector<float> inv(s.hd / 2);
    for (int j = 0; j < s.hd / 2; j++) inv[j] = powf(1e6f, -2.f * j / s.hd);
    m.invFreq = dalloc<float>(s.hd / 2); CK(cudaMemcpy(m.invFreq, inv.data(), 4 * inv.size(), cudaMemcpyHostToDevice));
    if (s.rope == 0) { m.sec1 = s.hd / 2; m.sec2 = s.hd / 2; }
    else if (s.rope == 1) { int a = s.hd / 8, b = (s.hd / 2 - a) / 2; m.sec1 = a; m.sec2 = a + b; }            // contiguous t/h/w
    else { int hsec = (s.hd / 2) * 5 / 16, wsec = hsec; m.sec1 = -1 - 3 * hsec; m.sec2 = -1 - 3 * wsec; }  // interleaved
    m.per = 2LL * m.KV * maxSeq;
    for (int c = 0; c < 2; c++) m.cache[c] = (char*)dalloc<char>((size_t)2 * s.L * m.per);
    m.x = dalloc<float>(s.H); m.qkv = dalloc<float>(m.QKV); m.qr = dalloc<float>(m.Q); m.gu = dalloc<float>(2 * s.I);
    m.logits = dalloc<float>(s.V); m.att = dalloc<bf16_t>(m.Q); m.act = dalloc<bf16_t>(s.I); m.xn = dalloc<bf16_t>(s.H);
    m.x2 = dalloc<float>(s.H); m.qkv2 = dalloc<float>(m.QKV); m.logits2 = dalloc<float>(s.V); m.att2 = dalloc<bf16_t>(m.Q); m.act2 = dalloc<bf16_t>(s.I);
    m.part = dalloc<float>((size_t)s.nq * 1024 * (s.hd + 2)); m.part2 = dalloc<float>((size_t)s.nq * 1024 * (s.hd + 2));
    m.step = dalloc<int>(8); m.tok = dalloc<int>(1); m.sync = dalloc<unsigned int>(2);
    int G = s.nq / s.nkv;
    m.splitsRef = std::min(std::max(1, (2 * sms) / (s.nkv * ((G + 7) / 8))), std::min(std::max(1, maxSeq / 16), 256));
    m.grid = sms;
    m.splitsMega = std::min(std::max(1, m.grid / (s.nkv * ((G + VF_MEGA_GMAX - 1) / VF_MEGA_GMAX))), std::min(std::max(1, maxSeq / 16), 1024));
    m.flags = VF_MEGA_FORM_LIB;
    CK(cudaDeviceSynchronize());
    return m;
}

// past keys/values of both caches: the same random bf16 for positions < len (both caches hold identical bits)
static void fillCaches(Model& m, int len) {
    for (int l = 0; l < m.s.L; l++)
        for (int kv = 0; kv < 2; kv++) {
            bf16_t* p = (bf16_t*)(m.cache[0] + (2LL * l + kv) * m.per);
            fill_bf16<<<256, 256>>>(p, (long long)m.KV * m.maxSeq, seedc++ * 13, 1.f, 0.f);
        }
    CK(cudaMemcpy(m.cache[1], m.cache[0], (size_t)2 * m.s.L * m.per, cudaMemcpyDeviceToDevice));
}

static void setStep(Model& m, int len, int tok, cudaStream_t st) {
    int p = len - 1;
    int h[8] = {p, m.s.rope ? p / 3 + 1 : p, m.s.rope ? p / 5 + 2 : p, len - 1, len, tok, 0, 0};
    CK(cudaMemcpyAsync(m.step, h, sizeof h, cudaMemcpyHostToDevice, st));
    CK(cudaMemcpyAsync(m.tok, &tok, 4, cudaMemcpyHostToDevice, st));
}

// The decoder's GEMV choice (GpuOps.gemv / gemvFused): split-K where the row tiles fit one wave and every chunk keeps
// >= 256 16-byte groups (towards 4 blocks per SM), else the one-block-per-row-tile kernels. mode 0: x bf16; 1: RMSNorm
// of fp32 x with nw.
// The per-kernel reference launches as the decoder does (GpuOps with Tuning.pdl, sm_90+): every kernel with
// programmatic dependent launch, so it is scheduled while the previous one finishes (refPdl false: plain launches).
static bool refPdl = true;
template <class... K, class... A>
static void launchRef(void (*k)(K...), dim3 g, dim3 b, size_t smem, cudaStream_t st, A&&... args) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = refPdl ? 1 : 0;
    cudaLaunchConfig_t c = {};
    c.gridDim = g; c.blockDim = b; c.dynamicSmemBytes = smem; c.stream = st; c.attrs = at; c.numAttrs = 1;
    CK(cudaLaunchKernelEx(&c, k, std::forward<A>(args)...));
}

static void gemvRef(cudaStream_t st, float* y, const bf16_t* W, const void* x, const bf16_t* nw, int mode, const float* bias,
                    const float* residual, int M, int K) {
    const int tiles = (M + 15) / 16, groups = K / 8, target = splitTarget();
    int chunk8 = 0;
    if (tiles <= sms) {
        int want = std::min((target + tiles - 1) / tiles, groups / 256);
        if (want >= 2 && groups > 32 && tiles <= target) {
            chunk8 = ((groups + want - 1) / want + 31) / 32 * 32;
            chunk8 = std::max(chunk8, ((groups + 31) / 32 + 31) / 32 * 32);
            if (chunk8 >= groups) chunk8 = 0;
        }
    }
    if (chunk8 > 0) {
        const int splits = (groups + chunk8 - 1) / chunk8;
        launchRef(vf_gemv_bf16_splitk, dim3(tiles, splits), 256, mode ? 16 * chunk8 : 0, st, y, W, x, nw, mode, 0, 1e-6f, bias, residual, M, K,
                chunk8, splitWs, splitCtr);
    } else if (mode == 1) {
        launchRef(vf_gemv_bf16_fused, std::min(tiles, 8 * sms), 256, 2 * K, st, y, W, (const float*)x, nw, 1, 0, 1e-6f, bias, residual, M, K);
    } else {
        launchRef(vf_gemv_bf16, tiles, 256, 0, st, y, W, (const bf16_t*)x, bias, residual, M, K);
    }
}

static void refStep(Model& m, cudaStream_t st) {
    const Shape& s = m.s;
    int G = s.nq / s.nkv, groups = (G + 7) / 8;
    launchRef(vf_embed_gather, 1, 256, 0, st, m.x, m.embed, m.tok, 1, s.H, s.V);
    for (int l = 0; l < s.L; l++) {
        const VfMegaLayer& y = m.ly[l];
        bf16_t* kc = (bf16_t*)(m.cache[0] + 2LL * l * m.per); bf16_t* vc = (bf16_t*)(m.cache[0] + (2LL * l + 1) * m.per);
        gemvRef(st, m.qkv, y.wqkv, m.x, y.attnNorm, 1, y.bqkv, nullptr, m.QKV, s.H);
        launchRef(vf_rope_qkv, dim3(1, (s.nq + s.nkv + 3) / 4), 128, 0, st, m.qr, kc, vc, m.qkv, m.qkv + m.Q, m.qkv + m.Q + m.KV, m.QKV, m.QKV, m.QKV,
                m.step, 1, m.sec1, m.sec2, m.invFreq, m.step + 3, 1, s.nq, s.nkv, s.hd, m.maxSeq, y.qNorm, y.kNorm, 1e-6f);
        float sc = 1.f / sqrtf((float)s.hd);
        dim3 ag(s.nkv, m.splitsRef, groups);
        if (s.hd == 128) launchRef(vf_attn_decode_v_h128, ag, 128, 0, st, m.part, m.qr, kc, vc, m.step + 4, s.nq, s.nkv, m.maxSeq, sc);
        else if (s.hd == 64) launchRef(vf_attn_decode_v_h64, ag, 128, 0, st, m.part, m.qr, kc, vc, m.step + 4, s.nq, s.nkv, m.maxSeq, sc);
        else if (s.hd <= 32) launchRef(vf_attn_decode_e1, ag, 128, 0, st, m.part, m.qr, kc, vc, m.step + 4, s.nq, s.nkv, m.maxSeq, s.hd, sc);
        else launchRef(vf_attn_decode_e8, ag, 128, 0, st, m.part, m.qr, kc, vc, m.step + 4, s.nq, s.nkv, m.maxSeq, s.hd, sc);
        launchRef(vf_attn_decode_combine, s.nq, 128, 0, st, m.att, m.part, m.step + 4, m.splitsRef, s.hd);
        gemvRef(st, m.x, y.wo, m.att, nullptr, 0, y.bo, m.x, s.H, m.Q);
        gemvRef(st, m.gu, y.wgu, m.x, y.mlpNorm, 1, nullptr, nullptr, 2 * s.I, s.H);
        launchRef(vf_silu_mul, dim3((s.I + 255) / 256, 1), 256, 0, st, m.act, m.gu, m.gu + s.I, s.I, 2 * s.I, 2 * s.I);
        gemvRef(st, m.x, y.wd, m.act, nullptr, 0, nullptr, m.x, s.H, s.I);
    }
    launchRef(vf_rmsnorm, 1, s.H >= 2048 ? 1024 : 256, 0, st, m.xn, m.x, nullptr, m.finalNorm, s.H, 1e-6f);
    gemvRef(st, m.logits, m.embed, m.xn, nullptr, 0, nullptr, nullptr, s.V, s.H);
}

static void megaStep(Model& m, cudaStream_t st) {
    const Shape& s = m.s;
    vf_embed_gather<<<1, 256, 0, st>>>(m.x2, m.embed, m.tok, 1, s.H, s.V);
    const VfMegaLayer* layers = m.dly; const bf16_t* fn = m.finalNorm; const bf16_t* lm = m.embed;
    float* x = m.x2; float* qkv = m.qkv2; float* part = m.part2; bf16_t* att = m.att2; bf16_t* act = m.act2; float* lg = m.logits2;
    const int* step = m.step; const float* inv = m.invFreq; unsigned int* sync = m.sync; char* kb = m.cache[1];
    long long kvs = 2 * m.per, voff = m.per;
    int L = s.L, H = s.H, nq = s.nq, nkv = s.nkv, I = s.I, V = s.V, ms = m.maxSeq, sp = m.splitsMega, s1 = m.sec1, s2 = m.sec2;
    float eps = 1e-6f, sc = 1.f / sqrtf((float)s.hd);
    const int flags = m.flags;
    void* args[] = {&layers, &fn, &lm, &x, &qkv, &part, &att, &act, &lg, &step, &inv, &sync, &kb, &kvs, &voff, &L, &H, &nq, &nkv, &I, &V, &ms, &sp, &s1, &s2, &eps, &sc};
    void* fnp = megaFn(s.hd, flags);
    size_t dyn = flags & VF_MEGA_STREAM ? (size_t)ringSlots * VF_MEGA_SLOT : flags & VF_MEGA_KVSMEM ? VF_MEGA_KVSMEM_BYTES : 0;
    CK(cudaLaunchCooperativeKernel(fnp, dim3(m.grid), dim3(VF_MEGA_THREADS), args, dyn, st));
}

static int fails = 0;
// Captures fn's launches into an executable graph; false (with the reason printed) where capture is refused.
template <class F> static bool capture(cudaStream_t st, F fn, cudaGraphExec_t* out, const char* what) {
    cudaGraph_t g;
    if (cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) != cudaSuccess) { printf("capture %s: begin refused\n", what); return false; }
    fn();
    cudaError_t e = cudaStreamEndCapture(st, &g);
    if (e == cudaSuccess) e = cudaGraphInstantiate(out, g, 0);
    if (e != cudaSuccess) { printf("capture %s: %s\n", what, cudaGetErrorString(e)); cudaGetLastError(); return false; }
    return true;
}
static float maxAbs(const std::vector<float>& a) { float v = 0; for (float f : a) v = std::max(v, fabsf(f)); return v; }
static int argmaxv(const std::vector<float>& a) { return (int)(std::max_element(a.begin(), a.end()) - a.begin()); }

// steps decode steps from a cache of len0 past keys: logits, x and every new K/V row compared, both ways in lockstep
static void check(const Shape& s, int len0, int steps, bool graph, int flags = VF_MEGA_FORM_LIB) {
    Model m = build(s, std::max(64, len0 + steps + 8));
    m.flags = flags;
    fillCaches(m, len0);
    cudaStream_t st; CK(cudaStreamCreate(&st));
    int tok = 7 % s.V;
    float worst = 0, worstX = 0; int agree = 0, rowsBad = 0;
    cudaGraphExec_t e0 = nullptr, e1 = nullptr;
    for (int t = 0; t < steps; t++) {
        int len = len0 + t + 1;
        setStep(m, len, tok, st);
        if (graph) {
            if (!e0 && (!capture(st, [&] { refStep(m, st); }, &e0, "per-kernel step") || !capture(st, [&] { megaStep(m, st); }, &e1, "persistent step"))) {
                printf("FAIL graph capture\n"); fails++; graph = false;
            }
            if (graph) { CK(cudaGraphLaunch(e0, st)); CK(cudaGraphLaunch(e1, st)); }
            else { refStep(m, st); megaStep(m, st); }
        } else { refStep(m, st); megaStep(m, st); }
        CK(cudaStreamSynchronize(st));
        std::vector<float> a(s.V), b(s.V), xa(s.H), xb(s.H);
        CK(cudaMemcpy(a.data(), m.logits, 4 * s.V, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(b.data(), m.logits2, 4 * s.V, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(xa.data(), m.x, 4 * s.H, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(xb.data(), m.x2, 4 * s.H, cudaMemcpyDeviceToHost));
        float ma = maxAbs(a), d = 0, mx = maxAbs(xa), dx = 0;
        for (int i = 0; i < s.V; i++) d = std::max(d, fabsf(a[i] - b[i]));
        for (int i = 0; i < s.H; i++) dx = std::max(dx, fabsf(xa[i] - xb[i]));
        worst = std::max(worst, d / ma); worstX = std::max(worstX, dx / mx);
        int ta = argmaxv(a), tb = argmaxv(b);
        if (ta == tb) agree++;
        // the new K/V rows of every layer: layer 0 bit-equal (same q/k/v, same RoPE), the rest close
        for (int l = 0; l < s.L; l++)
            for (int kv = 0; kv < 2; kv++) {
                std::vector<unsigned short> ra(s.nkv * s.hd), rb(s.nkv * s.hd);
                for (int h = 0; h < s.nkv; h++) {
                    size_t off = (2LL * l + kv) * m.per + 2LL * ((long long)h * m.maxSeq + len - 1) * s.hd;
                    CK(cudaMemcpy(&ra[h * s.hd], m.cache[0] + off, 2 * s.hd, cudaMemcpyDeviceToHost));
                    CK(cudaMemcpy(&rb[h * s.hd], m.cache[1] + off, 2 * s.hd, cudaMemcpyDeviceToHost));
                }
                if (l == 0 && ra != rb) rowsBad++;
                if (l > 0) {
                    float dm = 0, am = 0;
                    for (size_t i = 0; i < ra.size(); i++) {
                        unsigned ua = (unsigned)ra[i] << 16, ub = (unsigned)rb[i] << 16; float fa, fb; memcpy(&fa, &ua, 4); memcpy(&fb, &ub, 4);
                        dm = std::max(dm, fabsf(fa - fb)); am = std::max(am, fabsf(fa));
                    }
                    if (dm > 0.05f * am + 1e-3f) rowsBad++;
                }
            }
        tok = ta;
    }
    unsigned int syncH[2]; CK(cudaMemcpy(syncH, m.sync, 8, cudaMemcpyDeviceToHost));
    bool ok = worst < 2e-2f && worstX < 2e-2f && agree >= steps - 1 && rowsBad == 0 && syncH[0] == 0 && syncH[1] == 0;
    if (!ok) fails++;
    printf("%s %-28s len0 %5d steps %d %s flags %d: logits rel %.2e, x rel %.2e, argmax %d/%d, bad K/V rows %d, sync {%u,%u}, splits ref %d mega %d\n",
           ok ? "ok  " : "FAIL", s.name, len0, steps, graph ? "graph" : "eager", flags, worst, worstX, agree, steps, rowsBad, syncH[0], syncH[1], m.splitsRef, m.splitsMega);
    fflush(stdout);
    CK(cudaStreamDestroy(st));
    CK(cudaDeviceReset());
    splitWs = nullptr; splitCtr = nullptr;
}

// Two forms whose arithmetic is the same (their products differ in how rows are grouped over warps, not in any row's
// order of additions; the attention and the combine are the same code): logits, x and the new K/V row bit for bit, at
// steps steps from a cache of len0. A step run twice is idempotent (x is gathered again, the new K/V row rewritten).
static void checkSameBits(const Shape& s, int len0, int steps, int fa, int fb) {
    Model m = build(s, std::max(64, len0 + steps + 8));
    fillCaches(m, len0);
    cudaStream_t st; CK(cudaStreamCreate(&st));
    int tok = 5 % s.V, bad = 0;
    for (int t = 0; t < steps; t++) {
        const int len = len0 + t + 1;
        setStep(m, len, tok, st);
        std::vector<float> la(s.V), lb(s.V), xa(s.H), xb(s.H);
        std::vector<unsigned short> ka(s.nkv * s.hd), kb(s.nkv * s.hd);
        auto run = [&](int f, std::vector<float>& lg, std::vector<float>& x, std::vector<unsigned short>& k) {
            m.flags = f;
            megaStep(m, st);
            CK(cudaStreamSynchronize(st));
            CK(cudaMemcpy(lg.data(), m.logits2, 4 * s.V, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(x.data(), m.x2, 4 * s.H, cudaMemcpyDeviceToHost));
            for (int h = 0; h < s.nkv; h++)   // the last layer's new key row of every kv head
                CK(cudaMemcpy(k.data() + h * s.hd, m.cache[1] + 2LL * (s.L - 1) * m.per + 2 * (((long long)h * m.maxSeq + len - 1) * s.hd),
                              2 * s.hd, cudaMemcpyDeviceToHost));
        };
        run(fa, la, xa, ka);
        run(fb, lb, xb, kb);
        if (memcmp(la.data(), lb.data(), 4 * s.V) || memcmp(xa.data(), xb.data(), 4 * s.H) || ka != kb) bad++;
        tok = argmaxv(la);
    }
    printf("%s %s len0 %d steps %d: form %d = form %d bit for bit%s\n", bad ? "FAIL" : "ok  ", s.name, len0, steps, fa, fb,
           bad ? " -- NO" : "");
    if (bad) fails++;
    CK(cudaStreamDestroy(st));
    CK(cudaDeviceReset());
    splitWs = nullptr; splitCtr = nullptr;
}

// Where a persistent step's time goes, stage by stage (Nsight Compute sees one kernel): each block's arrival at and
// release from every grid barrier (VF_MEGA_STAMPS), eager launches. Per stage kind, averaged over layers 1.. and runs:
// wall time (first release to the next first release), the bytes it reads over that time, the blocks' work (release
// to arrival) mean and max, their wait at the closing barrier, and the spread of their arrivals.
static void stages(const Shape& s, int len, int form) {
    Model m = build(s, len + 64);
    fillCaches(m, len);
    m.flags = form;
    cudaStream_t st; CK(cudaStreamCreate(&st));
    setStep(m, len, 11, st);
    const int B = m.grid, NB = 6 * s.L + 1;   // barriers of a non-stream form: 5 in layer 0, 6 in each later one, the lm head's; then the end
    if (NB > VF_MEGA_STAMP_MAX) { printf("stages %s: %d barriers > VF_MEGA_STAMP_MAX\n", s.name, NB); return; }
    unsigned long long* d = dalloc<unsigned long long>((size_t)B * VF_MEGA_STAMP_MAX * 4);
    CK(cudaMemcpyToSymbol(vf_mega_stamps, &d, sizeof(d)));
    unsigned long long* da = dalloc<unsigned long long>((size_t)B * VF_MEGA_STAMP_MAX * VF_MEGA_APHASES);   // the attention items' phases
    CK(cudaMemcpyToSymbol(vf_mega_astamps, &da, sizeof(da)));
    std::vector<unsigned long long> h((size_t)B * VF_MEGA_STAMP_MAX * 4), ha((size_t)B * VF_MEGA_STAMP_MAX * VF_MEGA_APHASES);
    auto aat = [&](int b, int n, int k) { return ha[((size_t)b * VF_MEGA_STAMP_MAX + n) * VF_MEGA_APHASES + k]; };
    double phase[6] = {};   // release -> item start, -> after RoPE, -> first K/V landed, -> after the keys, -> after the partials, -> arrival
    long long phaseN = 0;
    auto at = [&](int b, int n, int k) { return h[((size_t)b * VF_MEGA_STAMP_MAX + n) * 4 + k]; };
    const char* names[] = {"q/k/v", "attention", "combine", "o", "gate/up", "down", "lm head"};
    const double bytes[] = {2.0 * m.QKV * s.H, 2.0 * 2 * m.KV * len, 0, 2.0 * s.H * m.Q, 2.0 * 2 * s.I * s.H, 2.0 * s.H * s.I, 2.0 * s.V * s.H};
    double wall[7] = {}, workMean[7] = {}, workMax[7] = {}, wait[7] = {}, spread[7] = {}, step = 0, ghz = 0;
    int cnt[7] = {};
    const int runs = 10;
    for (int r = -3; r < runs; r++) {
        CK(cudaMemsetAsync(da, 0, ha.size() * 8, st));
        megaStep(m, st);
        CK(cudaStreamSynchronize(st));
        if (r < 0) continue;
        CK(cudaMemcpy(h.data(), d, h.size() * 8, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(ha.data(), da, ha.size() * 8, cudaMemcpyDeviceToHost));
        auto firstRel = [&](int n) { unsigned long long v = ~0ull; for (int b = 0; b < B; b++) v = std::min(v, at(b, n, 3)); return v; };
        step += (double)(at(0, NB - 1, 2) - at(0, 0, 3));   // block 0, first release to its end (ns)
        ghz += (double)(at(0, NB - 1, 0) - at(0, 0, 1)) / (double)(at(0, NB - 1, 2) - at(0, 0, 3));
        for (int n = 1; n < NB; n++) {   // the stage between barriers n - 1 and n
            const int mm = n - 5, slot = n < 5 ? n + 1 : mm % 6;
            const int kind = n == NB - 1 ? 6 : slot == 0 ? 5 : slot - 1;
            if (n < 5) continue;   // layer 0 (its q/k/v stage has no opening barrier; the caches are cold the same way in every layer anyway)
            if (kind == 1)   // the attention stage: its blocks' first items, phase by phase (opened by barrier n - 1)
                for (int b = 0; b < B; b++)
                    if (aat(b, n - 1, 3) != 0) {
                        const unsigned long long t[7] = {at(b, n - 1, 1), aat(b, n - 1, 0), aat(b, n - 1, 1), aat(b, n - 1, 4), aat(b, n - 1, 2),
                                                         aat(b, n - 1, 3), at(b, n, 0)};
                        for (int k = 0; k < 6; k++) phase[k] += (double)(t[k + 1] - t[k]);
                        phaseN++;
                    }
            double wm = 0, wx = 0, wt = 0;
            unsigned long long a0 = ~0ull, a1 = 0;
            for (int b = 0; b < B; b++) {
                const double w = (double)(at(b, n, 0) - at(b, n - 1, 1));
                wm += w; wx = std::max(wx, w);
                if (n < NB - 1) wt += (double)(at(b, n, 1) - at(b, n, 0));
                a0 = std::min(a0, at(b, n, 2)); a1 = std::max(a1, at(b, n, 2));
            }
            const unsigned long long close = n < NB - 1 ? firstRel(n) : a1;
            wall[kind] += (double)(close - firstRel(n - 1));
            workMean[kind] += wm / B; workMax[kind] += wx; wait[kind] += wt / B; spread[kind] += (double)(a1 - a0);
            cnt[kind]++;
        }
    }
    step /= runs; ghz /= runs;
    printf("stages %-12s ctx %5d form %d: %.1f us a step (block 0, first release to end; %d blocks, SM clock %.2f GHz, %d runs, eager)\n",
           s.name, len, form, step / 1e3, B, ghz, runs);
    printf("  %-10s %9s %7s %9s %17s %9s %12s\n", "stage", "wall us", "share", "TB/s", "work mean/max us", "wait us", "arrivals us");
    double sum = 0;
    for (int k = 0; k < 7; k++) sum += wall[k] / runs;
    for (int k = 0; k < 7; k++) {
        if (cnt[k] == 0) continue;
        const double c = cnt[k], w = wall[k] / c;   // ns a stage instance
        char tbs[16] = "-";
        if (bytes[k] > 0) snprintf(tbs, sizeof tbs, "%.2f", bytes[k] / w / 1e3);
        printf("  %-10s %9.2f %6.1f%% %9s %8.2f / %6.2f %9.2f %12.2f\n", names[k], w / 1e3, 100.0 * wall[k] / runs / sum, tbs,
               workMean[k] / c / ghz / 1e3, workMax[k] / c / ghz / 1e3, wait[k] / c / ghz / 1e3, spread[k] / c / 1e3);
    }
    if (phaseN > 0)
        printf("  attention item (blocks' first, mean us): release->start %.2f, q + RoPE %.2f, first K/V landed %.2f, keys %.2f, "
               "merge + partials %.2f, ->arrival %.2f\n", phase[0] / phaseN / ghz / 1e3, phase[1] / phaseN / ghz / 1e3,
               phase[2] / phaseN / ghz / 1e3, phase[3] / phaseN / ghz / 1e3, phase[4] / phaseN / ghz / 1e3, phase[5] / phaseN / ghz / 1e3);
    fflush(stdout);
    unsigned long long* none = nullptr;
    CK(cudaMemcpyToSymbol(vf_mega_stamps, &none, sizeof(none)));
    CK(cudaMemcpyToSymbol(vf_mega_astamps, &none, sizeof(none)));
    CK(cudaStreamDestroy(st));
    CK(cudaDeviceReset());
    splitWs = nullptr; splitCtr = nullptr;
}

// The step's time both ways at one shape: the per-kernel path, then the persistent step in each form (megaForms).
static void timeIt(const Shape& s, int len) {
    Model m = build(s, len + 64);
    fillCaches(m, len);
    cudaStream_t st; CK(cudaStreamCreate(&st));
    setStep(m, len, 11, st);
    cudaEvent_t a, b; CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    auto timed = [&](auto step) {   // mean us of 200 graph replays (eager launches where capture is refused)
        cudaGraphExec_t e;
        bool g = capture(st, step, &e, "step");
        for (int i = 0; i < 20; i++) { if (g) CK(cudaGraphLaunch(e, st)); else step(); }
        CK(cudaEventRecord(a, st));
        const int n = 200;
        for (int i = 0; i < n; i++) { if (g) CK(cudaGraphLaunch(e, st)); else step(); }
        CK(cudaEventRecord(b, st)); CK(cudaEventSynchronize(b));
        float ms; CK(cudaEventElapsedTime(&ms, a, b));
        return 1000.0 * ms / n;
    };
    double bytes = 2.0 * s.L * ((double)m.QKV * s.H + (double)s.H * m.Q + 2.0 * s.I * s.H + (double)s.H * s.I) + 2.0 * s.V * s.H
                   + 2.0 * 2 * s.L * (double)m.KV * len;
    refPdl = false;
    const double plain = timed([&] { refStep(m, st); });
    refPdl = true;   // the decoder's launches: the reference the persistent forms are measured against
    double ref = timed([&] { refStep(m, st); });
    double roof = bytes / (copyTBs * 1e6);   // us a step at the copy bandwidth
    printf("time %-12s ctx %5d: per-kernel %8.1f us (%6.1f tok/s, %.2f TB/s of %.3f GB a step; %.2f of the roofline; PDL, %.1f us without)\n",
           s.name, len, ref, 1e6 / ref, bytes / ref / 1e6, bytes / 1e9, roof / ref, plain);
    const int maxSlots = ringSlots;
    for (int tf : timeForms) {
        const int f = tf < 0 ? VF_MEGA_STREAM : tf;
        ringSlots = tf < 0 ? -tf : maxSlots;
        m.flags = f;
        double us = timed([&] { megaStep(m, st); });
        printf("time %-12s ctx %5d: persistent flags %d (early %d, split-K %d, stream %d, ring %2d): %8.1f us (%6.1f tok/s, %.2f TB/s; %.2f of the roofline) x%.2f\n",
               s.name, len, f, f & 1, (f >> 1) & 1, (f >> 2) & 1, f & 4 ? ringSlots : 0, us, 1e6 / us, bytes / us / 1e6, roof / us, ref / us);
    }
    ringSlots = maxSlots;
    fflush(stdout);
    CK(cudaStreamDestroy(st));
    CK(cudaDeviceReset());
    splitWs = nullptr; splitCtr = nullptr;
}

// Small shapes a new form is checked on before the published ones (head dims 16 to 256, GQA 2 to 16, q/k norm, bias,
// interleaved M-RoPE).
static const Shape formSmall[] = {{"hd128 g4 qknorm", 256, 8, 2, 128, 512, 1000, 2, true, false, 0},
                                  {"hd64 g16 bias", 256, 32, 2, 64, 520, 1024, 3, false, true, 0},
                                  {"hd16 g3 bias (tiny-qwen2)", 96, 6, 2, 16, 256, 3014, 2, false, true, 0},
                                  {"hd256 g2 interleaved", 512, 4, 2, 256, 1024, 1500, 2, true, false, 2}};

// Form b against form a, which it must equal bit for bit: a two-layer Qwen3-VL-4B checked both ways, b against the
// per-kernel path at Qwen3-0.6B, then both timed at five shapes and their stages at two; the verdict line.
static void sameBitsThenTime(int a, int b) {
    const Shape vl4two = {"qwen3-vl-4b x2 layers", 2560, 32, 8, 128, 9728, 151936, 2, true, false, 2};
    checkSameBits(vl4two, 300, 3, a, b);
    check(q06, 2047, 3, true, b);
    timeForms = {a, b};
    timeIt(vl4, 384); timeIt(q06, 2048); timeIt(vl2, 384); timeIt(q06, 512); timeIt(q3, 2048);
    for (int f : {a, b}) { stages(vl4, 384, f); stages(q06, 2048, f); }
    printf("%s: %d failure(s)\n", fails ? "FAILED" : "all checks passed", fails);
}

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "all";
    cudaDeviceProp p; CK(cudaGetDeviceProperties(&p, 0)); sms = p.multiProcessorCount;
    printf("%s, %d SMs, L2 %d MB\n", p.name, sms, p.l2CacheSize >> 20);
    int occ = 0; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, vf_decode_mega_h128, VF_MEGA_THREADS, 0));
    printf("megakernel h128: %d block(s) per SM resident\n", occ);
    {   // the stream form's ring: the slots that fit beside the kernel's static shared memory (one block an SM)
        cudaFuncAttributes fa; CK(cudaFuncGetAttributes(&fa, megaFn(256, haveForm(5) ? 5 : 1)));
        int avail = (int)p.sharedMemPerBlockOptin - (int)fa.sharedSizeBytes;
        if (ringSlots < 0) ringSlots = std::min(VF_MEGA_RING_MAX, avail / VF_MEGA_SLOT);
        printf("stream ring: %d slots of %d bytes (static shared %zu, opt-in limit %zu)\n", ringSlots, VF_MEGA_SLOT, fa.sharedSizeBytes, p.sharedMemPerBlockOptin);
        if (getenv("MEGA_RING")) ringSlots = atoi(getenv("MEGA_RING"));
        for (int f : {2177, 3201}) if (haveForm(f)) for (int hd = 8; hd <= 256; hd *= 2)   // the K / V buffers (VF_MEGA_KVSMEM)
            CK(cudaFuncSetAttribute(megaFn(hd, f), cudaFuncAttributeMaxDynamicSharedMemorySize, VF_MEGA_KVSMEM_BYTES));
        for (int f : {4, 5}) if (haveForm(f)) for (int hd = 8; hd <= 256; hd *= 2)   // once: not allowed while a stream captures
            CK(cudaFuncSetAttribute(megaFn(hd, f), cudaFuncAttributeMaxDynamicSharedMemorySize, VF_MEGA_RING_MAX * VF_MEGA_SLOT > avail ? avail / VF_MEGA_SLOT * VF_MEGA_SLOT : VF_MEGA_RING_MAX * VF_MEGA_SLOT));
    }
    {   // the roofline's bandwidth: a 2 GiB device-to-device copy
        size_t n = 1ull << 31; char *src, *dst; CK(cudaMalloc(&src, n)); CK(cudaMalloc(&dst, n));
        cudaEvent_t a, b; CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
        CK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice));
        CK(cudaEventRecord(a)); for (int i = 0; i < 5; i++) CK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice)); CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b)); float ms; CK(cudaEventElapsedTime(&ms, a, b));
        copyTBs = 2.0 * 5 * n / (ms * 1e-3) / 1e12;
        printf("device copy bandwidth %.2f TB/s (read + write)\n", copyTBs);
        CK(cudaFree(src)); CK(cudaFree(dst));
    }
    if (mode == "check" || mode == "all") {
        Shape small[] = {
            {"hd128 g4 qknorm", 256, 8, 2, 128, 512, 1000, 2, true, false, 0},
            {"hd64 g16 bias", 256, 32, 2, 64, 520, 1024, 3, false, true, 0},
            {"hd64 g3 mrope", 384, 6, 2, 64, 768, 777, 2, false, true, 1},
            {"hd128 g1 interleaved", 512, 4, 4, 128, 1024, 2048, 2, true, false, 2},
            {"hd128 g7 (7B-like heads)", 448, 28, 4, 128, 1216, 3000, 2, false, true, 0},
            {"hd16 g3 bias (tiny-qwen2)", 96, 6, 2, 16, 256, 3014, 2, false, true, 0},
            {"hd32 g2 qknorm", 64, 4, 2, 32, 192, 3014, 2, true, false, 0},
            {"hd8 g2", 64, 8, 4, 8, 176, 3014, 2, false, false, 0},
            {"hd256 g2 interleaved", 512, 4, 2, 256, 1024, 1500, 2, true, false, 2},
        };
        int lens[] = {0, 4, 16, 1199, 4099};
        for (const Shape& s : small)
            for (int len0 : lens) check(s, len0, 4, false);
        for (const Shape& s : small)   // the stream form
            for (int len0 : {0, 16, 1199}) check(s, len0, 4, false, VF_MEGA_STREAM | VF_MEGA_EARLY);
        check(small[0], 300, 6, true);
        check(small[1], 40, 6, true);
        for (int f : {0, 3}) for (int i = 0; i < 3; i++) check(small[i], 1199, 3, true, f);   // the other forms
        check(small[3], 300, 6, true, VF_MEGA_STREAM);
        check(small[4], 70, 6, true, VF_MEGA_STREAM | VF_MEGA_EARLY);
        {   // the smallest ring (tiles refill the slot they leave at once) and a two-slot one
            int keep = ringSlots;
            ringSlots = 1; check(small[4], 70, 3, true, VF_MEGA_STREAM);
            ringSlots = 2; check(small[1], 1199, 3, false, VF_MEGA_STREAM);
            ringSlots = keep;
        }
        for (const Shape& s : small)   // the wide groups (a block's share balanced over its warps, up to VF_MEGA_RW rows a group)
            for (int len0 : {0, 16, 1199, 4099}) check(s, len0, 4, len0 == 16, VF_MEGA_EARLY | VF_MEGA_WIDE);
        {   // shares of 46-47 q/k/v rows and 73-74 gate/up pairs a block (the Qwen3-VL-4B shape, two layers), 1-3 a block (small)
            const Shape vl4two = {"qwen3-vl-4b x2 layers", 2560, 32, 8, 128, 9728, 151936, 2, true, false, 2};
            check(vl4two, 300, 3, true, VF_MEGA_EARLY | VF_MEGA_WIDE);
            checkSameBits(vl4two, 300, 3, VF_MEGA_EARLY, VF_MEGA_EARLY | VF_MEGA_WIDE);
            for (int i : {0, 1, 4, 8}) checkSameBits(small[i], 1199, 3, VF_MEGA_EARLY, VF_MEGA_EARLY | VF_MEGA_WIDE);
        }
        check(q06, 2047, 3, true);
        check(q06, 2047, 3, true, VF_MEGA_EARLY | VF_MEGA_WIDE);
        check(q06, 2047, 3, true, VF_MEGA_STREAM | VF_MEGA_EARLY);
        check(q3, 500, 3, true);
        check(q3, 500, 3, true, VF_MEGA_EARLY | VF_MEGA_WIDE);
        checkSameBits(q3, 500, 2, VF_MEGA_EARLY, VF_MEGA_EARLY | VF_MEGA_WIDE);
        check(q3, 500, 3, true, VF_MEGA_STREAM);
        check(q7, 100, 2, true, VF_MEGA_STREAM);
        printf("%s: %d failure(s)\n", fails ? "FAILED" : "all checks passed", fails);
    }
    if (mode == "time" || mode == "all") {
        timeIt(q06, 2048);
        timeIt(q06, 512);
        timeIt(q3, 2048); timeIt(q3, 512);
        timeIt(q7, 2048);
        timeIt(vl2, 2048); timeIt(vl4, 2048);
    }
    if (mode == "wide") {   // the wide form alone, for a short call: bit for bit against form 1, then form 1 and it timed
        const Shape vl4two = {"qwen3-vl-4b x2 layers", 2560, 32, 8, 128, 9728, 151936, 2, true, false, 2};
        checkSameBits(vl4two, 300, 3, VF_MEGA_EARLY, VF_MEGA_EARLY | VF_MEGA_WIDE);
        check(vl4two, 300, 3, true, VF_MEGA_EARLY | VF_MEGA_WIDE);
        timeForms = {VF_MEGA_EARLY, VF_MEGA_EARLY | VF_MEGA_WIDE};
        timeIt(vl4, 384); timeIt(vl4, 2048); timeIt(q06, 512); timeIt(q3, 2048); timeIt(vl2, 384); timeIt(q7, 2048);
        printf("%s: %d failure(s)\n", fails ? "FAILED" : "all checks passed", fails);
    }
    if (mode == "rope") {   // RoPE's cos / sin once a launch, the norm weights staged (form 129): the same bits as form 1, timed, stages
        const int rp = VF_MEGA_EARLY | VF_MEGA_ROPEPRE;
        const Shape rsmall[] = {{"hd128 g4 qknorm", 256, 8, 2, 128, 512, 1000, 2, true, false, 0},
                                {"hd64 g3 mrope", 384, 6, 2, 64, 768, 777, 2, false, true, 1},
                                {"hd128 g1 interleaved", 512, 4, 4, 128, 1024, 2048, 2, true, false, 2},
                                {"hd16 g3 bias (tiny-qwen2)", 96, 6, 2, 16, 256, 3014, 2, false, true, 0},
                                {"hd256 g2 interleaved", 512, 4, 2, 256, 1024, 1500, 2, true, false, 2}};
        for (const Shape& sh : rsmall) {
            for (int len0 : {0, 16, 1199}) check(sh, len0, 3, len0 == 16, rp);
            checkSameBits(sh, 300, 3, VF_MEGA_EARLY, rp);
        }
        sameBitsThenTime(VF_MEGA_EARLY, rp);
    }
    if (mode == "kvsmem" || mode == "both") {   // the cached K / V through shared memory by bulk copies (2177), with the L2 prefetch too (3201):
        const int lib = VF_MEGA_FORM_LIB, kv = lib | VF_MEGA_KVSMEM | (mode == "both" ? VF_MEGA_L2PF : 0);   // the same bits as 129
        for (const Shape& sh2 : formSmall) for (int len0 : {0, 16, 1199, 4099}) { checkSameBits(sh2, len0, 3, lib, kv); check(sh2, len0, 3, len0 == 16, kv); }
        sameBitsThenTime(lib, kv);
    }
    if (mode == "l2pf") {   // the next stage's weights and the item's K/V prefetched into L2 across each barrier (form 1153): the same bits as 129, timed, stages
        const int lib = VF_MEGA_FORM_LIB, sh = lib | VF_MEGA_L2PF;
        for (const Shape& sh2 : formSmall) { checkSameBits(sh2, 1199, 3, lib, sh); check(sh2, 16, 3, true, sh); }
        sameBitsThenTime(lib, sh);
    }
    if (mode == "stages" || mode == "wide") {   // where the step's time goes, stage by stage, in the library's form and the wide one
        for (int f : {VF_MEGA_FORM_LIB, VF_MEGA_EARLY | VF_MEGA_WIDE}) {
            stages(vl4, 384, f); stages(q06, 2048, f); stages(q3, 2048, f);
            if (mode == "stages") { stages(vl2, 384, f); stages(q7, 2048, f); }
        }
    }
    if (mode == "one") {   // six eager launches of one form (argv[3], default the library's) at one shape (argv[2]: 0.6b or vl4),
        const bool vl = argc > 2 && std::string(argv[2]) == "vl4";   // for Nsight Compute on the sixth (e2e-gpu-run.sh mega-ncu)
        const Shape& s = vl ? vl4 : q06;
        const int len = vl ? 384 : 2048;
        Model m = build(s, len + 64);
        fillCaches(m, len);
        m.flags = argc > 3 ? atoi(argv[3]) : VF_MEGA_FORM_LIB;
        cudaStream_t st; CK(cudaStreamCreate(&st));
        setStep(m, len, 11, st);
        for (int i = 0; i < 6; i++) megaStep(m, st);
        CK(cudaStreamSynchronize(st));
        printf("one: 6 launches of form %d at %s, %d cached\n", m.flags, s.name, len);
        return 0;
    }
    if (mode == "time1") {   // the two shapes that decide, for comparing builds
        timeIt(q06, 2048); timeIt(q3, 2048);
    }
    return fails ? 1 : 0;
}
