#!/usr/bin/env python3
"""Reproduces MultiBlockSamplingTest's logits (java.util.Random(18), the test's draw order) for n = 151,936, shape 0, and
computes the exact top-p cut (t = 0.7, p = 0.9, no top-k) in float64 next to a simulation of sampling.cu's multi-block
method (float32 weights, per-block float sums for Z, 4,096 coarse key bins with one bin of margin, fixed-point 2^-40
radix mass walk). Both keep 9,647 tokens. The test's CPU reference kept 9,630: CpuOps.softmax summed the 152k
exponentials in a float running sum, 1.7e-4 low (fixed: the sum is in double). Usage: python3 topp_cut_sim.py."""Reproduces MultiBlockSamplingTest's logits (java.util.Random(18), the test's draw order) for n = 151,936, shape 0, and
computes the exact top-p cut (t = 0.7, p = 0.9, no top-k) in float64 next to a simulation of sampling.cu's multi-block
method (float32 weights, per-block float sums for Z, 4,096 coarse key bins with one bin of margin, fixed-point 2^-40
radix mass walk). Both give 9,647 kept tokens; the kernel on an H100 (2026-12-06) stopped 17 tokens higher, so the
defect is in the kernel. Usage: python3 topp_cut_sim.py (numpy only)."""Reproduces MultiBlockSamplingTest's logits (java.util.Random(18), the test's draw order) for n = 151,936, shape 0, and
computes the exact top-p cut (t = 0.7, p = 0.9, no top-k) in float64 next to a simulation of sampling.cu's multi-block
method (float32 weights, per-block float sums for Z, 4,096 coarse key bins with one bin of margin, fixed-point 2^-40
radix mass walk). Both keep 9,647 tokens. The test's CPU reference kept 9,630: CpuOps.softmax summed the 152k
exponentials in a float running sum, 1.7e-4 low (fixed: the sum is in double). Usage: python3 topp_cut_sim.py."""
import math
import numpy as np
class JRandom:
    def __init__(s, seed): s.seed=(seed ^ 0x5DEECE66D) & ((1<<48)-1); s.haveNext=False
    def next(s,bits):
        s.seed=(s.seed*0x5DEECE66D + 0xB) & ((1<<48)-1)
        r = s.seed >> (48-bits)
        if r >= 1<<31: r -= 1<<32
        return r
    def nextDouble(s): return ((s.next(26) << 27) + s.next(27)) * (1.0/(1<<53))
    def nextInt(s,bound):
        r=s.next(31); m=bound-1
        if (bound & m)==0: return (bound*r)>>31
        u=r
        while True:
            r=u%bound
            if u-r+m < (1<<31): return r
            u=s.next(31)
    def nextGaussian(s):
        if s.haveNext: s.haveNext=False; return s.nng
        while True:
            v1=2*s.nextDouble()-1; v2=2*s.nextDouble()-1; q=v1*v1+v2*v2
            if q<1 and q!=0: break
        mul=math.sqrt(-2*math.log(q)/q); s.nng=v2*mul; s.haveNext=True; return v1*mul
def f32(x): return float(np.float32(x))
r=JRandom(18)
def logits(n,shape):
    l=np.empty(n,np.float32)
    for i in range(n): l[i]=np.float32(r.nextGaussian()*(2.0 if shape==0 else 1.0))
    if shape==1:
        for j in range(10): k=r.nextInt(n); l[k]=np.float32(l[k]+np.float32(8))
    if shape==2: l[0::3]=-np.inf
    return l
for n in [1000,4097,32000]:
    for sh in range(3): logits(n,sh)
l=logits(151936,0)
t=np.float32(0.7); p=float(np.float32(0.9))
mx=float(l.max())
w=np.exp((l.astype(np.float64)-mx)/float(t))
Z=w.sum()
order=np.argsort(-l.astype(np.float64), kind='stable')
cum=np.cumsum(w[order])
k=np.searchsorted(cum, p*Z)  # first index where cum >= pZ
kept=set(order[:k+1].tolist())
print("exact kept", len(kept), "cut logit", l[order[k]], "w/Z at cut", w[order[k]]/Z)
for i in [9163, 18579, 18753, 25725, 31018, 32777, 37968, 41141, 46457, 48094]:
    above=w[l.astype(np.float64)>float(l[i])].sum()
    print(i, i in kept, float(l[i]), "above/Z-p", above/Z-p, "w/Z", w[i]/Z)

# ---- the kernel's method, simulated
n = l.size
invT=np.float32(1)/np.float32(0.7); mx=l.max()
w=np.exp(((l-mx)*invT).astype(np.float32)).astype(np.float32)
parts=128; chunk=(n+parts-1)//parts
pm=np.array([w[b*chunk:(b+1)*chunk].astype(np.float32).sum(dtype=np.float32) for b in range(parts)],np.float32)
sZ=pm.sum(dtype=np.float32)
p=float(np.float32(0.9))
target=int(p*float(sZ)*2**40)
fx=np.maximum(1,np.rint(w.astype(np.float64)*2**40)).astype(np.uint64)
order=np.argsort(-l.astype(np.float64),kind='stable')
cum=np.cumsum(fx[order].astype(np.float64))
k=np.searchsorted(cum,target)
print("sZ",sZ,"exactZ",np.exp((l.astype(np.float64)-mx)/0.7).sum(),"fx total",fx.astype(np.float64).sum()/2**40, "kept",k+1)
u=l.view(np.uint32).astype(np.uint64)
key=np.where(u & 0x80000000, (~u) & 0xffffffff, u | 0x80000000).astype(np.uint64)
bins=(key>>20)
# coarse floor like vf_sample_floor_bin (exact masses here)
hm=np.zeros(4096); np.add.at(hm,bins.astype(np.int64),w.astype(np.float64))
tgt=p*float(sZ); c=0; fb=0
for b in range(4095,-1,-1):
    c+=hm[b]
    if c>=tgt: fb=b; break
fl=max(0,fb-1); cand=bins>=fl
print("fb",fb,"cands",cand.sum())
prefix=0; mask=0; need=target
for shift in (24,16,8,0):
    sel=cand & ((key & mask)==prefix)
    h=np.zeros(256,dtype=object)
    for kk,f in zip(((key[sel]>>shift)&255).tolist(), fx[sel].tolist()): h[kk]+=f
    cum=0; digit=-1
    for b in range(255,-1,-1):
        if h[b]>0 and cum+h[b]>=need: digit=b; need-=cum; break
        cum+=h[b]
    prefix|=digit<<shift; mask|=255<<shift
print("floorKey",hex(prefix),"kept",(key>=prefix).sum())
