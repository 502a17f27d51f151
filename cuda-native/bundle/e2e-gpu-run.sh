#!/usr/bin/env bash
# GPU-machine driver for the end-to-end caption measurements (issue 6), in two back-to-back calls on one warm machine
# because the CLI bundle (jlink runtime with java.desktop + GStreamer + jars) and the repository copy exceed one
# call's transfer limit together. Bundle (build machine):
#   VLMFLUX_BUNDLE_DIR=.gpu-e2e VLMFLUX_BUNDLE_MODULES=pipeline,demos VLMFLUX_BUNDLE_GST=1 cuda-native/bundle/make-bundle.sh
#   e2e-gpu-run.sh prep   (carry .gpu-e2e/jre.tar.xz, .gpu-e2e/gst.tar.xz): unpacks the runtime and GStreamer into /tmp,
#                         (VLMFLUX_E2E_NO_PEER=1: build the checkpoint without measuring Hugging Face on it;
#                         VLMFLUX_E2E_SHAPE=qwen3-vl-2b|qwen3-vl-4b: that published shape instead of Qwen2.5-VL-3B, with
#                         VLMFLUX_E2E_MODEL=DIR to keep both; VLMFLUX_E2E_DECODE=1: HF's decode tok/s too)
#                         builds the random bf16 Qwen2.5-VL-3B checkpoint with transformers and measures Hugging Face on it
#                         (peer_bench_vlm.py --full), gives it a tokenizer (vlm_tokenizer.py)
#   e2e-gpu-run.sh run    (carry .gpu-e2e/lib, .gpu-e2e/test-classes): the vision-encoder table (VisionEncoderBench,
#                         test scope), bench vlm through the runtime (TTFT, --e2e 1 and 4 sources), the caption CLI on
#                         cuda with GStreamer (shapes-vl and the 3B checkpoint)
#   e2e-gpu-run.sh tests  (same carry): every @Tag("gpu") test
#   e2e-gpu-run.sh prep-all (carry as prep): prep without the peer for Qwen2.5-VL-3B, then Qwen3-VL-2B and -4B with Hugging
#                         Face's vision / TTFT / decode figures (issue 14's table; VLMFLUX_E2E_QWEN3_NO_PEER=1: checkpoints
#                         only), checkpoints under /tmp/vlmflux-models
#   e2e-gpu-run.sh measure (carry .gpu-e2e/test-classes; after prep-all on the warm machine, jars in /tmp/gpu-lib):
#                         GPU tests at the defaults and with every switch on, bench live with the stop-25 switches on
#                         (the defaults) and off (VLMFLUX_E2E_LIVE="on" for one), bench vlm + VisionEncoderBench on the
#                         Qwen3-VL checkpoints, KernelBench
#   e2e-gpu-run.sh profile (same): Nsight Compute over a few decode steps of Qwen3-0.6B and Qwen2.5-3B (random weights,
#                         2,048 cached tokens, graphs on; bench llm --profile-steps 4 under ncu --profile-from-start off),
#                         the switches before stop 25 and today's defaults: where each microsecond of a step goes
#                         (ncu_step_table.py; issue 18's table); then bench llm --sampled --batch 1..16 at 0.6B, both ways
#   e2e-gpu-run.sh measure-int4 [SHAPES] (same): bench llm bf16 vs 4-bit (quantize --method rtn) at Qwen2.5-3B and -7B
#                         (or SHAPES, e.g. "qwen2.5-7b": one shape a call keeps it under ten minutes), eval 4-bit vs bf16
#                         (issue 15), 4-bit with the fp32 GEMV (int4Mma=false) and with tiles + the overlapped prefill
#                         (int4Tiled=true int4PrefillOverlap=true; each also separately in int4-check's tests;
#                         VLMFLUX_INT4_VARIANTS: which 4-bit runs, default "default fp32gemv tiled", "persistent":
#                         int4Persistent, "ring": int4Ring, "sliceN": the prefill's matrices in N-MiB row slices
#                         (int4PrefillChunkKiB); VLMFLUX_INT4_NO_EVAL=1: no eval), and bf16
#                         again with the fp32 gate/up prefill
#                         (prefillBf16GateUp=false; VLMFLUX_INT4_NO_GATEUP=1: not that) and with the pre-stop-25 switches
#                         (VLMFLUX_INT4_NO_BEFORE=1: not the latter); quantize gets a 60 GB heap; VLMFLUX_INT4_VLM=1: also the
#                         prep-all Qwen2.5-VL-3B quantized and compared with eval --images
#   e2e-gpu-run.sh int4-check (carry .gpu-e2e/jre.tar.xz, .gpu-e2e/lib, .gpu-e2e/test-classes; no prep needed): int4_harness
#                         (every GEMV schedule and warp count checked, row-major and tiled, then timed) and the 4-bit GPU
#                         tests (Int4OpsTest and CudaQuantizedModelTest run the tiled form and the overlapped prefill
#                         too); with the demo model's safetensors in the tree also DemoModelHeldOutGpuTest (no GStreamer:
#                         images through ImageIO). Fits 64 MiB with lib minus the netty, prometheus, jna and gst jars.
#   e2e-gpu-run.sh unpack (carry .gpu-e2e/jre.tar.xz, gst.tar.xz, lib with the tree's files under 100 KB: the bundle and the
#                         full tree do not fit one call): the runtime, GStreamer and the jars into /tmp, then int4_harness
#   e2e-gpu-run.sh tests-warm (carry .gpu-e2e/test-classes with the full tree, right after unpack on the warm machine):
#                         every @Tag("gpu") test, GStreamer ones included (extra args: JUnit selectors); VLMFLUX_E2E_BENCH="SHAPES":
#                         then bench llm at those shapes for each of VLMFLUX_E2E_VARIANTS (default "default fr fc fr-fc": decodeFusedRope,
#                         decodeFusedCombine, both; "silu" in a name adds fusedSilu, "pfN" decodePrefetchMiB=N, "gp" gemvPrefetch, "mk" decodeMegakernel,
#                         "ah" decodeAhead)
#   e2e-gpu-run.sh mega [check|time|all|time1|wide|stages|rope|shared] (carry .gpu-e2e/megah.xz, built on the build machine with
#                         nvcc -O3 -std=c++17 -arch=sm_90 -o .gpu-e2e/megah cuda-native/src/test/cuda/mega_harness.cu && xz -k -9 .gpu-e2e/megah):
#                         the persistent decode step (decode_mega.cu) checked against the per-kernel path, then every form of
#                         it timed against that path at Qwen3-0.6B / Qwen2.5-3B / -7B shapes (no JVM, no bundle); wide: the wide form
#                         (33) bit for bit against form 1, timed, and both forms' stages; stages: where a step's time goes, stage by stage
#   e2e-gpu-run.sh qwen3vl [SHAPES] (carry .gpu-e2e/jre.tar.xz, lib, test-classes with the slim tree; one call, no prep): issue 14's
#                         table: per Qwen3-VL shape (default "qwen3-vl-2b qwen3-vl-4b", also qwen3-vl-8b) the random checkpoint,
#                         Hugging Face's vision / TTFT / decode, bench vlm --ttft (defaults, persistent step off), VisionEncoderBench
#   e2e-gpu-run.sh mega-builds [MODE] (carry .gpu-e2e/mega-builds.tar.xz from cuda-native/bundle/mega-builds.sh): every
#                         harness build in it run in MODE (default time1: Qwen3-0.6B and Qwen2.5-3B at 2,048), 40 s each
#                         (VLMFLUX_MEGA_TIMEOUT), by name (a build without time1: 25 s of its time mode); one line per form and build
#   e2e-gpu-run.sh quick [JUnit args] (carry .gpu-e2e/jre.tar.xz, lib, test-classes with the tree's files under 100 KB and the
#                         tiny-qwen2 / tiny-qwen3 fixtures; one call, no GStreamer): GPU tests that need no more (default: the
#                         decode fusions' tests in GpuKernelsTest and CudaDecoderTest, decodeAhead's, MultiBlockSamplingTest), then
#                         bench llm qwen3-0.6b for each of
#                         VLMFLUX_E2E_VARIANTS (as tests-warm; default "default fr")
#   e2e-gpu-run.sh unmeasured (carry .gpu-e2e/jre.tar.xz, lib, test-classes with the slim tree): the switches written but
#                         not yet run on a GPU (decodeAhead, int4Persistent; decodeMegaWide until stop 36) tested and benched in one call
#   e2e-gpu-run.sh bench  (as quick): bench llm variants alone
#   e2e-gpu-run.sh int4-ncu (the tree alone): the 4-bit tensor-core GEMV under Nsight Compute (stall reasons, issue
#                         slots, memory workload, source counters; VLMFLUX_NCU_SHAPE="M,K", default the 7B gate/up 37888,3584)
#   e2e-gpu-run.sh mega-ncu [0.6b|vl4] [FORM] (carry .gpu-e2e/megah.xz): one launch of the persistent step (the library form,
#                         or harness form FORM, e.g. 1153) under Nsight Compute (warp stall reasons: a latency-bound stage
#                         waiting on instruction fetch?); mega l2pf / kvsmem / both: VF_MEGA_L2PF (form 1153), VF_MEGA_KVSMEM
#                         (2177), both (3201), each checked bit for bit against the library form and timed
#   e2e-gpu-run.sh mega rope (carry .gpu-e2e/megah.xz; nvcc -DMEGA_HARNESS_FEW builds forms 1 / 129 / 1153 / 2177 / 3201 only, in four minutes):
#                         the library form (129, VF_MEGA_ROPEPRE) checked bit for bit against form 1 and timed, stages with the
#                         attention item's phases
# Results under $OUT (or /tmp/vlmflux-e2e-out).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-/tmp/vlmflux-e2e-out}; mkdir -p "$out"
export VLMFLUX_BUNDLE_DIR=$root/.gpu-e2e VLMFLUX_JRE_DIR=/tmp/vlmflux-jre-e2e VLMFLUX_GST_DIR=/tmp/vlmflux-gst-e2e
model=${VLMFLUX_E2E_MODEL:-/tmp/vlmflux-models/qwen25vl3b-e2e}
run="$here/run-on-gpu.sh"
step() { echo "== $(date -u +%T) $*" >&2; }
# The JVM options a variant name turns on (substrings): fr decodeFusedRope, fc decodeFusedCombine, silu fusedSilu, mk the
# persistent decode step (nomk: off), ah decodeAhead, gp gemvPrefetch, pfN N MiB of L2 prefetch, gt gemmTune, fe
# vision.fastElementwise; "default": none
variant_opts() {
    local v=$1 o=""
    [[ $v == *fr* ]] && o="$o -Dvlmflux.cuda.decodeFusedRope=true"
    [[ $v == *fc* ]] && o="$o -Dvlmflux.cuda.decodeFusedCombine=true"
    [[ $v == *silu* ]] && o="$o -Dvlmflux.cuda.fusedSilu=true"
    if [[ $v == *nomk* ]]; then o="$o -Dvlmflux.cuda.decodeMegakernel=false"; elif [[ $v == *mk* ]]; then o="$o -Dvlmflux.cuda.decodeMegakernel=true"; fi
    [[ $v == *ah* ]] && o="$o -Dvlmflux.cuda.decodeAhead=true"
    [[ $v == *gp* ]] && o="$o -Dvlmflux.cuda.gemvPrefetch=true"
    [[ $v =~ pf([0-9]+) ]] && o="$o -Dvlmflux.cuda.decodePrefetchMiB=${BASH_REMATCH[1]}"
    [[ $v == *gt* ]] && o="$o -Dvlmflux.cuda.gemmTune=true"
    [[ $v == *fe* ]] && o="$o -Dvlmflux.vision.fastElementwise=true"
    echo "$o"
}
# bench llm at VLMFLUX_E2E_BENCH's shapes (e.g. "qwen3-0.6b qwen2.5-3b") for each of VLMFLUX_E2E_VARIANTS (tests-warm, quick)
bench_variants() {
    for shape in ${VLMFLUX_E2E_BENCH:-}; do
      for v in ${VLMFLUX_E2E_VARIANTS:-default fr fc fr-fc}; do
        opts=$(variant_opts "$v")
        step "bench llm $shape, $v ($opts)"
        src=(--model /tmp/vlmflux-models/$shape); [[ -f /tmp/vlmflux-models/$shape/config.json ]] || src=(--shape $shape --keep-checkpoint /tmp/vlmflux-models/$shape)
        VLMFLUX_JAVA_OPTS="$opts" timeout 120 "$run" vlmflux bench llm --backend cuda "${src[@]}" \
            --contexts 512,2048 ${VLMFLUX_E2E_BENCH_ARGS:-} --json > "$out/llm-$shape-$v.jsonl" 2> "$out/llm-$shape-$v.err"; tail -n 2 "$out/llm-$shape-$v.jsonl" | cut -c1-300 >&2
        grep -A14 "where the time goes" "$out/llm-$shape-$v.err" >&2   # VLMFLUX_E2E_BENCH_ARGS=--profile-prefill
      done
    done
}
case "${1:-}" in
  prep)
    step "runtime + GStreamer"
    rm -rf "$VLMFLUX_JRE_DIR" && mkdir -p "$VLMFLUX_JRE_DIR" && tar -xJf "$VLMFLUX_BUNDLE_DIR/jre.tar.xz" -C "$VLMFLUX_JRE_DIR" && touch "$VLMFLUX_JRE_DIR/jre/release"
    source "$here/gst-env.sh" "$VLMFLUX_BUNDLE_DIR/gst.tar.xz" && echo "gst: $VLMFLUX_GST_HOME" >&2
    nvidia-smi -L | tee "$out/device.txt"
    step "checkpoint + Hugging Face peer"
    mkdir -p "$model"
    PYTHONUNBUFFERED=1 python3 "$here/peer_bench_vlm.py" "$model" --full ${VLMFLUX_E2E_NO_PEER:+--no-peer} ${VLMFLUX_E2E_SHAPE:+--shape $VLMFLUX_E2E_SHAPE} ${VLMFLUX_E2E_DECODE:+--decode} 2>"$out/hf.err" | tee "$out/hf.jsonl" || tail -20 "$out/hf.err"
    python3 "$here/vlm_tokenizer.py" "$model" | tee -a "$out/hf.jsonl"
    du -sh "$model" >&2; step done ;;
  run)
    [[ -x "$VLMFLUX_JRE_DIR/jre/bin/java" && -f "$model/tokenizer.json" ]] || { echo "e2e-gpu-run.sh run: no runtime or checkpoint: run 'prep' first on this machine" >&2; exit 3; }
    export VLMFLUX_GST=$VLMFLUX_GST_DIR
    step "vision encoder 640x480 (VisionEncoderBench)"
    "$run" java io.vlmflux.vision.cuda.VisionEncoderBench "$model" 640x480 RGB 20 --json > "$out/vision.jsonl" 2> "$out/vision.err"
    echo "rc=$?" >> "$out/vision.err"; grep -v "^WARNING" "$out/vision.err" | tail -6 >&2
    step "bench vlm through the runtime (TTFT, e2e 1 and 4 sources)"
    "$run" vlmflux bench vlm --model "$model" --ttft --e2e --sources ${VLMFLUX_E2E_SOURCES:-1,4} --seconds ${VLMFLUX_E2E_SECONDS:-8} --json \
        > "$out/bench.jsonl" 2> "$out/bench.err"; echo "rc=$?" >> "$out/bench.err"; grep -v "^WARNING" "$out/bench.err" | tail -25 >&2
    step "caption CLI: shapes-vl on cuda, test:ball through the bundled GStreamer"
    "$run" vlmflux caption --backend cuda --source test:ball --count 20 --every 200ms --json > "$out/caption-shapes-vl.jsonl" 2> "$out/caption-shapes-vl.err"
    echo "rc=$?" >> "$out/caption-shapes-vl.err"; head -3 "$out/caption-shapes-vl.jsonl" >&2; tail -3 "$out/caption-shapes-vl.err" >&2
    step "caption CLI: Qwen2.5-VL-3B (random) on cuda"
    "$run" vlmflux caption --backend cuda --model "$model" --source "test:ball?width=640&height=480" --count 20 --every 100ms --json \
        > "$out/caption-3b.jsonl" 2> "$out/caption-3b.err"; echo "rc=$?" >> "$out/caption-3b.err"; tail -2 "$out/caption-3b.jsonl" >&2; tail -3 "$out/caption-3b.err" >&2
    step done ;;
  tests)
    [[ -x "$VLMFLUX_JRE_DIR/jre/bin/java" ]] || { echo "e2e-gpu-run.sh tests: no runtime: run 'prep' first on this machine" >&2; exit 3; }
    export VLMFLUX_GST=$VLMFLUX_GST_DIR
    step "every @Tag(gpu) test"
    "$run" tests > "$out/tests.txt" 2>&1; echo "rc=$?" >> "$out/tests.txt"; tail -40 "$out/tests.txt" >&2
    step done ;;
  prep-all)
    rm -rf /tmp/gpu-lib && cp -r "$VLMFLUX_BUNDLE_DIR/lib" /tmp/gpu-lib   # the next call carries only test-classes
    VLMFLUX_E2E_NO_PEER=1 OUT=$out/q25 "$0" prep > "$out/prep-q25.log" 2>&1
    for m in qwen3-vl-2b qwen3-vl-4b; do
      VLMFLUX_E2E_NO_PEER=${VLMFLUX_E2E_QWEN3_NO_PEER:-} VLMFLUX_E2E_SHAPE=$m VLMFLUX_E2E_DECODE=1 VLMFLUX_E2E_MODEL=/tmp/vlmflux-models/$m \
          OUT=$out/$m "$0" prep > "$out/prep-$m.log" 2>&1
      tail -n 4 "$out/$m/hf.jsonl" >&2
    done
    du -sh /tmp/vlmflux-models/* >&2; step done ;;
  measure|measure-int4|profile)
    mkdir -p /tmp/b && rm -rf /tmp/b/test-classes && cp -r "$root/.gpu-e2e/test-classes" /tmp/b/ && ln -sfn /tmp/gpu-lib /tmp/b/lib
    export VLMFLUX_BUNDLE_DIR=/tmp/b
    [[ -d $VLMFLUX_GST_DIR/gst ]] && export VLMFLUX_GST=$VLMFLUX_GST_DIR   # GStreamer only where prep unpacked it (measure-int4 needs none)
    [[ -x "$VLMFLUX_JRE_DIR/jre/bin/java" && -d /tmp/gpu-lib ]] || { echo "e2e-gpu-run.sh $1: run 'prep-all' first on this machine" >&2; exit 3; }
    t0=$(date +%s)
    spent() { (( $(date +%s) - t0 >= $1 )); }   # the call's limit is ten minutes: later steps skip rather than be cut off
    # the switches' defaults before stop 25 (the "before" runs of measure-int4 and profile)
    before="-Dvlmflux.cuda.prefillBf16GateUp=false -Dvlmflux.cuda.prefillSplitKv=false -Dvlmflux.cuda.evictKernel=false -Dvlmflux.cuda.prefillPipelined=false -Dvlmflux.cuda.decodeVecAttention=false -Dvlmflux.cuda.pdl=false -Dvlmflux.live.devicePreprocess=false"
    all="-Dvlmflux.cuda.prefillSplitKv=true -Dvlmflux.cuda.evictKernel=true -Dvlmflux.cuda.prefillPipelined=true -Dvlmflux.cuda.prefillBf16GateUp=true -Dvlmflux.cuda.decodeVecAttention=true -Dvlmflux.cuda.pdl=true -Dvlmflux.live.devicePreprocess=true"
    if [[ $1 == profile ]]; then
      command -v ncu > /dev/null || { echo "e2e-gpu-run.sh profile: no ncu on PATH" >&2; exit 3; }
      for shape in qwen3-0.6b qwen2.5-3b; do
        for sw in before default; do
          spent 420 && { step "skipped ncu $shape $sw: the call's ten minutes are nearly spent"; continue; }
          step "ncu: $shape, $sw"
          VLMFLUX_JAVA_OPTS=$([[ $sw == before ]] && echo "$before") timeout 150 ncu --csv --page raw --graph-profiling node \
              --profile-from-start off --metrics gpu__time_duration.sum --target-processes all --log-file "$out/ncu-$shape-$sw.csv" \
              "$run" vlmflux bench llm --backend cuda --shape $shape --contexts 2048 --decode-tokens 8 --profile-steps 4 > "$out/ncu-$shape-$sw.txt" 2>&1
          echo "rc=$?" >> "$out/ncu-$shape-$sw.txt"; grep -v "^WARNING" "$out/ncu-$shape-$sw.txt" | grep -i "error\|rc=" | head -5 >&2
          python3 "$here/ncu_step_table.py" "$out/ncu-$shape-$sw.csv" --steps 4 --label "$shape, 2,048 cached, $sw" \
              > "$out/ncu-$shape-$sw.md" 2>&1; cat "$out/ncu-$shape-$sw.md" >&2
        done
      done
      for sw in before default; do   # decode table: greedy vs sampled, batch 1-16, 0.6B (issue 18)
        spent 400 && { step "skipped bench llm --sampled ($sw): the call's ten minutes are nearly spent"; continue; }
        step "bench llm qwen3-0.6b --sampled --batch, $sw"
        VLMFLUX_JAVA_OPTS=$([[ $sw == before ]] && echo "$before") timeout 150 "$run" vlmflux bench llm --backend cuda --shape qwen3-0.6b \
            --contexts 512,2048 --sampled --batch 1,2,4,8,16 --json > "$out/llm-qwen3-0.6b-$sw.jsonl" 2> "$out/llm-qwen3-0.6b-$sw.err"
        tail -n 1 "$out/llm-qwen3-0.6b-$sw.jsonl" >&2
      done
    elif [[ $1 == measure ]]; then
      step "GPU tests (defaults)"; timeout 200 "$run" tests > "$out/tests.txt" 2>&1; echo "rc=$?" >> "$out/tests.txt"
      grep -E "tests (successful|failed|found)" "$out/tests.txt" >&2
      step "GPU tests with every measured switch flipped (VLMFLUX_E2E_FLIP)"
      VLMFLUX_JAVA_OPTS="${VLMFLUX_E2E_FLIP:-$all}" timeout 200 "$run" tests > "$out/tests-flipped.txt" 2>&1; echo "rc=$?" >> "$out/tests-flipped.txt"
      grep -E "tests (successful|failed|found)" "$out/tests-flipped.txt" >&2
      grep -B2 -A12 "✘" "$out/tests.txt" "$out/tests-flipped.txt" | head -80 >&2
      for sw in ${VLMFLUX_E2E_LIVE:-on off}; do
        step "bench live, the stop-25 switches (split-key + pipelined prefill, eviction kernel, 16-byte decode attention, PDL, groups preprocessed on the GPU) $sw"
        opts=$([[ $sw == off ]] && echo "$before")   # on = today's defaults
        VLMFLUX_JAVA_OPTS=$opts timeout 170 "$run" vlmflux bench live --backend cuda --model "$model" --sizes 448x448,640x480 \
            --windows $([[ $sw == on ]] && echo 30,60,120 || echo 60) --iters 5 --sessions $([[ $sw == on ]] && echo 4 || echo 1) > "$out/live-$sw.txt" 2>&1
        grep -E "append|window|sessions|serial|error" "$out/live-$sw.txt" >&2
      done
      for m in qwen3-vl-2b qwen3-vl-4b; do
        spent 420 && { step "skipped Qwen3-VL $m: the call's ten minutes are nearly spent"; continue; }
        step "Qwen3-VL $m: bench vlm --ttft, vision tower at 3 sizes"
        timeout 90 "$run" vlmflux bench vlm --model /tmp/vlmflux-models/$m --ttft --iters 10 --json > "$out/vlm-$m.jsonl" 2> "$out/vlm-$m.err"
        VLMFLUX_JAVA_OPTS="$all" timeout 90 "$run" vlmflux bench vlm --model /tmp/vlmflux-models/$m --ttft --iters 10 --json \
            > "$out/vlm-$m-switches.jsonl" 2> "$out/vlm-$m-switches.err"; tail -n 1 "$out/vlm-$m-switches.jsonl" >&2
        tail -2 "$out/vlm-$m.jsonl" >&2
        for sz in 448x448 640x480 1280x720; do
          timeout 60 "$run" java io.vlmflux.vision.cuda.VisionEncoderBench /tmp/vlmflux-models/$m $sz RGB 20 --json >> "$out/vision-$m.jsonl" 2>> "$out/vision-$m.err"
        done
        tail -3 "$out/vision-$m.jsonl" >&2
      done
      if spent 480; then step "skipped KernelBench: the call's ten minutes are nearly spent"
      else
        step "KernelBench"; timeout 90 "$run" java io.vlmflux.cuda.gpu.KernelBench > "$out/kernelbench.txt" 2>&1; grep "after a cache" "$out/kernelbench.txt" >&2
      fi
    else
      for shape in ${2:-qwen2.5-3b qwen2.5-7b}; do
        step "bench llm $shape bf16 (checkpoint kept), then 4-bit rtn"
        timeout 200 "$run" vlmflux bench llm --backend cuda --shape $shape --keep-checkpoint /tmp/vlmflux-models/$shape --contexts 512,2048 ${VLMFLUX_E2E_BENCH_ARGS:-} --json > "$out/llm-$shape-bf16.jsonl" 2> "$out/llm-$shape-bf16.err"
        [[ -z "${VLMFLUX_INT4_NO_GATEUP:-}" ]] && VLMFLUX_JAVA_OPTS="-Dvlmflux.cuda.prefillBf16GateUp=false" timeout 120 "$run" vlmflux bench llm --backend cuda \
            --model /tmp/vlmflux-models/$shape --contexts 512,2048 --json > "$out/llm-$shape-bf16-fp32gateup.jsonl" 2> "$out/llm-$shape-bf16-fp32gateup.err"
        [[ -z "${VLMFLUX_INT4_NO_BEFORE:-}" ]] && VLMFLUX_JAVA_OPTS="$before" timeout 120 "$run" vlmflux bench llm --backend cuda \
            --model /tmp/vlmflux-models/$shape --contexts 512,2048 --json > "$out/llm-$shape-bf16-before.jsonl" 2> "$out/llm-$shape-bf16-before.err"
        cat "$out/llm-$shape-bf16"*.jsonl | cut -c1-400 >&2
        VLMFLUX_XMX=60g timeout 400 "$run" vlmflux quantize --model /tmp/vlmflux-models/$shape --out /tmp/vlmflux-models/$shape-awq --method rtn > "$out/quantize-$shape.txt" 2>&1
        for v in ${VLMFLUX_INT4_VARIANTS:-default fp32gemv tiled}; do   # fp32gemv: int4Mma off; tiled: tiles + the overlapped prefill; persistent: int4Persistent
          opts=""; sfx="-$v"; [[ $v == default ]] && sfx=""
          [[ $v == fp32gemv ]] && opts="-Dvlmflux.cuda.int4Mma=false"
          [[ $v == tiled ]] && opts="-Dvlmflux.cuda.int4Tiled=true -Dvlmflux.cuda.int4PrefillOverlap=true"
          [[ $v == persistent ]] && opts="-Dvlmflux.cuda.int4Persistent=true"
          [[ $v == ring ]] && opts="-Dvlmflux.cuda.int4Ring=true"   # ring: the ring GEMV (tiles streamed through shared memory, sm_90+)
          [[ $v =~ slice([0-9]+) ]] && opts="$opts -Dvlmflux.cuda.int4PrefillChunkKiB=$(( ${BASH_REMATCH[1]} * 1024 ))"   # sliceN: prefill in N-MiB row slices
          VLMFLUX_JAVA_OPTS="$opts" timeout 120 "$run" vlmflux bench llm --backend cuda --model /tmp/vlmflux-models/$shape-awq \
              --contexts 512,2048 ${VLMFLUX_E2E_BENCH_ARGS:-} --json > "$out/llm-$shape-int4$sfx.jsonl" 2> "$out/llm-$shape-int4$sfx.err"
          grep -h decode_tok_s "$out/llm-$shape-int4$sfx.jsonl" | cut -c1-400 >&2
        done
        tail -n 1 "$out/llm-$shape-bf16.jsonl" "$out/llm-$shape-int4.jsonl" >&2; tail -n 3 "$out/quantize-$shape.txt" >&2
        [[ -z "${VLMFLUX_INT4_NO_EVAL:-}" ]] && step "eval $shape: 4-bit vs bf16 on cuda (random weights: pseudo-random ids, no tokenizer)" && timeout 150 "$run" vlmflux eval --model /tmp/vlmflux-models/$shape-awq --reference /tmp/vlmflux-models/$shape --backend cuda \
            --reference-backend cuda --window 128 --windows 8 --json > "$out/eval-$shape.json" 2> "$out/eval-$shape.err"; cat "$out/eval-$shape.json" >&2
        rm -rf /tmp/vlmflux-models/$shape   # disk: keep the 4-bit folder only
      done
      if [[ -f "$model/tokenizer.json" && -n "${VLMFLUX_INT4_VLM:-}" ]]; then   # the prep-all Qwen2.5-VL-3B: caption agreement too
        step "Qwen2.5-VL-3B 4-bit vs bf16: eval with --images (frames of a fixture clip)"
        VLMFLUX_XMX=60g timeout 200 "$run" vlmflux quantize --model "$model" --out /tmp/vlmflux-models/q25vl-awq --method rtn > "$out/quantize-q25vl.txt" 2>&1
        timeout 200 "$run" vlmflux eval --model /tmp/vlmflux-models/q25vl-awq --reference "$model" --backend cuda --reference-backend cuda \
            --windows 4 --images "$root/llm/src/test/resources/fixtures/tiny-qwen25vl-video/golden_video_1" --max-tokens 24 --json \
            > "$out/eval-q25vl.json" 2> "$out/eval-q25vl.err"; head -c 600 "$out/eval-q25vl.json" >&2
      fi
    fi
    step done ;;
  unpack)
    step "runtime, GStreamer and jars into /tmp"
    rm -rf "$VLMFLUX_JRE_DIR" && mkdir -p "$VLMFLUX_JRE_DIR" && tar -xJf "$VLMFLUX_BUNDLE_DIR/jre.tar.xz" -C "$VLMFLUX_JRE_DIR" && touch "$VLMFLUX_JRE_DIR/jre/release"
    source "$here/gst-env.sh" "$VLMFLUX_BUNDLE_DIR/gst.tar.xz" && echo "gst: $VLMFLUX_GST_HOME" >&2
    rm -rf /tmp/gpu-lib && cp -r "$VLMFLUX_BUNDLE_DIR/lib" /tmp/gpu-lib
    nvidia-smi -L | tee "$out/device.txt"
    if [[ -z "${VLMFLUX_NO_HARNESS:-}" ]]; then
      step "int4_harness"
      PATH=$PATH:/usr/local/cuda/bin nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/int4h "$root/cuda-native/src/test/cuda/int4_harness.cu" > "$out/int4h-build.txt" 2>&1
      timeout ${VLMFLUX_HARNESS_TIMEOUT:-240} /tmp/int4h > "$out/int4h.txt" 2>&1; echo "rc=$?" >> "$out/int4h.txt"
      grep -v ": ok" "$out/int4h.txt" | grep -v act-order >&2
    fi
    step done ;;
  tests-warm)
    [[ -x "$VLMFLUX_JRE_DIR/jre/bin/java" && -d /tmp/gpu-lib ]] || { echo "e2e-gpu-run.sh tests-warm: run 'unpack' first on this machine" >&2; exit 3; }
    mkdir -p /tmp/b && rm -rf /tmp/b/test-classes && cp -r "$root/.gpu-e2e/test-classes" /tmp/b/ && ln -sfn /tmp/gpu-lib /tmp/b/lib
    export VLMFLUX_BUNDLE_DIR=/tmp/b VLMFLUX_GST=$VLMFLUX_GST_DIR
    step "every @Tag(gpu) test"
    timeout ${VLMFLUX_TESTS_TIMEOUT:-480} "$run" tests "${@:2}" > "$out/tests.txt" 2>&1; echo "rc=$?" >> "$out/tests.txt"
    grep -E "tests (successful|failed|found|skipped|aborted)" "$out/tests.txt" >&2; grep -B2 -A10 "✘" "$out/tests.txt" | head -120 >&2
    bench_variants
    step done ;;
  quick)
    step "GPU tests without fixtures or GStreamer"
    args=("${@:2}"); (( ${#args[@]} )) || args=(
        --select-method 'io.vlmflux.cuda.gpu.GpuKernelsTest#fusedRopeDecodeEqualsRopeThenAttention(int, int, int, int, boolean, int)'
        --select-method 'io.vlmflux.cuda.gpu.GpuKernelsTest#decodeAttentionMatchesCpu(int, int, int, int, int)'
        --select-method 'io.vlmflux.cuda.gpu.GpuKernelsTest#fusedCombineDecodeReplaysInAGraph()'
        --select-method 'io.vlmflux.cuda.gpu.GpuKernelsTest#prefetchingGemvsEqualThePlainOnes(int, int, int)'
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#megakernelMatchesThePerKernelPath(java.lang.String, int, int, int, int, int, java.nio.file.Path)'
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#decodeAheadGivesThePlainPathsTokens(java.lang.String)'
        --select-class io.vlmflux.llm.cuda.MultiBlockSamplingTest
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#fusedDecodeChangesNothing(java.lang.String, java.lang.String, int, int, int, int, java.nio.file.Path)')
    timeout ${VLMFLUX_TESTS_TIMEOUT:-120} "$run" tests "${args[@]}" > "$out/tests.txt" 2>&1; echo "rc=$?" >> "$out/tests.txt"
    grep -E "tests (successful|failed|found)" "$out/tests.txt" >&2; grep -B2 -A14 "✘" "$out/tests.txt" | head -60 >&2
    VLMFLUX_E2E_VARIANTS=${VLMFLUX_E2E_VARIANTS:-default fr} VLMFLUX_E2E_BENCH=${VLMFLUX_E2E_BENCH-qwen3-0.6b} bench_variants
    step done ;;
  int4-ncu)   # no carry beyond the tree: why the 4-bit tensor-core GEMV reads 1.7-2.0 TB/s (issue 15): int4_harness's INT4H_NCU mode
    # (VLMFLUX_NCU_SHAPE="M,K", default the Qwen2.5-7B gate/up shape 37888,3584) launches vf_int4_gemv_mma and _t once each under
    # Nsight Compute (speed of light, occupancy, warp states, scheduler, memory tables, source counters); details, raw metrics and
    # the SASS source page (stall samples per instruction) as CSV under $OUT
    command -v ncu > /dev/null || { echo "e2e-gpu-run.sh int4-ncu: no ncu on PATH" >&2; exit 3; }
    # VLMFLUX_INT4H_BIN: a -lineinfo build of this tree's int4_harness made earlier in the same call (else built here)
    bin=${VLMFLUX_INT4H_BIN:-/tmp/int4h-ncu}
    [[ -n ${VLMFLUX_INT4H_BIN:-} ]] || PATH=$PATH:/usr/local/cuda/bin nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo -o "$bin" "$root/cuda-native/src/test/cuda/int4_harness.cu" > "$out/int4h-build.txt" 2>&1 || exit 3
    INT4H_NCU=${VLMFLUX_NCU_SHAPE:-37888,3584} timeout 300 ncu --kernel-name regex:'^vf_int4_gemv_mma(_t)?$' --launch-count 2 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
        --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section SourceCounters -f -o /tmp/int4-ncu "$bin" > "$out/int4-ncu.txt" 2>&1
    echo "rc=$?" >> "$out/int4-ncu.txt"
    ncu -i /tmp/int4-ncu.ncu-rep --page details --csv > "$out/int4-ncu-details.csv" 2>&1
    ncu -i /tmp/int4-ncu.ncu-rep --page raw --csv > "$out/int4-ncu-raw.csv" 2>&1
    ncu -i /tmp/int4-ncu.ncu-rep --page source --csv --print-source sass > "$out/int4-ncu-source.csv" 2>&1
    grep "ncu shape" "$out/int4-ncu.txt" >&2
    grep -i '"Duration"\|"Memory Throughput"\|"DRAM Throughput"\|"Achieved Occupancy"\|"Registers Per Thread"\|"Warp Cycles Per Issued\|"Issued Warp Per\|"Block Limit' "$out/int4-ncu-details.csv" | cut -d, -f5,13- >&2
    step done ;;
  unmeasured)   # carry .gpu-e2e/jre.tar.xz, lib, test-classes with the slim tree (~59 MiB; no megah): in one call (~8 min), the
    # switches written but never run on a GPU (decodeAhead, int4Persistent; decodeMegaWide until stop 36): their GPU tests, then bench vlm
    # at Qwen3-VL-4B with each (no Hugging Face peer), int4_harness (built here while the tests run: the persistent GEMV
    # checked bit for bit and timed), bench llm at Qwen3-0.6B with each; results under $OUT/q, $OUT/b
    (PATH=$PATH:/usr/local/cuda/bin nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/int4h "$root/cuda-native/src/test/cuda/int4_harness.cu" > "$out/int4h-build.txt" 2>&1; touch /tmp/int4h.done) &
    VLMFLUX_TESTS_TIMEOUT=170 VLMFLUX_E2E_BENCH= bash "$0" quick \
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#megakernelMatchesThePerKernelPath(java.lang.String, int, int, int, int, int, java.nio.file.Path)' \
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#decodeAheadGivesThePlainPathsTokens(java.lang.String)' --select-class io.vlmflux.cuda.gpu.Int4OpsTest
    mkdir -p "$out/q" && OUT=$out/q VLMFLUX_E2E_NO_PEER=1 VLMFLUX_E2E_VLM_VARIANTS="default ah" bash "$0" qwen3vl qwen3-vl-4b
    while [[ ! -f /tmp/int4h.done ]]; do sleep 2; done
    step "int4_harness"; timeout 100 /tmp/int4h > "$out/int4h.txt" 2>&1; echo "rc=$?" >> "$out/int4h.txt"
    grep -v ": ok" "$out/int4h.txt" | grep -v act-order | cut -c1-1600 | tail -14 >&2
    mkdir -p "$out/b" && OUT=$out/b VLMFLUX_E2E_VARIANTS="default ah" timeout 200 bash "$0" bench
    step done ;;
  bench)   # carry as quick: bench llm at VLMFLUX_E2E_BENCH's shapes (default qwen3-0.6b) for each of VLMFLUX_E2E_VARIANTS (default "default")
    VLMFLUX_E2E_VARIANTS=${VLMFLUX_E2E_VARIANTS:-default} VLMFLUX_E2E_BENCH=${VLMFLUX_E2E_BENCH-qwen3-0.6b} bench_variants
    step done ;;
  qwen3vl)   # carry .gpu-e2e/jre.tar.xz, lib, test-classes with the slim tree: issue 14's table in one call
    # per shape (default "qwen3-vl-2b qwen3-vl-4b"; qwen3-vl-8b too): the random bf16 checkpoint and Hugging Face's vision /
    # TTFT / decode figures (peer_bench_vlm.py --full --decode), then bench vlm --ttft at today's defaults and with the
    # persistent decode step off, and VisionEncoderBench at 448x448, 640x480, 1280x720; the device copy bandwidth first;
    # VLMFLUX_E2E_OPTS: JVM options for every bench vlm run; VLMFLUX_E2E_VLM_VARIANTS: its runs (default "default nomk";
    # "nomk" in a name: the persistent step off, "ah": decodeAhead on)
    step "runtime and jars into /tmp"
    rm -rf "$VLMFLUX_JRE_DIR" && mkdir -p "$VLMFLUX_JRE_DIR" && tar -xJf "$VLMFLUX_BUNDLE_DIR/jre.tar.xz" -C "$VLMFLUX_JRE_DIR" && touch "$VLMFLUX_JRE_DIR/jre/release"
    rm -rf /tmp/gpu-lib && cp -r "$VLMFLUX_BUNDLE_DIR/lib" /tmp/gpu-lib
    [[ -f $VLMFLUX_BUNDLE_DIR/gst.tar.xz ]] && (source "$here/gst-env.sh" "$VLMFLUX_BUNDLE_DIR/gst.tar.xz")   # unpacked for a tests-warm call after this one; its environment stays out of the HF runs
    mkdir -p /tmp/b && rm -rf /tmp/b/test-classes && cp -r "$root/.gpu-e2e/test-classes" /tmp/b/ && ln -sfn /tmp/gpu-lib /tmp/b/lib
    export VLMFLUX_BUNDLE_DIR=/tmp/b
    nvidia-smi -L | tee "$out/device.txt"
    python3 "$here/peer_bench.py" bandwidth | tee "$out/bandwidth.jsonl" >&2
    bw=$(tail -n 1 "$out/bandwidth.jsonl" | python3 -c 'import json, sys; print(json.load(sys.stdin)["copy_rw_GBps"])' 2>/dev/null)   # the roofline's
    t0=$(date +%s)
    for m in ${2:-qwen3-vl-2b qwen3-vl-4b}; do
      (( $(date +%s) - t0 >= ${VLMFLUX_E2E_BUDGET:-420} )) && { step "skipped $m: the call's ten minutes are nearly spent"; continue; }
      d=/tmp/vlmflux-models/$m; mkdir -p "$d"
      step "$m: checkpoint + Hugging Face (vision, TTFT, decode)"
      [[ -f $d/model.safetensors ]] || PYTHONUNBUFFERED=1 timeout 240 python3 "$here/peer_bench_vlm.py" "$d" --full --decode --shape $m \
          ${VLMFLUX_E2E_NO_PEER:+--no-peer} > "$out/hf-$m.jsonl" 2> "$out/hf-$m.err" || tail -5 "$out/hf-$m.err" >&2
      python3 "$here/vlm_tokenizer.py" "$d" > /dev/null; cut -c1-330 "$out/hf-$m.jsonl" >&2
      for v in ${VLMFLUX_E2E_VLM_VARIANTS:-default nomk}; do   # nomk: the persistent decode step off; ah: decodeAhead on
        step "$m: bench vlm --ttft ($v)"
        VLMFLUX_JAVA_OPTS="${VLMFLUX_E2E_OPTS:-} $(variant_opts "$v")" timeout 100 "$run" vlmflux bench vlm --model "$d" --ttft \
            --iters 10 --decode-tokens 128 ${bw:+--bandwidth-gbps $bw} --json > "$out/vlm-$m-$v.jsonl" 2> "$out/vlm-$m-$v.err"; echo "rc=$?" >> "$out/vlm-$m-$v.err"
        tail -n 1 "$out/vlm-$m-$v.jsonl" >&2; grep -i "error\|exception\|persistent" "$out/vlm-$m-$v.err" | head -3 >&2
      done
      step "$m: VisionEncoderBench"
      [[ -n ${VLMFLUX_E2E_NO_VISION:-} ]] || for v in ${VLMFLUX_E2E_VISION_VARIANTS:-default}; do   # VLMFLUX_E2E_NO_VISION=1: not the tower
        for sz in ${VLMFLUX_E2E_VISION_SIZES:-448x448 640x480 1280x720}; do   # gt in a variant: vlmflux.cuda.gemmTune
          VLMFLUX_JAVA_OPTS="${VLMFLUX_E2E_OPTS:-} $(variant_opts "$v")" timeout 60 "$run" java io.vlmflux.vision.cuda.VisionEncoderBench "$d" $sz RGB 20 ${VLMFLUX_E2E_VISION_ARGS:-} --json \
              2>> "$out/vision-$m-$v.err" | sed "s/^{/{\"variant\":\"$v\",/" >> "$out/vision-$m.jsonl"
        done
      done
      cut -c1-300 "$out/vision-$m.jsonl" >&2; grep -h "gemm tuning" "$out"/vision-$m-*.err "$out"/vlm-$m-*.err 2>/dev/null | cut -c1-220 | head -40 >&2
      [[ -n ${VLMFLUX_E2E_DROP:-} ]] && rm -rf "$d"
    done
    step done ;;
  mega-builds)   # carry .gpu-e2e/mega-builds.tar.xz: each harness build timed in turn
    rm -rf /tmp/mega-builds && mkdir -p /tmp/mega-builds   # a warm machine's builds of an earlier call are not this call's
    xz -dc "$VLMFLUX_BUNDLE_DIR/mega-builds.tar.xz" | tar -x -C /tmp/mega-builds || exit 3
    nvidia-smi -L | tee "$out/device.txt"
    for b in /tmp/mega-builds/megah-*; do
      n=$(basename "$b")
      timeout ${VLMFLUX_MEGA_TIMEOUT:-40} "/tmp/mega-builds/$n" ${2:-time1} > "$out/$n.txt" 2>&1; echo "rc=$?" >> "$out/$n.txt"
      if [[ ${2:-time1} == time1 ]] && ! grep -q "^time" "$out/$n.txt"; then   # a build older than time1: its first shapes of "time"
        timeout 25 stdbuf -oL "/tmp/mega-builds/$n" time > "$out/$n.txt" 2>&1; echo "rc=$?" >> "$out/$n.txt"
      fi
      grep "^time" "$out/$n.txt" | sed -E "s/^time +/$n /; s/ \(early [0-9], split-K [0-9], stream [0-9], ring +([0-9]+)\)/ ring \1/; s/ \([0-9. ]+tok\/s.*//" >&2
    done
    step done ;;
  mega)   # carry .gpu-e2e/megah.xz: the persistent decode step's checks, then its four forms timed against the per-kernel step
    xz -dc "$VLMFLUX_BUNDLE_DIR/megah.xz" > /tmp/megah && chmod +x /tmp/megah || exit 3
    nvidia-smi -L | tee "$out/device.txt"
    timeout ${VLMFLUX_MEGA_TIMEOUT:-240} /tmp/megah ${2:-all} > "$out/mega.txt" 2>&1; echo "rc=$?" >> "$out/mega.txt"
    echo "$(grep -c '^ok ' "$out/mega.txt") checks ok" >&2; grep -v "^ok " "$out/mega.txt" | tail -30 >&2
    step done ;;
  mega-ncu)   # carry .gpu-e2e/megah.xz (a FEW build will do): Nsight Compute on one launch of the persistent step's library form
    # or form $3 (mega_harness one [0.6b|vl4] [form]: Qwen3-0.6B at 2,048 cached, or Qwen3-VL-4B at 384) — warp stall reasons (instruction fetch,
    # "no_instruction", against memory, "long_scoreboard"), instruction and scheduler statistics; raw and details CSV under $OUT
    command -v ncu > /dev/null || { echo "e2e-gpu-run.sh mega-ncu: no ncu on PATH" >&2; exit 3; }
    xz -dc "$VLMFLUX_BUNDLE_DIR/megah.xz" > /tmp/megah && chmod +x /tmp/megah || exit 3
    timeout 200 ncu --kernel-name regex:'^mega_f[0-9]+_h(64|128)$' --launch-skip 5 --launch-count 1 --section WarpStateStats --section InstructionStats \
        --section SchedulerStats --section LaunchStats --section SourceCounters -f -o /tmp/mega-ncu /tmp/megah one ${2:-0.6b} ${3:-} > "$out/mega-ncu.txt" 2>&1
    echo "rc=$?" >> "$out/mega-ncu.txt"
    ncu -i /tmp/mega-ncu.ncu-rep --page raw --csv > "$out/mega-ncu-raw.csv" 2>&1
    ncu -i /tmp/mega-ncu.ncu-rep --page details --csv > "$out/mega-ncu-details.csv" 2>&1
    # per-instruction stall samples (a -lineinfo build maps them to source lines): which stage the barrier / fetch stalls sit in
    ncu -i /tmp/mega-ncu.ncu-rep --page source --csv --print-source sass > /tmp/mega-ncu-source.csv 2>&1 && xz -c /tmp/mega-ncu-source.csv > "$out/mega-ncu-source.csv.xz"
    python3 - "$out/mega-ncu-raw.csv" <<'PY' >&2
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head, vals = rows[0], rows[-1]
for name, val in sorted(zip(head, vals)):
    if ("issue_stalled" in name and "per_issue_active" in name) or name in ("gpu__time_duration.sum", "launch__registers_per_thread", "smsp__inst_executed.sum"):
        print(name, val)
