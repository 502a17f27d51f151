// Build (any machine with nvcc 13): nvcc -O2 -std=c++17 -arch=sm_90 --extended-lambda -I cuda-native/src/main/cuda \
//   -o /tmp/sampling_check cuda-native/src/test/cuda/sampling_check.cu   ; run on the GPU machine (driver only): /tmp/sampling_check
// Standalone check of the multi-block sampler (sampling.cu) on a GPU with only the driver: kept set vs a CPU
// reference of the Sampler's masks, and timings next to the single-block vf_sample and the two-stage argmax.
#include "sampling.cu"
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <algorithm>
#include <random>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while (0)
static unsigned int hkey(float f) { unsigned int u; memcpy(&u, &f, 4); if ((u & 0x7fffffffu) > 0x7f800000u) return 0u; return (u & 0x80000000u) ? ~u : (u | 0x80000000u); }
struct Ws { float* pmax; float* pmass; int* cnt; unsigned* misc; unsigned* hcnt; float* hmass; int* seg; int* cidx; float* cval; };
static Ws ws(char* b, int n) { Ws w; w.pmax=(float*)b; w.pmass=(float*)(b+512); w.cnt=(int*)(b+1024); w.misc=(unsigned*)(b+1536);
  w.hcnt=(unsigned*)(b+2048); w.hmass=(float*)(b+2048+16384); w.seg=(int*)(b+2048+32768); w.cidx=w.seg+n; w.cval=(float*)(w.cidx+n); return w; }
