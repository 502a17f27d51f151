#!/usr/bin/env bash
# The GPU work written but not yet run on a GPU, staged on the build machine and run in a few deadline-bound device
# calls (each under the ten minutes a call may take; results tarred into $OUT/pending-CALL.tar.xz, since a call brings
# back at most 8 files). The staging lives in .gpu-e2e (git-ignored), which a new checkout does not have: `stage`
# rebuilds it from the checkout as it is. The working tree that travels with a call is limited to 64 MiB, carried paths
# included, and the tree alone is ~60 MB: `slim` moves every tracked file over 100 KB out of the checkout (into
# ../.vlmflux-slim; the tiny-qwen2 / tiny-qwen3 fixtures and the demo tokenizer stay), `full` moves them back — run `full` before editing or
# committing (`status` says which state the tree is in).
#
# Build machine:
#   pending.sh stage    GPU jars (-Dvlmflux.buildSuffix=-gpu), the bundle in .gpu-e2e (jre.tar.xz, lib/ without the
#                       GStreamer / netty / prometheus jars, class-only test-classes/), the FEW mega harness (megah.xz,
#                       forms 1 / 129 / 1153 / 2177 / 3201); ~10 min on 2 cores
#   pending.sh slim | full | status
#   pending.sh calls    the run tool's command and carry list for each call below
# Device machine (repo root; DEADLINE = seconds the call may use, default 540):
#   pending.sh A   new GPU tests: TunedGemmTest (vlmflux.cuda.gemmTune), VisionGpuOpsTest (vlmflux.vision.fastElementwise),
#                  PrefillProfileTest (bench llm --profile-prefill),
#                  GpuVisionEncoderTest#randomTowersMatchCpuWithTheFastSwitches, Int4OpsTest + CudaQuantizedModelTest (the
#                  ring GEMV vlmflux.cuda.int4Ring and the sliced prefill vlmflux.cuda.int4PrefillChunkKiB); KernelBench gemm
#                  (cuBLAS vs tuned cuBLASLt, product by product); then int4_harness built there (the ring forms checked
#                  at every warp count, then timed)
#   pending.sh B   issue 15: e2e-gpu-run.sh measure-int4 qwen2.5-7b with VLMFLUX_INT4_VARIANTS="default ring slice16 slice32"
#                  (bf16, then 4-bit rtn: the tensor-core GEMV, the ring GEMV, the prefill in 16 / 32 MiB slices; no eval;
#                  --profile-prefill: the 4-bit prefill's dequantization against its GEMMs)
#   pending.sh C   issue 18's frame path: e2e-gpu-run.sh qwen3vl qwen2.5-vl-3b (no Hugging Face peer), the tower at 448x448 (the
#                  target size; --profile: its ms per kind of op) with default / gt (gemmTune) / fe (fastElementwise) / gtfe, bench vlm
#                  --ttft at 640x480 with default / gtfe / gt; then bench llm
#                  qwen2.5-3b default / gt --profile-prefill (prefill ms at 512 and 2,048 tokens, and where they go)
#   pending.sh D   issue 18's decode: e2e-gpu-run.sh mega kvsmem, l2pf, both (the persistent step's K/V through shared
#                  memory by bulk copies, the L2 prefetch across barriers, both: bit for bit against the library form, timed)
# Order of value when device time is short: A (nothing is flipped on before its tests pass), B, C, D.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stash=${VLMFLUX_SLIM_STASH:-$root/../.vlmflux-slim}
keep=${VLMFLUX_SLIM_KEEP:-fixtures/tiny-qwen[23]/|demos/models/shapes-vl/tokenizer.json}   # the int4 tests' fixtures; vlm_tokenizer.py's source (call C)
out=${OUT:-/tmp/vlmflux-pending-out}
deadline=${DEADLINE:-540}
t0=$(date +%s)
left() { echo $(( deadline - ($(date +%s) - t0) )); }
step() { echo "== $(date -u +%T) ($(left) s left) $*" >&2; }
finish() {   # one tarball back (a call returns at most 8 files)
  local name=$1
  (cd "$out" && find . -maxdepth 1 -type f ! -name '*.tar.xz' -print0 | tar --null -T - -cJf "pending-$name.tar.xz" && \
     find . -mindepth 1 ! -name "pending-$name.tar.xz" -exec rm -rf {} + ) 2> /dev/null
  ls -la "$out" >&2
}
runtime() {   # the bundle's runtime and jars where e2e-gpu-run.sh's modes look for them
  export VLMFLUX_JRE_DIR=/tmp/vlmflux-jre-e2e
  if [[ ! -x $VLMFLUX_JRE_DIR/jre/bin/java ]]; then
    rm -rf "$VLMFLUX_JRE_DIR" && mkdir -p "$VLMFLUX_JRE_DIR" && tar -xJf "$root/.gpu-e2e/jre.tar.xz" -C "$VLMFLUX_JRE_DIR" && touch "$VLMFLUX_JRE_DIR/jre/release"
  fi
  rm -rf /tmp/gpu-lib && cp -r "$root/.gpu-e2e/lib" /tmp/gpu-lib
  nvidia-smi -L | tee "$out/device.txt" >&2
}
mkdir -p "$out"
case "${1:-}" in
  stage)
    export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64} PATH=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin:$PATH
    [[ -f "$root/demos/models/shapes-vl/model.safetensors" ]] || { echo "pending.sh stage: the tree is slim; run 'pending.sh full' first" >&2; exit 2; }
    (cd "$root" && nvcc -O3 -std=c++17 -arch=sm_90 -DMEGA_HARNESS_FEW -lineinfo -o /tmp/megah-few cuda-native/src/test/cuda/mega_harness.cu \
        && xz -9 -c /tmp/megah-few > /tmp/megah-few.xz && echo "[pending] mega harness built" >&2) &
    harness=$!
    # the project's jars into the local repository first: make-bundle.sh resolves each module's dependencies from there
    (cd "$root" && mvn -B -ntp -q -Dvlmflux.buildSuffix=-gpu -DskipTests install) || exit 1
    VLMFLUX_BUNDLE_DIR="$root/.gpu-e2e" VLMFLUX_BUNDLE_MODULES=cuda-native,llm,vision,pipeline,demos VLMFLUX_BUNDLE_SLIM=1 \
        "$here/make-bundle.sh" || exit 1
    # what no call here loads (the server's netty, the Kafka / MQTT sinks and their compressors, GStreamer's bindings):
    # the calls carry jre + lib + test-classes (~47 MB) with the slim tree (~13 MB) under the 64 MiB a transfer takes
    (cd "$root/.gpu-e2e/lib" && rm -f netty-* *prometheus* gst1-java-core-* jna-* kafka-clients-* zstd-jni-* snappy-java-* lz4-java-* \
        org.eclipse.paho.*)
    wait $harness && mv /tmp/megah-few.xz "$root/.gpu-e2e/megah.xz" || { echo "pending.sh stage: the mega harness did not build" >&2; exit 1; }
    git -C "$root" rev-parse --short HEAD > "$root/.gpu-e2e/BUNDLE_AT"
    [[ -n $(git -C "$root" status --porcelain --untracked-files=no) ]] && echo "pending.sh stage: NOTE the bundle has uncommitted changes of $(cat "$root/.gpu-e2e/BUNDLE_AT")" >&2
    du -sh "$root"/.gpu-e2e/* >&2 ;;
  slim)
    mkdir -p "$stash"
    (cd "$root" && git ls-files -z | xargs -0 du -b 2>/dev/null | awk '$1 > 100000 {print $2}' | grep -v -E "$keep" | while read -r f; do
       mkdir -p "$stash/$(dirname "$f")" && mv "$root/$f" "$stash/$f"; done)
    echo "slim: $(find "$stash" -type f | wc -l) files in $stash; the tree: $(cd "$root" && git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes" >&2 ;;
  full)
    [[ -d $stash ]] && (cd "$stash" && find . -type f | while read -r f; do mkdir -p "$root/$(dirname "$f")" && mv "$f" "$root/$f"; done) && rm -rf "$stash"
    git -C "$root" status --short | grep '^ D' && { echo "full: tracked files still missing (above)" >&2; exit 1; }
    echo "full: the tree is whole" >&2 ;;
  status)
    if [[ -d $stash ]]; then echo "slim ($(find "$stash" -type f | wc -l) files in $stash)"; else echo "full"; fi ;;
  carry|calls)   # the run tool's arguments for each call (after `stage` and `slim` on the build machine)
    for c in A B C D; do
      carry='[".gpu-e2e/jre.tar.xz", ".gpu-e2e/lib", ".gpu-e2e/test-classes"]'; [[ $c == D ]] && carry='[".gpu-e2e/megah.xz"]'
      echo "$c: command \"DEADLINE=540 bash cuda-native/bundle/pending.sh $c\", carry $carry, timeout_s 600"
    done ;;
  A)
    runtime
    export VLMFLUX_BUNDLE_DIR=$root/.gpu-e2e
    rm -f /tmp/int4h.done
    (PATH=$PATH:/usr/local/cuda/bin nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/int4h "$root/cuda-native/src/test/cuda/int4_harness.cu" > "$out/int4h-build.txt" 2>&1; touch /tmp/int4h.done) &
    step "new GPU tests (int4_harness building meanwhile)"
    timeout $(( $(left) - 230 )) "$here/run-on-gpu.sh" tests --select-class io.vlmflux.cuda.gpu.TunedGemmTest --select-class io.vlmflux.cuda.gpu.VisionGpuOpsTest \
        --select-method 'io.vlmflux.vision.cuda.GpuVisionEncoderTest#randomTowersMatchCpuWithTheFastSwitches(boolean, int, int, int, java.lang.String)' \
        --select-method 'io.vlmflux.vision.cuda.GpuVisionEncoderTest#randomTowersMatchCpu(boolean, int, int, int)' \
        --select-class io.vlmflux.cuda.gpu.Int4OpsTest --select-class io.vlmflux.llm.quant.CudaQuantizedModelTest \
        --select-class io.vlmflux.llm.cuda.PrefillProfileTest > "$out/tests.txt" 2>&1
    echo "rc=$?" >> "$out/tests.txt"
    grep -E "tests (successful|failed|found|skipped)" "$out/tests.txt" >&2; grep -B2 -A12 "✘" "$out/tests.txt" | head -80 >&2
    grep -h "gemm tuning" "$out/tests.txt" | cut -c1-200 | head -20 >&2
    step "KernelBench gemm: cuBLAS vs tuned cuBLASLt on the tower's and the prefills' products"
    timeout 90 "$here/run-on-gpu.sh" java io.vlmflux.cuda.gpu.KernelBench gemm > "$out/kernelbench-gemm.txt" 2>&1; echo "rc=$?" >> "$out/kernelbench-gemm.txt"
    grep -E '^\| [0-9]|rc=' "$out/kernelbench-gemm.txt" >&2
    step "int4_harness (ring checks, then timings)"
    while [[ ! -f /tmp/int4h.done ]] && (( $(left) > 20 )); do sleep 2; done
    timeout $(( $(left) - 15 )) /tmp/int4h > "$out/int4h.txt" 2>&1; echo "rc=$?" >> "$out/int4h.txt"
    grep -v ": ok" "$out/int4h.txt" | grep -v act-order | cut -c1-400 | tail -40 >&2
    finish A ;;
  B)
    runtime
    VLMFLUX_INT4_VARIANTS=${VLMFLUX_INT4_VARIANTS:-default ring slice16 slice32} VLMFLUX_INT4_NO_EVAL=1 VLMFLUX_INT4_NO_GATEUP=1 VLMFLUX_INT4_NO_BEFORE=1 VLMFLUX_E2E_BENCH_ARGS=--profile-prefill \
        OUT=$out timeout $(( $(left) - 10 )) bash "$here/e2e-gpu-run.sh" measure-int4 qwen2.5-7b
    finish B ;;
  C)
    runtime
    VLMFLUX_E2E_NO_PEER=1 VLMFLUX_E2E_VLM_VARIANTS="default gtfe gt" VLMFLUX_E2E_VISION_VARIANTS="default gt fe gtfe" \
        VLMFLUX_E2E_VISION_SIZES="448x448" VLMFLUX_E2E_VISION_ARGS=--profile VLMFLUX_E2E_BUDGET=300 OUT=$out timeout $(( $(left) - 130 )) bash "$here/e2e-gpu-run.sh" qwen3vl qwen2.5-vl-3b
    VLMFLUX_E2E_BENCH=qwen2.5-3b VLMFLUX_E2E_VARIANTS="default gt" VLMFLUX_E2E_BENCH_ARGS=--profile-prefill OUT=$out timeout $(( $(left) - 10 )) bash "$here/e2e-gpu-run.sh" bench
    finish C ;;
  D)
    export VLMFLUX_BUNDLE_DIR=$root/.gpu-e2e
    for m in kvsmem l2pf both; do
      (( $(left) < 60 )) && { step "skipped mega $m"; continue; }
      step "mega $m"
      VLMFLUX_MEGA_TIMEOUT=$(( $(left) / 2 < 200 ? $(left) / 2 : 200 )) OUT=$out bash "$here/e2e-gpu-run.sh" mega $m; mv "$out/mega.txt" "$out/mega-$m.txt"
    done
    finish D ;;
  *) echo "usage: $0 stage|slim|full|status|calls|A|B|C|D" >&2; exit 2 ;;
esac
