#!/usr/bin/env python3
"""Writes a random-weight bf16 checkpoint of a published VLM shape for `vlmflux bench vlm` / `bench live` (config.json,
preprocessor_config.json and the vision tower's weights; the text model is built but, unless --full, not saved)
and measures the Hugging Face peer on the same GPU in the same process: image processor time and vision tower
latency at 448x448, 640x480 and 1280x720, prefill with the image (first-token forward) and, with --decode, greedy
decode tok/s after that prefill (eager `generate`).
Shapes (--shape): qwen2.5-vl-3b (default), qwen3-vl-2b, qwen3-vl-4b, qwen3-vl-8b (the published configs: Qwen3-VL text =
Qwen3-1.7B / Qwen3-4B / Qwen3-8B (untied head) with interleaved M-RoPE [24, 20, 20] and rope theta 5e6; vision depth 24,
width 1024, DeepStack after blocks 5, 11, 17 at 2B / 4B, depth 27, width 1152, MLP 4304, DeepStack after 8, 16, 24 at 8B;
patch 16, 2,304 learned positions).
Usage: peer_bench_vlm.py OUT_DIR [--shape S] [--full] [--no-peer] [--decode]. One JSON object per line on stdout."""
import json, os, sys, time
import torch


def emit(**kw):
    print(json.dumps(kw), flush=True)


def sync():
    torch.cuda.synchronize()


@torch.no_grad()
def main():
    import transformers
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor
    import inspect
    from safetensors.torch import save_file
    import numpy as np
    from PIL import Image
    out = sys.argv[1]
    full = "--full" in sys.argv
    peer = "--no-peer" not in sys.argv
    decode = "--decode" in sys.argv
    shape = sys.argv[sys.argv.index("--shape") + 1] if "--shape" in sys.argv else "qwen2.5-vl-3b"
    if shape not in ("qwen2.5-vl-3b", "qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b"):
        sys.exit(f"--shape {shape}: one of qwen2.5-vl-3b, qwen3-vl-2b, qwen3-vl-4b, qwen3-vl-8b")
    dev = "cuda"
    emit(what="env", torch=torch.__version__, transformers=transformers.__version__, gpu=torch.cuda.get_device_name(0))
    ids = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
    if shape == "qwen2.5-vl-3b":
        text = dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                    num_key_value_heads=2, max_position_embeddings=128000, rms_norm_eps=1e-6, tie_word_embeddings=True,
                    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
                    image_token_id=151655, video_token_id=151656, vision_start_token_id=151652)
        vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048, window_size=112,
                      fullatt_block_indexes=[7, 15, 23, 31], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                      tokens_per_second=2, hidden_act="silu", in_channels=3)
        cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
        model_cls, ip, patch = Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor(), 14
    else:
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
        # text: hidden, MLP, layers, query heads, tied head; vision: depth, width, MLP, DeepStack blocks
        hidden, inter, layers, heads, tied = {"qwen3-vl-2b": (2048, 6144, 28, 16, True), "qwen3-vl-4b": (2560, 9728, 36, 32, True),
                                              "qwen3-vl-8b": (4096, 12288, 36, 32, False)}[shape]
        vdepth, vwidth, vinter, deep = (27, 1152, 4304, [8, 16, 24]) if shape == "qwen3-vl-8b" else (24, 1024, 4096, [5, 11, 17])
        text = dict(vocab_size=151936, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                    num_attention_heads=heads, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
                    rms_norm_eps=1e-6, tie_word_embeddings=tied,
                    rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20],
                                     "mrope_interleaved": True})
        vision = dict(depth=vdepth, hidden_size=vwidth, intermediate_size=vinter, num_heads=16, out_hidden_size=hidden,
                      num_position_embeddings=2304, deepstack_visual_indexes=deep, patch_size=16,
                      spatial_merge_size=2, temporal_patch_size=2, hidden_act="gelu_pytorch_tanh", in_channels=3)
        cfg = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tied, **ids)
        model_cls, patch = Qwen3VLForConditionalGeneration, 16
        ip = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3, min_pixels=65536, max_pixels=16777216)
    t = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(dev):
        m = model_cls._from_config(cfg, dtype=torch.bfloat16)
    m.eval()
    # random init of transformers leaves norms at 1 and biases at 0; perturb them so they matter
    for n, p in m.named_parameters():
        if "visual" in n and p.dim() == 1:
            p.add_(torch.randn_like(p) * 0.02)
    os.makedirs(out, exist_ok=True)
    cfg.save_pretrained(out)
    ip.save_pretrained(out)
    sd, seen = {}, set()
    for k, v in m.state_dict().items():  # tied weights (lm_head = embed_tokens) are saved once, as HF does
        if (full or "visual" in k) and v.data_ptr() not in seen:
            seen.add(v.data_ptr())
            sd[k] = v.contiguous()
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    emit(what="checkpoint", dir=out, tensors=len(sd), bytes=sum(v.numel() * v.element_size() for v in sd.values()),
         seconds=round(time.perf_counter() - t, 1))
    if not peer:
        return
    for (w, h) in ((448, 448), (640, 480), (1280, 720)):
        img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
        for _ in range(2):
            ip(images=[img], return_tensors="pt")
        t = time.perf_counter()
        for _ in range(5):
            px = ip(images=[img], return_tensors="pt")
        proc = (time.perf_counter() - t) / 5
        pv = px["pixel_values"].to(dev, torch.bfloat16); thw = px["image_grid_thw"].to(dev)
        for _ in range(3):
            m.model.get_image_features(pixel_values=pv, image_grid_thw=thw)
        sync(); t = time.perf_counter()
        for _ in range(10):
            m.model.get_image_features(pixel_values=pv, image_grid_thw=thw)
        sync(); vt = (time.perf_counter() - t) / 10
        ntok = int(thw.prod().item()) // 4
        ids = [151644, 872, 198, 151652] + [151655] * ntok + [151653] + list(range(1000, 1020)) + [151645, 198, 151644, 77091, 198]
        ids = torch.tensor([ids], device=dev)
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv, image_grid_thw=thw)
        if "mm_token_type_ids" in inspect.signature(m.forward).parameters:
            mm = torch.zeros_like(ids); mm[ids == 151655] = 1
            kw["mm_token_type_ids"] = mm
        for _ in range(2):
            m(**kw)
        sync(); t = time.perf_counter(); m(**kw); sync(); ttft = time.perf_counter() - t
        dec = None
        if decode and (w, h) == (640, 480):   # greedy tokens after the prefill, eager generate (HF's default path)
            n_new = 64
            m.generate(**kw, max_new_tokens=4, min_new_tokens=4, do_sample=False)
            sync(); t = time.perf_counter()
            m.generate(**kw, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False)
            sync(); dec = round((n_new - 1) / max(1e-9, time.perf_counter() - t - ttft), 1)
        emit(what="hf_vlm", model=shape, image=f"{w}x{h}", decode_tok_s=dec, grid_thw=thw[0].tolist(), image_tokens=ntok, patch=patch,
             processor_ms=round(proc * 1e3, 2), vision_ms=round(vt * 1e3, 2), prefill_with_vision_ms=round(ttft * 1e3, 2),
             ttft_ms_incl_processor=round((ttft + proc) * 1e3, 2))


if __name__ == "__main__":
    main()