static void sample(int* out, const float* l, int n, float T, int k, float p, float mp, unsigned long long seed, unsigned long long* ctr, Ws w) {
  int parts = std::max(1, std::min(128, (n + 1023) / 1024)); float invT = 1.f / T;
  vf_sample_max<<<parts,256>>>(w.pmax, w.hcnt, w.hmass, w.misc, l, n);
  vf_sample_hist<<<parts,256>>>(w.hcnt, w.hmass, w.misc, w.pmass, w.pmax, l, n, invT, mp);
  vf_sample_compact<<<parts,256>>>(w.seg, w.cnt, w.hcnt, w.hmass, w.misc, w.pmass, l, n, k, p, mp);
  vf_sample_final<<<1,1024>>>(out, ctr, w.cidx, w.cval, w.seg, w.cnt, w.pmax, w.pmass, parts, l, n, invT, k, p, mp, seed, w.misc);
}
// CPU reference of Sampler: scaled, topK, topP, minP -> kept mask
static std::vector<char> ref(const std::vector<float>& l, float T, int k, float p, float mp) {
  int n = l.size(); std::vector<float> s(n); float invT = (float)(1.0 / T);
  for (int i = 0; i < n; i++) s[i] = l[i] * invT;
  const float NI = -INFINITY;
  if (k > 0 && k < n) { std::vector<float> c = s; std::sort(c.begin(), c.end()); float kth = c[n - k]; for (auto& v : s) if (v < kth) v = NI; }
  auto softmax = [&](std::vector<float> x) { float m = -INFINITY; for (float v : x) m = std::max(m, v); double z = 0; for (auto& v : x) { v = expf(v - m); z += v; } for (auto& v : x) v = (float)(v / z); return x; };
  if (p < 1.f) { auto pr = softmax(s); auto so = pr; std::sort(so.begin(), so.end()); double cum = 0; float thr = so[n - 1];
    for (int i = n - 1; i >= 0; i--) { cum += so[i]; thr = so[i]; if (cum >= p) break; } for (int i = 0; i < n; i++) if (pr[i] < thr) s[i] = NI; }
  if (mp > 0.f) { auto pr = softmax(s); float top = 0; for (float v : pr) top = std::max(top, v); float thr = (float)(mp * top); for (int i = 0; i < n; i++) if (pr[i] < thr) s[i] = NI; }
  std::vector<char> kept(n); for (int i = 0; i < n; i++) kept[i] = s[i] != NI; return kept;
}
int main() {
  std::mt19937 rng(18); std::normal_distribution<float> g(0.f, 1.f);
  int sizes[] = {1000, 4097, 32000, 151936};
  struct C { float T; int k; float p; float mp; } cfgs[] = {{1,0,1,0},{0.7f,40,0.9f,0.05f},{0.7f,0,0.9f,0},{1.3f,0,0.5f,0},{0.5f,0,1,0.1f},{1,50,1,0},
    {0.8f,1000,0.95f,0},{1,0,0.95f,0.02f},{2,20,0.8f,0.3f},{0.6f,0,1,0.001f},{1.5f,7,1,0.5f},{1,5000,0.99f,0.0001f}};
  int nmax = 151936; float* dl; char* dw; int* dout; unsigned long long* dctr;
  CK(cudaMalloc(&dl, 4 * nmax)); CK(cudaMalloc(&dw, 2048 + 32768 + 12 * nmax)); CK(cudaMalloc(&dout, 4 * 4096)); CK(cudaMalloc(&dctr, 8)); CK(cudaMemset(dctr, 0, 8));
  int fails = 0, checks = 0;
  for (int n : sizes) for (int shape = 0; shape < 3; shape++) {
    std::vector<float> l(n); for (auto& v : l) v = g(rng) * (shape == 0 ? 2.f : 1.f);
    if (shape == 1) for (int j = 0; j < 10; j++) l[rng() % n] += 8.f;
    if (shape == 2) for (int i = 0; i < n; i += 3) l[i] = -INFINITY;
    CK(cudaMemcpy(dl, l.data(), 4 * n, cudaMemcpyHostToDevice)); Ws w = ws(dw, n);
    for (auto c : cfgs) {
      sample(dout, dl, n, c.T, c.k, c.p, c.mp, 3, dctr, w); CK(cudaDeviceSynchronize());
      unsigned info[4]; int tok; CK(cudaMemcpy(info, w.misc, 16, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(&tok, dout, 4, cudaMemcpyDeviceToHost));
      auto kept = ref(l, c.T, c.k, c.p, c.mp); int diff = 0, nk = 0; double mx = -INFINITY, mass = 0; for (float v : l) mx = std::max(mx, (double)v);
      for (int i = 0; i < n; i++) { bool dk = hkey(l[i]) >= info[1] && l[i] != -INFINITY; if (kept[i]) { nk++; mass += exp((l[i] - mx) / c.T); } if (dk != (bool)kept[i]) diff++; }
      float dm; memcpy(&dm, &info[2], 4); checks++;
      bool ok = (diff == 0 || (c.p < 1 && diff <= 16)) && fabs(dm - mass) <= 1e-4 * mass + 1e-6 && tok >= 0 && tok < n && (kept[tok] || diff);
      if (!ok || diff) printf("%s n=%d shape=%d T=%g k=%d p=%g minp=%g: kept %d diff %d mass dev %g ref %g cand %u tok %d\n", ok ? "note" : "FAIL", n, shape, c.T, c.k, c.p, c.mp, nk, diff, dm, mass, info[3], tok);
      if (!ok) fails++;
    }
  }
  // chi-square: n=3000, T .7 k 40 p .9 minp .05
  { int n = 3000, D = 30000; std::vector<float> l(n); for (auto& v : l) v = g(rng) * 2.f; CK(cudaMemcpy(dl, l.data(), 4 * n, cudaMemcpyHostToDevice)); Ws w = ws(dw, n);
    C cs[] = {{0.7f,40,0.9f,0.05f},{1,0,0.8f,0},{0.9f,0,1,0.02f}};
    for (auto c : cs) { std::vector<int> cnt(n); auto kept = ref(l, c.T, c.k, c.p, c.mp); double mx = -INFINITY, z = 0; for (float v : l) mx = std::max(mx, (double)v);
      for (int i = 0; i < n; i++) if (kept[i]) z += exp((l[i] - mx) / c.T);
      for (int d = 0; d < D; d += 4096) { int m = std::min(4096, D - d); for (int j = 0; j < m; j++) sample(dout + j, dl, n, c.T, c.k, c.p, c.mp, 1234, dctr, w);
        std::vector<int> o(m); CK(cudaMemcpy(o.data(), dout, 4 * m, cudaMemcpyDeviceToHost)); for (int t : o) cnt[t]++; }
      double chi = 0, pe = 0, po = 0; int df = -1, bad = 0;
      for (int i = 0; i < n; i++) { double e = kept[i] ? exp((l[i] - mx) / c.T) / z * D : 0; if (e == 0) { bad += cnt[i]; continue; } if (e < 5) { pe += e; po += cnt[i]; continue; } chi += (cnt[i] - e) * (cnt[i] - e) / e; df++; }
      if (pe > 0) { chi += (po - pe) * (po - pe) / pe; df++; } double h = 2.0 / (9 * df), crit = df * pow(1 - h + 3.29 * sqrt(h), 3);
      printf("%s chi-square T=%g k=%d p=%g minp=%g: %.1f over %d dof (crit %.1f), drawn outside kept %d\n", chi < crit && !bad ? "ok" : "FAIL", c.T, c.k, c.p, c.mp, chi, df, crit, bad);
      if (!(chi < crit) || bad) fails++; } }
  // timings at 151936
  { int n = 151936; std::vector<float> l(n); for (auto& v : l) v = g(rng) * 3.f; CK(cudaMemcpy(dl, l.data(), 4 * n, cudaMemcpyHostToDevice)); Ws w = ws(dw, n);
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b); float ms; int R = 200;
    auto tm = [&](const char* name, auto f) { for (int i = 0; i < 10; i++) f(); cudaEventRecord(a); for (int i = 0; i < R; i++) f(); cudaEventRecord(b); CK(cudaEventSynchronize(b)); cudaEventElapsedTime(&ms, a, b); printf("time %-44s %8.1f us\n", name, ms * 1000 / R); };
    tm("argmax two-stage", [&] { vf_argmax_partial<<<128,256>>>(w.pmax, w.cnt, dl, n); vf_argmax_final<<<1,32>>>(dout, w.pmax, w.cnt, 128); });
    tm("single-block vf_sample T.7 k50 p.9", [&] { vf_sample<<<1,1024>>>(dout, dl, n, 0.7f, 50, 0.9f, 1, dctr); });
    tm("multi-block T.7 k40 p.9 minp.05", [&] { sample(dout, dl, n, 0.7f, 40, 0.9f, 0.05f, 1, dctr, w); });
    tm("multi-block T.7 k50 p.9", [&] { sample(dout, dl, n, 0.7f, 50, 0.9f, 0, 1, dctr, w); });
    tm("multi-block T1 p.95", [&] { sample(dout, dl, n, 1, 0, 0.95f, 0, 1, dctr, w); });
    tm("multi-block T1 minp.05", [&] { sample(dout, dl, n, 1, 0, 1, 0.05f, 1, dctr, w); });
    tm("multi-block T1 full vocabulary", [&] { sample(dout, dl, n, 1, 0, 1, 0, 1, dctr, w); });
    unsigned info[4]; sample(dout, dl, n, 1, 0, 0.95f, 0, 1, dctr, w); CK(cudaMemcpy(info, w.misc, 16, cudaMemcpyDeviceToHost)); printf("candidates T1 p.95: %u\n", info[3]);
    sample(dout, dl, n, 0.7f, 40, 0.9f, 0.05f, 1, dctr, w); CK(cudaMemcpy(info, w.misc, 16, cudaMemcpyDeviceToHost)); printf("candidates T.7 k40 p.9 minp.05: %u\n", info[3]); }
  CK(cudaDeviceSynchronize());
  printf("%d checks, %d FAIL\n", checks, fails); return fails ? 1 : 0;
}
