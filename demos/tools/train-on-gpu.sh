#!/usr/bin/env bash
# Train (or continue training) the embedded demo model on a GPU machine inside one time-boxed call and pack the
# result: the checkpoint folder (weights, tokenizer, processor configs, eval.json, heldout/) and the training log.
#   demos/tools/train-on-gpu.sh OUT.tgz MINUTES [train_demo_model.py flags, e.g. --init-from DIR --lr 1e-3]
# MINUTES is the training time; loading, the self-check and the held-out evaluation add about two minutes. The
# checkpoint is packed even when the evaluation is cut short, so a later call can continue from it (--init-from).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$1; minutes=$2; shift 2
work=/tmp/shapes-vl-train; rm -rf "$work"; mkdir -p "$work"
limit=$(python3 -c "print(int(float('$minutes') * 60 + ${VLMFLUX_TRAIN_EXTRA_S:-150}))")
PYTHONUNBUFFERED=1 timeout "$limit" python3 "$root/demos/tools/train_demo_model.py" "$work/model" \
    --tokenizer-dir "$root/demos/models/shapes-vl" --minutes "$minutes" --workers "${VLMFLUX_TRAIN_WORKERS:-13}" "$@" \
    > "$work/train.log" 2>&1
echo "train rc=$?" >> "$work/train.log"
tar -C "$work" -czf "$out" .
tail -n 60 "$work/train.log"
