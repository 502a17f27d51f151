#!/usr/bin/env bash
# GPU-machine driver for the language-model backend (bundle: VLMFLUX_BUNDLE_MODULES=cuda-native,llm make-bundle.sh).
#   lm-gpu-run.sh tests                     all @Tag("gpu") tests (kernels + CUDA decoder fixture parity)
#   lm-gpu-run.sh shape NAME [--compiled] [--no-bench]
#                                           HF builds + saves NAME, writes the parity oracle (float32 and bf16 logits) and
#                                           times itself; then HfParityCheck (GPU logits vs HF) and, with the demos module in
#                                           the bundle, `vlmflux bench llm --backend cuda` (512 / 2048 ctx, roofline from
#                                           `KernelBench bandwidth`)
# Results: JSON lines on stdout (and $OUT/NAME.jsonl when $OUT is set).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run="$here/run-on-gpu.sh"
models=${VLMFLUX_MODELS:-/tmp/vlmflux-models}
cmd=$1; shift
case "$cmd" in
  tests) "$run" tests "$@" ;;
  shape)
    name=$1; shift
    dir="$models/$name"; mkdir -p "$dir"
    log=${OUT:-/tmp}/$name.jsonl
    PYTHONUNBUFFERED=1 python3 "$here/peer_bench.py" make "$name" "$dir" "$@" 2>/tmp/$name.py.err | tee "$log" || tail -5 /tmp/$name.py.err
    "$run" java io.vlmflux.llm.cuda.HfParityCheck "$dir" 64 | tee -a "$log"
    if ls "${VLMFLUX_BUNDLE_DIR:-$here/../../.gpu}"/lib/vlmflux-demos-*.jar >/dev/null 2>&1; then
      bw=$("$run" java io.vlmflux.cuda.gpu.KernelBench bandwidth | tail -1)   # device copy GB/s, for the roofline
      "$run" vlmflux bench llm --backend cuda --model "$dir" --contexts 512,2048 --decode-tokens 128 --bandwidth-gbps "$bw" --json | tee -a "$log"
    else
      echo "no speed bench: the bundle lacks the demos module (VLMFLUX_BUNDLE_MODULES=cuda-native,llm,demos)" >&2
    fi
    ;;
  *) echo "usage: $0 tests | shape NAME [--compiled]" >&2; exit 2 ;;
esac
