#!/usr/bin/env python3
"""Train `shapes-vl`, VLMFlux's embedded demo model: a tiny Qwen2-VL-architecture model, trained from scratch on
synthetic scenes drawn like GStreamer's videotestsrc patterns and like simple camera scenes (shapes, colours,
positions, colour bars, noise, checkerboards, the moving `ball`), so that every no-argument demo (caption, watch,
alerts, serve) prints answers that mean something on a fresh machine with no downloaded weights.

It learns (answers are bare lower-case words/phrases, then <|im_end|>):
  images  "Describe the image."          -> "a red circle at the top left and a blue square in the center on a black background"
          "What color is the shape?"     -> red|green|blue|yellow|white|black|orange|purple   (the largest shape)
          "What shape is it?"            -> circle|square|triangle                            (the largest shape)
          "Where is the shape?"          -> top left|top|top right|left|center|right|bottom left|bottom|bottom right
          "Is there a {colour} {shape}?" -> yes|no
          "How many shapes are there?"   -> one|two|three
  videos  (Qwen2-VL video input, 4-8 frames at 2 fps)
          "Which way is the shape moving?" -> left|right|up|down|not moving
          "Describe the video."            -> "a red circle moves to the right on a black background" / "... is not moving ..."

usage: train_demo_model.py OUTDIR --tokenizer-dir DIR [--minutes 6] [--batch 64] [--workers 12] [--init-from DIR]
       train_demo_model.py --write-cases DIR [--per-type 50] [--seed 777]   (held-out cases for vlmflux, numpy only)
--init-from continues from an earlier output folder (its weights; a fresh optimizer with a short warm-up and a new
cosine schedule over --minutes), so training can run as several device calls of at most ten minutes each; eval.json
counts the steps of every run.
needs: torch (CUDA), transformers >= 5, pillow, numpy.  `--selftest` checks the scene generator with numpy only.
The output folder is a normal Hugging Face Qwen2-VL checkpoint (bf16) with tokenizer, chat template, image and video
processor configs, eval.json (held-out exact match per question type, measured through transformers' processors
with teacher forcing, which equals greedy exact match) and heldout/ (a sample of held-out cases as PNG files for the
project's own end-to-end test)."""
import argparse, json, math, os, shutil, sys, time

import numpy as np

COLORS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (240, 220, 40),
          "white": (245, 245, 245), "black": (10, 10, 10), "orange": (250, 140, 20), "purple": (140, 40, 180)}
BGS = ["black", "white", "gray", "blue", "green"]
BG_RGB = {"black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "blue": (20, 30, 120), "green": (20, 100, 40)}
SHAPES = ["circle", "square", "triangle"]
POS = [["top left", "top", "top right"], ["left", "center", "right"], ["bottom left", "bottom", "bottom right"]]
NUM = {1: "one", 2: "two", 3: "three"}
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
Q_DESC, Q_COLOR, Q_SHAPE, Q_WHERE = "Describe the image.", "What color is the shape?", "What shape is it?", "Where is the shape?"
Q_COUNT, Q_MOVE, Q_VDESC = "How many shapes are there?", "Which way is the shape moving?", "Describe the video."
IMAGE_TYPES = ["caption", "color", "shape", "where", "is", "count"]
QUESTION_MIX = [0.12, 0.16, 0.26, 0.34, 0.12]  # color, shape, where, is, count (of the non-caption image questions)
VIDEO_TYPES = ["motion", "video_caption"]
# frame sizes cameras and test sources deliver; each goes through the processors' smart resize like a real frame
CAMERA_SIZES = [(320, 240), (640, 480), (1280, 720), (352, 288), (800, 600), (640, 360), (200, 150), (252, 196), (1920, 1080)]
BALL_SOURCES = [(320, 240), (320, 240), (640, 480), (352, 288)]
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
                 "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
                 "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
                 "{% for content in message['content'] %}"
                 "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}<|vision_start|><|image_pad|><|vision_end|>"
                 "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
                 "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def article(word):
    return "an" if word[0] in "aeiou" else "a"


# ---------------------------------------------------------------- drawing (numpy only, 2x supersampled edges)
def shape_mask(shape, cx, cy, size, w, h, ss=2):
    """Coverage in [0,1] of a shape centred at (cx, cy) with bounding-box side `size` (pixels) in a w x h frame, as
    (crop, y0, x0): only the shape's bounding box is computed."""
    r = size / 2
    x0, x1 = max(0, int(cx - r) - 1), min(w, int(cx + r) + 2)
    y0, y1 = max(0, int(cy - r) - 1), min(h, int(cy + r) + 2)
    ys = y0 + (np.arange((y1 - y0) * ss) + 0.5) / ss
    xs = x0 + (np.arange((x1 - x0) * ss) + 0.5) / ss
    X, Y = np.meshgrid(xs, ys)
    if shape == "circle":
        m = (X - cx) ** 2 + (Y - cy) ** 2 <= r * r
    elif shape == "square":
        m = (np.abs(X - cx) <= r) & (np.abs(Y - cy) <= r)
    else:  # apex up, base at the bottom of the box
        t = (Y - (cy - r)) / (2 * r)  # 0 at apex, 1 at base
        m = (t >= 0) & (t <= 1) & (np.abs(X - cx) <= t * r)
    return m.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3)), y0, x0


