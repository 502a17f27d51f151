#!/usr/bin/env python3
"""Where each microsecond of a decode step goes, from an Nsight Compute CSV (issue 18's table).

Run on the GPU machine (ncu works there; nsys does not):
  ncu --csv --page raw --graph-profiling node --metrics gpu__time_duration.sum --target-processes all \
      -o - <command> > kernels.csv          # or --log-file kernels.csv
  python3 ncu_step_table.py kernels.csv (--steps N | --layers L) [--label "Qwen3-0.6B, 2,048 ctx"]
Every kernel launched is a row of the CSV; kernels whose names mark them as decode work (GEMV, decode attention,
rope of one row, sampling, ...) are summed per family and divided by N, the decode steps the command ran; prefill
kernels (cuBLAS GEMMs, prefill attention) are listed apart. Prints a markdown table: family, launches per step,
microseconds per step, share of the step. With --layers L instead of --steps, the steps are counted: every decode
step launches one split decode-attention kernel per layer. `--self-test` checks the parser on a built-in sample.
"""
import csv
import io
import re
import sys

# (family, pattern on the kernel name, decode?) first match wins
FAMILIES = [
    ("GEMV fused (RMSNorm or SiLU-gate prologue)", r"vf_gemv_bf16_fused", True),
    ("GEMV split-K", r"vf_gemv_bf16_splitk", True),
    ("GEMV (bf16)", r"vf_gemv_bf16", True),
    ("skinny GEMM (batched decode rows)", r"vf_gemv_rows", True),
    ("GEMV int4", r"vf_int4_gemv|vf_int4_gather", True),
    ("rope + K/V write", r"vf_rope", True),
    ("attention decode (split)", r"vf_attn_decode_(e\d|rows_e\d|v_h|rows_v_h)", True),
    ("attention decode (combine)", r"vf_attn_decode(_rows)?_combine", True),
    ("RMSNorm", r"vf_rmsnorm", True),
    ("SiLU-gate", r"vf_silu_mul", True),
    ("residual add / casts / bias", r"vf_add_|vf_f32_to_bf16|vf_bf16_to_f32", True),
    ("embedding", r"vf_embed_gather", True),
    ("argmax", r"vf_argmax", True),
    ("sampling / constraint mask", r"vf_sample|vf_mask_logits", True),
    ("prefill attention", r"vf_attn_prefill", False),
    ("KV eviction", r"vf_kv_shift", False),
    ("int4 dequantize (prefill)", r"vf_int4_dequant", False),
    ("splice image rows", r"vf_splice_rows", False),
    ("cuBLAS GEMM (prefill, logits rows)", r"gemm|cutlass|xmma|ampere_|sm80_|sm90_", False),
    ("vision", r"vf_vis", False),
    ("other", r".", False),
]


def family(name):
    for fam, pat, decode in FAMILIES:
        if re.search(pat, name, re.IGNORECASE):
            return fam, decode
    return "other", False


def read(text):
    """Rows (kernel name, duration in microseconds) of ncu's raw CSV (a units row after the header is skipped)."""
    lines = [l for l in text.splitlines() if l.startswith('"')]   # ncu prints ==PROF== lines too
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    if not rows:
        raise SystemExit("no CSV rows: was ncu run with --csv --page raw?")
    head = rows[0]
    try:
        ki, ti = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
    except ValueError as e:
        raise SystemExit(f"CSV lacks a column: {e} (have: {head[:12]}...)")
    scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6}
    unit = 1e-3
    out = []
    for r in rows[1:]:
        if len(r) <= max(ki, ti):
            continue
        v = r[ti].replace(",", "")
        if r[ki] == "" and v in scale:   # the units row
            unit = scale[v]
            continue
        try:
            out.append((r[ki], float(v) * unit))
        except ValueError:
            if v in scale:
                unit = scale[v]
    return out


def table(kernels, steps, label):
    per = {}
    for name, us in kernels:
        fam, decode = family(name)
        c, t, d = per.get(fam, (0, 0.0, decode))
        per[fam] = (c + 1, t + us, decode)
    step_us = sum(t for c, t, d in per.values() if d) / steps
    lines = [f"**{label}** — decode step {step_us:.1f} µs ({1e6 / step_us:.0f} tok/s of kernel time; launch gaps not included), "
             f"{steps} steps", "", "| kernel family | launches / step | µs / step | share |", "|---|---|---|---|"]
    for fam, (c, t, d) in sorted(per.items(), key=lambda kv: -kv[1][1]):
        if d:
            lines.append(f"| {fam} | {c / steps:.1f} | {t / steps:.1f} | {100 * t / steps / step_us:.1f}% |")
    rest = [(fam, c, t) for fam, (c, t, d) in per.items() if not d]
    if rest:
        lines += ["", "| not decode (prefill, warm-up) | launches | µs in all |", "|---|---|---|"]
        for fam, c, t in sorted(rest, key=lambda x: -x[2]):
            lines.append(f"| {fam} | {c} | {t:.1f} |")
    return "\n".join(lines)


SAMPLE = '''"ID","Process ID","Kernel Name","gpu__time_duration.sum"
"","","","nsecond"
"0","1","vf_gemv_bf16_fused","4,000"
"1","1","vf_rope_qkv","1,500"
"2","1","vf_attn_decode_e4","3,000"
"3","1","vf_attn_decode_combine","1,000"
"4","1","vf_gemv_bf16","2,500"
"5","1","sm90_xmma_gemm_bf16bf16_bf16f32","90,000"
"6","1","vf_gemv_bf16_fused","4,000"
"7","1","vf_rope_qkv","1,500"
"8","1","vf_attn_decode_v_h128","3,000"
"9","1","vf_attn_decode_combine","1,000"
"10","1","vf_gemv_bf16","2,500"
'''


def self_test():
    k = read(SAMPLE)
    assert len(k) == 11 and abs(k[0][1] - 4.0) < 1e-9, k[:2]
    t = table(k, 2, "sample")
    assert "decode step 12.0 µs" in t, t
    assert "| GEMV fused (RMSNorm or SiLU-gate prologue) | 1.0 | 4.0 | 33.3% |" in t, t
    assert "| cuBLAS GEMM (prefill, logits rows) | 1 | 90.0 |" in t, t
    assert counted_steps(k, 1) == 2
    print("self-test ok")


def main():
    a = sys.argv[1:]
    if "--self-test" in a:
        return self_test()
    if not a or a[0].startswith("--"):
        raise SystemExit(__doc__)
    label = a[a.index("--label") + 1] if "--label" in a else a[0]
    with open(a[0], encoding="utf-8", errors="replace") as f:
        k = read(f.read())
    if "--steps" in a:
        steps = int(a[a.index("--steps") + 1])
    elif "--layers" in a:
        steps = counted_steps(k, int(a[a.index("--layers") + 1]))
    else:
        raise SystemExit("give --steps N or --layers L")
    print(table(k, steps, label))


def counted_steps(kernels, layers):
    """Decode steps in the profile: one split decode-attention launch per layer and step."""
    n = sum(1 for name, _ in kernels if family(name)[0] == "attention decode (split)")
    if n == 0 or n % layers:
        raise SystemExit(f"{n} decode-attention launches are not a whole number of steps of {layers} layers")
    return n // layers


if __name__ == "__main__":
    main()
