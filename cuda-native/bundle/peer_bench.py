#!/usr/bin/env python3
"""Hugging Face peer + oracle for the VLMFlux CUDA decoder, on the GPU machine (adapted from shared/tools/peer_bench.py).

  peer_bench.py bandwidth
  peer_bench.py make NAME DIR [--compiled] [--no-bench]

`make` builds a random-weight bf16 model of a published shape (NAME in SHAPES) with transformers, saves it to DIR as
safetensors (what `vlmflux` loads), writes the parity oracle -- DIR/hf_ids.i32 (64 prompt + 16 decode ids) and
DIR/hf_logits.f32 ([80, vocab] float32 logits computed in float32 from exactly the saved bf16 weights) and
DIR/hf_logits_bf16.f32 (the same from transformers' own bfloat16 forward, to size bf16 rounding) -- then times
HF at batch 1 (eager `generate`; with --compiled also static cache + torch.compile): prefill of 512 / 2048 tokens
and greedy decode tok/s on top of them. One JSON object per line on stdout."""
import json, sys, time
import torch

dev = "cuda"
P, S = 64, 16


def emit(**kw):
    print(json.dumps(kw), flush=True)


def sync():
    torch.cuda.synchronize()


def bandwidth():
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev); b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    sync(); t = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    sync(); dt = (time.perf_counter() - t) / 10
    emit(what="bandwidth", copy_rw_GBps=round(2 * n / dt / 1e9, 1))
    del a, b; torch.cuda.empty_cache()
    return 2 * n / dt


SHAPES = {
    "Qwen3-0.6B": dict(arch="qwen3", hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "Qwen2.5-3B": dict(arch="qwen2", hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                       num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "Qwen2.5-7B": dict(arch="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}


def build(name):
    from transformers import Qwen2Config, Qwen3Config, AutoModelForCausalLM
    s = dict(SHAPES[name]); arch = s.pop("arch")
    C = Qwen3Config if arch == "qwen3" else Qwen2Config
    cfg = C(max_position_embeddings=8192, rope_theta=1e6, rms_norm_eps=1e-6, **s)
    torch.manual_seed(0)
    with torch.device(dev):
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    m.eval()
    # random (not default-initialised) norms and biases, so those code paths are checked too
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if "norm" in n else 0.0) + 0.1 * torch.randn_like(p, dtype=torch.float32))
    nparam = sum(p.numel() for p in m.parameters())
    return m, cfg, nparam


def row_errors(got, ref):
    """Per row: max |got - ref| / max |ref| (the parity metric of HfParityCheck)."""
    d = (got - ref).abs().amax(dim=1)
    return (d / ref.abs().amax(dim=1).clamp_min(1e-30)).tolist()


@torch.no_grad()
def oracle(m, cfg, out_dir):
    """Teacher-forced logits over P + S random ids: HF in bfloat16 (the model as saved, default attention) and HF in
    float32 (the same bf16 weights upcast). Both are written; the bf16 run's own error against float32 says how far
    plain bf16 inference is from the float32 reference at this shape."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, min(cfg.vocab_size, 100000), (1, P + S), generator=g)
    bf = m(input_ids=ids.to(dev)).logits[0].float().cpu().contiguous()
    m.float()
    logits = m(input_ids=ids.to(dev)).logits[0].float().cpu().contiguous()
    m.to(torch.bfloat16)
    ids[0].to(torch.int32).numpy().tofile(f"{out_dir}/hf_ids.i32")
    logits.numpy().tofile(f"{out_dir}/hf_logits.f32")
    bf.numpy().tofile(f"{out_dir}/hf_logits_bf16.f32")
    e = row_errors(bf, logits)
    same = (bf.argmax(dim=1) == logits.argmax(dim=1)).sum().item()
    emit(what="oracle", rows=P + S, vocab=cfg.vocab_size, max_abs_logit=round(logits.abs().max().item(), 4),
         attn=getattr(m.config, "_attn_implementation", "?"),
         hf_bf16_vs_fp32_worst=round(max(e), 5), hf_bf16_vs_fp32_median=round(sorted(e)[len(e) // 2], 5),
         hf_bf16_argmax_same=same, hf_bf16_vs_fp32_rows=[round(x, 4) for x in e])
    torch.cuda.empty_cache()


@torch.no_grad()
def bench(name, m, cfg, compiled):
    m.generation_config.eos_token_id = None
    m.generation_config.pad_token_id = 0
    for ctx in (512, 2048):
        ids = torch.randint(0, 10000, (1, ctx), device=dev)
        kw = dict(do_sample=False, num_beams=1)
        if compiled:
            kw["cache_implementation"] = "static"   # transformers compiles the decode step for a static cache
        for _ in range(2):
            m(input_ids=ids)
        sync(); ts = []
        for _ in range(3):
            t = time.perf_counter(); m(input_ids=ids); sync(); ts.append(time.perf_counter() - t)
        pre = sorted(ts)[1]
        N = 64 if not compiled else 128
        m.generate(ids, max_new_tokens=8, **kw)  # warm-up (and compile)
        sync(); t = time.perf_counter(); m.generate(ids, max_new_tokens=1, **kw); sync(); t1 = time.perf_counter() - t
        sync(); t = time.perf_counter(); m.generate(ids, max_new_tokens=N + 1, **kw); sync(); tn = time.perf_counter() - t
        emit(what="hf_llm", model=name, mode="static+compile" if compiled else "eager", ctx=ctx,
             prefill_ms=round(pre * 1e3, 2), decode_tok_s=round(N / (tn - t1), 1),
             gpu_mem_MB=round(torch.cuda.max_memory_allocated() / 2**20))


def main():
    import transformers
    a = sys.argv[1:]
    emit(what="env", torch=torch.__version__, transformers=transformers.__version__, gpu=torch.cuda.get_device_name(0))
    if a[0] == "bandwidth":
        bandwidth(); return
    name, out_dir = a[1], a[2]
    t = time.perf_counter()
    m, cfg, nparam = build(name)
    m.save_pretrained(out_dir, safe_serialization=True)
    emit(what="saved", model=name, dir=out_dir, params=nparam, seconds=round(time.perf_counter() - t, 1))
    oracle(m, cfg, out_dir)
    if "--no-bench" not in a:
        if "--no-eager" not in a:
            bench(name, m, cfg, compiled=False)
        if "--compiled" in a:
            try:
                bench(name, m, cfg, compiled=True)
            except Exception as e:
                emit(what="error", model=name + " compiled", err=repr(e)[:300])


if __name__ == "__main__":
    main()