def paint(img, crop, rgb):
    m, y0, x0 = crop
    a = m[..., None]
    sub = img[y0:y0 + m.shape[0], x0:x0 + m.shape[1]]
    sub[:] = sub * (1 - a) + np.array(rgb, np.float32) * a


def ball_frame(n, w, h):
    """GStreamer videotestsrc pattern=ball, frame number n (white ball of radius 20 with a soft edge on black)."""
    radius = 20
    x = radius + (0.5 + 0.5 * math.sin(2 * math.pi * n / 200)) * (w - 2 * radius)
    y = radius + (0.5 + 0.5 * math.sin(2 * math.pi * math.sqrt(2) * n / 200)) * (h - 2 * radius)
    out = np.zeros((h, w, 3), np.uint8)
    y0, y1, x0, x1 = max(0, int(y) - radius - 1), min(h, int(y) + radius + 2), max(0, int(x) - radius - 1), min(w, int(x) + radius + 2)
    J, I = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
    rr = (radius - np.sqrt((J - x) ** 2 + (I - y) ** 2)) * 0.5
    out[y0:y1, x0:x1] = np.clip(np.floor(256 * rr), 0, 255).astype(np.uint8)[..., None]
    return out, x / w, y / h


def cell_of(fx, fy):
    return POS[min(2, int(fy * 3))][min(2, int(fx * 3))]


