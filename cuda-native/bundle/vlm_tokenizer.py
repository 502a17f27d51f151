#!/usr/bin/env python3
"""Gives a random-weight Qwen2-VL / Qwen2.5-VL checkpoint (peer_bench_vlm.py writes weights and configs only) a
tokenizer and chat template so `vlmflux caption` and `bench vlm --e2e` can run it: the demo model's byte-level BPE
(demos/models/shapes-vl, 3000 merges) with its special tokens moved to Qwen2's ids (<|endoftext|> 151643 ...
<|video_pad|> 151656), which is where the checkpoint's config.json expects image_token_id etc. Generated ids outside
that small vocabulary decode to nothing, so captions of a random model are mostly empty text with full token counts.
Usage: vlm_tokenizer.py MODEL_DIR"""
import json, os, sys

root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
src = os.path.join(root, "demos", "models", "shapes-vl")
out = sys.argv[1]
cfg = json.load(open(os.path.join(out, "config.json")))
base = 151643
tok = json.load(open(os.path.join(src, "tokenizer.json")))
first = min(a["id"] for a in tok["added_tokens"])
for a in tok["added_tokens"]:
    a["id"] = base + a["id"] - first
json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w"))
tc = json.load(open(os.path.join(src, "tokenizer_config.json")))
json.dump(tc, open(os.path.join(out, "tokenizer_config.json"), "w"))
image = cfg.get("image_token_id", cfg.get("text_config", {}).get("image_token_id"))
pad = [a["id"] for a in tok["added_tokens"] if a["content"] == "<|image_pad|>"][0]
assert image == pad, f"config image_token_id {image} != <|image_pad|> {pad}"
print(json.dumps({"what": "tokenizer", "dir": out, "image_pad": pad, "source": src}))
