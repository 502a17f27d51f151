// Standalone check + timing of int4.cu (no JVM): the kernels against a double-precision dequantize-to-float reference
// (rows 1..8, gs 32/64/128, sym/asym, act-order, bias/residual, strides; fused parts with their own permutations) and
// int4 vs bf16 GEMV at Qwen2.5-7B/3B decode shapes; the tensor-core GEMV and the dequantizations also on q stored in
// 16 x 128 tiles (Int4Device.tiled); the ring GEMV (vf_int4_gemv_ring*, tiled q, bulk copies: sm_90+) at several warp
// counts and grids.
// nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/int4h cuda-native/src/test/cuda/int4_harness.cu && /tmp/int4h
#include "../../main/cuda/vlmflux.cu"
#include <cuda_fp16.h>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <random>
#include <cmath>
#include <algorithm>
#include <functional>
#include <cstring>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while(0)
static unsigned short hbf(float f){ unsigned u; memcpy(&u,&f,4); u += 0x7fff + ((u>>16)&1); return u>>16; }
static float bff(unsigned short h){ unsigned u = ((unsigned)h)<<16; float f; memcpy(&f,&u,4); return f; }
struct W { int M,K,gs; std::vector<unsigned> q, sz; std::vector<int> perm; std::vector<float> deq; }; // deq [M,K] checkpoint order
static W make(std::mt19937& g, int M, int K, int gs, bool sym, bool act) {
  W w; w.M=M; w.K=K; w.gs=gs; int G=K/gs; w.q.assign((size_t)M*K/8,0); w.sz.resize((size_t)M*G); w.deq.resize((size_t)M*K);
  if (act) { w.perm.resize(K); for(int i=0;i<K;i++) w.perm[i]=i; std::shuffle(w.perm.begin(), w.perm.end(), g); }
  std::uniform_real_distribution<float> U(0.002f,0.032f);
  for (int r=0;r<M;r++) for(int gg=0;gg<G;gg++){ __half s=__float2half(U(g)); __half z=__float2half(sym?8.f:(float)(g()%16));
    unsigned short sb=*(unsigned short*)&s, zb=*(unsigned short*)&z; w.sz[(size_t)r*G+gg]=sb|((unsigned)zb<<16); }
  for (int r=0;r<M;r++) for(int c=0;c<K;c++){ unsigned v=g()%16; w.q[(size_t)r*(K/8)+c/8] |= v<<(4*(c%8));
    unsigned p=w.sz[(size_t)r*G+c/gs]; unsigned short sb=p&0xffff, zb=p>>16; float s=__half2float(*(__half*)&sb), z=__half2float(*(__half*)&zb);
    int orig = act? w.perm[c] : c; w.deq[(size_t)r*K+orig] = ((float)v - z)*s; }
  return w;
}
// q in 16-row x 128-column tiles, rows padded to 16 (Int4Device.Layout.tiledWords; int4_tile_index)
static std::vector<unsigned> tiled(const std::vector<unsigned>& q, int M, int K) {
  int k8 = K/8, nb = K/128, Mp = (M+15)/16*16; std::vector<unsigned> t((size_t)Mp*k8, 0u);
  for (int r=0;r<M;r++) for(int p=0;p<k8;p++) t[(((size_t)(r>>4)*nb + (p>>4))*16 + (r&15))*16 + (p&15)] = q[(size_t)r*k8+p];
  return t;
}
template<class T> T* up(const std::vector<T>& v){ T* d; CK(cudaMalloc(&d, v.size()*sizeof(T)+16)); CK(cudaMemcpy(d, v.data(), v.size()*sizeof(T), cudaMemcpyHostToDevice)); return d; }
typedef void (*GemvFn)(float*,int,const unsigned*,const unsigned*,const bf16_t*,int,const float*,const float*,int,int,int);
typedef void (*PartsFn)(float*,int,const unsigned*,const unsigned*,const bf16_t*,int,long long,int,int,int,const float*,const float*,int,int,int);
static GemvFn fns[9] = {0, vf_int4_gemv_b1, vf_int4_gemv_b2, vf_int4_gemv_b3, vf_int4_gemv_b4, vf_int4_gemv_b5, vf_int4_gemv_b6, vf_int4_gemv_b7, vf_int4_gemv_b8};
static PartsFn pfns[9] = {0, vf_int4_gemv_parts_b1, vf_int4_gemv_parts_b2, vf_int4_gemv_parts_b3, vf_int4_gemv_parts_b4, vf_int4_gemv_parts_b5, vf_int4_gemv_parts_b6, vf_int4_gemv_parts_b7, vf_int4_gemv_parts_b8};
int fails=0;
typedef void (*MmaFn)(float*,int,const unsigned*,const unsigned*,const bf16_t*,int,const float*,const float*,int,int,int,int);
// the product kernel, then the load-schedule variants of int4.cu (see int4m_gemv)
static MmaFn mmaFns[5] = {vf_int4_gemv_mma, vf_int4_gemv_mma_v_s4, vf_int4_gemv_mma_v_c4, vf_int4_gemv_mma_v_c8, vf_int4_gemv_mma_v_cx4};
static const char* mmaNames[5] = {"product", "s4", "c4", "c8", "cx4"};
// the tiled product kernel (Int4Device.tiled), then its variants: all read tiled q
static MmaFn mmaTFns[4] = {vf_int4_gemv_mma_t, vf_int4_gemv_mma_t_v_cx4, vf_int4_gemv_mma_t_v_c8, vf_int4_gemv_mma_t_v_s4};
static const char* mmaTNames[4] = {"tiled", "t_cx4", "t_c8", "t_s4"};
// the persistent forms (int4p_gemv): p4 the product kernel's round, p2 half of it (the same blocks in the same order:
// bit for bit the product kernel's y too); t_p4 on tiled q
static MmaFn mmaPFns[3] = {vf_int4_gemv_mma_p4, vf_int4_gemv_mma_p2, vf_int4_gemv_mma_t_p4};
static const char* mmaPNames[3] = {"p4", "p2", "t_p4"};
static int persistentGrid(MmaFn f, int warps, int tiles) {   // resident blocks: occupancy x SMs, at most one a tile
  int per = 0, sms = 0; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, (const void*)f, 32*warps, 0)); CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  return std::max(1, std::min(tiles, per*sms));
}
// the ring GEMV (int4r_gemv, tiled q, sm_90+): the default ring (4 slots x 4 tiles a warp), then the ring-shape variants
struct RingK { MmaFn f; const char* name; int R, CT; };
static const int NRING = 7;
static RingK ringKs[NRING] = {{vf_int4_gemv_ring, "ring", 4, 4}, {vf_int4_gemv_ring_v_r3c8, "r3c8", 3, 8}, {vf_int4_gemv_ring_v_r6c2, "r6c2", 6, 2},
                          {vf_int4_gemv_ring_v_r2c8, "r2c8", 2, 8}, {vf_int4_gemv_ring_v_r8c2, "r8c2", 8, 2},
                          {vf_int4_gemv_ring_s, "split", 4, 4}, {vf_int4_gemv_ring_s_v_r6c2, "split_r6c2", 6, 2}};   // split: K over a block's warps