def resize(arr, w, h):
    if arr.shape[1] == w and arr.shape[0] == h:
        return arr
    try:
        from PIL import Image
        return np.asarray(Image.fromarray(arr).resize((w, h), Image.BICUBIC))
    except ImportError:  # selftest without pillow: nearest neighbour
        yi = (np.arange(h) * arr.shape[0] // h)
        xi = (np.arange(w) * arr.shape[1] // w)
        return arr[yi][:, xi]


# ---------------------------------------------------------------- scenes
def image_scene(rng, w, h):
    """Returns (uint8 HxWx3, facts) where facts describes what is in it (None fields for patterns)."""
    kind = rng.random()
    if kind < 0.07:
        bars = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
        img = np.zeros((h, w, 3), np.uint8)
        for i, c in enumerate(bars):
            img[:, i * w // 7:(i + 1) * w // 7] = c
        return img, {"caption": "vertical color bars"}
    if kind < 0.12:
        return rng.integers(0, 256, (h, w, 1), dtype=np.uint8).repeat(3, 2), {"caption": "random noise"}
    if kind < 0.17:
        s = int(rng.choice([4, 8, 16]))
        yy, xx = np.mgrid[0:h, 0:w]
        a = (((yy // s) + (xx // s)) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
        return a, {"caption": "a black and white checkerboard"}
    if kind < 0.27:  # videotestsrc's ball, drawn at a source size and resized like a camera frame
        sw, sh = BALL_SOURCES[rng.integers(len(BALL_SOURCES))]
        f, fx, fy = ball_frame(int(rng.integers(0, 100000)), sw, sh)
        shapes = [{"color": "white", "shape": "circle", "where": cell_of(fx, fy), "size": 1.0}]
        return resize(f, w, h), facts("black", shapes)
    bg = BGS[rng.integers(len(BGS))]
    img = np.zeros((h, w, 3), np.float32) + np.array(BG_RGB[bg], np.float32)
    u = rng.random()
    n = 1 if u < 0.5 else (2 if u < 0.8 else 3)
    cells = sorted(rng.choice(9, size=n, replace=False))
    big = int(rng.integers(n))
    shapes = []
    for k, c in enumerate(cells):
        r, q = divmod(int(c), 3)
        color = [k2 for k2 in COLORS if k2 != bg][rng.integers(len(COLORS) - (1 if bg in COLORS else 0))]
        shape = SHAPES[rng.integers(3)]
        cw, ch = w / 3, h / 3
        rel = rng.uniform(0.72, 0.9) if (k == big or n == 1) else rng.uniform(0.42, 0.58)
        if n == 1:
            rel = rng.uniform(0.55, 0.9)
        size = min(cw, ch) * rel
        cx = (q + 0.5) * cw + rng.uniform(-0.12, 0.12) * cw
        cy = (r + 0.5) * ch + rng.uniform(-0.12, 0.12) * ch
        paint(img, shape_mask(shape, cx, cy, size, w, h), COLORS[color])
        shapes.append({"color": color, "shape": shape, "where": POS[r][q], "size": rel})
    return img.round().clip(0, 255).astype(np.uint8), facts(bg, shapes)


def facts(bg, shapes):
    parts = [f"{article(s['color'])} {s['color']} {s['shape']} " + ("in the center" if s["where"] == "center" else f"at the {s['where']}")
             for s in shapes]
    return {"caption": " and ".join(parts) + f" on a {bg} background", "bg": bg, "shapes": shapes}


def image_question(rng, f, qtype=None):
    """A (question, answer) about an image scene; patterns only get the caption question."""
    if "shapes" not in f:
        return Q_DESC, f["caption"], "caption"
    if qtype is None:
        if rng.random() < CFG.get("caption_share", 0.3):
            qtype = "caption"
        else:  # the binding questions ("Is there ...?", position) are the hardest: asked more often
            qtype = ["color", "shape", "where", "is", "count"][rng.choice(5, p=QUESTION_MIX)]
    shapes = f["shapes"]
    largest = max(shapes, key=lambda s: s["size"])
    if qtype == "caption":
        return Q_DESC, f["caption"], qtype
    if qtype == "color":
        return Q_COLOR, largest["color"], qtype
    if qtype == "shape":
        return Q_SHAPE, largest["shape"], qtype
    if qtype == "where":
        return Q_WHERE, largest["where"], qtype
    if qtype == "count":
        return Q_COUNT, NUM[len(shapes)], qtype
    present = {(s["color"], s["shape"]) for s in shapes}
    if rng.random() < 0.5:
        c, s = sorted(present)[rng.integers(len(present))]
        return f"Is there {article(c)} {c} {s}?", "yes", "is"
    while True:  # hard negatives half of the time: the colour or the shape of a present one
        if rng.random() < 0.5:
            pc, ps = sorted(present)[rng.integers(len(present))]
            c, s = (pc, SHAPES[rng.integers(3)]) if rng.random() < 0.5 else (list(COLORS)[rng.integers(len(COLORS))], ps)
        else:
            c, s = list(COLORS)[rng.integers(len(COLORS))], SHAPES[rng.integers(3)]
        if (c, s) not in present:
            return f"Is there {article(c)} {c} {s}?", "no", "is"


def direction_of(dx, dy, still=0.035, ratio=1.25):
    """Label of a net displacement (fractions of width/height): None when ambiguous (between still and moving, or
    diagonal)."""
    ax, ay = abs(dx), abs(dy)
    if max(ax, ay) < still:
        return "not moving"
    if max(ax, ay) < 2 * still:
        return None
    if ax >= ratio * ay:
        return "right" if dx > 0 else "left"
    if ay >= ratio * ax:
        return "down" if dy > 0 else "up"
    return None


def video_scene(rng, T, w, h):
    """T frames (T x h x w x 3 uint8) of one moving (or still) shape, with its label; ball videos follow
    videotestsrc's path sampled at 2 fps from a 30 fps source (every 15th frame, +-5)."""
    if rng.random() < 0.3:
        sw, sh = BALL_SOURCES[rng.integers(len(BALL_SOURCES))]
        while True:
            n0, step = int(rng.integers(0, 100000)), int(rng.integers(10, 21))
            frames, path = [], []
            for i in range(T):
                f, fx, fy = ball_frame(n0 + i * step, sw, sh)
                frames.append(f); path.append((fx, fy))
            d = direction_of(path[-1][0] - path[0][0], path[-1][1] - path[0][1])
            if d is not None:
                return np.stack([resize(f, w, h) for f in frames]), {"color": "white", "shape": "circle", "bg": "black", "dir": d}
    bg = BGS[rng.integers(len(BGS))]
    color = [k for k in COLORS if k != bg][rng.integers(len(COLORS) - (1 if bg in COLORS else 0))]
    shape = SHAPES[rng.integers(3)]
    d = ["left", "right", "up", "down", "not moving"][rng.integers(5)]
    size = min(w, h) * rng.uniform(0.18, 0.32)
    mx, my = size / 2 / w + 0.02, size / 2 / h + 0.02  # centre margins (fractions)
    horizontal = d in ("left", "right")
    if d == "not moving":
        x0, y0, vx, vy = rng.uniform(mx, 1 - mx), rng.uniform(my, 1 - my), 0.0, 0.0
    else:
        span = (1 - 2 * (mx if horizontal else my))
        total = rng.uniform(0.25, 0.95) * span
        v = total / (T - 1)
        drift = rng.uniform(-0.25, 0.25) * v  # slight diagonal
        sgn = 1 if d in ("right", "down") else -1
        if horizontal:
            vx, vy = sgn * v, drift
            x0 = (mx + rng.uniform(0, span - total)) if sgn > 0 else (1 - mx - rng.uniform(0, span - total))
            y0 = rng.uniform(my + abs(drift) * T, 1 - my - abs(drift) * T) if 1 - 2 * my > 2 * abs(drift) * T else 0.5
        else:
            vx, vy = drift, sgn * v
            y0 = (my + rng.uniform(0, span - total)) if sgn > 0 else (1 - my - rng.uniform(0, span - total))
            x0 = rng.uniform(mx + abs(drift) * T, 1 - mx - abs(drift) * T) if 1 - 2 * mx > 2 * abs(drift) * T else 0.5
    frames = []
    for i in range(T):
        img = np.zeros((h, w, 3), np.float32) + np.array(BG_RGB[bg], np.float32)
        paint(img, shape_mask(shape, (x0 + vx * i) * w, (y0 + vy * i) * h, size, w, h), COLORS[color])
        frames.append(img.round().clip(0, 255).astype(np.uint8))
    return np.stack(frames), {"color": color, "shape": shape, "bg": bg, "dir": d}


def video_question(rng, f, qtype=None):
    if qtype is None:
        qtype = VIDEO_TYPES[rng.integers(2)]
    if qtype == "motion":
        return Q_MOVE, f["dir"], qtype
    verb = {"left": "moves to the left", "right": "moves to the right", "up": "moves up", "down": "moves down",
            "not moving": "is not moving"}[f["dir"]]
    return Q_VDESC, f"{article(f['color'])} {f['color']} {f['shape']} {verb} on a {f['bg']} background", qtype


def selftest():
    rng = np.random.default_rng(1)
    counts = {}
    for _ in range(300):
        img, f = image_scene(rng, 252, 168)
        assert img.shape == (168, 252, 3) and img.dtype == np.uint8
        q, a, t = image_question(rng, f)
        counts[t] = counts.get(t, 0) + 1
    for _ in range(60):
        T = int(rng.integers(4, 9))
        v, f = video_scene(rng, T, 196, 140)
        assert v.shape == (T, 140, 196, 3)
        q, a, t = video_question(rng, f)
        counts[a if t == "motion" else t] = counts.get(a if t == "motion" else t, 0) + 1
    # a still shape is still; a moving one moves along its axis
    print("selftest ok", counts)


def write_png(path, arr):
    """uint8 HxWx3 as an RGB PNG with zlib alone (no pillow needed for --write-cases)."""
    import struct, zlib
    h, w, _ = arr.shape
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def write_cases(out, per_type, seed):
    """Held-out cases for an evaluation through vlmflux itself (numpy only): per image question type `per_type` scenes
    at the camera sizes of the held-out evaluation, per video question type `per_type` clips of 4-8 frames at 2 fps;
    out/cases.json lists {image|video, question, answer} (DemoModelHeldOutTest reads it with -Dvlmflux.heldout=DIR)."""
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    cases = []
    sizes = [(320, 240), (640, 480), (1280, 720), (200, 150)]
    for qt in IMAGE_TYPES:
        k = 0
        while k < per_type:
            w, h = sizes[k % len(sizes)]
            im, f = image_scene(rng, w, h)
            if qt != "caption" and "shapes" not in f:
                continue
            q, an, _ = image_question(rng, f, qt)
            name = f"{qt}_{k // len(sizes)}_{k % len(sizes)}.png"
            write_png(os.path.join(out, name), im)
            cases.append({"image": name, "question": q, "answer": an}); k += 1
    for qt in VIDEO_TYPES:
        for k in range(per_type):
            T = [4, 6, 8, 5][k % 4]; w, h = [(320, 240), (640, 480), (320, 240), (352, 288)][k % 4]
            v, f = video_scene(rng, T, w, h)
            q, an, _ = video_question(rng, f, qt)
            name = f"{qt}_{k // 4}_{k % 4}"; os.makedirs(os.path.join(out, name), exist_ok=True)
            for i, fr in enumerate(v):
                write_png(os.path.join(out, name, f"frame_{i:03d}.png"), fr)
            cases.append({"video": name, "fps": 2.0, "question": q, "answer": an})
    json.dump(cases, open(os.path.join(out, "cases.json"), "w"), indent=1)
    print(f"wrote {len(cases)} cases to {out}")


# ---------------------------------------------------------------- training batches (worker processes, numpy only)
CFG = {}


def make_batch(seed):
    """One homogeneous batch: ("video"|"image", uint8 [B, T(even), H, W, 3], [(question, answer)])."""
    rng = np.random.default_rng(seed)
    B = CFG["batch"]
    if rng.random() < CFG["video_share"]:
        T, w, h = CFG["vsizes"][rng.integers(len(CFG["vsizes"]))]
        vids, qa = [], []
        for _ in range(B):
            v, f = video_scene(rng, T, w, h)
            vids.append(v); qa.append(video_question(rng, f)[:2])
        frames = np.stack(vids)
        if T % 2:  # the processor pads an odd tail with the last frame
            frames = np.concatenate([frames, frames[:, -1:]], axis=1)
        return "video", frames, qa
    w, h = CFG["isizes"][rng.integers(len(CFG["isizes"]))]
    imgs, qa = [], []
    for _ in range(B):
        im, f = image_scene(rng, w, h)
        imgs.append(im); qa.append(image_question(rng, f)[:2])
    return "image", np.stack(imgs)[:, None].repeat(2, axis=1), qa


# ---------------------------------------------------------------- training (torch)
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?"); ap.add_argument("--tokenizer-dir")
    ap.add_argument("--minutes", type=float, default=6.0); ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=12); ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--video-share", type=float, default=0.4); ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--init-from", help="an earlier output folder to continue training from"); ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--loss", choices=["sqrt", "sample", "token"], default="sqrt",
                    help="token: HF's mean over answer tokens (one-word answers weigh little beside captions); sample: every "
                         "answer weighs the same; sqrt: an answer of n tokens weighs sqrt(n)")
    ap.add_argument("--hf-forward", action="store_true", help="train through transformers' own forward (slow: per-sample loops)")
    ap.add_argument("--caption-share", type=float, default=0.3, help="share of image questions that ask for the caption")
    ap.add_argument("--write-cases", metavar="DIR", help="only write held-out cases (PNG + cases.json, numpy only) to DIR")
    ap.add_argument("--per-type", type=int, default=50); ap.add_argument("--seed", type=int, default=777)
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if a.write_cases:
        return write_cases(a.write_cases, a.per_type, a.seed)
    import torch
    from tokenizers import Tokenizer
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    torch.manual_seed(0)
    tk = Tokenizer.from_file(os.path.join(a.tokenizer_dir, "tokenizer.json"))
    tid = tk.token_to_id
    ids = dict(image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
               vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"))
    eos = tid("<|im_end|>")
    text = dict(vocab_size=tk.get_vocab_size(), hidden_size=256, intermediate_size=640, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-6,
                tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                           "mrope_section": [8, 12, 12]},
                eos_token_id=eos, **ids)
    vision = dict(depth=4, embed_dim=128, hidden_size=256, mlp_ratio=2, num_heads=4, in_channels=3, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    cfg = Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
    ip = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=224 * 224, patch_size=14, temporal_patch_size=2, merge_size=2)
    vp = Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=224 * 224, patch_size=14, temporal_patch_size=2, merge_size=2)

    def img_size(w, h):
        g = ip(images=[np.zeros((h, w, 3), np.uint8)], return_tensors="pt")["image_grid_thw"][0].tolist()
        return g[2] * 14, g[1] * 14

    def vid_size(T, w, h):
        g = vp(videos=[np.zeros((T, h, w, 3), np.uint8)], return_tensors="pt")["video_grid_thw"][0].tolist()
        return g[2] * 14, g[1] * 14

    isizes = sorted({img_size(w, h) for w, h in CAMERA_SIZES} | {(w, h) for w in range(168, 253, 28) for h in range(112, 197, 28) if w * h <= 224 * 224})
    vsizes = sorted({(T,) + vid_size(T, w, h) for T in range(4, 9) for w, h in CAMERA_SIZES})
    print("image sizes", isizes, "\nvideo sizes", vsizes, flush=True)
    import collections, multiprocessing  # workers are forked before CUDA is touched; they only use numpy
    CFG.update(batch=a.batch, video_share=a.video_share, vsizes=vsizes, isizes=isizes, caption_share=a.caption_share)
    pool = multiprocessing.get_context("fork").Pool(a.workers)
    prior_steps = 0
    if a.init_from:   # same architecture: the earlier run's config must match this script's
        prev = Qwen2VLForConditionalGeneration.from_pretrained(a.init_from, dtype=torch.float32)
        if prev.config.text_config.hidden_size != cfg.text_config.hidden_size or prev.config.vision_config.depth != cfg.vision_config.depth:
            sys.exit(f"--init-from {a.init_from}: a different architecture than this script trains")
        model = prev.cuda()
        ev = os.path.join(a.init_from, "eval.json")
        prior_steps = json.load(open(ev)).get("steps", 0) if os.path.exists(ev) else 0
        print(f"continuing from {a.init_from} ({prior_steps} steps)", flush=True)
    else:
        model = Qwen2VLForConditionalGeneration(cfg).cuda()
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M", flush=True)
    mean = torch.tensor(ip.image_mean).cuda(); std = torch.tensor(ip.image_std).cuda()

    def patchify(frames):
        """frames uint8 [B, T, H, W, C] (T even) -> Qwen2-VL patches [B*T/2*gh*gw, C*2*14*14], grid (T/2, gh, gw)."""
        x = torch.from_numpy(frames).cuda().float() / 255.0
        x = ((x - mean) / std).permute(0, 1, 4, 2, 3)  # B,T,C,H,W
        B, T, C, H, W = x.shape
        gh, gw = H // 14, W // 14
        x = x.reshape(B, T // 2, 2, C, gh // 2, 2, 14, gw // 2, 2, 14).permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
        return x.reshape(B * (T // 2) * gh * gw, C * 2 * 14 * 14), (T // 2, gh, gw)

    # our patchify against the processors, once each
    rng0 = np.random.default_rng(7)
    im, _ = image_scene(rng0, 196, 140)
    d = (ip(images=[im], return_tensors="pt")["pixel_values"].cuda() - patchify(np.stack([im, im])[None])[0]).abs().max().item()
    v, _ = video_scene(rng0, 4, 196, 140)
    out = vp(videos=[v], return_tensors="pt")
    d2 = (out["pixel_values_videos"].cuda() - patchify(v[None])[0]).abs().max().item()
    print(f"patchify max diff vs image processor {d:.2e}, vs video processor {d2:.2e}", flush=True)
    if d > 1e-4 or d2 > 1e-4:
        print("WARNING: patchify differs from the processors (resize not an identity at a valid size?)", flush=True)

    pre = SYSTEM + "<|im_start|>user\n<|vision_start|>"
    enc = lambda s: tk.encode(s, add_special_tokens=False).ids
    pre_ids = enc(pre)

    def prompt_ids(pad, n, q):
        return pre_ids + [pad] * n + enc("<|vision_end|>" + q + "<|im_end|>\n<|im_start|>assistant\n")

    def tensors(kind, frames, qa, with_labels=True):
        pv, thw = patchify(frames)
        n = thw[0] * thw[1] * thw[2] // 4
        pad = ids["video_token_id"] if kind == "video" else ids["image_token_id"]
        prompts = [prompt_ids(pad, n, q) for q, _ in qa]
        seqs = [p + enc(ans) + [eos] for p, (_, ans) in zip(prompts, qa)]
        L = max(map(len, seqs)); B = len(seqs)
        inp = torch.zeros(B, L, dtype=torch.long); lab = torch.full((B, L), -100); att = torch.zeros(B, L, dtype=torch.long)
        for i, (p, s) in enumerate(zip(prompts, seqs)):
            inp[i, :len(s)] = torch.tensor(s); att[i, :len(s)] = 1; lab[i, len(p):len(s)] = torch.tensor(s[len(p):])
        inp, lab, att = inp.cuda(), lab.cuda(), att.cuda()
        mm = (inp == pad).long() * (2 if kind == "video" else 1)
        grid = torch.tensor([thw] * B).cuda()
        kw = dict(input_ids=inp, attention_mask=att, mm_token_type_ids=mm)
        if kind == "video":
            kw.update(pixel_values_videos=pv, video_grid_thw=grid)
        else:
            kw.update(pixel_values=pv, image_grid_thw=grid)
        if with_labels:
            kw["labels"] = lab
        return kw, prompts, seqs


    # ---- the training forward. transformers' Qwen2-VL forward loops over the samples of a batch three times in Python
    # (vision rotary ids, vision attention split per image, get_rope_index with host syncs), which made a step of this
    # 4.6M-parameter model cost ~190 ms on an H100. Every batch here is homogeneous (one frame size, one prompt
    # layout), so the same math runs batched: the tower's attention as one [B, heads, L, d] product, its rotary table and
    # the M-RoPE position ids computed once per batch. It is checked against transformers' forward on an image and a
    # video batch before training (max |logit difference|), and training falls back to transformers' forward if they
    # differ.
    vis = model.model.visual
    merge = cfg.vision_config.spatial_merge_size
    heads = vis.blocks[0].attn.num_heads
    vdim = vis.blocks[0].attn.qkv.in_features
    vhd = vdim // heads
    vtheta = float((getattr(cfg.vision_config, "rope_parameters", None) or {}).get("rope_theta", 10000.0))
    vinv = 1.0 / (vtheta ** (torch.arange(0, vhd // 2, 2, dtype=torch.float32, device="cuda") / (vhd // 2)))

    def rot_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def vision_rope(thw):
        """cos, sin [t*gh*gw, head_dim] of one grid, patches in merge-window order (as the processor emits them)."""
        t, gh, gw = thw
        hp = torch.arange(gh, device="cuda")[:, None].expand(gh, gw)
        wp = torch.arange(gw, device="cuda")[None, :].expand(gh, gw)
        win = lambda p: p.reshape(gh // merge, merge, gw // merge, merge).permute(0, 2, 1, 3).flatten()
        pos = torch.stack([win(hp), win(wp)], dim=-1).repeat(t, 1)
        table = torch.outer(torch.arange(max(gh, gw), device="cuda", dtype=torch.float32), vinv)
        emb = table[pos].flatten(1)
        emb = torch.cat((emb, emb), dim=-1)
        return emb.cos(), emb.sin()

    def tower(pv, thw, B):
        """Image rows [B * t*gh*gw/merge^2, hidden] of B inputs of one grid. Attention runs within each temporal patch
        (transformers' cu_seqlens: one segment of gh*gw patches per temporal index of each input)."""
        cos, sin = vision_rope(thw)
        cos, sin = cos.repeat(B, 1)[:, None, :], sin.repeat(B, 1)[:, None, :]
        x = vis.patch_embed(pv)
        N = x.shape[0]; S = B * thw[0]; L = N // S
        for blk in vis.blocks:
            h = blk.norm1(x)
            q, k, v = blk.attn.qkv(h).reshape(N, 3, heads, vhd).permute(1, 0, 2, 3).unbind(0)
            qf, kf = q.float(), k.float()
            q = (qf * cos + rot_half(qf) * sin).to(v.dtype)
            k = (kf * cos + rot_half(kf) * sin).to(v.dtype)
            per = lambda z: z.reshape(S, L, heads, vhd).transpose(1, 2)
            o = torch.nn.functional.scaled_dot_product_attention(per(q), per(k), per(v), scale=vhd ** -0.5)
            x = x + blk.attn.proj(o.transpose(1, 2).reshape(N, vdim))
            x = x + blk.mlp(blk.norm2(x))
        return vis.merger(x)

    def mrope_ids(n_pre, thw, L, B):
        """Qwen2-VL position ids [3, B, L] of prompts that are n_pre text tokens, one vision block of grid thw, text."""
        t, lh, lw = thw[0], thw[1] // merge, thw[2] // merge
        text0 = torch.arange(n_pre).expand(3, -1)
        blk = torch.stack([torch.arange(t).repeat_interleave(lh * lw), torch.arange(lh).repeat_interleave(lw).repeat(t),
                           torch.arange(lw).repeat(lh * t)]) + n_pre
        nxt = n_pre + max(t, lh, lw)
        tail = (torch.arange(L - n_pre - t * lh * lw) + nxt).expand(3, -1)
        return torch.cat([text0, blk, tail], dim=1)[:, None, :].expand(3, B, L).cuda()

    def fast_logits(kind, frames, qa):
        kw, prompts, seqs = tensors(kind, frames, qa, with_labels=True)
        pv = kw["pixel_values_videos" if kind == "video" else "pixel_values"]
        thw = tuple(int(x) for x in kw["video_grid_thw" if kind == "video" else "image_grid_thw"][0].tolist())
        inp = kw["input_ids"]; B, L = inp.shape
        pad = ids["video_token_id"] if kind == "video" else ids["image_token_id"]
        emb = model.get_input_embeddings()(inp)
        rows = tower(pv, thw, B).to(emb.dtype)
        emb = emb.masked_scatter((inp == pad)[..., None].expand_as(emb), rows)
        out = model(inputs_embeds=emb, attention_mask=kw["attention_mask"], position_ids=mrope_ids(len(pre_ids), thw, L, B),
                    use_cache=False)
        return out.logits, kw["labels"]

    def hf_logits(kind, frames, qa):
        kw, _, _ = tensors(kind, frames, qa, with_labels=True)
        labels = kw.pop("labels")
        return model(**kw, use_cache=False).logits, labels

    def loss_of(logits, labels, mode):
        lg = logits[:, :-1].float(); tg = labels[:, 1:]
        ce = torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1), ignore_index=-100,
                                               reduction="none").view(tg.shape)
        m = (tg != -100).float()
        if mode == "token":
            return (ce * m).sum() / m.sum()
        n = m.sum(1).clamp(min=1); per = (ce * m).sum(1) / n
        if mode == "sample":
            return per.mean()
        w = n.sqrt()   # "sqrt": an answer of n tokens weighs sqrt(n) answers of one token
        return (per * w).sum() / w.sum()

    forward = hf_logits
    if not a.hf_forward:
        ok = True
        for kind in ("image", "video"):
            rs = np.random.default_rng(99 if kind == "image" else 98)
            while True:
                k2, fr, qa = make_batch(int(rs.integers(1 << 30)))
                if k2 == kind:
                    break
            fr, qa = fr[:8], qa[:8]
            with torch.no_grad():
                try:
                    l1, lab = hf_logits(kind, fr, qa)
                    l2, _ = fast_logits(kind, fr, qa)
                    at = lab[:, 1:] != -100   # the positions whose logits the loss reads (padding differs harmlessly)
                    l1a, l2a = l1[:, :-1][at], l2[:, :-1][at]
                    diff = (l1a - l2a).abs().max().item(); scale = l1a.abs().max().item()
                    dl = abs(loss_of(l1, lab, "token").item() - loss_of(l2, lab, "token").item())
                except Exception as e:  # an attribute this version of transformers names differently
                    diff, scale, dl = float("inf"), 1.0, float("inf"); print(f"batched forward failed: {e!r}", flush=True)
            print(f"batched forward vs transformers ({kind}, fp32): max |logit diff| {diff:.2e} of {scale:.2f}, loss diff {dl:.2e}",
                  flush=True)
            ok = ok and diff <= 1e-3 * max(1.0, scale)
        forward = fast_logits if ok else hf_logits
        if not ok:
            print("WARNING: the batched forward differs from transformers'; training through transformers' forward", flush=True)

    def batches():  # bounded prefetch: at most 2 batches per worker in flight
        pending, seed = collections.deque(), 1000
        while True:
            while len(pending) < 2 * a.workers:
                pending.append(pool.apply_async(make_batch, (seed,))); seed += 1
            yield pending.popleft().get()

    loader = batches()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.98), fused=True)
    model.train(); t0 = time.time(); budget = a.minutes * 60; step = 0
    for kind, frames, qa in loader:
        frac = (time.time() - t0) / budget
        if frac >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1.0, step / max(1, a.warmup)) * 0.5 * (1 + math.cos(math.pi * frac))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, labels = forward(kind, frames, qa)
        loss = loss_of(logits, labels, a.loss)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
        if step % 250 == 0:
            print(f"step {step} {kind} loss {loss.item():.4f} {time.time() - t0:.0f}s ({step / max(1e-9, time.time() - t0):.1f} steps/s)", flush=True)
        step += 1
    print(f"trained {step} steps in {time.time() - t0:.0f}s", flush=True)
    pool.terminate()
    model.eval()
    os.makedirs(a.out, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(a.out, safe_serialization=True)
    saved = json.load(open(os.path.join(a.out, "config.json")))   # the sub-configs keep the training dtype: say bf16
    for sub in ("text_config", "vision_config"):
        if sub in saved:
            saved[sub]["dtype"] = "bfloat16"
    json.dump(saved, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    for f in ("tokenizer.json",):
        shutil.copy(os.path.join(a.tokenizer_dir, f), a.out)
    tc = json.load(open(os.path.join(a.tokenizer_dir, "tokenizer_config.json")))
    tc["chat_template"] = CHAT_TEMPLATE
    json.dump(tc, open(os.path.join(a.out, "tokenizer_config.json"), "w"), indent=2)
    ip.save_pretrained(a.out)
    vp.save_pretrained(a.out)
    # vlmflux's live sessions (watch, serve --live): the window of the clips it learned from (4-8 frames at 2 fps), re-
    # prefilled when it slides (it only ever saw clips alone, never keys/values that attended to frames since evicted),
    # and a narration it knows
    json.dump({"window": "4s", "eviction": "reprefill", "prompt": Q_VDESC}, open(os.path.join(a.out, "vlmflux_live.json"), "w"), indent=2)
    if os.path.exists(os.path.join(a.tokenizer_dir, "generation_config.json")):
        shutil.copy(os.path.join(a.tokenizer_dir, "generation_config.json"), a.out)

    # ---- held-out evaluation: fp32 from the saved bf16 weights, frames at camera sizes through the real processors
    m = Qwen2VLForConditionalGeneration.from_pretrained(a.out, dtype=torch.float32).cuda().eval()
    erng = np.random.default_rng(12345)
    res = {"steps": prior_steps + step, "steps_this_run": step, "minutes": a.minutes, "batch": a.batch, "types": {}, "examples": []}
    held = os.path.join(a.out, "heldout"); os.makedirs(held, exist_ok=True); cases = []

    def exact(kind, inputs, prompts, answers):
        """Teacher-forced greedy check: every answer token (and <|im_end|>) is the argmax given the true prefix."""
        pad = ids["video_token_id"] if kind == "video" else ids["image_token_id"]
        seqs = [p + enc(ans) + [eos] for p, ans in zip(prompts, answers)]
        L = max(map(len, seqs)); B = len(seqs)
        inp = torch.zeros(B, L, dtype=torch.long); att = torch.zeros(B, L, dtype=torch.long)
        for i, s in enumerate(seqs):
            inp[i, :len(s)] = torch.tensor(s); att[i, :len(s)] = 1
        inp, att = inp.cuda(), att.cuda()
        mm = (inp == pad).long() * (2 if kind == "video" else 1)
        with torch.no_grad():
            logits = m(input_ids=inp, attention_mask=att, mm_token_type_ids=mm, **inputs).logits
        am = logits.argmax(-1).cpu()
        ok = []
        for i, (p, s) in enumerate(zip(prompts, seqs)):
            ok.append(bool((am[i, len(p) - 1:len(s) - 1] == torch.tensor(s[len(p):])).all()))
        return ok

    def tally(t, oks):
        r = res["types"].setdefault(t, [0, 0]); r[0] += sum(oks); r[1] += len(oks)

    from PIL import Image
    sizes = [(320, 240), (640, 480), (1280, 720), (200, 150)]
    for qt in IMAGE_TYPES:
        for rep in range(4):
            w, h = sizes[rep]
            imgs, qs, ans = [], [], []
            while len(imgs) < 50:
                im, f = image_scene(erng, w, h)
                if qt != "caption" and "shapes" not in f:
                    continue
                q, an, _ = image_question(erng, f, qt)
                imgs.append(im); qs.append(q); ans.append(an)
            px = ip(images=[Image.fromarray(i) for i in imgs], return_tensors="pt")
            n = int(px["image_grid_thw"][0].prod()) // 4
            prompts = [prompt_ids(ids["image_token_id"], n, q) for q in qs]
            oks = exact("image", dict(pixel_values=px["pixel_values"].cuda(), image_grid_thw=px["image_grid_thw"].cuda()), prompts, ans)
            tally(qt, oks)
            for i in range(3 if rep < 2 else 0):
                if ans[i] == "random noise":
                    continue
                name = f"{qt}_{rep}_{i}.png"; Image.fromarray(imgs[i]).save(os.path.join(held, name))
                cases.append({"image": name, "question": qs[i], "answer": ans[i], "ok_transformers": oks[i]})
    for qt in VIDEO_TYPES:
        for rep in range(4):
            T = [4, 6, 8, 5][rep]; w, h = [(320, 240), (640, 480), (320, 240), (352, 288)][rep]
            vids, qs, ans = [], [], []
            for _ in range(40):
                v, f = video_scene(erng, T, w, h)
                q, an, _ = video_question(erng, f, qt)
                vids.append(v); qs.append(q); ans.append(an)
            px = vp(videos=vids, return_tensors="pt")
            n = int(px["video_grid_thw"][0].prod()) // 4
            prompts = [prompt_ids(ids["video_token_id"], n, q) for q in qs]
            oks = exact("video", dict(pixel_values_videos=px["pixel_values_videos"].cuda(), video_grid_thw=px["video_grid_thw"].cuda()), prompts, ans)
            tally(qt, oks)
            for i in range(2 if rep < 2 else 0):
                name = f"{qt}_{rep}_{i}"; os.makedirs(os.path.join(held, name), exist_ok=True)
                for k, fr in enumerate(vids[i]):
                    Image.fromarray(fr).save(os.path.join(held, name, f"frame_{k:03d}.png"))
                cases.append({"video": name, "fps": 2.0, "question": qs[i], "answer": ans[i], "ok_transformers": oks[i]})
    # videotestsrc ball at 320x240, 30 fps sampled at 2 fps: motion over 4- and 8-frame windows, "Is there a white circle?"
    for T in (4, 8):
        vids, truth = [], []
        for s in range(0, 3000, 37):
            frames, path = [], []
            for i in range(T):
                f, fx, fy = ball_frame(s + 15 * i, 320, 240); frames.append(f); path.append((fx, fy))
            vids.append(np.stack(frames)); truth.append(direction_of(path[-1][0] - path[0][0], path[-1][1] - path[0][1]))
        px = vp(videos=vids, return_tensors="pt")
        n = int(px["video_grid_thw"][0].prod()) // 4
        clear = [i for i, t in enumerate(truth) if t is not None]
        prompts = [prompt_ids(ids["video_token_id"], n, Q_MOVE) for _ in clear]
        sel = torch.cat([px["pixel_values_videos"].reshape(len(vids), -1, px["pixel_values_videos"].shape[-1])[i] for i in clear])
        oks = exact("video", dict(pixel_values_videos=sel.cuda(), video_grid_thw=px["video_grid_thw"][clear].cuda()), prompts, [truth[i] for i in clear])
        res[f"ball_motion_{T}_frames"] = {"exact": sum(oks) / len(oks), "windows": len(oks), "ambiguous_windows_skipped": len(vids) - len(clear)}
    imgs = [ball_frame(s, 320, 240)[0] for s in range(0, 3000, 29)]
    px = ip(images=[Image.fromarray(i) for i in imgs], return_tensors="pt")
    n = int(px["image_grid_thw"][0].prod()) // 4
    q = "Is there a white circle?"
    oks = exact("image", dict(pixel_values=px["pixel_values"].cuda(), image_grid_thw=px["image_grid_thw"].cuda()),
                [prompt_ids(ids["image_token_id"], n, q)] * len(imgs), ["yes"] * len(imgs))
    res["ball_is_there_a_white_circle_yes"] = sum(oks) / len(oks)
    res["types"] = {k: {"exact": v[0] / v[1], "n": v[1]} for k, v in res["types"].items()}
    json.dump(cases, open(os.path.join(held, "cases.json"), "w"), indent=1)
    json.dump(res, open(os.path.join(a.out, "eval.json"), "w"), indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