PY
    step done ;;
  int4-check)   # carry .gpu-e2e/jre.tar.xz, lib, test-classes; the slim tree plus fixtures/tiny-qwen2 and tiny-qwen3
    # int4_harness (kernel checks at every warp count and load schedule, then timings), then the GPU tests of the 4-bit
    # path and the two decoder tests stop 25 fixed: what a kernel change to int4.cu must pass before anything is timed
    step "int4_harness"
    PATH=$PATH:/usr/local/cuda/bin nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/int4h "$root/cuda-native/src/test/cuda/int4_harness.cu" > "$out/int4h-build.txt" 2>&1
    timeout 150 /tmp/int4h > "$out/int4h.txt" 2>&1; echo "rc=$?" >> "$out/int4h.txt"
    grep -v ": ok" "$out/int4h.txt" | grep -v act-order >&2
    step "GPU tests: Int4OpsTest, CudaQuantizedModelTest, CudaDecoderTest (pdl, split-key)"
    demo=(); [[ -f "$root/demos/models/shapes-vl/model.safetensors" ]] && demo=(--select-class io.vlmflux.demos.DemoModelHeldOutGpuTest)
    timeout 200 "$run" tests --select-class io.vlmflux.cuda.gpu.Int4OpsTest --select-class io.vlmflux.llm.quant.CudaQuantizedModelTest ${demo[@]+"${demo[@]}"} \
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#pdlChangesNothingButTiming(java.lang.String)' \
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#splitKeyPrefillAndEvictionKernelMatchTheDefaultPath(java.nio.file.Path)' \
        --select-method 'io.vlmflux.llm.cuda.CudaDecoderTest#decodeAheadGivesThePlainPathsTokens(java.lang.String)' \
        > "$out/tests.txt" 2>&1; echo "rc=$?" >> "$out/tests.txt"
    grep -E "tests (successful|failed|found)" "$out/tests.txt" >&2; grep -B1 -A6 "✘" "$out/tests.txt" | head -40 >&2
    step done ;;
  *) echo "usage: $0 int4-ncu|mega-ncu|unmeasured|unpack|tests-warm|quick|bench|prep|run|tests|prep-all|measure|measure-int4|profile|int4-check|qwen3vl|mega|mega-builds" >&2; exit 2 ;;
esac