static const int RING_MAX_W = 8;   // the most warps a block this harness launches
static unsigned ringSmem(int k, int warps) { return int4r_smem_bytes(warps, ringKs[k].R, ringKs[k].CT); }
static void ringSetup() {   // dynamic shared memory above 48 KB must be allowed per kernel
  for (int k = 0; k < NRING; k++) CK(cudaFuncSetAttribute((const void*)ringKs[k].f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)ringSmem(k, RING_MAX_W)));
}
static int ringGrid(int k, int warps) {   // resident blocks: SMs x occupancy with the launch's dynamic shared memory
  int per = 0, sms = 0; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, (const void*)ringKs[k].f, 32*warps, ringSmem(k, warps)));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  return std::max(1, per*sms);
}
static int mmaWarps(int K){ int w=(K/128+3)/4; return w<4?4:(w>16?16:w); }   // Int4Ops.mmaWarps
static void testGemv(std::mt19937& g, int rows, int M, int K, int gs, bool sym, bool act, bool bias, bool res) {
  W w = make(g,M,K,gs,sym,act); int ldx=K+8*(rows%2), ldy=M+3*(rows%3);
  std::normal_distribution<float> N(0,1);
  std::vector<unsigned short> xb((size_t)rows*ldx); std::vector<float> x(xb.size()); for(size_t i=0;i<xb.size();i++){ xb[i]=hbf(N(g)); x[i]=bff(xb[i]); }
  std::vector<float> b(M), y0((size_t)rows*ldy); for(auto& v:b) v=N(g); for(auto& v:y0) v=N(g);
  unsigned* dq=up(w.q); unsigned* dsz=up(w.sz); unsigned short* dx=up(xb); float* db=up(b); float* dy=up(y0);
  const unsigned short* xin = dx; int ld=ldx; unsigned short* dg=nullptr; unsigned* dqt=nullptr;
  if (act) { int* dp=up(w.perm); CK(cudaMalloc(&dg, (size_t)rows*K*2)); vf_int4_gather_rows<<<dim3((K+255)/256,rows),256>>>(dg, dx, ldx, dp, K); xin=dg; ld=K; }
  const bool mma = K % 128 == 0 && gs % 128 == 0;   // Int4Device.mmaShape (zero points here are integers)
  if (mma) dqt = up(tiled(w.q, M, K));
  for (int path = 0; path < (mma ? 3 : 1); path++) {
    CK(cudaMemcpy(dy, y0.data(), y0.size()*4, cudaMemcpyHostToDevice));
    if (path == 0) fns[rows]<<<(M+15)/16,256>>>(dy, ldy, dq, dsz, xin, ld, bias?db:nullptr, res?dy:nullptr, M, K, gs);
    else if (path == 1) vf_int4_gemv_mma<<<(M+15)/16,32*mmaWarps(K)>>>(dy, ldy, dq, dsz, xin, ld, bias?db:nullptr, res?dy:nullptr, M, K, gs, rows);
    else vf_int4_gemv_mma_t<<<(M+15)/16,32*mmaWarps(K)>>>(dy, ldy, dqt, dsz, xin, ld, bias?db:nullptr, res?dy:nullptr, M, K, gs, rows);
    CK(cudaDeviceSynchronize()); std::vector<float> y(y0.size()); CK(cudaMemcpy(y.data(), dy, y.size()*4, cudaMemcpyDeviceToHost));
    double worst=0; int bad=0;
    for(int r=0;r<rows;r++){ for(int j=0;j<M;j++){ double s=0,mag=0; for(int t=0;t<K;t++){ double p=(double)x[(size_t)r*ldx+t]*w.deq[(size_t)j*K+t]; s+=p; mag+=fabs(p);} if(res) s+=y0[(size_t)r*ldy+j]; if(bias) s+=b[j];
       double err=fabs(s-y[(size_t)r*ldy+j]); double tol=2e-5*(mag+1); worst=std::max(worst, err/tol); if(err>tol) bad++; }
       for(int j=M;j<ldy;j++) if(y[(size_t)r*ldy+j]!=y0[(size_t)r*ldy+j]) bad++; }
    printf("gemv%s rows %d M %d K %d gs %d sym %d act %d bias %d res %d: %s (worst err/tol %.3f)\n", path == 2 ? " mma tiled" : path ? " mma" : "", rows,M,K,gs,sym,act,bias,res, bad?"FAIL":"ok", worst);
    if(bad) fails++;
  }
  cudaFree(dq); cudaFree(dsz); cudaFree(dx); cudaFree(db); cudaFree(dy); if(dg) cudaFree(dg); if(dqt) cudaFree(dqt);
}
static void testDeq(std::mt19937& g, int M, int K, int gs, bool sym, bool act) {   // act-order: vf_int4_dequant_bf16, else _x4
  W w = make(g,M,K,gs,sym,act); unsigned short* dw; CK(cudaMalloc(&dw,(size_t)M*K*2));
  for (int t = 0; t < (K % 128 == 0 && gs % 128 == 0 ? 2 : 1); t++) {   // row-major q, then tiled q where the matrix may be tiled
    unsigned* dq = up(t ? tiled(w.q, M, K) : w.q); unsigned* dsz=up(w.sz);
    CK(cudaMemset(dw, 0xff, (size_t)M*K*2));
    if (act) { int* dp = up(w.perm); long long words=(long long)M*K/8; (t ? vf_int4_dequant_bf16_t : vf_int4_dequant_bf16)<<<(words+255)/256,256>>>(dw,dq,dsz,dp,M,M,M,M,K,gs); cudaFree(dp); }
    else (t ? vf_int4_dequant_bf16_x4_t : vf_int4_dequant_bf16_x4)<<<((long long)M*K/8+1023)/1024,256>>>(dw,dq,dsz,M,K,gs);
    CK(cudaDeviceSynchronize());
    std::vector<unsigned short> o((size_t)M*K); CK(cudaMemcpy(o.data(),dw,o.size()*2,cudaMemcpyDeviceToHost)); int bad=0;
    for(size_t i=0;i<o.size();i++) if(o[i]!=hbf(w.deq[i])) bad++;
    printf("dequant%s%s M %d K %d gs %d sym %d act %d: %s (%d bad)\n",act?"":" x4",t?" tiled":"",M,K,gs,sym,act,bad?"FAIL":"ok",bad); if(bad) fails++;
    cudaFree(dq); cudaFree(dsz);
  }
  cudaFree(dw);
}
// Fused parts (rows of each in ms[]), each with its own permutation: one gather launch [P, rows, K], one GEMV, one dequant.
static void testParts(std::mt19937& g, int rows, std::vector<int> ms, int K, int gs, bool sym) {
  int P = ms.size(), M = 0; std::vector<int> st(3, 0); std::vector<W> ws;
  for (int p = 0; p < P; p++) { ws.push_back(make(g, ms[p], K, gs, sym, true)); M += ms[p]; }
  for (int i = 0; i < 3; i++) { int s = 0; for (int p = 0; p <= i && p < P; p++) s += ms[p]; st[i] = i + 1 < P ? s : M; }
  std::vector<unsigned> q, sz; std::vector<int> perm; std::vector<float> deq;
  for (auto& w : ws) { q.insert(q.end(), w.q.begin(), w.q.end()); sz.insert(sz.end(), w.sz.begin(), w.sz.end()); perm.insert(perm.end(), w.perm.begin(), w.perm.end()); deq.insert(deq.end(), w.deq.begin(), w.deq.end()); }
  int ldx = K + 8, ldy = M + 3; std::normal_distribution<float> N(0,1);
  std::vector<unsigned short> xb((size_t)rows*ldx); std::vector<float> x(xb.size()); for(size_t i=0;i<xb.size();i++){ xb[i]=hbf(N(g)); x[i]=bff(xb[i]); }
  std::vector<float> y0((size_t)rows*ldy); for(auto& v:y0) v=N(g);
  unsigned* dq=up(q); unsigned* dsz=up(sz); int* dp=up(perm); unsigned short* dx=up(xb); float* dy=up(y0); unsigned short* dg; CK(cudaMalloc(&dg, (size_t)P*rows*K*2));
  vf_int4_gather_rows<<<dim3((K+255)/256,rows,P),256>>>(dg, dx, ldx, dp, K);
  pfns[rows]<<<(M+15)/16,256>>>(dy, ldy, dq, dsz, dg, K, (long long)rows*K, st[0], st[1], st[2], nullptr, dy, M, K, gs);
  CK(cudaDeviceSynchronize()); std::vector<float> y(y0.size()); CK(cudaMemcpy(y.data(), dy, y.size()*4, cudaMemcpyDeviceToHost));
  int bad=0; double worst=0;
  for(int r=0;r<rows;r++) for(int j=0;j<M;j++){ double s=y0[(size_t)r*ldy+j],mag=0; for(int t=0;t<K;t++){ double p=(double)x[(size_t)r*ldx+t]*deq[(size_t)j*K+t]; s+=p; mag+=fabs(p);} double err=fabs(s-y[(size_t)r*ldy+j]), tol=2e-5*(mag+1); worst=std::max(worst,err/tol); if(err>tol) bad++; }
  unsigned short* dw; CK(cudaMalloc(&dw,(size_t)M*K*2)); long long words=(long long)M*K/8;
  vf_int4_dequant_bf16<<<(words+255)/256,256>>>(dw,dq,dsz,dp,st[0],st[1],st[2],M,K,gs); CK(cudaDeviceSynchronize());
  std::vector<unsigned short> o((size_t)M*K); CK(cudaMemcpy(o.data(),dw,o.size()*2,cudaMemcpyDeviceToHost)); int badd=0;
  for(size_t i=0;i<o.size();i++) if(o[i]!=hbf(deq[i])) badd++;
  printf("parts rows %d M %d (P %d) K %d gs %d sym %d: gemv %s (worst err/tol %.3f), dequant %s\n", rows, M, P, K, gs, sym, bad?"FAIL":"ok", worst, badd?"FAIL":"ok");
  if(bad||badd) fails++;
  cudaFree(dq); cudaFree(dsz); cudaFree(dp); cudaFree(dx); cudaFree(dy); cudaFree(dg); cudaFree(dw);
}
// The ring GEMVs on one matrix (tiled q) against the double-precision reference: every instance at 1, 4 and 8 warps a
// block and grids 1, 2, 5 and one warp a stripe (fewer warps than stripes: several stripes a warp, the ring crossing
// stripes; more: idle warps), strides ldx > K and ldy > M (the columns past M must stay), bias and residual aliasing y.
static void testRing(std::mt19937& g, int rows, int M, int K, int gs, bool bias, bool res) {
  W w = make(g, M, K, gs, false, false); int ldx = K + 8*(rows%2), ldy = M + 3*(rows%3);
  std::normal_distribution<float> N(0,1);
  std::vector<unsigned short> xb((size_t)rows*ldx); std::vector<float> x(xb.size()); for(size_t i=0;i<xb.size();i++){ xb[i]=hbf(N(g)); x[i]=bff(xb[i]); }
  std::vector<float> b(M), y0((size_t)rows*ldy); for(auto& v:b) v=N(g); for(auto& v:y0) v=N(g);
  std::vector<double> ref((size_t)rows*M), tol((size_t)rows*M);
  for(int r=0;r<rows;r++) for(int j=0;j<M;j++){ double s=0,mag=0; for(int t=0;t<K;t++){ double p=(double)x[(size_t)r*ldx+t]*w.deq[(size_t)j*K+t]; s+=p; mag+=fabs(p);} if(res) s+=y0[(size_t)r*ldy+j]; if(bias) s+=b[j];
    ref[(size_t)r*M+j]=s; tol[(size_t)r*M+j]=2e-5*(mag+1); }
  unsigned* dq=up(tiled(w.q, M, K)); unsigned* dsz=up(w.sz); unsigned short* dx=up(xb); float* db=up(b); float* dy=up(y0);
  const int S = (M+15)/16;
  for (int k = 0; k < NRING; k++) {
    int bad = 0; double worst = 0;
    for (int wc : {1, 4, 8}) for (int grid : {1, 2, 5, (S+wc-1)/wc}) {
      CK(cudaMemcpy(dy, y0.data(), y0.size()*4, cudaMemcpyHostToDevice));
      ringKs[k].f<<<grid, 32*wc, ringSmem(k, wc)>>>(dy, ldy, dq, dsz, dx, ldx, bias?db:nullptr, res?dy:nullptr, M, K, gs, rows);
      CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
      std::vector<float> y(y0.size()); CK(cudaMemcpy(y.data(), dy, y.size()*4, cudaMemcpyDeviceToHost)); int badc=0;
      for(int r=0;r<rows;r++){ for(int j=0;j<M;j++){ double err=fabs(ref[(size_t)r*M+j]-y[(size_t)r*ldy+j]), t=tol[(size_t)r*M+j]; worst=std::max(worst, err/t); if(!(err<=t)) badc++; }
        for(int j=M;j<ldy;j++) if(y[(size_t)r*ldy+j]!=y0[(size_t)r*ldy+j]) badc++; }
      if (badc) printf("gemv ring %s warps %d grid %d rows %d M %d K %d gs %d bias %d res %d: FAIL (%d bad)\n", ringKs[k].name, wc, grid, rows, M, K, gs, bias, res, badc);
      bad += badc;
    }
    printf("gemv ring %s rows %d M %d K %d gs %d bias %d res %d (warps 1/4/8 x grids 1/2/5/all): %s (worst err/tol %.3f)\n", ringKs[k].name, rows, M, K, gs, bias, res, bad?"FAIL":"ok", worst);
    if (bad) fails++;
  }
  cudaFree(dq); cudaFree(dsz); cudaFree(dx); cudaFree(db); cudaFree(dy);
}
static float timeIt(std::function<void()> f){ cudaEvent_t a,b; cudaEventCreate(&a); cudaEventCreate(&b); for(int i=0;i<5;i++) f(); cudaEventRecord(a); for(int i=0;i<100;i++) f(); cudaEventRecord(b); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms,a,b); return ms*10.f; } // us per call
int main(){
  std::mt19937 g(42);
  ringSetup();
  if (const char* only = getenv("INT4H_NCU")) {   // one shape "M,K" (e.g. 37888,3584: Qwen2.5-7B gate/up) for Nsight Compute:
    int M = 37888, K = 3584;                       // the product kernel and the tiled one once each at batch 1, then both timed
    sscanf(only, "%d,%d", &M, &K);
    std::vector<unsigned> q((size_t)M*K/8), sz((size_t)M*K/128, 0x48003c00u); for (auto& v : q) v = (unsigned)g();
    std::vector<unsigned short> xb(K); std::normal_distribution<float> N(0,1); for (auto& v : xb) v = hbf(N(g));
    unsigned* dq=up(q); unsigned* dqt=up(tiled(q, M, K)); unsigned* dsz=up(sz); unsigned short* dx=up(xb); float* dy; CK(cudaMalloc(&dy, (size_t)M*4));
    const int wc = mmaWarps(K);
    vf_int4_gemv_mma<<<(M+15)/16,32*wc>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128,1);
    vf_int4_gemv_mma_t<<<(M+15)/16,32*wc>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,1);
    const int rg = ringGrid(0, 8); const unsigned rs = ringSmem(0, 8);   // the ring GEMV: 8 warps a block, resident grid
    vf_int4_gemv_ring<<<rg,32*8,rs>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,1);
    CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
    const double bytes4 = (double)M*K/2 + (double)M*K/128*4;
    float m1 = timeIt([&]{ vf_int4_gemv_mma<<<(M+15)/16,32*wc>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
    float t1 = timeIt([&]{ vf_int4_gemv_mma_t<<<(M+15)/16,32*wc>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
    float r1 = timeIt([&]{ vf_int4_gemv_ring<<<rg,32*8,rs>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
    CK(cudaGetLastError());
    printf("ncu shape %dx%d, %d warps: mma b1 %.1f us (%.0f GB/s), tiled %.1f us (%.0f GB/s), ring/8w/g%d %.1f us (%.0f GB/s)\n", M, K, wc, m1, bytes4/m1/1e3, t1, bytes4/t1/1e3, rg, r1, bytes4/r1/1e3);
    return 0;
  }
  int cases[][8] = {{1,13,64,32,1,0,0,0},{1,300,1024,128,0,0,1,1},{1,64,2048,64,1,1,1,1},{1,17,4096,128,0,1,0,1},{2,33,256,32,0,0,1,0},{3,100,384,128,1,0,0,1},
    {4,257,1024,64,0,1,1,1},{5,9,96,32,1,0,1,0},{6,128,2048,128,0,0,0,1},{7,31,192,64,1,1,1,1},{8,1000,512,128,0,0,1,1},{8,40,3072,32,0,1,0,0},{1,4608,3584,128,0,0,1,1},
    {1,4099,1536,256,0,0,0,1},{2,24,640,640,1,0,1,0},{4,515,3584,128,0,0,1,0},{8,7,896,128,1,1,0,1},{3,2053,8192,128,0,0,0,0},{5,160,1280,256,1,0,1,1},{8,4608,3584,128,0,0,1,1},{1,300,11008,128,0,0,1,1},{2,77,18944,128,0,0,0,1},{1,40,2048,2048,1,0,0,0}};
  for(auto& c: cases) testGemv(g,c[0],c[1],c[2],c[3],c[4],c[5],c[6],c[7]);
  testDeq(g,5,64,32,1,0); testDeq(g,77,1024,128,0,0); testDeq(g,19,96,32,0,0); testDeq(g,130,3584,128,0,0); testDeq(g,9,256,128,0,1); testDeq(g,33,512,64,0,1); testDeq(g,16,2048,128,1,1);
  testDeq(g,37,512,256,0,1); testDeq(g,3,384,384,1,0);
  testParts(g,1,{64,32,32},256,64,1); testParts(g,3,{13,7,20},128,32,0); testParts(g,8,{300,300},1024,128,0); testParts(g,4,{5,6,7,8},64,32,1);
  testParts(g,1,{3584,512,512},3584,128,1); testParts(g,8,{3584,512,512},3584,128,0);
  // the tensor-core GEMV at every warp count a block may have (2..16, Int4Ops picks 4..16) on a short and a long K
  for (int vi = 0; vi < 5; vi++) for (int wc : {2, 3, 5, 16}) for (int K : {384, 4096}) {
    W w = make(g, 37, K, 128, false, false); std::normal_distribution<float> N(0,1);
    std::vector<unsigned short> xb((size_t)3*K); std::vector<float> x(xb.size()); for(size_t i=0;i<xb.size();i++){ xb[i]=hbf(N(g)); x[i]=bff(xb[i]); }
    unsigned* dq=up(w.q); unsigned* dsz=up(w.sz); unsigned short* dx=up(xb); float* dy; CK(cudaMalloc(&dy, 3*37*4));
    mmaFns[vi]<<<(37+15)/16,32*wc>>>(dy, 37, dq, dsz, dx, K, nullptr, nullptr, 37, K, 128, 3); CK(cudaDeviceSynchronize());
    std::vector<float> y(3*37); CK(cudaMemcpy(y.data(), dy, y.size()*4, cudaMemcpyDeviceToHost)); int bad=0;
    for(int r=0;r<3;r++) for(int j=0;j<37;j++){ double s=0,mag=0; for(int t=0;t<K;t++){ double p=(double)x[(size_t)r*K+t]*w.deq[(size_t)j*K+t]; s+=p; mag+=fabs(p);} if(fabs(s-y[r*37+j])>2e-5*(mag+1)) bad++; }
    printf("gemv mma %s warps %d K %d: %s\n", mmaNames[vi], wc, K, bad?"FAIL":"ok"); if(bad) fails++;
    if (vi < 4) {   // the tiled kernels at the same warp count
      unsigned* dqt = up(tiled(w.q, 37, K));
      mmaTFns[vi]<<<(37+15)/16,32*wc>>>(dy, 37, dqt, dsz, dx, K, nullptr, nullptr, 37, K, 128, 3); CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(y.data(), dy, y.size()*4, cudaMemcpyDeviceToHost)); bad=0;
      for(int r=0;r<3;r++) for(int j=0;j<37;j++){ double s=0,mag=0; for(int t=0;t<K;t++){ double p=(double)x[(size_t)r*K+t]*w.deq[(size_t)j*K+t]; s+=p; mag+=fabs(p);} if(fabs(s-y[r*37+j])>2e-5*(mag+1)) bad++; }
      printf("gemv mma %s warps %d K %d: %s\n", mmaTNames[vi], wc, K, bad?"FAIL":"ok"); if(bad) fails++;
      cudaFree(dqt);
    }
    cudaFree(dq); cudaFree(dsz); cudaFree(dx); cudaFree(dy);
  }
  // the persistent forms (int4p_gemv) bit for bit against the product kernel: several grids (fewer blocks than tiles,
  // one, as many), warp counts, K with a partial last round, 1..8 rows, bias and residual
  for (int vi = 0; vi < 3; vi++) for (int wc : {4, 7, 16}) for (int K : {384, 3584, 4096, 18944}) for (int rows : {1, 3, 8}) {
    const int M = 77; W w = make(g, M, K, 128, false, false); std::normal_distribution<float> N(0,1);
    std::vector<unsigned short> xb((size_t)rows*K); for(auto& v: xb) v=hbf(N(g));
    std::vector<float> b(M), y0((size_t)rows*M); for(auto& v:b) v=N(g); for(auto& v:y0) v=N(g);
    unsigned* dq=up(vi == 2 ? tiled(w.q, M, K) : w.q); unsigned* dsz=up(w.sz); unsigned short* dx=up(xb); float* db=up(b); float* dy=up(y0); float* dr=up(y0);
    CK(cudaMemcpy(dr, y0.data(), y0.size()*4, cudaMemcpyHostToDevice));
    (vi == 2 ? vf_int4_gemv_mma_t : vf_int4_gemv_mma)<<<(M+15)/16,32*wc>>>(dr, M, dq, dsz, dx, K, db, dr, M, K, 128, rows);
    std::vector<float> ref(y0.size()); CK(cudaDeviceSynchronize()); CK(cudaMemcpy(ref.data(), dr, ref.size()*4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int grid : {1, 2, 5}) {
      CK(cudaMemcpy(dy, y0.data(), y0.size()*4, cudaMemcpyHostToDevice));
      mmaPFns[vi]<<<grid,32*wc>>>(dy, M, dq, dsz, dx, K, db, dy, M, K, 128, rows); CK(cudaDeviceSynchronize());
      std::vector<float> y(y0.size()); CK(cudaMemcpy(y.data(), dy, y.size()*4, cudaMemcpyDeviceToHost));
      const bool same = memcmp(y.data(), ref.data(), y.size()*4) == 0;
      if (!same) { printf("gemv mma %s warps %d K %d rows %d grid %d: FAIL (not the product kernel's y)\n", mmaPNames[vi], wc, K, rows, grid); fails++; bad++; }
    }
    if (!bad) printf("gemv mma %s warps %d K %d rows %d: ok\n", mmaPNames[vi], wc, K, rows);
    cudaFree(dq); cudaFree(dsz); cudaFree(dx); cudaFree(db); cudaFree(dy); cudaFree(dr);
  }
  // the ring GEMVs (tiled q): partial last chunks (K 384, 3,584 and 18,944 with 8-tile chunks), several stripes a warp,
  // a partial last stripe (M 37, 77, 300), gs 128 / 256 / K, 1 / 3 / 8 rows
  int ringCases[][6] = {{3,37,384,128,0,0},{1,37,384,384,1,1},{8,300,384,128,1,1},{1,77,3584,128,0,1},{8,77,3584,256,1,0},{3,77,3584,3584,1,1},
    {8,37,3584,128,1,1},{8,300,4096,128,1,1},{3,300,4096,256,0,0},{8,37,4096,4096,0,1},{8,300,18944,128,1,1},{3,77,18944,256,0,1},{1,300,18944,18944,1,0}};
  for (auto& c : ringCases) testRing(g, c[0], c[1], c[2], c[3], c[4], c[5]);
  printf("FAILS %d\n", fails);
  if (getenv("INT4H_NO_TIMING")) return fails?1:0;
  // timing: Qwen2.5-7B / 3B decode linears, int4 gs128 vs bf16 vf_gemv_bf16
  int shapes[][4][2] = {{{4608,3584},{3584,3584},{37888,3584},{3584,18944}},{{2560,2048},{2048,2048},{22016,2048},{2048,11008}}};
  const char* names[2]={"7B","3B"}; int layers[2]={28,36};
  for(int s=0;s<2;s++){ double t4=0,t16=0,tm=0,tt=0,tr4=0,tr8=0,trb=0;
    for(int i=0;i<4;i++){ int M=shapes[s][i][0], K=shapes[s][i][1];
      std::vector<unsigned> q((size_t)M*K/8, 0x12345678u), sz((size_t)M*K/128, 0x48003c00u);
      unsigned* dq=up(q); unsigned* dsz=up(sz); unsigned short* dwb; CK(cudaMalloc(&dwb,(size_t)M*K*2)); CK(cudaMemset(dwb,0,(size_t)M*K*2));
      unsigned short* dx; CK(cudaMalloc(&dx, 8*K*2)); CK(cudaMemset(dx,0,8*K*2)); float* dy; CK(cudaMalloc(&dy, 8*M*4));
      float a = timeIt([&]{ vf_int4_gemv_b1<<<(M+15)/16,256>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128); });
      float bb = timeIt([&]{ vf_gemv_bf16<<<(M+15)/16,256>>>(dy,dwb,dx,nullptr,nullptr,M,K); });
      float a4 = timeIt([&]{ vf_int4_gemv_b4<<<(M+15)/16,256>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128); });
      float a8 = timeIt([&]{ vf_int4_gemv_b8<<<(M+15)/16,256>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128); });
      float m1 = timeIt([&]{ vf_int4_gemv_mma<<<(M+15)/16,32*mmaWarps(K)>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
      float m4 = timeIt([&]{ vf_int4_gemv_mma<<<(M+15)/16,32*mmaWarps(K)>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128,4); });
      float m8 = timeIt([&]{ vf_int4_gemv_mma<<<(M+15)/16,32*mmaWarps(K)>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128,8); });
      float dq4_us = timeIt([&]{ vf_int4_dequant_bf16_x4<<<((long long)M*K/8+1023)/1024,256>>>(dwb,dq,dsz,M,K,128); });
      unsigned* dqt = up(tiled(q, M, K));
      float t1 = timeIt([&]{ vf_int4_gemv_mma_t<<<(M+15)/16,32*mmaWarps(K)>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
      float t8 = timeIt([&]{ vf_int4_gemv_mma_t<<<(M+15)/16,32*mmaWarps(K)>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,8); });
      float dqt_us = timeIt([&]{ vf_int4_dequant_bf16_x4_t<<<((long long)M*K/8+1023)/1024,256>>>(dwb,dqt,dsz,M,K,128); });
      double bytes4 = (double)M*K/2 + (double)M*K/128*4;
      printf("%s %dx%d: int4 b1 %.1f us (%.0f GB/s) | b4 %.1f | b8 %.1f | mma b1 %.1f us (%.0f GB/s) | b4 %.1f | b8 %.1f | bf16 gemv %.1f us (%.0f GB/s) | dequant x4 %.1f us (%.0f GB/s)\n", names[s], M, K, a, bytes4/a/1e3, a4, a8, m1, bytes4/m1/1e3, m4, m8, bb, (double)M*K*2/bb/1e3, dq4_us, (bytes4+(double)M*K*2)/dq4_us/1e3);
      printf("%s %dx%d tiled: mma b1 %.1f us (%.0f GB/s) | b8 %.1f | dequant x4 %.1f us\n", names[s], M, K, t1, bytes4/t1/1e3, t8, dqt_us);
      t4+=a; t16+=bb; tm+=m1; tt+=t1;
      printf("%s %dx%d load schedules (us, b1/b8):", names[s], M, K);
      for (int vi = 0; vi < 5; vi++) for (int wc : {mmaWarps(K), 8}) {
        float v1 = timeIt([&]{ mmaFns[vi]<<<(M+15)/16,32*wc>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
        float v8 = timeIt([&]{ mmaFns[vi]<<<(M+15)/16,32*wc>>>(dy,M,dq,dsz,dx,K,nullptr,nullptr,M,K,128,8); });
        printf(" %s/%dw %.1f/%.1f", mmaNames[vi], wc, v1, v8);
      }
      for (int vi = 0; vi < 4; vi++) for (int wc : {mmaWarps(K), 8}) {
        float v1 = timeIt([&]{ mmaTFns[vi]<<<(M+15)/16,32*wc>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
        float v8 = timeIt([&]{ mmaTFns[vi]<<<(M+15)/16,32*wc>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,8); });
        printf(" %s/%dw %.1f/%.1f", mmaTNames[vi], wc, v1, v8);
      }
      for (int vi = 0; vi < 3; vi++) for (int wc : {mmaWarps(K), 8, 4}) {
        const unsigned* qq = vi == 2 ? dqt : dq; const int grid = persistentGrid(mmaPFns[vi], wc, (M+15)/16);
        float v1 = timeIt([&]{ mmaPFns[vi]<<<grid,32*wc>>>(dy,M,qq,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
        float v8 = timeIt([&]{ mmaPFns[vi]<<<grid,32*wc>>>(dy,M,qq,dsz,dx,K,nullptr,nullptr,M,K,128,8); });
        printf(" %s/%dw/g%d %.1f/%.1f (%.0f GB/s)", mmaPNames[vi], wc, grid, v1, v8, bytes4/v1/1e3);
      }
      printf("\n");
      float best = 1e30f;   // the fastest ring form and warp count of this matrix
      printf("%s %dx%d ring:", names[s], M, K);   // the ring GEMVs on tiled q, resident grid: us b1/b8 (GB/s at b1)
      for (int k = 0; k < NRING; k++) for (int wc : {4, 8}) {
        const int grid = ringGrid(k, wc); const unsigned sm = ringSmem(k, wc);
        float v1 = timeIt([&]{ ringKs[k].f<<<grid,32*wc,sm>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,1); });
        float v8 = timeIt([&]{ ringKs[k].f<<<grid,32*wc,sm>>>(dy,M,dqt,dsz,dx,K,nullptr,nullptr,M,K,128,8); });
        CK(cudaGetLastError());
        printf(" %s/%dw/g%d %.1f/%.1f (%.0f GB/s)", ringKs[k].name, wc, grid, v1, v8, bytes4/v1/1e3);
        if (k == 0) (wc == 4 ? tr4 : tr8) += v1;
        best = std::min(best, v1);
      }
      trb += best;
      printf("\n"); cudaFree(dq); cudaFree(dqt); cudaFree(dsz); cudaFree(dwb); cudaFree(dx); cudaFree(dy); }
    { int M=shapes[s][0][0], K=shapes[s][0][1], kv=(M-K)/2; // fused qkv with per-part permutations: gather + GEMV
      std::vector<unsigned> q((size_t)M*K/8, 0x12345678u), sz((size_t)M*K/128, 0x48003c00u); std::vector<int> perm((size_t)3*K); for(size_t i=0;i<perm.size();i++) perm[i]=(int)((i*7919)%K);
      unsigned* dq=up(q); unsigned* dsz=up(sz); int* dp=up(perm); unsigned short* dx; CK(cudaMalloc(&dx, 8*K*2)); CK(cudaMemset(dx,0,8*K*2)); unsigned short* dg; CK(cudaMalloc(&dg,(size_t)3*8*K*2)); float* dy; CK(cudaMalloc(&dy, 8*M*4));
      for (int rows : {1, 4, 8}) {
        float one = timeIt([&]{ vf_int4_gather_rows<<<dim3((K+255)/256,rows,1),256>>>(dg,dx,K,dp,K); fns[rows]<<<(M+15)/16,256>>>(dy,M,dq,dsz,dg,K,nullptr,nullptr,M,K,128); });
        float three = timeIt([&]{ vf_int4_gather_rows<<<dim3((K+255)/256,rows,3),256>>>(dg,dx,K,dp,K); pfns[rows]<<<(M+15)/16,256>>>(dy,M,dq,dsz,dg,K,(long long)rows*K,K,K+kv,M,nullptr,nullptr,M,K,128); });
        printf("%s act-order qkv %dx%d rows %d: one permutation %.1f us, per-part permutations %.1f us (gather + GEMV)\n", names[s], M, K, rows, one, three);
      }
      cudaFree(dq); cudaFree(dsz); cudaFree(dp); cudaFree(dx); cudaFree(dg); cudaFree(dy); }
    printf("%s per-token linears (%d layers): int4 %.2f ms, int4 mma %.2f ms, tiled %.2f ms, bf16 %.2f ms, ratio %.2fx (mma %.2fx, tiled %.2fx); ring 4w %.2f ms (%.2fx), 8w %.2f ms (%.2fx), best ring form a matrix %.2f ms (%.2fx)\n", names[s], layers[s], t4*layers[s]/1e3, tm*layers[s]/1e3, tt*layers[s]/1e3, t16*layers[s]/1e3, t16/t4, t16/tm, t16/tt, tr4*layers[s]/1e3, t16/tr4, tr8*layers[s]/1e3, t16/tr8, trb*layers[s]/1e3, t16/trb);
  }
  return fails?1:0;
}
